//! Failed sign-ins, counted per account and per address for rate limiting.

use diesel::dsl::{count_star, min};
use diesel::prelude::*;

use crate::db::schema::sign_in_failures as failures;
use crate::db::{DbConn, DbError};
use crate::domain::Micros;

/// An account name from one address: the lockout a stranger can cause.
pub const PAIR: &str = "account+address";
/// An account name from anywhere: the higher ceiling.
pub const ACCOUNT: &str = "account";
pub const ADDRESS: &str = "address";

/// The failures of `subject` at or after `since`: how many, and the oldest one's time.
pub fn failures_since(
    conn: &mut DbConn,
    scope: &str,
    subject: &str,
    since: Micros,
) -> Result<(u32, Option<Micros>), DbError> {
    let (n, oldest): (i64, Option<i64>) = failures::table
        .filter(failures::scope.eq(scope))
        .filter(failures::subject.eq(subject))
        .filter(failures::at.ge(since))
        .select((count_star(), min(failures::at)))
        .first(conn)?;
    Ok((u32::try_from(n).unwrap_or(u32::MAX), oldest))
}

pub fn record_failure(
    conn: &mut DbConn,
    scope: &str,
    subject: &str,
    at: Micros,
) -> Result<(), DbError> {
    diesel::insert_into(failures::table)
        .values((
            failures::scope.eq(scope),
            failures::subject.eq(subject),
            failures::at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Forgets every failure of `subject` (after a successful sign-in).
pub fn forget(conn: &mut DbConn, scope: &str, subject: &str) -> Result<(), DbError> {
    diesel::delete(
        failures::table
            .filter(failures::scope.eq(scope))
            .filter(failures::subject.eq(subject)),
    )
    .execute(conn)?;
    Ok(())
}

/// Forgets every failure older than `before`: they no longer count.
pub fn forget_before(conn: &mut DbConn, before: Micros) -> Result<(), DbError> {
    diesel::delete(failures::table.filter(failures::at.lt(before))).execute(conn)?;
    Ok(())
}

/// Takes back one attempt recorded at `at` (it turned out to be the right password).
pub fn withdraw(conn: &mut DbConn, scope: &str, subject: &str, at: Micros) -> Result<(), DbError> {
    diesel::delete(
        failures::table
            .filter(failures::scope.eq(scope))
            .filter(failures::subject.eq(subject))
            .filter(failures::at.eq(at)),
    )
    .execute(conn)?;
    Ok(())
}
