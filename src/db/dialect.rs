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

/// Serialises, until the transaction ends, every transaction that takes the same `key`
/// (a sign-in's account and address): an advisory lock on PostgreSQL, keyed by a hash of
/// the text; nothing on SQLite, where [`begin_write`] already took the one write lock.
pub fn lock_key(conn: &mut DbConn, key: &str) -> Result<(), DbError> {
    if let DbConn::Pg(_) = conn {
        Sql::new("SELECT 1 FROM (SELECT pg_advisory_xact_lock(hashtextextended(")
            .param(key)
            .push(", 0))) AS locked")
            .execute(conn)?;
    }
    Ok(())
}

/// The suffix that locks the selected rows until commit, where the backend has one
/// (SQLite's single writer makes it unnecessary there).
pub fn for_update(conn: &DbConn) -> &'static str {
    match conn {
        DbConn::Sqlite(_) => "",
        DbConn::Pg(_) => " FOR UPDATE",
    }
}

/// The upload's page cache, in MiB ([`crate::config::Tuning::sqlite_upload_cache_mib`]):
/// only the connection applying the upload holds it, and SQLite applies one at a time.
fn upload_cache_mib() -> i64 {
    crate::config::tuning().sqlite_upload_cache_mib
}

/// Gives the connection the large page cache for a bulk write (`true`), or SQLite's
/// default back (`false`, which frees it). Nothing to do on PostgreSQL, whose buffers are
/// the server's.
pub fn bulk_cache(conn: &mut DbConn, bulk: bool) -> Result<(), DbError> {
    if let DbConn::Sqlite(_) = conn {
        let kib = if bulk {
            upload_cache_mib() * 1024
        } else {
            2000
        };
        diesel::connection::SimpleConnection::batch_execute(
            conn,
            &format!("PRAGMA cache_size = -{kib}"),
        )?;
    }
    Ok(())
}

/// Runs a keyset page's query so that PostgreSQL walks the cursor index in its order. Right
/// after a large upload the table's statistics still predate it: the planner then expects a
/// few rows in the window, reads them all through a bitmap and sorts them for every page
/// (20 ms a page, the rest of the window each time: a download after a 100k-row upload took
/// 7× its first download). A page's `LIMIT` in index order is never worse, so here bitmaps
/// and sorts are off for that one query (`SET LOCAL`, in a transaction of its own, or the
/// caller's). Nothing to do on SQLite.
pub fn in_index_order<T>(
    conn: &mut DbConn,
    query: impl FnOnce(&mut DbConn) -> Result<T, DbError>,
) -> Result<T, DbError> {
    match conn {
        DbConn::Sqlite(_) => query(conn),
        DbConn::Pg(_) => diesel::Connection::transaction(conn, |c| {
            diesel::connection::SimpleConnection::batch_execute(
                c,
                "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off",
            )?;
            query(c)
        }),
    }
}
