//! The statements that differ between SQLite and PostgreSQL: how a write transaction
//! begins, where the clock comes from, and row locking. Which changes a download sends is
//! [`super::cursor`]'s: no write waits for a session to open, nor an open for a write.

use diesel::QueryableByName;
use diesel::sql_types::BigInt;

use super::{DbConn, DbError, Sql};
use crate::domain::{Micros, time};

/// Begins a write transaction's work; call it first inside the transaction. On SQLite it
/// takes the write lock at once (so that `busy_timeout` queues writers instead of failing
/// them midway) and advances the change counter ([`super::cursor`]). On PostgreSQL writers
/// only ever wait for the rows they write.
pub fn begin_write(conn: &mut DbConn) -> Result<(), DbError> {
    if let DbConn::Sqlite(_) = conn {
        diesel::connection::SimpleConnection::batch_execute(
            conn,
            "UPDATE write_lock SET n = n + 1 WHERE id = 1",
        )?;
    }
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

/// Serialises the creates of these natural keys of `table` with every other transaction's
/// until commit: two devices creating the same key at once then judge it one after the other
/// (the second finds the first's row) instead of one failing on the unique index. Keys are
/// locked in sorted order, so that two batches cannot wait for each other. SQLite has one
/// writer, so nothing to do there.
pub fn lock_keys(conn: &mut DbConn, table: &str, keys: &[String]) -> Result<(), DbError> {
    if let DbConn::Sqlite(_) = conn {
        return Ok(());
    }
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort_unstable();
    sorted.dedup();
    // One row of calls, evaluated left to right; PostgreSQL allows 1664 columns.
    for chunk in sorted.chunks(500) {
        let mut sql = Sql::new("SELECT ");
        for (i, key) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("pg_advisory_xact_lock(hashtextextended(")
                .param(format!("{table}:{key}"))
                .push(", 74110004))");
        }
        sql.execute(conn)?;
    }
    Ok(())
}
