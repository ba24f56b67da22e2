//! Sync sessions (PROTOCOL.md §3): open, upload, complete, state.

use std::io::Read;

use super::SyncError;
use super::apply::{Uploader, apply_upload};
use super::code::ErrorCode;
use super::codec::{ChangesetReader, decompressing};
use super::spool::Spool;
use crate::db::dialect::WriteLock;
use crate::db::repo::accounts::{self, Device};
use crate::db::repo::sessions::{self, Counts, Session, SessionStatus};
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
/// laptop's clock reading, kept as an offset for showing its change times.
pub fn open(
    conn: &mut DbConn,
    device: &Device,
    device_clock: Option<Micros>,
) -> Result<Session, SyncError> {
    write_txn(conn, WriteLock::Barrier, |c, now| {
        sessions::abandon_open(c, &device.id, now)?;
        let since = last_completed(c, device)?.map(|s| s.started);
        let id = uuid::Uuid::new_v4().to_string();
        let offset = device_clock.map(|d| d - now);
        sessions::insert(c, &id, &device.id, since, now, offset)?;
        sessions::get(c, &id, false)?
            .ok_or_else(|| SyncError::NotFound("the new session vanished".into()))
    })
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

/// Applies an uploaded changeset (gzip or plain) to the session, all or nothing.
/// `sha256` is the hex digest of the file as received, for recognising a repeat.
pub fn upload(
    pool: &Pool,
    device: &Device,
    session_id: &str,
    file: impl Read + 'static,
    sha256: &str,
    limits: Limits,
) -> Result<String, SyncError> {
    let mut conn = pool.get().map_err(crate::db::DbError::from)?;
    let s = find(&mut conn, device, session_id, false)?;
    if let Some(previous) = upload_decision(&s, sha256)? {
        return Ok(previous);
    }
    let outcome = decompressing(file)
        .map_err(SyncError::from)
        .and_then(|input| Spool::fill(ChangesetReader::new(input, limits.max_decompressed_bytes)))
        .and_then(|spool| apply_in_transaction(&mut conn, device, session_id, sha256, spool));
    match outcome {
        Err(e) if e.is_client_error() => {
            let reason = e.to_string();
            write_txn(&mut conn, WriteLock::Shared, |c, now| {
                sessions::fail(c, session_id, &reason, now)
            })?;
            Err(e)
        }
        other => other,
    }
}

fn apply_in_transaction(
    conn: &mut DbConn,
    device: &Device,
    session_id: &str,
    sha256: &str,
    spool: Spool,
) -> Result<String, SyncError> {
    tracing::info!(session = session_id, device = %device.id, "applying upload");
    write_txn(conn, WriteLock::Upload, |c, now| {
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
        let counts = apply_upload(c, spool, &who, now)?;
        let flag = accounts::user_by_id(c, &device.user_id)?.is_some_and(|u| u.is_conflict);
        let result = result_xml(session_id, counts, flag);
        sessions::record_upload(c, session_id, sha256, &result, counts)?;
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
    write_txn(conn, WriteLock::Shared, |c, now| {
        let s = find(c, device, id, true)?;
        ensure_open(&s)?;
        sessions::complete(c, id, now)?;
        accounts::set_last_session(c, &device.id, id)?;
        aliases::acknowledge(c, id)?;
        resends::acknowledge(c, id)?;
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
