//! Failed sign-ins, counted per account and per address for rate limiting.

use diesel::QueryableByName;
use diesel::sql_types::BigInt;

use crate::db::{DbConn, DbError, Sql};
use crate::domain::Micros;

pub const ACCOUNT: &str = "account";
pub const ADDRESS: &str = "address";

/// The failures of `subject` at or after `since`: how many, and the oldest one's time.
pub fn failures_since(
    conn: &mut DbConn,
    scope: &str,
    subject: &str,
    since: Micros,
) -> Result<(u32, Option<Micros>), DbError> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
        oldest: Option<i64>,
    }
    let mut sql =
        Sql::new("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM sign_in_failures WHERE scope = ");
    sql.param(scope)
        .push(" AND subject = ")
        .param(subject)
        .push(" AND at >= ")
        .param(since);
    let found = sql.first::<Found>(conn)?;
    Ok(found.map_or((0, None), |f| {
        (u32::try_from(f.n).unwrap_or(u32::MAX), f.oldest)
    }))
}

pub fn record_failure(
    conn: &mut DbConn,
    scope: &str,
    subject: &str,
    at: Micros,
) -> Result<(), DbError> {
    let mut sql = Sql::new("INSERT INTO sign_in_failures (scope, subject, at) VALUES (");
    sql.param(scope)
        .push(", ")
        .param(subject)
        .push(", ")
        .param(at)
        .push(")");
    sql.execute(conn)?;
    Ok(())
}

/// Forgets the failures of `subject` (after a successful sign-in) and every failure older
/// than `before` (they no longer count, so the table stays small).
pub fn forget(
    conn: &mut DbConn,
    scope: &str,
    subject: &str,
    before: Micros,
) -> Result<(), DbError> {
    let mut sql = Sql::new("DELETE FROM sign_in_failures WHERE (scope = ");
    sql.param(scope)
        .push(" AND subject = ")
        .param(subject)
        .push(") OR at < ")
        .param(before);
    sql.execute(conn)?;
    Ok(())
}
