//! Sync sessions (PROTOCOL.md §3): open, upload, complete, state.

use super::SyncError;
use super::apply::{self, Uploader, apply_upload};
use super::code::ErrorCode;
use super::codec::{ChangesetReader, decompressing};
use super::spool::{Source, Spool, Stream};
use crate::db::cursor::{self, Seen, Window};
use crate::db::dialect;
use crate::db::repo::accounts::{self, Device};
use crate::db::repo::sessions::{self, Counts, NewSession, Session, SessionStatus};
use crate::db::repo::{aliases, conflicts, resends};
use crate::db::{DbConn, Pool, write_txn};
use crate::domain::{Micros, time};

/// Size limits of an upload.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The compressed file as received.
    pub max_upload_bytes: u64,
    /// The document after decompression.
    pub max_decompressed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_upload_bytes: 64 << 20,
            max_decompressed_bytes: 1 << 30,
        }
    }
}

/// Opens a session for the device, abandoning its open one. `device_clock` is the
/// laptop's clock reading, kept as an offset for showing its change times; `version` the
/// offsync version it named. The session keeps the snapshot it opened in, and the one of
/// the device's last completed session: its download is what lies between
/// ([`crate::db::cursor`]). Nothing here waits for a write in flight.
pub fn open(
    conn: &mut DbConn,
    device: &Device,
    device_clock: Option<Micros>,
    version: Option<&str>,
    whole: bool,
) -> Result<Session, SyncError> {
    write_txn(conn, |c, now| {
        let cursor = cursor::current(c)?.to_string();
        accounts::lock_device(c, &device.id)?;
        if sessions::abandon_open(c, &device.id, now)? > 0 {
            crate::telemetry::sync_ended("abandoned");
        }
        // A whole download starts from nothing, as a first sync's (a laptop whose data is
        // older than its last sync asks for one).
        let last = match whole {
            true => None,
            false => last_completed(c, device)?,
        };
        let id = uuid::Uuid::new_v4().to_string();
        sessions::insert(
            c,
            &NewSession {
                id: &id,
                device_id: &device.id,
                since: last.as_ref().map(|s| s.started),
                started: now,
                status: SessionStatus::Open.as_str(),
                clock_offset: device_clock.map(|d| d - now),
                cursor: &cursor,
                cursor_from: last.as_ref().and_then(|s| s.cursor.as_deref()),
                client_version: version,
            },
        )?;
        sessions::get(c, &id, false)?
            .ok_or_else(|| SyncError::NotFound("the new session vanished".into()))
    })
}

/// Which writes the session's download sends.
pub fn window(s: &Session) -> Result<Window, SyncError> {
    let corrupt = |what: &str| {
        SyncError::Db(crate::db::DbError::Corrupt(format!(
            "session {} has an unreadable {what}",
            s.id
        )))
    };
    let to = match &s.cursor {
        Some(text) => Seen::parse(text).ok_or_else(|| corrupt("cursor"))?,
        None => {
            return Err(SyncError::State {
                code: ErrorCode::SessionAbandoned,
                message: format!(
                    "session {} was opened before this server's upgrade; open a new one",
                    s.id
                ),
            });
        }
    };
    let from = match (&s.cursor_from, s.since) {
        (Some(text), _) => {
            cursor::From::After(Seen::parse(text).ok_or_else(|| corrupt("cursor_from"))?)
        }
        (None, Some(since)) => cursor::From::Stamp(since),
        (None, None) => cursor::From::Everything,
    };
    Ok(Window { from, to })
}

fn last_completed(conn: &mut DbConn, device: &Device) -> Result<Option<Session>, SyncError> {
    let current = accounts::device_by_id(conn, &device.id)?;
    match current.and_then(|d| d.last_session_id) {
        Some(id) => Ok(sessions::get(conn, &id, false)?),
        None => Ok(None),
    }
}

/// The device's session `id`, or 404; `lock` holds it until the transaction ends.
pub fn find(
    conn: &mut DbConn,
    device: &Device,
    id: &str,
    lock: bool,
) -> Result<Session, SyncError> {
    match sessions::get(conn, id, lock)? {
        Some(s) if s.device_id == device.id => Ok(s),
        _ => Err(SyncError::NotFound(format!(
            "no session {id} for this device"
        ))),
    }
}

/// Refuses a step on a session that is not open.
pub fn ensure_open(s: &Session) -> Result<(), SyncError> {
    let (code, why) = match s.state() {
        SessionStatus::Open => return Ok(()),
        SessionStatus::Failed => (
            ErrorCode::SessionFailed,
            format!(
                "session {} failed ({}); open a new one",
                s.id,
                s.failure.as_deref().unwrap_or("rejected")
            ),
        ),
        SessionStatus::Abandoned => (
            ErrorCode::SessionAbandoned,
            format!(
                "session {} was replaced by a newer session of this device",
                s.id
            ),
        ),
        SessionStatus::Complete => (
            ErrorCode::SessionComplete,
            format!("session {} is already complete", s.id),
        ),
    };
    Err(SyncError::State { code, message: why })
}

/// The stored answer to an upload, rendered as the `<result>` element.
pub fn result_xml(session_id: &str, counts: Counts, is_conflict: bool) -> String {
    format!(
        "<result session=\"{}\" applied=\"{}\" unchanged=\"{}\" conflicts=\"{}\" isConflict=\"{}\"/>",
        quick_xml::escape::escape(session_id),
        counts.applied,
        counts.unchanged,
        counts.conflicts,
        is_conflict
    )
}

/// What to do with an upload given the session's state: apply it, answer with the
/// stored result again (the identical file), or refuse.
fn upload_decision(s: &Session, sha256: &str) -> Result<Option<String>, SyncError> {
    match (&s.upload_sha256, &s.upload_result) {
        (Some(done), Some(result)) if done == sha256 && s.state() != SessionStatus::Failed => {
            Ok(Some(result.clone()))
        }
        (Some(_), _) => Err(SyncError::State {
            code: ErrorCode::AlreadyUploaded,
            message: format!(
                "session {} already has a different upload; open a new session",
                s.id
            ),
        }),
        (None, _) => ensure_open(s).map(|()| None),
    }
}

/// How many times an upload is applied at most when it keeps losing races with other
/// transactions (a deadlock, a key created meanwhile) before the client is told to retry.
const ATTEMPTS: u32 = 5;

/// Applies an uploaded changeset (gzip or plain) to the session, all or nothing.
/// `sha256` is the hex digest of the file as received, for recognising a repeat. No
/// connection is held while the file is received; a document in judging order is judged
/// while it is parsed, any other is sorted first (`spool`). An attempt that loses a race with
/// another transaction is rolled back and run again (an upload is idempotent).
pub fn upload(
    pool: &Pool,
    device: &Device,
    session_id: &str,
    file: std::fs::File,
    sha256: &str,
    limits: Limits,
) -> Result<String, SyncError> {
    {
        let mut conn = pool.get().map_err(crate::db::DbError::from)?;
        let s = find(&mut conn, device, session_id, false)?;
        if let Some(previous) = upload_decision(&s, sha256)? {
            return Ok(previous);
        }
    }
    let started = std::time::Instant::now();
    let mut attempt = 1;
    let mut sorted: Option<Spool> = None;
    let outcome = loop {
        let mut conn = pool.get().map_err(crate::db::DbError::from)?;
        dialect::bulk_cache(&mut conn, true)?;
        let applied = match &mut sorted {
            None => apply_streaming(&mut conn, device, session_id, sha256, &file, limits),
            Some(spool) => {
                let items = spool.items;
                let mut batches = spool.batches(apply::BATCH)?;
                apply_in_transaction(&mut conn, device, session_id, sha256, &mut batches)
                    .map(|r| (r, items))
            }
        };
        dialect::bulk_cache(&mut conn, false)?;
        match applied {
            Err(SyncError::Unordered) if sorted.is_none() => {
                let input = reread(&file)?;
                match Spool::fill(ChangesetReader::new(input, limits.max_decompressed_bytes)) {
                    Ok(spool) => sorted = Some(spool),
                    Err(e) => break Err(e),
                }
            }
            Err(SyncError::Db(e)) if e.lost_a_race() && attempt < ATTEMPTS => {
                drop(conn);
                tracing::info!(session = session_id, attempt, error = %e, "upload lost a race; applying it again");
                crate::telemetry::upload_retried();
                // Apart, so that the two that collided do not collide again.
                let pause = rand::random_range(10..100) * u64::from(attempt);
                std::thread::sleep(std::time::Duration::from_millis(pause));
                attempt += 1;
            }
            other => break other,
        }
    };
    match outcome {
        Ok((result, items)) => {
            crate::telemetry::upload_applied(items, started.elapsed());
            Ok(result)
        }
        Err(e) if e.is_client_error() => {
            let reason = e.to_string();
            let mut conn = pool.get().map_err(crate::db::DbError::from)?;
            write_txn(&mut conn, |c, now| {
                sessions::fail(c, session_id, &reason, now)
            })?;
            crate::telemetry::sync_ended("failed");
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// The uploaded file from its start, decompressed.
fn reread(file: &std::fs::File) -> Result<Box<dyn std::io::BufRead + Send>, SyncError> {
    use std::io::Seek;
    let mut file = file.try_clone()?;
    file.seek(std::io::SeekFrom::Start(0))?;
    Ok(decompressing(std::io::BufReader::with_capacity(
        64 << 10,
        file,
    ))?)
}

/// One attempt, judging the document while another thread parses it.
fn apply_streaming(
    conn: &mut DbConn,
    device: &Device,
    session_id: &str,
    sha256: &str,
    file: &std::fs::File,
    limits: Limits,
) -> Result<(String, u64), SyncError> {
    let input = reread(file)?;
    std::thread::scope(|scope| {
        let reader = ChangesetReader::new(input, limits.max_decompressed_bytes);
        let mut stream = Stream::start(scope, reader, apply::BATCH);
        match apply_in_transaction(conn, device, session_id, sha256, &mut stream) {
            Ok(result) => Ok((result, stream.items)),
            Err(_) if stream.out_of_order() => Err(SyncError::Unordered),
            // A document that is malformed further on is that, whatever was found before.
            Err(e) if e.is_client_error() => Err(stream.error_further_on().unwrap_or(e)),
            Err(e) => Err(e),
        }
    })
}

fn apply_in_transaction(
    conn: &mut DbConn,
    device: &Device,
    session_id: &str,
    sha256: &str,
    batches: &mut dyn Source,
) -> Result<String, SyncError> {
    tracing::info!(session = session_id, device = %device.id, "applying upload");
    write_txn(conn, |c, now| {
        // Checked again under the lock: a second upload may have raced this one here.
        let s = find(c, device, session_id, true)?;
        if let Some(previous) = upload_decision(&s, sha256)? {
            return Ok(previous);
        }
        let owner = accounts::user_by_id(c, &device.user_id)?
            .map(|u| u.name)
            .unwrap_or_default();
        let actor = format!("{} ({owner})", device.label);
        let who = Uploader {
            user_id: &device.user_id,
            device_id: &device.id,
            session_id,
            actor: &actor,
        };
        let counts = apply_upload(c, batches, &who, now)?;
        let flag = accounts::user_by_id(c, &device.user_id)?.is_some_and(|u| u.is_conflict);
        let result = result_xml(session_id, counts, flag);
        // The session's download covers this transaction too: the device gets its rows
        // back as the upload left them, stamped, in this sync.
        let covers = match s.cursor.as_deref().and_then(Seen::parse) {
            Some(seen) => Some(
                Seen {
                    upload: Some(cursor::current_change_id(c)?),
                    ..seen
                }
                .to_string(),
            ),
            None => None,
        };
        sessions::record_upload(c, session_id, sha256, &result, counts, covers.as_deref())?;
        tracing::info!(
            session = session_id,
            device = %device.id,
            applied = counts.applied,
            unchanged = counts.unchanged,
            conflicts = counts.conflicts,
            "upload applied"
        );
        Ok(result)
    })
}

/// Completes an open session: the device's next `since` is this session's `started`.
pub fn complete(conn: &mut DbConn, device: &Device, id: &str) -> Result<Session, SyncError> {
    write_txn(conn, |c, now| {
        let s = find(c, device, id, true)?;
        ensure_open(&s)?;
        sessions::complete(c, id, now)?;
        accounts::set_last_session(c, &device.id, id)?;
        aliases::acknowledge(c, id)?;
        resends::acknowledge(c, id)?;
        crate::telemetry::sync_ended("completed");
        // The one line an operator reads per sync.
        if let Some(sum) = sessions::summary(c, id)? {
            tracing::info!(
                session = id,
                device = %device.id,
                label = %device.label,
                applied = sum.applied.unwrap_or(0),
                unchanged = sum.unchanged.unwrap_or(0),
                conflicts = sum.conflicts.unwrap_or(0),
                downloaded = sum.downloaded.unwrap_or(0),
                seconds = format_args!("{:.3}", (now - s.started) as f64 / 1e6),
                "sync completed"
            );
        }
        Ok(Session {
            status: SessionStatus::Complete.as_str().into(),
            finished: Some(now),
            ..s
        })
    })
}

/// The device's sync state.
#[derive(Debug, Clone)]
pub struct State {
    pub last_sync: Option<Micros>,
    pub is_conflict: bool,
    pub conflicts: i64,
}

pub fn state(conn: &mut DbConn, device: &Device) -> Result<State, SyncError> {
    let last_sync = last_completed(conn, device)?.map(|s| s.started);
    let user = accounts::user_by_id(conn, &device.user_id)?;
    let open = conflicts::count_open(conn, Some(&device.user_id))?;
    Ok(State {
        last_sync,
        is_conflict: user.is_some_and(|u| u.is_conflict),
        conflicts: open,
    })
}

/// The `<session>` element for a session.
pub fn session_xml(s: &Session, with_status: bool) -> String {
    let mut out = format!("<session id=\"{}\"", quick_xml::escape::escape(&s.id));
    if with_status {
        out.push_str(&format!(" status=\"{}\"", s.status));
    }
    if let Some(since) = s.since {
        out.push_str(&format!(" since=\"{}\"", time::format(since)));
    }
    out.push_str(&format!(" started=\"{}\"/>", time::format(s.started)));
    out
}
