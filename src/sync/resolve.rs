//! Resolving a recorded conflict (PROTOCOL.md §5): the chosen version is saved on the
//! server with a new stamp, the conflict is closed with who chose what, and the user's
//! flag is cleared after their last open conflict.

use std::collections::HashMap;

use crate::db::dialect::WriteLock;
use crate::db::repo::accounts::{self, User};
use crate::db::repo::conflicts::{self, Conflict, kind};
use crate::db::repo::rows;
use crate::db::{DbConn, DbError, write_txn};
use crate::domain::{Micros, TABLES, table_by_name, time, value};

/// The version picked for one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Server,
    Offline,
    /// A value typed by the person resolving.
    Edited(String),
}

/// What the person picked on the conflict form.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// By field name, for field conflicts.
    pub fields: HashMap<String, Choice>,
    /// For delete conflicts: `Server` keeps the server's state, `Offline` the device's.
    pub row: Option<Choice>,
    /// The server row's stamp the form was made from; a later stamp means a stale form.
    pub version: Option<Micros>,
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no such conflict")]
    NotFound,
    #[error("this conflict was already resolved")]
    AlreadyResolved,
    /// The form does not say what to keep, or an edited value does not fit.
    #[error("{0}")]
    Invalid(String),
    /// The choice cannot be carried out; the conflict stays open.
    #[error("{0}")]
    Impossible(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for ResolveError {
    fn from(e: diesel::result::Error) -> Self {
        ResolveError::Db(DbError::Query(e))
    }
}

/// What happened to a posted resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Resolved,
    /// The server row changed since the form was shown: the conflict now shows the new
    /// server values and nothing was written.
    Stale,
}

/// Loads a conflict that `viewer` may see: their own, or anyone's for an administrator.
pub fn visible(conn: &mut DbConn, viewer: &User, id: &str) -> Result<Conflict, ResolveError> {
    match conflicts::get(conn, id)? {
        Some(c) if c.user_id == viewer.id || viewer.is_admin => Ok(c),
        _ => Err(ResolveError::NotFound),
    }
}

/// The stamp of the server's current version of the conflict's row (live or deleted).
pub fn server_version(conn: &mut DbConn, c: &Conflict) -> Result<Option<Micros>, ResolveError> {
    let Some(table) = table_by_name(&c.table_name) else {
        return Ok(None);
    };
    if let Some(row) = rows::get(conn, table, &c.row_id)? {
        return Ok(Some(row.last_updated));
    }
    Ok(
        rows::tombstones(conn, table, std::slice::from_ref(&c.row_id))?
            .remove(&c.row_id)
            .map(|t| t.last_updated),
    )
}

pub fn resolve(
    conn: &mut DbConn,
    viewer: &User,
    id: &str,
    res: &Resolution,
) -> Result<Outcome, ResolveError> {
    write_txn(conn, WriteLock::Shared, |c, now| {
        let conflict = visible(c, viewer, id)?;
        if conflict.status != "open" {
            return Err(ResolveError::AlreadyResolved);
        }
        let table = table_by_name(&conflict.table_name).ok_or_else(|| {
            ResolveError::Impossible("the conflict names an unknown table".into())
        })?;
        let def = &TABLES[table];
        let row = rows::by_ids(c, table, std::slice::from_ref(&conflict.row_id), true)?
            .remove(&conflict.row_id);
        let tomb = match row {
            Some(_) => None,
            None => rows::tombstones(c, table, std::slice::from_ref(&conflict.row_id))?
                .remove(&conflict.row_id),
        };
        let current = row
            .as_ref()
            .map(|r| r.last_updated)
            .or(tomb.as_ref().map(|t| t.last_updated));
        if res.version != current {
            let values: Vec<(String, Option<String>)> = def
                .fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    (
                        f.name.to_owned(),
                        row.as_ref().and_then(|r| r.values[i].clone()),
                    )
                })
                .collect();
            conflicts::refresh_server(c, id, current, &values)?;
            return Ok(Outcome::Stale);
        }
        let fields = conflicts::fields(c, id)?;
        let mut summary = Vec::new();
        let actor = format!("{} (resolving a conflict)", viewer.name);
        let actor = actor.as_str();
        match (conflict.kind.as_str(), row) {
            (kind::DELETE, Some(row)) => match res.row {
                Some(Choice::Offline) => {
                    rows::delete_cascade(c, table, std::slice::from_ref(&row.id), now, actor)?;
                    summary.push("row: offline (deleted)".to_owned());
                }
                Some(Choice::Server) => {
                    rows::update(
                        c,
                        table,
                        &row.id,
                        &[],
                        time::after(now.max(row.last_updated + 1)),
                        actor,
                    )?;
                    summary.push("row: server (kept)".to_owned());
                }
                _ => {
                    return Err(ResolveError::Invalid(
                        "choose whether the row is deleted or kept".into(),
                    ));
                }
            },
            (kind::EDIT_DELETED, None) => {
                let tomb = tomb.ok_or_else(|| {
                    ResolveError::Impossible("the deleted row is no longer known".into())
                })?;
                match res.row {
                    Some(Choice::Server) => {
                        rows::touch_tombstone(
                            c,
                            table,
                            &tomb.id,
                            time::after(now.max(tomb.last_updated + 1)),
                            actor,
                        )?;
                        summary.push("row: server (stays deleted)".to_owned());
                    }
                    Some(Choice::Offline) => {
                        let mut values = tomb.values.clone().ok_or_else(|| {
                            ResolveError::Impossible(
                                "the deleted row's values were not kept, so it cannot be restored"
                                    .into(),
                            )
                        })?;
                        for f in &fields {
                            if let Some(i) = def.field_index(&f.field) {
                                values[i] = f.offline_value.clone();
                            }
                        }
                        check_restorable(c, table, &tomb.id, &values)?;
                        rows::remove_tombstone(c, table, &tomb.id)?;
                        let stamp = time::after(now.max(tomb.last_updated + 1));
                        rows::insert(c, table, &[(tomb.id.clone(), values, stamp)], actor)?;
                        summary.push("row: offline (restored)".to_owned());
                    }
                    _ => {
                        return Err(ResolveError::Invalid(
                            "choose whether the row stays deleted or is restored".into(),
                        ));
                    }
                }
            }
            (kind::FIELDS | kind::DUPLICATE, Some(row)) => {
                let mut changes = Vec::new();
                let mut values = row.values.clone();
                for f in &fields {
                    let Some(i) = def.field_index(&f.field) else {
                        continue;
                    };
                    let chosen = match res.fields.get(&f.field) {
                        Some(Choice::Server) => row.values[i].clone(),
                        Some(Choice::Offline) => f.offline_value.clone(),
                        Some(Choice::Edited(text)) => value::parse(&def.fields[i], Some(text))
                            .map_err(|e| ResolveError::Invalid(format!("{} {e}", f.field)))?,
                        None => {
                            return Err(ResolveError::Invalid(format!(
                                "choose a version of {}",
                                f.field
                            )));
                        }
                    };
                    let label = match res.fields.get(&f.field) {
                        Some(Choice::Server) => "server",
                        Some(Choice::Offline) => "offline",
                        _ => "edited",
                    };
                    conflicts::record_choice(c, id, &f.field, label, chosen.as_deref())?;
                    summary.push(format!("{}: {label}", f.field));
                    values[i] = chosen.clone();
                    changes.push((i, chosen));
                }
                if values != row.values {
                    check_restorable(c, table, &row.id, &values)?;
                }
                rows::update(
                    c,
                    table,
                    &row.id,
                    &changes,
                    time::after(now.max(row.last_updated + 1)),
                    actor,
                )?;
            }
            _ => {
                return Err(ResolveError::Impossible(
                    "the row is no longer in the state this conflict describes".into(),
                ));
            }
        }
        conflicts::close(c, id, &viewer.id, &summary.join("; "), now)?;
        if conflicts::count_open(c, Some(&conflict.user_id))? == 0 {
            accounts::set_conflict_flag(c, &conflict.user_id, false)?;
        }
        Ok(Outcome::Resolved)
    })
}

/// A row may hold `values` only if its parent exists and its natural key is free.
fn check_restorable(
    conn: &mut DbConn,
    table: usize,
    id: &str,
    values: &[Option<String>],
) -> Result<(), ResolveError> {
    let def = &TABLES[table];
    if let Some((fk, parent)) = def.parent() {
        let p = values[fk].clone().unwrap_or_default();
        if rows::existing(conn, parent, std::slice::from_ref(&p))?.is_empty() {
            return Err(ResolveError::Impossible(format!(
                "the {} this {} belongs to ({p}) has been deleted",
                TABLES[parent].noun, def.noun
            )));
        }
    }
    if let Some(k) = def.natural_key_index()
        && let Some(key) = values[k].clone()
        && let Some(other) =
            rows::by_natural_keys(conn, table, std::slice::from_ref(&key))?.remove(&key)
        && other.id != id
    {
        return Err(ResolveError::Impossible(format!(
            "{} {key:?} is now used by another {}",
            def.fields[k].name, def.noun
        )));
    }
    Ok(())
}
