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

/// Where a resumable download stands, as its `<checkpoint after="...">` token says
/// (docs/protocol.md §8): in the changed rows (a table and the last row of it sent), or in
/// the tombstones (the last one sent). Plain text, checked when read back: a token names a
/// place in the session's own window and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    Rows(rows::Position),
    Tombstones(Option<(i64, String, String)>),
}

impl Resume {
    pub fn token(&self) -> String {
        match self {
            Resume::Rows(p) => match &p.after {
                Some(m) => match m.place {
                    Some(place) => format!("r.{}.{}.{place}.{}", p.table, m.key, m.id),
                    None => format!("r.{}.{}.{}", p.table, m.key, m.id),
                },
                None => format!("r.{}", p.table),
            },
            Resume::Tombstones(Some((change_id, table, id))) => {
                format!("t.{change_id}.{table}.{id}")
            }
            Resume::Tombstones(None) => "t".into(),
        }
    }

    pub fn parse(token: &str) -> Option<Resume> {
        let parts: Vec<&str> = token.split('.').collect();
        let id = |text: &str| crate::domain::value::parse_id(text).ok();
        match parts.as_slice() {
            ["r", table] => Some(Resume::Rows(rows::Position {
                table: table.parse().ok().filter(|t| *t <= TABLES.len())?,
                after: None,
            })),
            ["r", table, key, mark @ ..] => {
                // `r.TABLE.KEY.ID`, or with the row's place `r.TABLE.KEY.PLACE.ID`.
                let (place, row) = match mark {
                    [place, row] => (Some(place.parse().ok()?), row),
                    [row] => (None, row),
                    _ => return None,
                };
                Some(Resume::Rows(rows::Position {
                    table: table.parse().ok().filter(|t| *t < TABLES.len())?,
                    after: Some(rows::Mark {
                        key: key.parse().ok()?,
                        place,
                        id: id(row)?,
                    }),
                }))
            }
            ["t"] => Some(Resume::Tombstones(None)),
            ["t", change_id, table, row] => {
                crate::domain::table_by_name(table)?;
                Some(Resume::Tombstones(Some((
                    change_id.parse().ok()?,
                    (*table).to_owned(),
                    id(row)?,
                ))))
            }
            _ => None,
        }
    }
}

/// Which part of a download to write: all of it, as PROTOCOL.md version 1 has it; or,
/// resumable, with checkpoints and the item count, from the start or after a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct Part {
    pub resumable: bool,
    pub after: Option<Resume>,
}

type Page = Result<(TableId, Vec<rows::Row>, rows::Position), SyncError>;

/// Sends every changed row, page by page, until done or until the writer stops
/// listening. The connection is returned before each page is handed over, so a slow
/// client holds none.
fn read_pages(
    pool: &Pool,
    window: Window,
    from: rows::Position,
    tx: &std::sync::mpsc::SyncSender<Page>,
) {
    let mut pages = rows::ChangedPages::from_position(window, PAGE, from);
    loop {
        let page = pool
            .get()
            .map_err(DbError::from)
            .and_then(|mut conn| pages.next(&mut conn))
            .map_err(SyncError::from)
            .transpose();
        let Some(page) = page else { return };
        let page = page.map(|(table, rows)| (table, rows, pages.position.clone()));
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

/// How many items a part from `after` holds (the rows of the resends' subtrees counted
/// as one each: a progress figure, not a promise).
fn count_part(pool: &Pool, prepared: &Prepared, after: Option<&Resume>) -> Result<u64, SyncError> {
    let mut conn = pool.get().map_err(DbError::from)?;
    let window = &prepared.window;
    let mut n = 0;
    let tombstones_from = match after {
        Some(Resume::Tombstones(t)) => t.clone(),
        rows_from => {
            if rows_from.is_none() {
                n += (prepared.aliases.len() + prepared.resends.len()) as i64;
            }
            let start = match rows_from {
                Some(Resume::Rows(p)) => p.clone(),
                _ => rows::Position::default(),
            };
            for table in start.table..TABLES.len() {
                let after = start.after.as_ref().filter(|_| table == start.table);
                n += rows::count_in(&mut conn, table, window, after)?;
            }
            None
        }
    };
    if prepared.session.since.is_some() {
        n += rows::count_tombstones_in(&mut conn, window, tombstones_from.as_ref())?;
    }
    Ok(n.max(0) as u64)
}

/// Writes the gzip-compressed changeset (or the part of it) to `out`; returns the number
/// of items sent.
pub fn write(
    pool: &Pool,
    prepared: &Prepared,
    part: &Part,
    out: impl Write,
) -> Result<u64, SyncError> {
    let started = std::time::Instant::now();
    let gz = gzip_writer(out);
    let since = prepared.session.since;
    let total = match part.resumable {
        true => Some(count_part(pool, prepared, part.after.as_ref())?),
        false => None,
    };
    let mut w = ChangesetWriter::start_part(gz, since, total)?;
    let mut sent = 0u64;
    if part.after.is_none() {
        for (table, id, canonical) in &prepared.aliases {
            w.item(&Item::Alias(Alias {
                table: *table,
                id: id.clone(),
                canonical: canonical.clone(),
            }))?;
        }
        for (table, id) in &prepared.resends {
            sent += write_subtree(pool, &mut w, *table, std::slice::from_ref(id))?;
        }
    }
    let rows_from = match &part.after {
        None => Some(rows::Position::default()),
        Some(Resume::Rows(p)) => Some(p.clone()),
        Some(Resume::Tombstones(_)) => None,
    };
    if let Some(from) = rows_from {
        // The next page is queried while this one is written: the database and the XML
        // and gzip work then use two cores instead of taking turns on one.
        std::thread::scope(|scope| -> Result<(), SyncError> {
            let (tx, pages) = std::sync::mpsc::sync_channel(1);
            let window = prepared.window.clone();
            scope.spawn(move || read_pages(pool, window, from, &tx));
            for page in pages {
                let (table, page, position) = page?;
                for row in &page {
                    w.row(table, &row.id, row.last_updated, &row.values)?;
                }
                sent += page.len() as u64;
                if part.resumable {
                    w.checkpoint(&Resume::Rows(position).token())?;
                }
            }
            Ok(())
        })?;
    }
    // A first (full) download has nothing to delete on the device.
    if since.is_some() {
        let mut after = match &part.after {
            Some(Resume::Tombstones(t)) => t.clone(),
            _ => None,
        };
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
            let full = page.len() == PAGE;
            if let Some((change_id, table, t)) = page.last() {
                after = Some((*change_id, TABLES[*table].name.to_owned(), t.id.clone()));
                if part.resumable && full {
                    w.checkpoint(&Resume::Tombstones(after.clone()).token())?;
                }
            }
            if !full {
                break;
            }
        }
    }
    finish_gzip(w.finish()?)?;
    let mut conn = pool.get().map_err(DbError::from)?;
    match part.after {
        None => sessions::record_download(&mut conn, &prepared.session.id, sent as i64)?,
        Some(_) => sessions::add_download(&mut conn, &prepared.session.id, sent as i64)?,
    }
    crate::telemetry::download_sent(sent, started.elapsed());
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_tokens_read_back_and_refuse_anything_else() {
        let id = "0b8f7a3e-2c1d-4e5f-8a9b-0c1d2e3f4a5b".to_owned();
        for r in [
            Resume::Rows(rows::Position::default()),
            Resume::Rows(rows::Position {
                table: 2,
                after: Some(rows::Mark {
                    key: 7411,
                    place: None,
                    id: id.clone(),
                }),
            }),
            Resume::Rows(rows::Position {
                table: 1,
                after: Some(rows::Mark {
                    key: 7411,
                    place: Some(93),
                    id: id.clone(),
                }),
            }),
            Resume::Rows(rows::Position {
                table: TABLES.len(),
                after: None,
            }),
            Resume::Tombstones(None),
            Resume::Tombstones(Some((12, "assets".into(), id.clone()))),
        ] {
            assert_eq!(Resume::parse(&r.token()), Some(r.clone()), "{}", r.token());
        }
        for bad in [
            "",
            "r",
            "r.99",
            "r.1.x.y",
            "r.1.5.not-a-uuid",
            "t.1.users.0b8f7a3e-2c1d-4e5f-8a9b-0c1d2e3f4a5b",
            "t.1.assets",
            "q.1",
            "r.1.5.0b8f7a3e-2c1d-4e5f-8a9b-0c1d2e3f4a5b' OR 1=1",
        ] {
            assert_eq!(Resume::parse(bad), None, "{bad:?}");
        }
    }
}
