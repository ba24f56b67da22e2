//! `offsync import`: a changeset loaded as online edits (every table and field), in one
//! transaction, parents first. A record creates its row or overwrites the fields it carries;
//! a delete deletes (with the row's children); a natural-key clash fails the whole import.

use std::io::Read;

use super::SyncError;
use super::code::ErrorCode;
use super::codec::{ChangesetReader, Item, decompressing};
use super::judge::Known;
use super::spool::{Part, Spool};
use crate::db::integrity::Presence;
use crate::db::repo::rows;
use crate::db::{DbConn, write_txn};
use crate::domain::rules::{missing_required, next_stamp};
use crate::domain::{Micros, TABLES, TableId, Values};

/// Who changed rows, as recorded for an import.
const ACTOR: &str = "offsync import";

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
}

pub fn import(
    conn: &mut DbConn,
    input: impl Read + Send + 'static,
    max_decompressed_bytes: u64,
) -> Result<Imported, SyncError> {
    let mut spool = Spool::fill(ChangesetReader::new(
        decompressing(input)?,
        max_decompressed_bytes,
    ))?;
    crate::db::dialect::bulk_cache(conn, true)?;
    let done = write_txn(conn, |c, now| {
        let mut done = Imported::default();
        // Deletes are written last, children first, as in an upload.
        let mut deletes: Vec<Vec<String>> = vec![Vec::new(); TABLES.len()];
        let mut batches = spool.batches(super::apply::BATCH)?;
        while let Some((part, table, items)) = batches.next_batch()? {
            match part {
                Part::Deletes => {
                    let ids: Vec<String> = items.iter().map(|i| i.id().to_owned()).collect();
                    deletes[table].extend(rows::existing(c, table, &ids)?);
                }
                Part::Records => import_batch(c, table, items, now, &mut done)?,
            }
        }
        for table in (0..TABLES.len()).rev() {
            for chunk in deletes[table].chunks(super::apply::BATCH) {
                done.deleted += rows::delete_cascade(c, table, chunk, now, ACTOR)? as u64;
            }
        }
        Ok(done)
    });
    crate::db::dialect::bulk_cache(conn, false)?;
    done
}

fn import_batch(
    conn: &mut DbConn,
    table: TableId,
    items: Vec<Item>,
    now: Micros,
    done: &mut Imported,
) -> Result<(), SyncError> {
    let def = &TABLES[table];
    let ids: Vec<String> = items.iter().map(|i| i.id().to_owned()).collect();
    // The upload's load phase; an import may change any field, so every record's parent
    // and key are looked up, and it has no aliases to follow.
    let records: Vec<&crate::sync::codec::Record> = items
        .iter()
        .filter_map(|i| match i {
            Item::Record(r) => Some(r),
            _ => None,
        })
        .collect();
    let no_aliases = vec![false; TABLES.len()];
    let Known {
        rows: existing,
        key_owners: mut owners,
        parents,
        ..
    } = super::apply::load(conn, table, &ids, &records, &no_aliases)?;
    let mut inserts: Vec<(String, Values, Micros)> = Vec::new();
    let mut updates = Vec::new();
    for item in items {
        let r = match item {
            Item::Record(r) => r,
            Item::Alias(a) => {
                return Err(SyncError::rejected(
                    ErrorCode::UnexpectedAlias,
                    def.name,
                    &a.id,
                    None,
                    "an import may not carry <alias>",
                ));
            }
            Item::Delete(_) => continue,
        };
        let mut values = existing
            .get(&r.id)
            .map(|row| row.values.clone())
            .unwrap_or_else(|| vec![None; def.fields.len()]);
        for f in &r.fields {
            values[f.index] = f.value.clone();
        }
        if let Some(k) = def.natural_key_index()
            && let Some(key) = values[k].clone()
        {
            if let Some(other) = owners.get(&key).filter(|o| o.id != r.id) {
                let field = def.fields[k].name;
                return Err(SyncError::rejected(
                    ErrorCode::NaturalKeyTaken,
                    def.name,
                    &r.id,
                    Some(field),
                    format!(
                        "{} {field} {key:?} already belongs to {}",
                        def.noun, other.id
                    ),
                ));
            }
            owners.insert(
                key,
                rows::Row {
                    id: r.id.clone(),
                    last_updated: 0,
                    values: values.clone(),
                    changed_by: None,
                },
            );
        }
        if let Some((fk, _)) = def.parent()
            && r.fields.iter().any(|f| f.index == fk)
        {
            let p = values[fk].clone().unwrap_or_default();
            let presence = parents.get(&p).copied().unwrap_or(Presence::Never);
            if presence != Presence::Live {
                let state = if presence == Presence::Deleted {
                    "a deleted"
                } else {
                    "a missing"
                };
                return Err(SyncError::rejected(
                    ErrorCode::MissingParent,
                    def.name,
                    &r.id,
                    Some(def.fields[fk].name),
                    format!("{} {} names {state} parent {p}", def.noun, r.id),
                ));
            }
        }
        match existing.get(&r.id) {
            Some(row) => {
                let fields: Vec<_> = r
                    .fields
                    .iter()
                    .map(|f| (f.index, f.value.clone()))
                    .collect();
                updates.push((r.id.clone(), fields, next_stamp(now, row.last_updated)));
                done.updated += 1;
            }
            None => {
                if let Some(f) = missing_required(def, &values) {
                    return Err(SyncError::rejected(
                        ErrorCode::MissingField,
                        def.name,
                        &r.id,
                        Some(f.name),
                        format!("a new {} needs {}", def.noun, f.name),
                    ));
                }
                rows::remove_tombstone(conn, table, &r.id)?;
                inserts.push((r.id, values, next_stamp(now, 0)));
                done.created += 1;
            }
        }
    }
    super::apply::write_rows(conn, table, &inserts, &updates, ACTOR)
}
