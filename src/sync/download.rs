//! Downloads (PROTOCOL.md §3): every row changed since the session's `since`, written as a
//! gzip stream page by page, so memory stays flat whatever the size. Each page is one short
//! query on a pooled connection: a slow client never holds a connection or a snapshot.
//! Rows changed during the download are stamped after the session's `started` and so are
//! in the next session's download too (see `db::dialect` for why none can be missed).

use std::io::Write;

use super::SyncError;
use super::codec::{Alias, ChangesetWriter, Delete, Item, finish_gzip, gzip_writer};
use super::session::{ensure_open, find};
use crate::db::dialect::WriteLock;
use crate::db::repo::accounts::Device;
use crate::db::repo::sessions::{self, Session};
use crate::db::repo::{aliases, rows};
use crate::db::{DbConn, DbError, Pool, write_txn};
use crate::domain::{TABLES, TableId};

/// Rows per query.
pub const PAGE: usize = 1000;

/// A download ready to be written: the session and the aliases it carries.
pub struct Prepared {
    pub session: Session,
    aliases: Vec<(TableId, String, String)>,
}

/// Checks that the session may download and takes the device's undelivered aliases.
pub fn prepare(
    conn: &mut DbConn,
    device: &Device,
    session_id: &str,
) -> Result<Prepared, SyncError> {
    write_txn(conn, WriteLock::Shared, |c, _now| {
        let session = find(c, device, session_id, true)?;
        ensure_open(&session)?;
        let aliases = aliases::take_pending(c, &device.id, session_id)?;
        Ok(Prepared { session, aliases })
    })
}

/// Writes the gzip-compressed changeset to `out`; returns the number of rows sent.
pub fn write(pool: &Pool, prepared: &Prepared, out: impl Write) -> Result<u64, SyncError> {
    let gz = gzip_writer(out);
    let since = prepared.session.since;
    let mut w = ChangesetWriter::start(gz, since)?;
    for (table, id, canonical) in &prepared.aliases {
        w.item(&Item::Alias(Alias {
            table: *table,
            id: id.clone(),
            canonical: canonical.clone(),
        }))?;
    }
    let mut sent = 0u64;
    for table in 0..TABLES.len() {
        let mut after = None;
        loop {
            let page = {
                let mut conn = pool.get().map_err(DbError::from)?;
                rows::changed_since(&mut conn, table, since, after.as_ref(), PAGE)?
            };
            for row in &page {
                w.row(table, &row.id, row.last_updated, &row.values)?;
            }
            sent += page.len() as u64;
            match page.last() {
                Some(last) if page.len() == PAGE => {
                    after = Some((last.last_updated, last.id.clone()))
                }
                _ => break,
            }
        }
    }
    // A first (full) download has nothing to delete on the device.
    if let Some(since) = since {
        let mut after = None;
        loop {
            let page = {
                let mut conn = pool.get().map_err(DbError::from)?;
                rows::tombstones_since(&mut conn, since, after.as_ref(), PAGE)?
            };
            for (table, t) in &page {
                w.item(&Item::Delete(Delete {
                    table: *table,
                    id: t.id.clone(),
                    base: None,
                    updated: Some(t.last_updated),
                }))?;
            }
            sent += page.len() as u64;
            match page.last() {
                Some((table, t)) if page.len() == PAGE => {
                    after = Some((t.last_updated, TABLES[*table].name.to_owned(), t.id.clone()))
                }
                _ => break,
            }
        }
    }
    finish_gzip(w.finish()?)?;
    let mut conn = pool.get().map_err(DbError::from)?;
    sessions::record_download(&mut conn, &prepared.session.id, sent as i64)?;
    Ok(sent)
}
