//! Online edits from the pages: creating, changing and deleting rows of any table, every
//! field, with the row's `last_updated` as its version so that a change made meanwhile is
//! shown, never overwritten. Knows nothing of HTTP; the pages turn its errors into messages
//! beside the fields.

use std::collections::BTreeMap;

use crate::db::dialect::WriteLock;
use crate::db::repo::rows::{self, Row};
use crate::db::{DbConn, DbError, write_txn};
use crate::domain::{FieldType, Micros, TABLES, TableId, Values, table_by_name, time, value};
use crate::offline::store::{self, FieldLog};

/// Who is editing: the main site (every field, stamped by the server), or the offline copy
/// on a laptop (only what offline may do, remembered until a sync has uploaded it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Online,
    Offline,
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no such row")]
    NotFound,
    /// Not something the offline copy may do.
    #[error("{0}")]
    Forbidden(String),
    /// Messages by field name; nothing was written.
    #[error("some fields need attention")]
    Invalid(BTreeMap<String, String>),
    /// The row changed since the form was shown; nothing was written.
    #[error("the row was changed meanwhile")]
    Stale(Box<Row>),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for EditError {
    fn from(e: diesel::result::Error) -> Self {
        EditError::Db(DbError::Query(e))
    }
}

/// How a parent is typed into a form: its natural key where it has one (a site's code, an
/// asset's tag), else its id.
pub fn parent_reference(conn: &mut DbConn, parent: TableId, id: &str) -> Result<String, DbError> {
    let def = &TABLES[parent];
    Ok(match def.natural_key_index() {
        Some(k) => rows::get(conn, parent, id)?
            .and_then(|r| r.values[k].clone())
            .unwrap_or_else(|| id.to_owned()),
        None => id.to_owned(),
    })
}

/// Turns form text into stored values, with a message per bad field. An empty input is
/// NULL for a nullable field (a form cannot tell "empty" from "none").
fn values_from_form(
    conn: &mut DbConn,
    table: TableId,
    input: &BTreeMap<String, String>,
) -> Result<Values, EditError> {
    let def = &TABLES[table];
    let mut errors = BTreeMap::new();
    let mut values = Vec::with_capacity(def.fields.len());
    for f in def.fields {
        let raw = input.get(f.name).map(|s| s.trim()).unwrap_or_default();
        let raw = if raw.is_empty() { None } else { Some(raw) };
        let parsed = match (f.ty, raw) {
            (FieldType::Parent(p), Some(reference)) => {
                let parent = table_by_name(p).unwrap_or_default();
                resolve_parent(conn, parent, reference)?
                    .ok_or_else(|| format!("there is no {} {reference:?}", TABLES[parent].noun))
                    .map(Some)
            }
            _ => value::parse(f, raw).map_err(|e| match e {
                value::ValueError::Null => "is required".to_owned(),
                other => other.to_string(),
            }),
        };
        match parsed {
            Ok(Some(v)) if v.len() > 10_000 => {
                errors.insert(f.name.to_owned(), "is longer than 10,000 characters".into());
                values.push(None);
            }
            Ok(v) => values.push(v),
            Err(message) => {
                errors.insert(f.name.to_owned(), message);
                values.push(None);
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(EditError::Invalid(errors))
    }
}

fn resolve_parent(
    conn: &mut DbConn,
    parent: TableId,
    reference: &str,
) -> Result<Option<String>, DbError> {
    let def = &TABLES[parent];
    if def.natural_key_index().is_some()
        && let Some(row) =
            rows::by_natural_keys(conn, parent, &[reference.to_owned()])?.remove(reference)
    {
        return Ok(Some(row.id));
    }
    let Ok(id) = value::parse_id(reference) else {
        return Ok(None);
    };
    Ok(rows::existing(conn, parent, std::slice::from_ref(&id))?
        .into_iter()
        .next())
}

/// The natural key must stay unique: a message for its field if another row has it.
fn check_natural_key(
    conn: &mut DbConn,
    table: TableId,
    id: Option<&str>,
    values: &Values,
) -> Result<(), EditError> {
    let def = &TABLES[table];
    if let Some(k) = def.natural_key_index()
        && let Some(key) = values[k].clone()
        && let Some(other) =
            rows::by_natural_keys(conn, table, std::slice::from_ref(&key))?.remove(&key)
        && Some(other.id.as_str()) != id
    {
        let mut errors = BTreeMap::new();
        errors.insert(
            def.fields[k].name.to_owned(),
            format!(
                "another {} already has {} {key:?}",
                def.noun, def.fields[k].name
            ),
        );
        return Err(EditError::Invalid(errors));
    }
    Ok(())
}

/// Creates a row from form input; returns its id.
pub fn create(
    conn: &mut DbConn,
    mode: Mode,
    table: TableId,
    input: &BTreeMap<String, String>,
    actor: &str,
) -> Result<String, EditError> {
    let def = &TABLES[table];
    if mode == Mode::Offline && !def.offline_create {
        return Err(EditError::Forbidden(format!(
            "{} are created on the main site, not offline",
            def.name
        )));
    }
    let id = uuid::Uuid::now_v7().to_string();
    write_txn(conn, WriteLock::Shared, |c, now| {
        let values = values_from_form(c, table, input)?;
        check_natural_key(c, table, None, &values)?;
        match mode {
            Mode::Online => {
                rows::insert(c, table, &[(id.clone(), values, time::after(now))], actor)?;
            }
            Mode::Offline => {
                // No server version yet: 0 until the first sync brings the server's stamp.
                rows::insert(c, table, &[(id.clone(), values.clone(), 0)], actor)?;
                let fields: Vec<FieldLog> = def
                    .fields
                    .iter()
                    .zip(values)
                    .map(|(f, value)| FieldLog {
                        field: f.name.to_owned(),
                        value,
                        was: None,
                    })
                    .collect();
                store::log_change(c, table, &id, "create", None, &fields, now)?;
            }
        }
        Ok(id)
    })
}

/// Changes a row from form input, if it is still at `version`. Offline, only the fields
/// offline may edit are taken from the input.
pub fn update(
    conn: &mut DbConn,
    mode: Mode,
    table: TableId,
    id: &str,
    version: Micros,
    input: &BTreeMap<String, String>,
    actor: &str,
) -> Result<(), EditError> {
    let def = &TABLES[table];
    write_txn(conn, WriteLock::Shared, |c, now| {
        let row = rows::by_ids(c, table, &[id.to_owned()], true)?
            .remove(id)
            .ok_or(EditError::NotFound)?;
        let input = match mode {
            Mode::Online => input.clone(),
            Mode::Offline => {
                let mut merged = form_values_of(c, table, &row.values)?;
                // A field the input leaves out keeps its value.
                for f in def.fields.iter().filter(|f| f.offline_edit) {
                    if let Some(v) = input.get(f.name) {
                        merged.insert(f.name.to_owned(), v.clone());
                    }
                }
                merged
            }
        };
        let values = values_from_form(c, table, &input)?;
        if row.last_updated != version {
            return Err(EditError::Stale(Box::new(row)));
        }
        check_natural_key(c, table, Some(id), &values)?;
        match mode {
            Mode::Online => {
                let changes: Vec<(usize, Option<String>)> =
                    values.into_iter().enumerate().collect();
                let stamp = time::after(now.max(row.last_updated + 1));
                rows::update(c, table, id, &changes, stamp, actor)?;
            }
            Mode::Offline => {
                let changed: Vec<(usize, FieldLog)> = def
                    .fields
                    .iter()
                    .enumerate()
                    .filter(|(i, f)| {
                        !value::same(f.ty, values[*i].as_deref(), row.values[*i].as_deref())
                    })
                    .map(|(i, f)| {
                        (
                            i,
                            FieldLog {
                                field: f.name.to_owned(),
                                value: values[i].clone(),
                                was: row.values[i].clone(),
                            },
                        )
                    })
                    .collect();
                if changed.is_empty() {
                    return Ok(());
                }
                let writes: Vec<(usize, Option<String>)> =
                    changed.iter().map(|(i, f)| (*i, f.value.clone())).collect();
                // The stamp stays the server's: it is the base of the change.
                rows::update(c, table, id, &writes, row.last_updated, actor)?;
                let logs: Vec<FieldLog> = changed.into_iter().map(|(_, f)| f).collect();
                store::log_change(c, table, id, "edit", Some(row.last_updated), &logs, now)?;
            }
        }
        Ok(())
    })
}

/// The form text of stored values (parents by their natural key).
pub fn form_values_of(
    conn: &mut DbConn,
    table: TableId,
    values: &[Option<String>],
) -> Result<BTreeMap<String, String>, DbError> {
    let mut out = BTreeMap::new();
    for (f, v) in TABLES[table].fields.iter().zip(values) {
        let Some(v) = v else { continue };
        let shown = match f.ty {
            FieldType::Parent(p) => {
                parent_reference(conn, table_by_name(p).unwrap_or_default(), v)?
            }
            _ => v.clone(),
        };
        out.insert(f.name.to_owned(), shown);
    }
    Ok(out)
}

/// Every row below these (children, their children, ...), by table.
fn descendants(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<Vec<(TableId, Vec<String>)>, DbError> {
    let mut out = Vec::new();
    for (child, _) in TABLES[table].children() {
        let kids: Vec<String> = rows::under_parents(conn, child, ids)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        if !kids.is_empty() {
            out.extend(descendants(conn, child, &kids)?);
            out.push((child, kids));
        }
    }
    Ok(out)
}

/// Deletes a row and everything below it, if it is still at `version`; returns how many
/// rows went. Offline, a row never synced is simply forgotten; any other is remembered as
/// a delete, and its children's unsynced changes are dropped (the server deletes them too).
pub fn delete(
    conn: &mut DbConn,
    mode: Mode,
    table: TableId,
    id: &str,
    version: Micros,
    actor: &str,
) -> Result<usize, EditError> {
    let def = &TABLES[table];
    if mode == Mode::Offline && !def.offline_delete {
        return Err(EditError::Forbidden(format!(
            "{} are deleted on the main site, not offline",
            def.name
        )));
    }
    write_txn(conn, WriteLock::Shared, |c, now| {
        let row = rows::by_ids(c, table, &[id.to_owned()], true)?
            .remove(id)
            .ok_or(EditError::NotFound)?;
        if row.last_updated != version {
            return Err(EditError::Stale(Box::new(row)));
        }
        if mode == Mode::Offline {
            for (t, ids) in descendants(c, table, &[id.to_owned()])? {
                store::drop_changes(c, t, &ids)?;
            }
            if store::is_local_only(c, table, id)? {
                store::drop_changes(c, table, &[id.to_owned()])?;
            } else {
                store::log_change(c, table, id, "delete", Some(row.last_updated), &[], now)?;
            }
        }
        Ok(rows::delete_cascade(
            c,
            table,
            &[id.to_owned()],
            now,
            actor,
        )?)
    })
}
