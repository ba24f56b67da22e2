//! One sync of the laptop's database with the main server: take the changes logged so far,
//! open a session, upload them as one gzip changeset, download and apply the server's
//! changes in one local transaction, complete, then forget what was uploaded.
//!
//! Interrupted anywhere, nothing local is half-done: the download is applied in one
//! transaction, and the log is only trimmed after the server confirmed completion. The next
//! sync uploads the same changes again (the server recognises creates and edits it already
//! applied) and downloads from the same `since`. Changes made while a sync runs are numbered
//! after the ones it took, so they stay in the log for the next one.

use std::collections::HashSet;
use std::io::{BufWriter, Write};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::client::{ClientError, UploadResult, Upstream};
use super::store::{self, Change, FieldLog};
use crate::db::dialect::WriteLock;
use crate::db::repo::rows;
use crate::db::{DbError, Pool, write_txn};
use crate::domain::{Micros, TABLES, TableId, time, value};
use crate::sync::SyncError;
use crate::sync::codec::{
    ChangesetReader, ChangesetWriter, Delete, FieldChange, Item, Record, Was, decompressing,
};

/// What a sync did, for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub uploaded: u64,
    pub downloaded: u64,
    pub conflicts: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the download could not be applied: {0}")]
    Download(#[from] SyncError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<crate::sync::codec::CodecError> for SyncFailure {
    fn from(e: crate::sync::codec::CodecError) -> Self {
        SyncFailure::Download(e.into())
    }
}

impl From<diesel::result::Error> for SyncFailure {
    fn from(e: diesel::result::Error) -> Self {
        SyncFailure::Db(DbError::Query(e))
    }
}

/// The steps of a sync, for progress bars and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Preparing,
    Uploading,
    Downloading,
    Completing,
}

/// Told about the sync's progress.
pub trait Progress {
    fn step(&self, _step: Step, _detail: &str) {}
    /// Rows applied from the download so far.
    fn downloaded(&self, _rows: u64) {}
}

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {}

/// Runs one sync.
pub fn sync(
    pool: &Pool,
    upstream: &Upstream,
    progress: &dyn Progress,
) -> Result<Summary, SyncFailure> {
    progress.step(Step::Preparing, "collecting local changes");
    let upto = {
        let mut conn = pool.get().map_err(DbError::from)?;
        store::max_seq(&mut conn)?
    };
    let spool = tempfile::NamedTempFile::new()?;
    let uploaded = write_upload(pool, upto, spool.as_file())?;

    let session = upstream.open(&time::format(time::now()))?;
    let mut result = UploadResult::default();
    if uploaded > 0 {
        progress.step(Step::Uploading, &format!("{uploaded} changed rows"));
        result = upstream.upload(&session.id, spool.path())?;
    }

    progress.step(Step::Downloading, "changes from the server");
    let body = upstream.download(&session.id)?;
    let downloaded = apply_download(pool, body, upto, progress)?;

    progress.step(Step::Completing, "");
    upstream.complete(&session.id)?;
    let mut conn = pool.get().map_err(DbError::from)?;
    let summary = Summary {
        uploaded,
        downloaded,
        conflicts: result.conflicts,
    };
    write_txn::<_, SyncFailure>(&mut conn, WriteLock::Shared, |c, _| {
        store::drop_upto(c, upto)?;
        store::set_state(c, "last_sync", &session.started)?;
        store::set_state(
            c,
            "last_summary",
            &format!(
                "uploaded {}, downloaded {}, conflicts {}",
                summary.uploaded, summary.downloaded, summary.conflicts
            ),
        )?;
        Ok(())
    })?;
    Ok(summary)
}

/// The changes numbered up to `upto`, one item per row (a create with later edits is one
/// create; edits of one row are one edit from the first base), written as a gzip changeset.
/// Returns the number of rows.
fn write_upload(pool: &Pool, upto: i64, file: &std::fs::File) -> Result<u64, SyncFailure> {
    let gz = GzEncoder::new(BufWriter::new(file), Compression::new(4));
    let mut w = ChangesetWriter::start(gz, None)?;
    let mut rows_written = 0u64;
    let mut conn = pool.get().map_err(DbError::from)?;
    for table in 0..TABLES.len() {
        let mut after: Option<(String, i64)> = None;
        let mut current: Vec<Change> = Vec::new();
        loop {
            let page = store::changes_page(&mut conn, table, upto, after.as_ref(), 1000)?;
            let done = page.len() < 1000;
            if let Some(last) = page.last() {
                after = Some((last.row_id.clone(), last.seq));
            }
            for change in page {
                if current.first().is_some_and(|c| c.row_id != change.row_id) {
                    rows_written += write_row(&mut w, table, std::mem::take(&mut current))?;
                }
                current.push(change);
            }
            if done {
                break;
            }
        }
        if !current.is_empty() {
            rows_written += write_row(&mut w, table, current)?;
        }
    }
    let mut out = w.finish()?.finish()?;
    out.flush()?;
    Ok(rows_written)
}

/// One row's changes as one item; 0 when they cancel out.
fn write_row<W: Write>(
    w: &mut ChangesetWriter<W>,
    table: TableId,
    changes: Vec<Change>,
) -> Result<u64, SyncFailure> {
    let def = &TABLES[table];
    let Some(first) = changes.first() else {
        return Ok(0);
    };
    let id = first.row_id.clone();
    let created = first.kind == "create";
    let deleted = changes.iter().any(|c| c.kind == "delete");
    let updated = Some(time::now());
    if deleted {
        if created {
            return Ok(0); // made and removed offline: the server never needs to know
        }
        w.item(&Item::Delete(Delete {
            table,
            id,
            base: first.base,
            updated,
        }))?;
        return Ok(1);
    }
    // Per field: the first `was` and the last value.
    let mut merged: Vec<(usize, FieldLog)> = Vec::new();
    for c in &changes {
        for f in &c.fields {
            let Some(index) = def.field_index(&f.field) else {
                continue;
            };
            match merged.iter_mut().find(|(i, _)| *i == index) {
                Some((_, m)) => m.value = f.value.clone(),
                None => merged.push((index, f.clone())),
            }
        }
    }
    merged.sort_by_key(|(i, _)| *i);
    let fields: Vec<FieldChange> = merged
        .into_iter()
        .filter(|(i, f)| {
            created || !value::same(def.fields[*i].ty, f.value.as_deref(), f.was.as_deref())
        })
        .map(|(index, f)| FieldChange {
            index,
            value: f.value,
            was: if created {
                Was::Unknown
            } else {
                Was::Known(f.was)
            },
        })
        .collect();
    if fields.is_empty() {
        return Ok(0); // changed and changed back
    }
    w.item(&Item::Record(Record {
        table,
        id,
        base: if created { None } else { first.base },
        updated,
        fields,
    }))?;
    Ok(1)
}

/// Applies the download in one local transaction; returns the number of rows applied.
fn apply_download(
    pool: &Pool,
    body: impl std::io::Read + 'static,
    upto: i64,
    progress: &dyn Progress,
) -> Result<u64, SyncFailure> {
    let mut reader = ChangesetReader::new(decompressing(body)?, u64::MAX);
    let mut conn = pool.get().map_err(DbError::from)?;
    write_txn::<_, SyncFailure>(&mut conn, WriteLock::Shared, |c, now| {
        reader.header()?;
        let mut applied = 0u64;
        while let Some(item) = reader.next_item()? {
            match item {
                Item::Alias(a) => join_alias(c, a.table, &a.id, &a.canonical)?,
                Item::Record(r) => apply_record(c, r, upto, now)?,
                Item::Delete(d) => {
                    if rows::get(c, d.table, &d.id)?.is_some() {
                        rows::delete_cascade(
                            c,
                            d.table,
                            std::slice::from_ref(&d.id),
                            now,
                            "server",
                        )?;
                    }
                    store::clear_conflicts(c, d.table, &d.id)?;
                }
            }
            applied += 1;
            if applied.is_multiple_of(1000) {
                progress.downloaded(applied);
            }
        }
        progress.downloaded(applied);
        // Uploaded fields the server did not take although their row was not in this
        // download: it changed the row earlier (the shadow holds its value).
        mark_conflicts_from_shadow(c, upto, now)?;
        Ok(applied)
    })
}

/// Puts a downloaded row in place, keeping the local value of every field with a change
/// waiting; marks a conflict where an uploaded value did not stick.
fn apply_record(
    c: &mut crate::db::DbConn,
    r: Record,
    upto: i64,
    now: Micros,
) -> Result<(), SyncFailure> {
    let def = &TABLES[r.table];
    let stamp = r.updated.unwrap_or(0);
    let mut values = vec![None; def.fields.len()];
    for f in r.fields {
        values[f.index] = f.value;
    }
    let local = rows::get(c, r.table, &r.id)?;
    let changes = store::changes_of(c, r.table, std::slice::from_ref(&r.id))?
        .remove(&r.id)
        .unwrap_or_default();
    let mut keep: HashSet<String> = HashSet::new();
    for change in &changes {
        for f in &change.fields {
            store::put_shadow(
                c,
                r.table,
                &r.id,
                &f.field,
                values[def.field_index(&f.field).unwrap_or(0)].as_deref(),
            )?;
            let index = def.field_index(&f.field).unwrap_or(0);
            let server = values[index].as_deref();
            if change.seq > upto {
                keep.insert(f.field.clone()); // made during this sync: still to upload
            } else if !value::same(def.fields[index].ty, server, f.value.as_deref()) {
                // Uploaded, but the server kept another value: an edit in conflict, or a row
                // made twice (joined onto the server's) whose values differ.
                keep.insert(f.field.clone());
                store::mark_conflict(c, r.table, &r.id, &f.field, f.value.as_deref(), server, now)?;
            }
        }
    }
    if changes.is_empty() {
        store::clear_conflicts(c, r.table, &r.id)?;
    }
    match local {
        Some(_) => {
            let writes: Vec<(usize, Option<String>)> = values
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !keep.contains(def.fields[*i].name))
                .collect();
            rows::update(c, r.table, &r.id, &writes, stamp, "server")?;
        }
        None => {
            rows::remove_tombstone(c, r.table, &r.id)?;
            rows::insert(c, r.table, &[(r.id.clone(), values, stamp)], "server")?;
        }
    }
    Ok(())
}

/// The server joined a row this laptop created onto one it already had: the local id
/// becomes the server's everywhere (the row, its children, the change log).
fn join_alias(
    c: &mut crate::db::DbConn,
    table: TableId,
    client_id: &str,
    canonical: &str,
) -> Result<(), SyncFailure> {
    let def = &TABLES[table];
    let Some(local) = rows::get(c, table, client_id)? else {
        // Already joined (an alias is sent again until a completed session carried it).
        store::rename_row(c, table, client_id, canonical)?;
        return Ok(());
    };
    if rows::get(c, table, canonical)?.is_none() {
        // The local row stands in for the server's until the download brings it. Its
        // natural key is unique, so the old row gives it up first.
        if let Some(k) = def.natural_key_index() {
            let mut sql =
                crate::db::Sql::new(format!("UPDATE {} SET {} = ", def.name, def.fields[k].name));
            sql.param(format!("{client_id} (joined)"))
                .push(" WHERE id = ")
                .param(client_id);
            sql.execute(c)?;
        }
        let values = local.values.clone();
        rows::insert(
            c,
            table,
            &[(canonical.to_owned(), values, local.last_updated)],
            "server",
        )?;
    }
    for (child, fk) in def.children() {
        let field = TABLES[child].fields[fk].name;
        let mut sql = crate::db::Sql::new(format!("UPDATE {} SET {field} = ", TABLES[child].name));
        sql.param(canonical)
            .push(&format!(" WHERE {field} = "))
            .param(client_id);
        sql.execute(c)?;
    }
    let mut sql = crate::db::Sql::new(format!("DELETE FROM {} WHERE id = ", def.name));
    sql.param(client_id);
    sql.execute(c)?;
    store::rename_row(c, table, client_id, canonical)?;
    Ok(())
}

/// Marks a conflict for every uploaded field whose server value, as last downloaded,
/// differs from what was uploaded.
fn mark_conflicts_from_shadow(
    c: &mut crate::db::DbConn,
    upto: i64,
    now: Micros,
) -> Result<(), SyncFailure> {
    for table in 0..TABLES.len() {
        let mut after = None;
        loop {
            let page = store::changes_page(c, table, upto, after.as_ref(), 1000)?;
            let done = page.len() < 1000;
            if let Some(last) = page.last() {
                after = Some((last.row_id.clone(), last.seq));
            }
            for change in page.iter().filter(|ch| ch.kind == "edit") {
                for f in &change.fields {
                    if let Some(server) = store::shadow(c, table, &change.row_id, &f.field)?
                        && server != f.value
                    {
                        store::mark_conflict(
                            c,
                            table,
                            &change.row_id,
                            &f.field,
                            f.value.as_deref(),
                            server.as_deref(),
                            now,
                        )?;
                    }
                }
            }
            if done {
                break;
            }
        }
    }
    Ok(())
}
