//! The statements that differ between SQLite and PostgreSQL: how a write transaction
//! takes its locks, where the clock comes from, and row locking.
//!
//! ## Why no change is missed
//! A download sends rows with `last_updated >= since`, where `since` is the `started` of
//! the device's last completed session. That is only safe if no transaction can commit a
//! row stamped *before* a session's `started` after that session has read the data. So:
//! - every write transaction takes the *write barrier* in shared mode before it reads the
//!   clock for its stamps, and holds it until commit;
//! - opening a session takes the barrier exclusively and reads the clock for `started`
//!   inside it: it waits until every writer that could stamp an earlier time has committed
//!   (so the session's download sees those rows), and every later writer stamps a later time.
//!
//! On PostgreSQL the barrier is a transaction-level advisory lock and the clock is the
//! database server's, shared by every instance. On SQLite there is one writer at a time
//! anyway: every write transaction starts by writing the `write_lock` row, which takes
//! SQLite's write lock at once (so `busy_timeout` queues writers instead of failing them).

use diesel::QueryableByName;
use diesel::sql_types::BigInt;

use super::{DbConn, DbError, Sql};
use crate::domain::{Micros, time};

/// What a write transaction must exclude. (Advisory lock keys: 74110002 is the write
/// barrier, 74110003 the upload lock.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteLock {
    /// Ordinary writes (edits, resolutions): run beside each other.
    Shared,
    /// Applying an upload or an import: one at a time, so that batches of row locks
    /// taken by two uploads can never deadlock.
    Upload,
    /// Opening a sync session: waits for every writer in flight.
    Barrier,
}

/// Takes the locks for a write transaction; call it first inside the transaction.
pub fn begin_write(conn: &mut DbConn, lock: WriteLock) -> Result<(), DbError> {
    let statement = match (&conn, lock) {
        (DbConn::Sqlite(_), _) => "UPDATE write_lock SET n = n + 1 WHERE id = 1",
        (DbConn::Pg(_), WriteLock::Shared) => "SELECT pg_advisory_xact_lock_shared(74110002)",
        (DbConn::Pg(_), WriteLock::Upload) => {
            "SELECT pg_advisory_xact_lock(74110003), pg_advisory_xact_lock_shared(74110002)"
        }
        (DbConn::Pg(_), WriteLock::Barrier) => "SELECT pg_advisory_xact_lock(74110002)",
    };
    diesel::connection::SimpleConnection::batch_execute(conn, statement)?;
    Ok(())
}

#[derive(QueryableByName)]
struct Clock {
    #[diesel(sql_type = BigInt)]
    now: i64,
}

/// The current instant for stamps, strictly later than any this process issued before;
/// on PostgreSQL from the database server's clock, which every instance shares.
pub fn clock(conn: &mut DbConn) -> Result<Micros, DbError> {
    let candidate = match conn {
        DbConn::Sqlite(_) => chrono::Utc::now().timestamp_micros(),
        DbConn::Pg(_) => Sql::new(
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT) AS now",
        )
        .first::<Clock>(conn)?
        .map(|c| c.now)
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros()),
    };
    Ok(time::after(candidate))
}

/// The suffix that locks the selected rows until commit, where the backend has one
/// (SQLite's single writer makes it unnecessary there).
pub fn for_update(conn: &DbConn) -> &'static str {
    match conn {
        DbConn::Sqlite(_) => "",
        DbConn::Pg(_) => " FOR UPDATE",
    }
}
