//! Downloads (PROTOCOL.md §3): every row changed since the session's `since`, written as a
//! gzip stream page by page, so memory stays flat whatever the size. Each page is one short
//! query on a pooled connection: a slow client never holds a connection or a snapshot.
//! Which rows it sends is the session's cursor window (`db::cursor`): the writes committed
//! by the time the session opened and not by the time the device's last completed session
//! did. Rows written during the download are outside the window, and so in the next one.

use std::io::Write;

use super::SyncError;
use super::codec::{Alias, ChangesetWriter, Delete, Item, finish_gzip, gzip_writer};
use super::session::{self, ensure_open, find};
use crate::db::cursor::Window;
use crate::db::repo::accounts::Device;
use crate::db::repo::sessions::{self, Session};
use crate::db::repo::{aliases, resends, rows};
use crate::db::{DbConn, DbError, Pool, write_txn};
use crate::domain::{TABLES, TableId};

/// Rows per query.
pub const PAGE: usize = 1000;

/// A download ready to be written: the session, the aliases it carries and the rows it
/// sends again (a delete of this device's that the server did not take).
pub struct Prepared {
    pub session: Session,
    window: Window,
    aliases: Vec<(TableId, String, String)>,
    resends: Vec<(TableId, String)>,
}

/// Checks that the session may download and takes the device's undelivered aliases.
pub fn prepare(
    conn: &mut DbConn,
    device: &Device,
    session_id: &str,
) -> Result<Prepared, SyncError> {
    write_txn(conn, |c, _now| {
        let session = find(c, device, session_id, true)?;
        ensure_open(&session)?;
        let window = session::window(&session)?;
        let aliases = aliases::take_pending(c, &device.id, session_id)?;
        let resends = resends::take_pending(c, &device.id, session_id)?;
        Ok(Prepared {
            session,
            window,
            aliases,
            resends,
        })
    })
}

type Page = Result<(TableId, Vec<rows::Row>), SyncError>;

/// Sends every changed row, page by page, until done or until the writer stops
/// listening. The connection is returned before each page is handed over, so a slow
/// client holds none.
fn read_pages(pool: &Pool, window: Window, tx: &std::sync::mpsc::SyncSender<Page>) {
    let mut pages = rows::ChangedPages::new(window, PAGE);
    loop {
        let page = pool
            .get()
            .map_err(DbError::from)
            .and_then(|mut conn| pages.next(&mut conn))
            .map_err(SyncError::from)
            .transpose();
        let Some(page) = page else { return };
        let failed = page.is_err();
        if tx.send(page).is_err() || failed {
            return;
        }
    }
}

/// Writes these rows and everything below them, parents first; returns how many.
fn write_subtree<W: Write>(
    pool: &Pool,
    w: &mut ChangesetWriter<W>,
    table: TableId,
    ids: &[String],
) -> Result<u64, SyncError> {
    let mut conn = pool.get().map_err(DbError::from)?;
    let found = rows::by_ids(&mut conn, table, ids, false)?;
    drop(conn);
    let mut sent = 0;
    for row in found.values() {
        w.row(table, &row.id, row.last_updated, &row.values)?;
        sent += 1;
    }
    let present: Vec<String> = found.into_keys().collect();
    for (child, _) in TABLES[table].children() {
        let kids: Vec<String> = {
            let mut conn = pool.get().map_err(DbError::from)?;
            rows::under_parents(&mut conn, child, &present)?
                .into_iter()
                .map(|r| r.id)
                .collect()
        };
        if !kids.is_empty() {
            sent += write_subtree(pool, w, child, &kids)?;
        }
    }
    Ok(sent)
}

/// Writes the gzip-compressed changeset to `out`; returns the number of rows sent.
pub fn write(pool: &Pool, prepared: &Prepared, out: impl Write) -> Result<u64, SyncError> {
    let started = std::time::Instant::now();
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
    // The next page is queried while this one is written: the database and the XML and
    // gzip work then use two cores instead of taking turns on one.
    std::thread::scope(|scope| -> Result<(), SyncError> {
        let (tx, pages) = std::sync::mpsc::sync_channel(1);
        let window = prepared.window.clone();
        scope.spawn(move || read_pages(pool, window, &tx));
        for page in pages {
            let (table, page) = page?;
            for row in &page {
                w.row(table, &row.id, row.last_updated, &row.values)?;
            }
            sent += page.len() as u64;
        }
        Ok(())
    })?;
    for (table, id) in &prepared.resends {
        sent += write_subtree(pool, &mut w, *table, std::slice::from_ref(id))?;
    }
    // A first (full) download has nothing to delete on the device.
    if since.is_some() {
        let mut after = None;
        loop {
            let page = {
                let mut conn = pool.get().map_err(DbError::from)?;
                rows::tombstones_in(&mut conn, &prepared.window, after.as_ref(), PAGE)?
            };
            for (_, table, t) in &page {
                w.item(&Item::Delete(Delete {
                    table: *table,
                    id: t.id.clone(),
                    base: None,
                    updated: Some(t.last_updated),
                    was: Vec::new(),
                }))?;
            }
            sent += page.len() as u64;
            match page.last() {
                Some((change_id, table, t)) if page.len() == PAGE => {
                    after = Some((*change_id, TABLES[*table].name.to_owned(), t.id.clone()))
                }
                _ => break,
            }
        }
    }
    finish_gzip(w.finish()?)?;
    let mut conn = pool.get().map_err(DbError::from)?;
    sessions::record_download(&mut conn, &prepared.session.id, sent as i64)?;
    crate::telemetry::download_sent(sent, started.elapsed());
    Ok(sent)
}
