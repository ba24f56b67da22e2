//! `offsync demo`: a small field-inspection data set and demo users, for a first look.

use crate::accounts::{self, AccountError};
use crate::db::repo::accounts::count;
use crate::db::{DbConn, DbError, Sql};
use crate::domain::TABLES;
use crate::sync::SyncError;
use crate::sync::codec::{ChangesetWriter, Item, Record};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the database is not empty; the demo data goes only into an empty database")]
    NotEmpty,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The demo users: name, password, administrator.
pub const USERS: &[(&str, &str, bool)] = &[
    ("engineer", "engineer-demo", false),
    ("office", "office-demo", false),
    ("admin", "admin-demo", true),
];

fn id(n: u32) -> String {
    format!("0193a1c4-0000-7000-8000-{n:012}")
}

/// A demo row, its fields by name; `None` for a name the domain does not declare, which
/// the demo's test catches (`every_demo_row_names_declared_fields`).
fn record(table: &str, id: String, values: &[(&str, Option<&str>)]) -> Option<Item> {
    Record::create(table, &id, values).map(Item::Record)
}

fn data_set() -> Vec<Item> {
    let mut items: Vec<Option<Item>> = vec![
        record(
            "sites",
            id(1),
            &[
                ("code", Some("NPS")),
                ("name", Some("North pumping station")),
                ("address", Some("1 Quay Road, Portsmouth PO1 3LJ")),
                ("access_notes", Some("Key at the gate house; ask for Sam")),
            ],
        ),
        record(
            "sites",
            id(2),
            &[
                ("code", Some("WTW")),
                ("name", Some("Westfield water treatment works")),
                ("address", Some("Westfield Lane, Fareham")),
                ("access_notes", Some("Hard hat and hi-vis")),
            ],
        ),
        record(
            "sites",
            id(3),
            &[
                ("code", Some("RSV")),
                ("name", Some("Hilltop service reservoir")),
            ],
        ),
    ];
    let assets = [
        (
            10,
            1,
            "P-001",
            "Duty pump 1 (Grundfos NB 65-200)",
            "ok",
            Some("Bearing noise at 50 Hz"),
        ),
        (
            11,
            1,
            "P-002",
            "Standby pump 2",
            "degraded",
            Some("Seal weeping"),
        ),
        (
            12,
            2,
            "V-010",
            "Inlet valve DN150",
            "ok",
            Some("Actuator replaced 2025"),
        ),
        (13, 2, "B-020", "Blower 2", "broken", Some("Awaiting parts")),
        (14, 3, "L-100", "Level sensor", "ok", None),
    ];
    for (n, site, tag, description, status, notes) in assets {
        items.push(record(
            "assets",
            id(n),
            &[
                ("site_id", Some(&id(site))),
                ("tag", Some(tag)),
                ("description", Some(description)),
                ("status", Some(status)),
                ("notes", notes),
            ],
        ));
    }
    let inspections = [
        (
            20,
            10,
            "2026-11-19T08:30:00.000000Z",
            "pass",
            "Running normally",
        ),
        (
            21,
            11,
            "2026-11-19T09:15:30.000000Z",
            "fail",
            "Seal must be replaced",
        ),
        (
            22,
            12,
            "2026-11-20T10:00:00.000000Z",
            "pass",
            "Opens and closes fully",
        ),
    ];
    for (n, asset, at, result, summary) in inspections {
        items.push(record(
            "inspections",
            id(n),
            &[
                ("asset_id", Some(&id(asset))),
                ("inspected_at", Some(at)),
                ("inspector", Some("Jo Bloggs")),
                ("result", Some(result)),
                ("summary", Some(summary)),
            ],
        ));
    }
    let readings = [
        (30, 20, "pressure", "4.25", "bar"),
        (31, 20, "temperature", "61.5", "°C"),
        (32, 21, "vibration", "12.5", "mm/s"),
        (33, 22, "travel time", "38", "s"),
    ];
    for (n, inspection, kind, value, unit) in readings {
        items.push(record(
            "readings",
            id(n),
            &[
                ("inspection_id", Some(&id(inspection))),
                ("kind", Some(kind)),
                ("value", Some(value)),
                ("unit", Some(unit)),
            ],
        ));
    }
    items.into_iter().flatten().collect()
}

/// Loads the demo data set and users into an empty database; returns the logins.
pub fn load(conn: &mut DbConn) -> Result<Vec<(String, String, bool)>, DemoError> {
    for t in TABLES {
        if count(
            conn,
            Sql::new(format!("SELECT COUNT(*) AS n FROM {}", t.name)),
        )? > 0
        {
            return Err(DemoError::NotEmpty);
        }
    }
    if crate::db::repo::accounts::count_users(conn)? > 0 {
        return Err(DemoError::NotEmpty);
    }
    let mut w = ChangesetWriter::start(Vec::new(), None).map_err(SyncError::from)?;
    for item in data_set() {
        w.item(&item).map_err(SyncError::from)?;
    }
    let doc = w.finish().map_err(SyncError::from)?;
    crate::sync::import::import(conn, std::io::Cursor::new(doc), u64::MAX)?;
    let mut logins = Vec::new();
    for (name, password, admin) in USERS {
        accounts::add_user(conn, name, password, *admin)?;
        logins.push(((*name).to_owned(), (*password).to_owned(), *admin));
    }
    Ok(logins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_demo_row_names_declared_fields() {
        // 3 sites, 5 assets, 3 inspections, 4 readings: a misspelt field drops its row.
        assert_eq!(data_set().len(), 15);
    }
}
