//! What the laptop shows of its user's open conflicts on the main site, offline: as the
//! last sync brought them (`store::open_conflicts`), each in words ("the office deleted
//! this inspection on 21 Nov; your edit waits in your conflicts") with both values.

use std::collections::HashMap;

use super::present::{field_label, row_label};
use crate::db::repo::rows;
use crate::db::{DbConn, DbError};
use crate::domain::{TABLES, TableId, table_by_name};
use crate::offline::store::{self, OpenConflict};

/// One open conflict, for the laptop's pages.
pub struct OpenConflictView {
    pub id: String,
    pub record: String,
    /// The record on this laptop, while it is here.
    pub href: String,
    pub sentence: String,
    /// (field, the server's value, this laptop's), "(empty)" for none.
    pub fields: Vec<(String, String, String)>,
}

/// "21 Nov 2026" from a stored instant.
fn day(instant: Option<&str>) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(instant?).ok()?;
    Some(t.format("%-d %b %Y").to_string())
}

/// What happened, in the engineer's words, for conflict `c` of a `noun`.
pub fn sentence(c: &OpenConflict, noun: &str) -> String {
    let by = c
        .server_by
        .as_deref()
        .map(|who| format!(" by {who}"))
        .unwrap_or_default();
    let when = day(c.server_at.as_deref())
        .map(|d| format!(" on {d}"))
        .unwrap_or_default();
    match c.kind.as_str() {
        "edit_deleted" => format!(
            "This {noun} was deleted on the main site{by}{when} while you edited it; your edit waits in your conflicts."
        ),
        "delete" => format!(
            "Your delete was not taken: this {noun} was changed on the main site{by}{when}. It waits in your conflicts."
        ),
        "parent_deleted" => format!(
            "You made this {noun} under a record deleted on the main site; it waits in your conflicts, not on the main site."
        ),
        "duplicate" => format!(
            "This {noun} was already on the main site; yours was joined to it, and the values that differ wait in your conflicts."
        ),
        _ => {
            let names: Vec<String> = c.fields.iter().map(|f| field_label(&f.name)).collect();
            format!(
                "This {noun}'s {} changed on the main site too{by}{when}; the main site kept its value, and yours waits in your conflicts.",
                names.join(", ")
            )
        }
    }
}

fn shown(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(empty)".into())
}

/// The user's open conflicts as of the last sync, named and in words. The records still on
/// the laptop are read in one query per table.
pub fn open_conflicts(conn: &mut DbConn) -> Result<Vec<OpenConflictView>, DbError> {
    let list = store::open_conflicts(conn, None)?;
    let mut here: HashMap<(TableId, String), String> = HashMap::new();
    for (table, def) in TABLES.iter().enumerate() {
        let ids: Vec<String> = list
            .iter()
            .filter(|c| c.table_name == def.name)
            .map(|c| c.row_id.clone())
            .collect();
        if ids.is_empty() {
            continue;
        }
        for (id, row) in rows::by_ids(conn, table, &ids, false)? {
            here.insert((table, id), row_label(table, &row.values));
        }
    }
    Ok(list
        .into_iter()
        .map(|c| {
            let table = table_by_name(&c.table_name);
            let noun = table.map_or("record", |t| TABLES[t].noun);
            let label = table.and_then(|t| here.get(&(t, c.row_id.clone())));
            OpenConflictView {
                // A row gone from the laptop is named by its kind alone.
                record: match label {
                    Some(label) => format!("{noun} {label}"),
                    None => format!("{noun} (no longer on this laptop)"),
                },
                href: match label {
                    Some(_) => format!("/{}/{}", c.table_name, c.row_id),
                    None => String::new(),
                },
                sentence: sentence(&c, noun),
                fields: c
                    .fields
                    .iter()
                    .map(|f| {
                        let server = match c.kind.as_str() {
                            "edit_deleted" => "(deleted)".to_owned(),
                            _ => shown(&f.server),
                        };
                        (field_label(&f.name), server, shown(&f.offline))
                    })
                    .collect(),
                id: c.id,
            }
        })
        .collect())
}
