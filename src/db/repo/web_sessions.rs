//! Browser sessions kept on the server: a row per signed-in browser, found by the digest of
//! the secret its cookie carries.

use diesel::prelude::*;

use crate::db::schema::web_sessions as sessions;
use crate::db::{DbConn, DbError};
use crate::domain::Micros;

/// A signed-in browser's session.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct WebSession {
    pub id: String,
    pub user_id: String,
    pub created_at: Micros,
    pub seen_at: Micros,
}

pub fn insert(conn: &mut DbConn, id: &str, user_id: &str, now: Micros) -> Result<(), DbError> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(id),
            sessions::user_id.eq(user_id),
            sessions::created_at.eq(now),
            sessions::seen_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<WebSession>, DbError> {
    Ok(sessions::table
        .find(id)
        .select(WebSession::as_select())
        .first(conn)
        .optional()?)
}

pub fn touch(conn: &mut DbConn, id: &str, now: Micros) -> Result<(), DbError> {
    diesel::update(sessions::table.find(id))
        .set(sessions::seen_at.eq(now))
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    diesel::delete(sessions::table.find(id)).execute(conn)?;
    Ok(())
}

/// Ends every session of a user; how many there were.
pub fn delete_for_user(conn: &mut DbConn, user_id: &str) -> Result<usize, DbError> {
    Ok(diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?)
}

/// How many sessions a user has open.
pub fn count_for_user(conn: &mut DbConn, user_id: &str) -> Result<i64, DbError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user_id))
        .count()
        .get_result(conn)?)
}

/// Forgets sessions that can no longer be used: idle since `idle_before` or made before
/// `made_before`.
pub fn delete_expired(
    conn: &mut DbConn,
    idle_before: Micros,
    made_before: Micros,
) -> Result<(), DbError> {
    diesel::delete(
        sessions::table.filter(
            sessions::seen_at
                .lt(idle_before)
                .or(sessions::created_at.lt(made_before)),
        ),
    )
    .execute(conn)?;
    Ok(())
}
