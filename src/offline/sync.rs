//! One sync of the laptop's database with the main server: take the changes logged so far,
//! open a session, upload them as one gzip changeset, download and apply the server's
//! changes in one local transaction, complete, then forget what was uploaded.
//!
//! Interrupted anywhere, nothing local is half-done: the download is applied in one
//! transaction, and the log is only trimmed after the server confirmed completion. The next
//! sync uploads the same changes again (the server recognises creates and edits it already
//! applied) and downloads from the same `since`. Changes made while a sync runs are numbered
//! after the ones it took, so they stay in the log for the next one.
//!
//! One sync at a time per laptop (a lock file beside its database, released when the
//! process ends however it ends), and a downloaded row never replaces a newer local copy:
//! two overlapping syncs cannot roll the laptop back. A change the server refuses (a 422
//! naming its row) is held back and the sync goes on without it; the engineer sees which
//! change and why, and corrects or discards it.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

use super::client::{ClientError, UploadResult, Upstream};
use super::store::{self, Change, ChangeKind, FieldLog};
use crate::db::repo::rows;
use crate::db::{DbError, Pool, write_txn};
use crate::domain::{Micros, TABLES, TableId, time, value};
use crate::sync::SyncError;
use crate::sync::codec::{
    ChangesetReader, ChangesetWriter, Delete, FieldChange, Item, Record, Was, decompressing,
    finish_gzip, gzip_writer,
};

/// What a sync did, for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub uploaded: u64,
    pub downloaded: u64,
    pub conflicts: u64,
    /// Changes the server refused, kept on the laptop for the engineer to see to.
    pub held: u64,
    /// The laptop's data was older than its last completed sync (restored from a backup,
    /// or a copy): downloaded whole again, and this many changes the server already had
    /// were left out.
    pub restored: Option<u64>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sync complete: uploaded {}, downloaded {}, conflicts {}",
            self.uploaded, self.downloaded, self.conflicts
        )?;
        if self.held > 0 {
            write!(
                f,
                "; {} change(s) refused by the server, held on this laptop",
                self.held
            )?;
        }
        if let Some(seen) = self.restored {
            write!(
                f,
                "; this laptop's data was older than its last sync (restored from a backup?): \
                 it was downloaded again, and {seen} change(s) the main site already had were \
                 not sent twice"
            )?;
        }
        Ok(())
    }
}

/// Refused changes held back in one sync before it gives up: each refusal costs a round
/// trip, and a laptop with more than this many broken changes needs a person anyway.
const MAX_HELD_PER_SYNC: usize = 20;

/// The laptop's sync lock: a file beside its database, locked while a sync runs. The
/// operating system releases it when the process ends, so a crash never wedges the laptop.
struct SyncLock {
    _file: Option<std::fs::File>,
}

impl SyncLock {
    fn take(pool: &Pool) -> Result<SyncLock, SyncFailure> {
        let mut conn = pool.get().map_err(DbError::from)?;
        let Some(path) = database_file(&mut conn)? else {
            return Ok(SyncLock { _file: None }); // an in-memory or server database: nothing to share
        };
        let mut lock_path = path.into_os_string();
        lock_path.push(".sync-lock");
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        // Like every file offsync makes: the owner's alone.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&lock_path)?;
        match file.try_lock() {
            Ok(()) => Ok(SyncLock { _file: Some(file) }),
            Err(std::fs::TryLockError::WouldBlock) => Err(SyncFailure::Running),
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

/// The file of a SQLite database, if it has one.
fn database_file(conn: &mut crate::db::DbConn) -> Result<Option<PathBuf>, DbError> {
    if !matches!(conn, crate::db::DbConn::Sqlite(_)) {
        return Ok(None);
    }
    #[derive(diesel::QueryableByName)]
    struct File {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    let found = crate::db::Sql::new("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .first::<File>(conn)?;
    Ok(found
        .map(|f| f.file)
        .filter(|f| !f.is_empty())
        .map(PathBuf::from))
}

#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    #[error("a sync is already running on this laptop")]
    Running,
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
    /// Rows received or applied from the download so far.
    fn downloaded(&self, _rows: u64) {}
    /// How many rows the download holds, once the server has said.
    fn expect(&self, _rows: u64) {}
}

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {}

/// Runs one sync; a change the server refuses is held back and the sync tried again
/// without it.
pub fn sync(
    pool: &Pool,
    upstream: &Upstream,
    progress: &dyn Progress,
) -> Result<Summary, SyncFailure> {
    let _lock = SyncLock::take(pool)?;
    let mut held_now = 0;
    loop {
        match sync_once(pool, upstream, progress) {
            Err(SyncFailure::Client(refusal)) if held_now < MAX_HELD_PER_SYNC => {
                if !hold_refused(pool, &refusal)? {
                    return Err(SyncFailure::Client(refusal));
                }
                held_now += 1;
            }
            other => return other,
        }
    }
}

/// Holds the change a 422 names; false when the refusal names no change of this laptop's
/// (then holding it would not help).
fn hold_refused(pool: &Pool, refusal: &ClientError) -> Result<bool, SyncFailure> {
    let ClientError::Refused {
        status: 422,
        refusal,
        ..
    } = refusal
    else {
        return Ok(false);
    };
    let (Some(table_name), Some(id)) = (&refusal.table, &refusal.id) else {
        return Ok(false);
    };
    let Some(table) = crate::domain::table_by_name(table_name) else {
        return Ok(false);
    };
    let mut conn = pool.get().map_err(DbError::from)?;
    if store::changes_of(&mut conn, table, std::slice::from_ref(id))?.is_empty() {
        return Ok(false);
    }
    tracing::warn!(table = %table_name, id = %id, code = %refusal.code, "the server refused a change; held on this laptop");
    store::hold(
        &mut conn,
        &store::Held {
            table_name: table_name.clone(),
            row_id: id.clone(),
            code: refusal.code.clone(),
            field: refusal.field.clone(),
            message: refusal.message.clone(),
            held_at: time::now(),
        },
    )?;
    Ok(true)
}

fn sync_once(
    pool: &Pool,
    upstream: &Upstream,
    progress: &dyn Progress,
) -> Result<Summary, SyncFailure> {
    progress.step(Step::Preparing, "opening a session");
    let local_last = {
        let mut conn = pool.get().map_err(DbError::from)?;
        store::get_state(&mut conn, "last_sync")?.and_then(|t| time::parse(&t))
    };
    let opened_at = time::now();
    let mut session = upstream.open(&time::format(opened_at))?;
    // The server completed a sync of this device after the last one this database knows:
    // it is an older copy (a backup put back, a disk image). What it logged before that
    // sync began was uploaded then; the rest of the data is downloaded whole again.
    let server_since = session.since.as_deref().and_then(time::parse);
    let restored = match (server_since, local_last) {
        (Some(since), None) => Some(since),
        (Some(since), Some(last)) if last < since => Some(since),
        _ => None,
    };
    let mut already_had = None;
    if let Some(since) = restored {
        // Change times are the laptop's clock: read them against the server's by the offset
        // this open showed.
        let offset = time::parse(&session.started).map_or(0, |s| s - opened_at);
        let mut conn = pool.get().map_err(DbError::from)?;
        let dropped = store::drop_changes_before(&mut conn, since - offset)?;
        tracing::warn!(
            dropped,
            "this laptop's data is older than its last completed sync; downloading it whole"
        );
        already_had = Some(dropped);
        session = upstream.open_whole(&time::format(time::now()))?;
    }
    progress.step(Step::Preparing, "collecting local changes");
    let (upto, held) = {
        let mut conn = pool.get().map_err(DbError::from)?;
        (store::max_seq(&mut conn)?, held_rows(&mut conn)?)
    };
    let spool = tempfile::NamedTempFile::new()?;
    let uploaded = write_upload(pool, upto, &held, spool.as_file())?;

    let mut result = UploadResult::default();
    if uploaded > 0 {
        progress.step(Step::Uploading, &format!("{uploaded} changed rows"));
        result = upstream.upload(&session.id, spool.path())?;
    }

    progress.step(Step::Downloading, "changes from the server");
    let received = fetch_download(upstream, &session.id, progress)?;
    progress.step(Step::Downloading, "applying");
    let mut items = received.items()?;
    let downloaded = apply_download(
        pool,
        &mut items,
        upto,
        &held,
        progress,
        already_had.is_some(),
    )?;

    progress.step(Step::Completing, "");
    upstream.complete(&session.id)?;
    let mut conn = pool.get().map_err(DbError::from)?;
    let summary = Summary {
        uploaded,
        downloaded,
        conflicts: result.conflicts,
        held: held.len() as u64,
        restored: already_had,
    };
    write_txn::<_, SyncFailure>(&mut conn, |c, _| {
        store::drop_upto(c, upto)?;
        store::set_state(c, "last_sync", &session.started)?;
        store::set_state(c, "last_summary", &summary.to_string())?;
        Ok(())
    })?;
    // What is still open on the main site, to show offline. The sync has completed: a
    // list that cannot be had now keeps the last one, and says so in the log only.
    match upstream.open_conflicts() {
        Ok(list) => store::keep_open_conflicts(&mut conn, &list)?,
        Err(e) => {
            tracing::info!(reason = %e, "the open conflicts were not read; the last list stays")
        }
    }
    Ok(summary)
}

/// Applies a downloaded changeset (gzip or plain) to the laptop's database as a sync's
/// download step does: local changes waiting are kept, and a row the laptop holds in a
/// newer version is left alone, so an older document changes nothing. Returns the rows read.
pub fn apply_changeset(
    pool: &Pool,
    body: impl std::io::Read + Send + 'static,
) -> Result<u64, SyncFailure> {
    let (upto, held) = {
        let mut conn = pool.get().map_err(DbError::from)?;
        (store::max_seq(&mut conn)?, held_rows(&mut conn)?)
    };
    let mut reader = ChangesetReader::for_download(decompressing(body)?);
    reader.header()?;
    let mut items = || reader.next_item().map_err(SyncFailure::from);
    apply_download(pool, &mut items, upto, &held, &Quiet, false)
}

/// A download received whole, kept in a temporary file (one item per line) until it is
/// applied in one local transaction.
struct Received {
    file: std::fs::File,
}

impl Received {
    fn items(self) -> Result<impl FnMut() -> Result<Option<Item>, SyncFailure>, SyncFailure> {
        use std::io::{BufRead, Seek};
        let mut file = self.file;
        file.seek(std::io::SeekFrom::Start(0))?;
        let mut lines = std::io::BufReader::with_capacity(64 << 10, file);
        let mut line = String::new();
        Ok(move || {
            line.clear();
            if lines.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            serde_json::from_str(&line)
                .map(Some)
                .map_err(|e| SyncFailure::Io(std::io::Error::other(e)))
        })
    }
}

/// Receives the session's download as a resumable one (docs/protocol.md §8): when the
/// line drops, what came before the last checkpoint is kept and the download goes on
/// after it, from whichever instance answers; what came after it is dropped and comes
/// again. Gives up after `upstream.attempts` breaks in a row that brought nothing new.
fn fetch_download(
    upstream: &Upstream,
    session: &str,
    progress: &dyn Progress,
) -> Result<Received, SyncFailure> {
    use std::io::{Seek, Write};
    let mut file = tempfile::tempfile()?;
    // What is whole: the bytes of the file, the items in them, the checkpoint after them.
    let mut kept: (u64, u64, Option<String>) = (0, 0, None);
    let mut fruitless = 0;
    let mut pause = upstream.backoff;
    loop {
        let before = kept.1;
        let outcome = (|| -> Result<(), SyncFailure> {
            let body = upstream.download_part(session, kept.2.as_deref())?;
            let mut reader = ChangesetReader::for_download(decompressing(body)?);
            if let Some(rows) = reader.header()?.rows {
                progress.expect(kept.1 + rows);
            }
            let mut out = std::io::BufWriter::with_capacity(64 << 10, &mut file);
            let mut items = kept.1;
            let mut seen = kept.2.clone();
            loop {
                let item = reader.next_item()?;
                if let Some((token, _)) = reader.checkpoint()
                    && seen.as_deref() != Some(token.as_str())
                {
                    out.flush()?;
                    let at = out.get_mut().stream_position()?;
                    kept = (at, items, Some(token.clone()));
                    seen = Some(token.clone());
                }
                let Some(item) = item else { break };
                serde_json::to_writer(&mut out, &item).map_err(std::io::Error::other)?;
                out.write_all(b"\n")?;
                items += 1;
                if items.is_multiple_of(1000) {
                    progress.downloaded(items);
                }
            }
            out.flush()?;
            progress.downloaded(items);
            Ok(())
        })();
        match outcome {
            Ok(()) => return Ok(Received { file }),
            // The server refused (409: the session was replaced, say): no retry helps.
            Err(e @ SyncFailure::Client(_)) => return Err(e),
            Err(e) => {
                fruitless = if kept.1 > before { 1 } else { fruitless + 1 };
                if fruitless >= upstream.attempts.max(1) {
                    return Err(e);
                }
                tracing::warn!(error = %e, rows = kept.1, "the download broke off; resuming after its last checkpoint");
                // Whatever came after the checkpoint comes again.
                file.set_len(kept.0)?;
                file.seek(std::io::SeekFrom::Start(kept.0))?;
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_secs(30));
            }
        }
    }
}

/// The rows whose changes are held back, by table and id.
fn held_rows(conn: &mut crate::db::DbConn) -> Result<HashSet<(TableId, String)>, DbError> {
    Ok(store::held(conn)?
        .into_iter()
        .filter_map(|h| Some((crate::domain::table_by_name(&h.table_name)?, h.row_id)))
        .collect())
}

/// The changes numbered up to `upto`, one item per row (a create with later edits is one
/// create; edits of one row are one edit from the first base), written as a gzip changeset.
/// Returns the number of rows.
fn write_upload(
    pool: &Pool,
    upto: i64,
    held: &HashSet<(TableId, String)>,
    file: &std::fs::File,
) -> Result<u64, SyncFailure> {
    let gz = gzip_writer(file);
    let mut w = ChangesetWriter::start(gz, None)?;
    let mut rows_written = 0u64;
    let mut conn = pool.get().map_err(DbError::from)?;
    for table in 0..TABLES.len() {
        let mut log = LogRows::new(table, upto);
        while let Some(row) = log.next(&mut conn)? {
            if !row
                .first()
                .is_some_and(|c| held.contains(&(table, c.row_id.clone())))
            {
                rows_written += write_row(&mut conn, &mut w, table, row)?;
            }
        }
    }
    finish_gzip(w.finish()?)?;
    Ok(rows_written)
}

/// The change log of one table up to a change number, one row's changes at a time, read a
/// page at a time (memory holds a page, whatever the log's length).
struct LogRows {
    table: TableId,
    upto: i64,
    after: Option<(String, i64)>,
    page: std::collections::VecDeque<Change>,
    done: bool,
}

impl LogRows {
    const PAGE: i64 = 1000;

    fn new(table: TableId, upto: i64) -> LogRows {
        LogRows {
            table,
            upto,
            after: None,
            page: Default::default(),
            done: false,
        }
    }

    /// The next row's changes, oldest first; `None` at the end.
    fn next(&mut self, conn: &mut crate::db::DbConn) -> Result<Option<Vec<Change>>, DbError> {
        let mut row: Vec<Change> = Vec::new();
        loop {
            if self.page.is_empty() && !self.done {
                let page = store::changes_page(
                    conn,
                    self.table,
                    self.upto,
                    self.after.as_ref(),
                    Self::PAGE,
                )?;
                self.done = page.len() < Self::PAGE as usize;
                if let Some(last) = page.last() {
                    self.after = Some((last.row_id.clone(), last.seq));
                }
                self.page.extend(page);
            }
            match self.page.front() {
                Some(next) if row.first().is_none_or(|r| r.row_id == next.row_id) => {
                    row.extend(self.page.pop_front());
                }
                Some(_) => return Ok(Some(row)),
                None => return Ok((!row.is_empty()).then_some(row)),
            }
        }
    }
}

/// One row's changes as one item; 0 when they cancel out.
fn write_row<W: Write>(
    conn: &mut crate::db::DbConn,
    w: &mut ChangesetWriter<W>,
    table: TableId,
    changes: Vec<Change>,
) -> Result<u64, SyncFailure> {
    let def = &TABLES[table];
    let Some(first) = changes.first() else {
        return Ok(0);
    };
    let id = first.row_id.clone();
    let created = first.kind == ChangeKind::Create;
    let deleted = changes.iter().any(|c| c.kind == ChangeKind::Delete);
    let updated = Some(time::now());
    if deleted {
        if created || !def.offline_delete {
            return Ok(0); // made and removed offline: the server never needs to know
        }
        let was = values_at_base(conn, table, &id, &changes)?;
        w.item(&Item::Delete(Delete {
            table,
            id,
            base: first.base,
            updated,
            was,
        }))?;
        return Ok(1);
    }
    let fields = sent_fields(table, &changes);
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

/// The fields an upload sends for one row's changes (a create's or an edit's; a delete
/// sends none): per field the first `was` and the last value, only fields this laptop may
/// write, and for an edit only those not changed back. The one place that says what was
/// sent, for the upload and for judging the download that follows it.
fn sent_fields(table: TableId, changes: &[Change]) -> Vec<FieldChange> {
    let def = &TABLES[table];
    let created = changes
        .first()
        .is_some_and(|c| c.kind == ChangeKind::Create);
    if changes.iter().any(|c| c.kind == ChangeKind::Delete) {
        return Vec::new();
    }
    let mut merged: Vec<(usize, FieldLog)> = Vec::new();
    for c in changes {
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
    // Never a value this laptop may not write: the server would refuse the whole upload.
    merged
        .into_iter()
        .filter(|(i, _)| created || def.fields[*i].offline_edit)
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
        .collect()
}

/// A deleted row's values at its base, for the server to show what changed since: what
/// the laptop held when it deleted the row (its tombstone), each field it had edited
/// before put back to the value that edit started from.
fn values_at_base(
    conn: &mut crate::db::DbConn,
    table: TableId,
    id: &str,
    changes: &[Change],
) -> Result<Vec<(usize, Option<String>)>, SyncFailure> {
    let def = &TABLES[table];
    let Some(mut values) = rows::tombstones(conn, table, &[id.to_owned()])?
        .remove(id)
        .and_then(|t| t.values)
    else {
        return Ok(Vec::new());
    };
    for f in changes.iter().rev().flat_map(|c| &c.fields) {
        if let Some(i) = def.field_index(&f.field) {
            values[i] = f.was.clone(); // the earliest change's `was` is applied last
        }
    }
    Ok(values.into_iter().enumerate().collect())
}

/// Applies the download in one local transaction; returns the number of rows applied.
fn apply_download(
    pool: &Pool,
    next_item: &mut dyn FnMut() -> Result<Option<Item>, SyncFailure>,
    upto: i64,
    held: &HashSet<(TableId, String)>,
    progress: &dyn Progress,
    whole: bool,
) -> Result<u64, SyncFailure> {
    let mut conn = pool.get().map_err(DbError::from)?;
    write_txn::<_, SyncFailure>(&mut conn, |c, now| {
        let mut applied = 0u64;
        // A whole download has no deletes: what it does not hold is gone from the server.
        let mut seen = match whole {
            true => Some(store::Seen::start(c)?),
            false => None,
        };
        // Rows are applied a batch at a time; anything else first flushes the batch.
        let mut batch: Vec<Record> = Vec::with_capacity(rows::BATCH);
        while let Some(item) = next_item()? {
            match item {
                Item::Record(r) => {
                    if let Some(seen) = seen.as_mut() {
                        seen.add(c, r.table, &r.id)?;
                    }
                    if batch.len() == rows::BATCH
                        || batch.first().is_some_and(|b| b.table != r.table)
                    {
                        apply_records(c, std::mem::take(&mut batch), upto, held, now)?;
                    }
                    batch.push(r);
                }
                other => {
                    apply_records(c, std::mem::take(&mut batch), upto, held, now)?;
                    apply_other(c, other, now)?;
                }
            }
            applied += 1;
            if applied.is_multiple_of(1000) {
                progress.downloaded(applied);
            }
        }
        apply_records(c, std::mem::take(&mut batch), upto, held, now)?;
        if let Some(seen) = seen {
            seen.forget_the_rest(c)?;
        }
        progress.downloaded(applied);
        // Uploaded fields the server did not take although their row was not in this
        // download: it changed the row earlier (the shadow holds its value).
        mark_conflicts_from_shadow(c, upto, held, now)?;
        Ok(applied)
    })
}

/// An alias or a delete from the download.
fn apply_other(c: &mut crate::db::DbConn, item: Item, now: Micros) -> Result<(), SyncFailure> {
    match item {
        Item::Alias(a) => join_alias(c, a.table, &a.id, &a.canonical)?,
        Item::Delete(d) => {
            // A delete older than the local copy (an overlapping sync's) changes nothing.
            let newer_here = |r: &rows::Row| d.updated.is_some_and(|u| r.last_updated > u);
            if let Some(local) = rows::get(c, d.table, &d.id)?
                && !newer_here(&local)
            {
                rows::delete_cascade(c, d.table, std::slice::from_ref(&d.id), now, "server")?;
            }
            store::clear_conflicts(c, d.table, &d.id)?;
        }
        Item::Record(_) => {}
    }
    Ok(())
}

/// Puts downloaded rows of one table in place, keeping the local value of every field with
/// a change waiting; marks a conflict where an uploaded value did not stick. A few statements
/// per batch; rows with local changes (few) are judged one by one.
fn apply_records(
    c: &mut crate::db::DbConn,
    records: Vec<Record>,
    upto: i64,
    held: &HashSet<(TableId, String)>,
    now: Micros,
) -> Result<(), SyncFailure> {
    let Some(table) = records.first().map(|r| r.table) else {
        return Ok(());
    };
    let def = &TABLES[table];
    // A row changed during the download can come twice; the later one is newer.
    let mut latest: HashMap<String, Record> = HashMap::with_capacity(records.len());
    let mut order = Vec::with_capacity(records.len());
    for r in records {
        if !latest.contains_key(&r.id) {
            order.push(r.id.clone());
        }
        latest.insert(r.id.clone(), r);
    }
    let local = rows::by_ids(c, table, &order, false)?;
    let mut changes = store::changes_of(c, table, &order)?;
    let mut inserts = Vec::new();
    let mut updates: Vec<rows::RowUpdate> = Vec::new();
    let mut settled = Vec::new();
    for id in order {
        let Some(r) = latest.remove(&id) else {
            continue;
        };
        let stamp = r.updated.unwrap_or(0);
        if local.get(&id).is_some_and(|l| l.last_updated >= stamp) {
            // This laptop already has this version or a newer one (an overlapping sync
            // downloaded it): an older download never rolls it back.
            continue;
        }
        let still_to_upload = |seq: i64| seq > upto || held.contains(&(table, id.clone()));
        let mut values = vec![None; def.fields.len()];
        for f in r.fields {
            values[f.index] = f.value;
        }
        let mut keep: HashSet<String> = HashSet::new();
        match changes.remove(&id) {
            None => settled.push(id.clone()),
            Some(row_changes) => {
                let (waiting, sent): (Vec<Change>, Vec<Change>) = row_changes
                    .into_iter()
                    .partition(|ch| still_to_upload(ch.seq));
                // Made during this sync, or held back: still to upload, kept as they are.
                for f in waiting.iter().flat_map(|ch| &ch.fields) {
                    if let Some(index) = def.field_index(&f.field) {
                        store::put_shadow(c, table, &id, &f.field, values[index].as_deref())?;
                        keep.insert(f.field.clone());
                    }
                }
                // What the upload sent (not every logged step: a field changed and changed
                // back was not sent, and the server's value simply stands).
                for f in sent_fields(table, &sent) {
                    let name = def.fields[f.index].name;
                    let server = values[f.index].as_deref();
                    store::put_shadow(c, table, &id, name, server)?;
                    if !value::same(def.fields[f.index].ty, server, f.value.as_deref()) {
                        // Sent, but the server kept another value: an edit in conflict, or a
                        // row made twice (joined onto the server's) whose values differ.
                        keep.insert(name.to_owned());
                        store::mark_conflict(c, table, &id, name, f.value.as_deref(), server, now)?;
                    }
                }
            }
        }
        if local.contains_key(&id) {
            let writes: Vec<(usize, Option<String>)> = values
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !keep.contains(def.fields[*i].name))
                .collect();
            updates.push((id, writes, stamp));
        } else {
            inserts.push((id, values, stamp));
        }
    }
    // A row whose parent this laptop deleted, where the server kept the parent (the delete
    // is a conflict), has nowhere to go here: it is left out rather than failing every sync
    // on the foreign key. It arrives with its next change on the server.
    if let Some((fk, parent)) = def.parent() {
        let parents: Vec<String> = inserts
            .iter()
            .filter_map(|(_, v, _)| v[fk].clone())
            .chain(updates.iter().flat_map(|(_, w, _)| {
                w.iter()
                    .filter(|(i, _)| *i == fk)
                    .filter_map(|(_, v)| v.clone())
            }))
            .collect();
        let present = rows::existing(c, parent, &parents)?;
        let orphan = |v: &Option<String>| v.as_ref().is_some_and(|p| !present.contains(p));
        inserts.retain(|(id, v, _)| {
            let keep = !orphan(&v[fk]);
            if !keep {
                tracing::warn!(
                    table = def.name,
                    id,
                    "left out: its parent was deleted on this laptop"
                );
            }
            keep
        });
        updates.retain(|(_, w, _)| !w.iter().any(|(i, v)| *i == fk && orphan(v)));
    }
    // Rows with nothing waiting locally follow the server: their marks go.
    store::clear_conflicts_of(c, table, &settled)?;
    let new: Vec<String> = inserts.iter().map(|(id, _, _)| id.clone()).collect();
    rows::remove_tombstones(c, table, &new)?;
    rows::insert(c, table, &inserts, "server")?;
    rows::update_many(c, table, &updates, "server")?;
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
    held: &HashSet<(TableId, String)>,
    now: Micros,
) -> Result<(), SyncFailure> {
    for (table, def) in TABLES.iter().enumerate() {
        let mut log = LogRows::new(table, upto);
        while let Some(row) = log.next(c)? {
            let Some(first) = row.first() else { continue };
            let id = first.row_id.clone();
            if first.kind != ChangeKind::Edit || held.contains(&(table, id.clone())) {
                continue;
            }
            for f in sent_fields(table, &row) {
                let name = def.fields[f.index].name;
                if let Some(server) = store::shadow(c, table, &id, name)?
                    && !value::same(
                        def.fields[f.index].ty,
                        server.as_deref(),
                        f.value.as_deref(),
                    )
                {
                    store::mark_conflict(
                        c,
                        table,
                        &id,
                        name,
                        f.value.as_deref(),
                        server.as_deref(),
                        now,
                    )?;
                }
            }
        }
    }
    Ok(())
}
