//! Sync sessions, through diesel's typed query builder (`db::schema`).

use diesel::prelude::*;

use crate::db::schema::sync_sessions;
use crate::db::{DbConn, DbError};
use crate::domain::Micros;

/// Where a sync session stands (stored as its word: the CHECK of `sync_sessions.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Open,
    Complete,
    /// Its upload was refused; nothing more may happen in it.
    Failed,
    /// The device opened a newer one.
    Abandoned,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Open => "open",
            SessionStatus::Complete => "complete",
            SessionStatus::Failed => "failed",
            SessionStatus::Abandoned => "abandoned",
        }
    }
}

impl Session {
    /// Its status; the schema's CHECK admits no other word.
    pub fn state(&self) -> SessionStatus {
        [
            SessionStatus::Open,
            SessionStatus::Complete,
            SessionStatus::Failed,
            SessionStatus::Abandoned,
        ]
        .into_iter()
        .find(|s| s.as_str() == self.status)
        .unwrap_or(SessionStatus::Failed)
    }
}

/// A sync session, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = sync_sessions)]
pub struct Session {
    pub id: String,
    pub device_id: String,
    pub since: Option<i64>,
    pub started: i64,
    pub finished: Option<i64>,
    pub status: String,
    pub upload_sha256: Option<String>,
    pub upload_result: Option<String>,
    pub failure: Option<String>,
    /// The snapshot the session was opened in ([`crate::db::cursor`]); none for a session
    /// opened before the cursor existed.
    pub cursor: Option<String>,
    /// The snapshot of the device's last completed session when this one was opened.
    pub cursor_from: Option<String>,
}

/// A session being opened.
#[derive(Debug, Insertable)]
#[diesel(table_name = sync_sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub device_id: &'a str,
    pub since: Option<Micros>,
    pub started: Micros,
    pub status: &'a str,
    pub clock_offset: Option<i64>,
    pub cursor: &'a str,
    pub cursor_from: Option<&'a str>,
    pub client_version: Option<&'a str>,
}

/// A session; `lock`: for update, so that a concurrent step on it waits. The lock is taken
/// by writing the row (an update that changes nothing), the one locking statement both
/// databases and diesel's backend-neutral query builder have in common.
pub fn get(conn: &mut DbConn, id: &str, lock: bool) -> Result<Option<Session>, DbError> {
    if lock {
        diesel::update(sync_sessions::table.find(id))
            .set(sync_sessions::status.eq(sync_sessions::status))
            .execute(conn)?;
    }
    Ok(sync_sessions::table
        .find(id)
        .select(Session::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConn, new: &NewSession<'_>) -> Result<(), DbError> {
    diesel::insert_into(sync_sessions::table)
        .values(new)
        .execute(conn)?;
    Ok(())
}

/// Marks every open session of the device abandoned (a new one replaces it).
pub fn abandon_open(conn: &mut DbConn, device_id: &str, now: Micros) -> Result<usize, DbError> {
    Ok(diesel::update(
        sync_sessions::table
            .filter(sync_sessions::device_id.eq(device_id))
            .filter(sync_sessions::status.eq(SessionStatus::Open.as_str())),
    )
    .set((
        sync_sessions::status.eq(SessionStatus::Abandoned.as_str()),
        sync_sessions::finished.eq(now),
        sync_sessions::failure.eq("replaced by a newer session"),
    ))
    .execute(conn)?)
}

pub fn fail(conn: &mut DbConn, id: &str, reason: &str, now: Micros) -> Result<(), DbError> {
    diesel::update(
        sync_sessions::table
            .find(id)
            .filter(sync_sessions::status.eq(SessionStatus::Open.as_str())),
    )
    .set((
        sync_sessions::status.eq(SessionStatus::Failed.as_str()),
        sync_sessions::finished.eq(now),
        sync_sessions::failure.eq(reason),
    ))
    .execute(conn)?;
    Ok(())
}

/// Upload counts, as stored with the session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub applied: i64,
    pub unchanged: i64,
    pub conflicts: i64,
}

pub fn record_upload(
    conn: &mut DbConn,
    id: &str,
    sha256: &str,
    result: &str,
    counts: Counts,
    cursor: Option<&str>,
) -> Result<(), DbError> {
    diesel::update(sync_sessions::table.find(id))
        .set((
            sync_sessions::cursor.eq(cursor),
            sync_sessions::upload_sha256.eq(sha256),
            sync_sessions::upload_result.eq(result),
            sync_sessions::applied.eq(counts.applied),
            sync_sessions::unchanged.eq(counts.unchanged),
            sync_sessions::conflicts.eq(counts.conflicts),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn record_download(conn: &mut DbConn, id: &str, rows: i64) -> Result<(), DbError> {
    diesel::update(sync_sessions::table.find(id))
        .set(sync_sessions::downloaded.eq(rows))
        .execute(conn)?;
    Ok(())
}

/// Adds the items of a resumed part to the session's download count.
pub fn add_download(conn: &mut DbConn, id: &str, rows: i64) -> Result<(), DbError> {
    let before: Option<i64> = sync_sessions::table
        .find(id)
        .select(sync_sessions::downloaded)
        .first(conn)
        .optional()?
        .flatten();
    record_download(conn, id, before.unwrap_or(0) + rows)
}

pub fn complete(conn: &mut DbConn, id: &str, now: Micros) -> Result<(), DbError> {
    diesel::update(sync_sessions::table.find(id))
        .set((
            sync_sessions::status.eq(SessionStatus::Complete.as_str()),
            sync_sessions::finished.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A session as listed in a device's sync history.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sync_sessions)]
pub struct SessionSummary {
    pub id: String,
    pub status: String,
    pub since: Option<i64>,
    pub started: i64,
    pub finished: Option<i64>,
    pub applied: Option<i64>,
    pub unchanged: Option<i64>,
    pub conflicts: Option<i64>,
    pub downloaded: Option<i64>,
    pub failure: Option<String>,
    pub clock_offset: Option<i64>,
}

/// One session's counts.
pub fn summary(conn: &mut DbConn, id: &str) -> Result<Option<SessionSummary>, DbError> {
    Ok(sync_sessions::table
        .find(id)
        .select(SessionSummary::as_select())
        .first(conn)
        .optional()?)
}

/// A device's sessions, newest first.
pub fn history(
    conn: &mut DbConn,
    device_id: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<SessionSummary>, DbError> {
    Ok(sync_sessions::table
        .filter(sync_sessions::device_id.eq(device_id))
        .order((sync_sessions::started.desc(), sync_sessions::id))
        .limit(limit)
        .offset(offset)
        .select(SessionSummary::as_select())
        .load(conn)?)
}

pub fn count_for_device(conn: &mut DbConn, device_id: &str) -> Result<i64, DbError> {
    Ok(sync_sessions::table
        .filter(sync_sessions::device_id.eq(device_id))
        .count()
        .get_result(conn)?)
}

/// The clock offset (device minus server, µs) kept with a session, if the device sent its clock.
pub fn clock_offset(conn: &mut DbConn, id: &str) -> Result<Option<i64>, DbError> {
    Ok(sync_sessions::table
        .find(id)
        .select(sync_sessions::clock_offset)
        .first::<Option<i64>>(conn)
        .optional()?
        .flatten())
}
