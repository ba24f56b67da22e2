//! Users and their devices.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

use crate::db::{DbConn, DbError, Sql};
use crate::domain::Micros;

#[derive(Debug, Clone, QueryableByName)]
pub struct User {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub password_hash: String,
    #[diesel(sql_type = Bool)]
    pub is_admin: bool,
    #[diesel(sql_type = Bool)]
    pub is_conflict: bool,
}

const USER_COLUMNS: &str = "SELECT id, name, password_hash, is_admin, is_conflict FROM users";

pub fn insert_user(
    conn: &mut DbConn,
    id: &str,
    name: &str,
    password_hash: &str,
    is_admin: bool,
    now: Micros,
) -> Result<(), DbError> {
    let mut sql = Sql::new(
        "INSERT INTO users (id, name, password_hash, is_admin, is_conflict, created_at) VALUES (",
    );
    sql.params([id, name, password_hash])
        .push(", ")
        .param(is_admin)
        .push(", ")
        .param(false)
        .push(", ")
        .param(now)
        .push(")");
    sql.execute(conn)?;
    Ok(())
}

pub fn user_by_name(conn: &mut DbConn, name: &str) -> Result<Option<User>, DbError> {
    let mut sql = Sql::new(USER_COLUMNS);
    sql.push(" WHERE name = ").param(name);
    sql.first(conn)
}

pub fn user_by_id(conn: &mut DbConn, id: &str) -> Result<Option<User>, DbError> {
    let mut sql = Sql::new(USER_COLUMNS);
    sql.push(" WHERE id = ").param(id);
    sql.first(conn)
}

pub fn set_conflict_flag(conn: &mut DbConn, user_id: &str, flag: bool) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE users SET is_conflict = ");
    sql.param(flag).push(" WHERE id = ").param(user_id);
    sql.execute(conn)?;
    Ok(())
}

pub fn count_users(conn: &mut DbConn) -> Result<i64, DbError> {
    count(conn, Sql::new("SELECT COUNT(*) AS n FROM users"))
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs a `SELECT COUNT(*) AS n ...`.
pub fn count(conn: &mut DbConn, sql: Sql) -> Result<i64, DbError> {
    Ok(sql.first::<Count>(conn)?.map_or(0, |c| c.n))
}

#[derive(Debug, Clone, QueryableByName)]
pub struct Device {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = Text)]
    pub label: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_session_id: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub revoked_at: Option<i64>,
}

const DEVICE_COLUMNS: &str = "SELECT id, user_id, label, last_session_id, revoked_at FROM devices";

pub fn insert_device(
    conn: &mut DbConn,
    id: &str,
    user_id: &str,
    label: &str,
    token_hash: &str,
    now: Micros,
) -> Result<(), DbError> {
    let mut sql =
        Sql::new("INSERT INTO devices (id, user_id, label, token_hash, created_at) VALUES (");
    sql.params([id, user_id, label, token_hash])
        .push(", ")
        .param(now)
        .push(")");
    sql.execute(conn)?;
    Ok(())
}

/// The device holding this token (by its hash), unless revoked.
pub fn device_by_token_hash(conn: &mut DbConn, hash: &str) -> Result<Option<Device>, DbError> {
    let mut sql = Sql::new(DEVICE_COLUMNS);
    sql.push(" WHERE token_hash = ")
        .param(hash)
        .push(" AND revoked_at IS NULL");
    sql.first(conn)
}

pub fn device_by_id(conn: &mut DbConn, id: &str) -> Result<Option<Device>, DbError> {
    let mut sql = Sql::new(DEVICE_COLUMNS);
    sql.push(" WHERE id = ").param(id);
    sql.first(conn)
}

pub fn set_last_session(
    conn: &mut DbConn,
    device_id: &str,
    session_id: &str,
) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE devices SET last_session_id = ");
    sql.param(session_id).push(" WHERE id = ").param(device_id);
    sql.execute(conn)?;
    Ok(())
}

/// Device labels by id, for lists.
pub fn device_labels(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, DbError> {
    #[derive(QueryableByName)]
    struct Label {
        #[diesel(sql_type = Text)]
        id: String,
        #[diesel(sql_type = Text)]
        label: String,
    }
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(super::rows::BATCH) {
        let mut sql = Sql::new("SELECT id, label FROM devices WHERE id IN (");
        sql.params(chunk).push(")");
        out.extend(
            sql.load::<Label>(conn)?
                .into_iter()
                .map(|l| (l.id, l.label)),
        );
    }
    Ok(out)
}

/// A device as listed on the devices page.
#[derive(Debug, Clone, QueryableByName)]
pub struct DeviceSummary {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub label: String,
    #[diesel(sql_type = Text)]
    pub owner: String,
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub revoked_at: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_sync: Option<i64>,
}

/// Devices of one user (or everyone's for `None`), newest first.
pub fn list_devices(
    conn: &mut DbConn,
    user_id: Option<&str>,
) -> Result<Vec<DeviceSummary>, DbError> {
    let mut sql = Sql::new(
        "SELECT d.id, d.label, u.name AS owner, d.user_id, d.created_at, d.revoked_at, \
         s.started AS last_sync FROM devices d JOIN users u ON u.id = d.user_id \
         LEFT JOIN sync_sessions s ON s.id = d.last_session_id",
    );
    if let Some(u) = user_id {
        sql.push(" WHERE d.user_id = ").param(u);
    }
    sql.push(" ORDER BY d.revoked_at IS NOT NULL, d.created_at DESC, d.id");
    sql.load(conn)
}

pub fn rename_device(conn: &mut DbConn, id: &str, label: &str) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE devices SET label = ");
    sql.param(label).push(" WHERE id = ").param(id);
    sql.execute(conn)?;
    Ok(())
}

/// Revokes a device: its token stops working at once.
pub fn revoke_device(conn: &mut DbConn, id: &str, now: Micros) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE devices SET revoked_at = ");
    sql.param(now)
        .push(" WHERE id = ")
        .param(id)
        .push(" AND revoked_at IS NULL");
    sql.execute(conn)?;
    Ok(())
}
