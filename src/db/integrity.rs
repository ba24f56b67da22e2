//! The rules of the data that need the database, in one place: whether a parent is live,
//! deleted or never existed, who owns a natural key, and whether a row may hold a set of
//! values (its parent live, its key free). Uploads, imports, page edits and conflict
//! resolutions all ask here; none repeats these queries.

use std::collections::HashMap;

use crate::db::repo::rows::{self, Row};
use crate::db::{DbConn, DbError};
use crate::domain::{TABLES, TableId, Values};

/// Where a referenced row stands on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Live,
    /// Deleted: a tombstone remembers it.
    Deleted,
    /// Never existed (or not under that id).
    Never,
}

/// Where each of `ids` stands in `table`.
pub fn presence(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<HashMap<String, Presence>, DbError> {
    let mut out: HashMap<String, Presence> = HashMap::with_capacity(ids.len());
    let live = rows::existing(conn, table, ids)?;
    let absent: Vec<String> = ids.iter().filter(|i| !live.contains(*i)).cloned().collect();
    let buried = rows::tombstones(conn, table, &absent)?;
    for id in ids {
        let p = if live.contains(id) {
            Presence::Live
        } else if buried.contains_key(id) {
            Presence::Deleted
        } else {
            Presence::Never
        };
        out.insert(id.clone(), p);
    }
    Ok(out)
}

/// The rows that own these natural keys, by key (keys in stored form).
pub fn key_owners(
    conn: &mut DbConn,
    table: TableId,
    keys: &[String],
) -> Result<HashMap<String, Row>, DbError> {
    if TABLES[table].natural_key_index().is_none() || keys.is_empty() {
        return Ok(HashMap::new());
    }
    rows::by_natural_keys(conn, table, keys)
}

/// Why a row may not hold the values it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    /// Its parent is not live; the field and the parent's id.
    Parent {
        field: &'static str,
        parent: TableId,
        id: String,
        presence: Presence,
    },
    /// Another row has its natural key.
    KeyTaken {
        noun: &'static str,
        field: &'static str,
        key: String,
        owner: String,
    },
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::Parent {
                parent,
                id,
                presence,
                ..
            } => {
                let noun = TABLES[*parent].noun;
                match presence {
                    Presence::Deleted => {
                        write!(f, "the {noun} it belongs to ({id}) has been deleted")
                    }
                    _ => write!(f, "there is no {noun} {id}"),
                }
            }
            Blocked::KeyTaken {
                noun, field, key, ..
            } => write!(f, "another {noun} already has {field} {key:?}"),
        }
    }
}

/// Whether row `id` of `table` may hold `values`: its parent live, its natural key its own.
pub fn check_row(
    conn: &mut DbConn,
    table: TableId,
    id: &str,
    values: &Values,
) -> Result<Option<Blocked>, DbError> {
    let def = &TABLES[table];
    if let Some((fk, parent)) = def.parent() {
        let p = values[fk].clone().unwrap_or_default();
        let presence = presence(conn, parent, std::slice::from_ref(&p))?
            .remove(&p)
            .unwrap_or(Presence::Never);
        if presence != Presence::Live {
            return Ok(Some(Blocked::Parent {
                field: def.fields[fk].name,
                parent,
                id: p,
                presence,
            }));
        }
    }
    if let Some(k) = def.natural_key_index()
        && let Some(key) = values[k].clone()
        && let Some(owner) = key_owners(conn, table, std::slice::from_ref(&key))?.remove(&key)
        && owner.id != id
    {
        return Ok(Some(Blocked::KeyTaken {
            noun: def.noun,
            field: def.fields[k].name,
            key,
            owner: owner.id,
        }));
    }
    Ok(None)
}
