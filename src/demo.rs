//! `offsync demo`: a small field-inspection data set and demo users, for a first look.

use crate::accounts::{self, AccountError};
use crate::db::repo::accounts::count;
use crate::db::{DbConn, DbError, Sql};
use crate::domain::{TABLES, table_by_name};
use crate::sync::SyncError;
use crate::sync::codec::{ChangesetWriter, FieldChange, Item, Record, Was};

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

fn record(table: &str, id: String, values: &[Option<&str>]) -> Item {
    let t = table_by_name(table).unwrap_or_default();
    Item::Record(Record {
        table: t,
        id,
        base: None,
        updated: None,
        fields: values
            .iter()
            .enumerate()
            .map(|(index, v)| FieldChange {
                index,
                value: v.map(str::to_owned),
                was: Was::Unknown,
            })
            .collect(),
    })
}

fn data_set() -> Vec<Item> {
    let mut items = vec![
        record(
            "sites",
            id(1),
            &[
                Some("NPS"),
                Some("North pumping station"),
                Some("1 Quay Road, Portsmouth PO1 3LJ"),
                Some("Key at the gate house; ask for Sam"),
            ],
        ),
        record(
            "sites",
            id(2),
            &[
                Some("WTW"),
                Some("Westfield water treatment works"),
                Some("Westfield Lane, Fareham"),
                Some("Hard hat and hi-vis"),
            ],
        ),
        record(
            "sites",
            id(3),
            &[Some("RSV"), Some("Hilltop service reservoir"), None, None],
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
                Some(&id(site)),
                Some(tag),
                Some(description),
                Some(status),
                notes,
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
                Some(&id(asset)),
                Some(at),
                Some("Jo Bloggs"),
                Some(result),
                Some(summary),
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
            &[Some(&id(inspection)), Some(kind), Some(value), Some(unit)],
        ));
    }
    items
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
