//! Sync sessions.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::db::{DbConn, DbError, Sql, dialect};
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
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Session {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub device_id: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub since: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub started: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub finished: Option<i64>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub upload_sha256: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub upload_result: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub failure: Option<String>,
}

const COLUMNS: &str = "SELECT id, device_id, since, started, finished, status, upload_sha256, \
                       upload_result, failure FROM sync_sessions";

pub fn get(conn: &mut DbConn, id: &str, lock: bool) -> Result<Option<Session>, DbError> {
    let mut sql = Sql::new(COLUMNS);
    sql.push(" WHERE id = ").param(id);
    if lock {
        sql.push(dialect::for_update(conn));
    }
    sql.first(conn)
}

pub fn insert(
    conn: &mut DbConn,
    id: &str,
    device_id: &str,
    since: Option<Micros>,
    started: Micros,
    clock_offset: Option<i64>,
) -> Result<(), DbError> {
    let mut sql = Sql::new(
        "INSERT INTO sync_sessions (id, device_id, since, started, status, clock_offset) VALUES (",
    );
    sql.params([id, device_id])
        .push(", ")
        .param(since)
        .push(", ")
        .param(started)
        .push(", 'open', ")
        .param(clock_offset)
        .push(")");
    sql.execute(conn)?;
    Ok(())
}

/// Marks every open session of the device abandoned (a new one replaces it).
pub fn abandon_open(conn: &mut DbConn, device_id: &str, now: Micros) -> Result<usize, DbError> {
    let mut sql = Sql::new("UPDATE sync_sessions SET status = 'abandoned', finished = ");
    sql.param(now)
        .push(", failure = 'replaced by a newer session' WHERE device_id = ")
        .param(device_id)
        .push(" AND status = 'open'");
    sql.execute(conn)
}

pub fn fail(conn: &mut DbConn, id: &str, reason: &str, now: Micros) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE sync_sessions SET status = 'failed', finished = ");
    sql.param(now)
        .push(", failure = ")
        .param(reason)
        .push(" WHERE id = ")
        .param(id)
        .push(" AND status = 'open'");
    sql.execute(conn)?;
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
) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE sync_sessions SET upload_sha256 = ");
    sql.param(sha256)
        .push(", upload_result = ")
        .param(result)
        .push(", applied = ")
        .param(counts.applied)
        .push(", unchanged = ")
        .param(counts.unchanged)
        .push(", conflicts = ")
        .param(counts.conflicts)
        .push(" WHERE id = ")
        .param(id);
    sql.execute(conn)?;
    Ok(())
}

pub fn record_download(conn: &mut DbConn, id: &str, rows: i64) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE sync_sessions SET downloaded = ");
    sql.param(rows).push(" WHERE id = ").param(id);
    sql.execute(conn)?;
    Ok(())
}

pub fn complete(conn: &mut DbConn, id: &str, now: Micros) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE sync_sessions SET status = 'complete', finished = ");
    sql.param(now).push(" WHERE id = ").param(id);
    sql.execute(conn)?;
    Ok(())
}

/// A session as listed in a device's sync history.
#[derive(Debug, Clone, QueryableByName)]
pub struct SessionSummary {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub since: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub started: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub finished: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub applied: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub unchanged: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub conflicts: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub downloaded: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub failure: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub clock_offset: Option<i64>,
}

const SUMMARY_COLUMNS: &str = "SELECT id, status, since, started, finished, applied, unchanged, \
                               conflicts, downloaded, failure, clock_offset FROM sync_sessions";

/// One session's counts.
pub fn summary(conn: &mut DbConn, id: &str) -> Result<Option<SessionSummary>, DbError> {
    let mut sql = Sql::new(SUMMARY_COLUMNS);
    sql.push(" WHERE id = ").param(id);
    sql.first(conn)
}

/// A device's sessions, newest first.
pub fn history(
    conn: &mut DbConn,
    device_id: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<SessionSummary>, DbError> {
    let mut sql = Sql::new(SUMMARY_COLUMNS);
    sql.push(" WHERE device_id = ")
        .param(device_id)
        .push(" ORDER BY started DESC, id LIMIT ")
        .param(limit)
        .push(" OFFSET ")
        .param(offset);
    sql.load(conn)
}

pub fn count_for_device(conn: &mut DbConn, device_id: &str) -> Result<i64, DbError> {
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM sync_sessions WHERE device_id = ");
    sql.param(device_id);
    super::accounts::count(conn, sql)
}

/// The clock offset (device minus server, µs) kept with a session, if the device sent its clock.
pub fn clock_offset(conn: &mut DbConn, id: &str) -> Result<Option<i64>, DbError> {
    #[derive(QueryableByName)]
    struct Offset {
        #[diesel(sql_type = Nullable<BigInt>)]
        clock_offset: Option<i64>,
    }
    let mut sql = Sql::new("SELECT clock_offset FROM sync_sessions WHERE id = ");
    sql.param(id);
    Ok(sql.first::<Offset>(conn)?.and_then(|o| o.clock_offset))
}
