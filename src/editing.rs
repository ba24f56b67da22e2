//! Online edits from the pages: creating, changing and deleting rows of any table, every
//! field, with the row's `last_updated` as its version so that a change made meanwhile is
//! shown, never overwritten. Knows nothing of HTTP; the pages turn its errors into messages
//! beside the fields.

use std::collections::BTreeMap;

use crate::db::dialect::WriteLock;
use crate::db::repo::rows::{self, Row};
use crate::db::{DbConn, DbError, write_txn};
use crate::domain::{FieldType, Micros, TABLES, TableId, Values, table_by_name, time, value};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no such row")]
    NotFound,
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
    table: TableId,
    input: &BTreeMap<String, String>,
    actor: &str,
) -> Result<String, EditError> {
    let id = uuid::Uuid::now_v7().to_string();
    write_txn(conn, WriteLock::Shared, |c, now| {
        let values = values_from_form(c, table, input)?;
        check_natural_key(c, table, None, &values)?;
        rows::insert(c, table, &[(id.clone(), values, time::after(now))], actor)?;
        Ok(id)
    })
}

/// Changes a row from form input, if it is still at `version`.
pub fn update(
    conn: &mut DbConn,
    table: TableId,
    id: &str,
    version: Micros,
    input: &BTreeMap<String, String>,
    actor: &str,
) -> Result<(), EditError> {
    write_txn(conn, WriteLock::Shared, |c, now| {
        let row = rows::by_ids(c, table, &[id.to_owned()], true)?
            .remove(id)
            .ok_or(EditError::NotFound)?;
        let values = values_from_form(c, table, input)?;
        if row.last_updated != version {
            return Err(EditError::Stale(Box::new(row)));
        }
        check_natural_key(c, table, Some(id), &values)?;
        let changes: Vec<(usize, Option<String>)> = values.into_iter().enumerate().collect();
        let stamp = time::after(now.max(row.last_updated + 1));
        rows::update(c, table, id, &changes, stamp, actor)?;
        Ok(())
    })
}

/// Deletes a row and everything below it, if it is still at `version`; returns how many
/// rows went.
pub fn delete(
    conn: &mut DbConn,
    table: TableId,
    id: &str,
    version: Micros,
    actor: &str,
) -> Result<usize, EditError> {
    write_txn(conn, WriteLock::Shared, |c, now| {
        let row = rows::by_ids(c, table, &[id.to_owned()], true)?
            .remove(id)
            .ok_or(EditError::NotFound)?;
        if row.last_updated != version {
            return Err(EditError::Stale(Box::new(row)));
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
