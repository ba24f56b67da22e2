//! "Recently deleted" for administrators: the sites and assets deleted lately, each with
//! how many rows went with it, and restoring one from its tombstone
//! ([`crate::editing::restore`], which owns the transaction).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::present::{row_label, timestamp};
use crate::db::repo::rows;
use crate::db::{DbConn, DbError};
use crate::domain::{TABLES, TableId, table_by_name};

/// How many deletions the page lists.
const SHOWN: usize = 200;

pub struct DeletedRow {
    pub table: &'static str,
    pub noun: &'static str,
    pub id: String,
    pub label: String,
    pub when: String,
    pub by: String,
    /// Rows deleted with it below it.
    pub with: usize,
    pub restorable: bool,
}

pub struct DeletedView {
    pub rows: Vec<DeletedRow>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// The tables whose deletes an administrator makes (and so undoes here).
fn tables() -> Vec<TableId> {
    (0..TABLES.len())
        .filter(|t| !TABLES[*t].offline_delete)
        .collect()
}

/// The table called `name` when its deletes are undone here.
pub fn restorable_table(name: &str) -> Option<TableId> {
    table_by_name(name).filter(|t| tables().contains(t))
}

/// The latest deletes, newest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<DeletedRow>, DbError> {
    let mut out = Vec::new();
    // How many rows each delete took under each parent, read once per delete and child
    // table (one delete often shows several rows here).
    let mut under: HashMap<(usize, i64), HashMap<String, usize>> = HashMap::new();
    for d in rows::recently_deleted(conn, &tables(), SHOWN)? {
        let def = &TABLES[d.table];
        let mut with = 0;
        for (child, fk) in def.children() {
            let counts = match under.entry((child, d.change_id)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    let mut counts = HashMap::new();
                    for kid in rows::deleted_together(conn, child, d.change_id)? {
                        if let Some(parent) = kid.parent(fk) {
                            *counts.entry(parent.to_owned()).or_insert(0) += 1;
                        }
                    }
                    e.insert(counts)
                }
            };
            with += counts.get(&d.tombstone.id).copied().unwrap_or(0);
        }
        out.push(DeletedRow {
            table: def.name,
            noun: def.noun,
            label: d
                .tombstone
                .values
                .as_ref()
                .map_or_else(|| d.tombstone.id.clone(), |v| row_label(d.table, v)),
            restorable: d.tombstone.values.is_some(),
            id: d.tombstone.id,
            when: timestamp(d.tombstone.last_updated),
            by: d.tombstone.changed_by.unwrap_or_default(),
            with,
        });
    }
    Ok(out)
}
