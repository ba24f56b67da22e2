//! `offsync import`: a changeset loaded as online edits (every table and field), in one
//! transaction, parents first. A record creates its row or overwrites the fields it carries;
//! a delete deletes (with the row's children); a natural-key clash fails the whole import.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use super::SyncError;
use super::codec::{ChangesetReader, Item, decompressing};
use super::spool::Spool;
use crate::db::dialect::WriteLock;
use crate::db::repo::rows;
use crate::db::{DbConn, write_txn};
use crate::domain::{Micros, TABLES, TableId, Values, time};

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
    input: impl Read + 'static,
    max_decompressed_bytes: u64,
) -> Result<Imported, SyncError> {
    let spool = Spool::fill(ChangesetReader::new(
        decompressing(input)?,
        max_decompressed_bytes,
    ))?;
    write_txn(conn, WriteLock::Upload, |c, now| {
        let mut done = Imported::default();
        let mut batches = spool.batches(super::apply::BATCH)?;
        while let Some((table, items)) = batches.next_batch()? {
            import_batch(c, table, items, now, &mut done)?;
        }
        Ok(done)
    })
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
    let existing = rows::by_ids(conn, table, &ids, true)?;
    let nk = def.natural_key_index();
    let keys: Vec<String> = items
        .iter()
        .filter_map(|i| match (i, nk) {
            (Item::Record(r), Some(k)) => r
                .fields
                .iter()
                .find(|f| f.index == k)
                .and_then(|f| f.value.clone()),
            _ => None,
        })
        .collect();
    let by_key = rows::by_natural_keys(conn, table, &keys)?;
    let parents: Vec<String> = items
        .iter()
        .filter_map(|i| match (i, def.parent()) {
            (Item::Record(r), Some((fk, _))) => r
                .fields
                .iter()
                .find(|f| f.index == fk)
                .and_then(|f| f.value.clone()),
            _ => None,
        })
        .collect();
    let parents_present = match def.parent() {
        Some((_, pt)) => rows::existing(conn, pt, &parents)?,
        None => HashSet::new(),
    };
    let mut batch_keys: HashMap<String, String> = HashMap::new();
    let mut inserts: Vec<(String, Values, Micros)> = Vec::new();
    let mut updates = Vec::new();
    let mut deletes = Vec::new();
    for item in items {
        match item {
            Item::Record(r) => {
                let mut values = existing
                    .get(&r.id)
                    .map(|row| row.values.clone())
                    .unwrap_or_else(|| vec![None; def.fields.len()]);
                for f in &r.fields {
                    values[f.index] = f.value.clone();
                }
                if let Some(key) = nk.and_then(|k| values[k].clone()) {
                    let owner = by_key
                        .get(&key)
                        .map(|row| row.id.clone())
                        .or_else(|| batch_keys.get(&key).cloned());
                    if let Some(other) = owner.filter(|o| *o != r.id) {
                        let field = def.fields[nk.unwrap_or_default()].name;
                        return Err(SyncError::rejected(
                            "natural-key-taken",
                            def.name,
                            &r.id,
                            Some(field),
                            format!("{} {field} {key:?} already belongs to {other}", def.noun),
                        ));
                    }
                    batch_keys.insert(key, r.id.clone());
                }
                if let Some((fk, _)) = def.parent() {
                    let p = values[fk].clone().unwrap_or_default();
                    let changed = r.fields.iter().any(|f| f.index == fk);
                    if changed && !parents_present.contains(&p) {
                        return Err(SyncError::rejected(
                            "missing-parent",
                            def.name,
                            &r.id,
                            Some(def.fields[fk].name),
                            format!("{} {} names a missing parent {p}", def.noun, r.id),
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
                        let stamp = time::after(now.max(row.last_updated + 1));
                        updates.push((r.id.clone(), fields, stamp));
                        done.updated += 1;
                    }
                    None => {
                        if let Some((i, f)) = def
                            .fields
                            .iter()
                            .enumerate()
                            .find(|(i, f)| !f.nullable && values[*i].is_none())
                        {
                            let _ = i;
                            return Err(SyncError::rejected(
                                "missing-field",
                                def.name,
                                &r.id,
                                Some(f.name),
                                format!("a new {} needs {}", def.noun, f.name),
                            ));
                        }
                        rows::remove_tombstone(conn, table, &r.id)?;
                        inserts.push((r.id, values, time::after(now)));
                        done.created += 1;
                    }
                }
            }
            Item::Delete(d) => {
                if existing.contains_key(&d.id) {
                    deletes.push(d.id);
                }
            }
            Item::Alias(a) => {
                return Err(SyncError::rejected(
                    "unexpected-alias",
                    def.name,
                    &a.id,
                    None,
                    "an import may not carry <alias>",
                ));
            }
        }
    }
    rows::insert(conn, table, &inserts, ACTOR)?;
    rows::update_many(conn, table, &updates, ACTOR)?;
    done.deleted += rows::delete_cascade(conn, table, &deletes, now, ACTOR)? as u64;
    Ok(())
}
