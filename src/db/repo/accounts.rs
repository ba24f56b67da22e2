//! Users and their devices, through diesel's typed query builder (`db::schema`).

use diesel::prelude::*;
use diesel::sql_types::BigInt;

use crate::db::schema::{devices, sync_sessions, users};
use crate::db::{DbConn, DbError, Sql};
use crate::domain::Micros;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub is_conflict: bool,
    /// When an administrator disabled the user: no sign-in, no sync.
    pub disabled_at: Option<Micros>,
    /// "administrator", "office" or "engineer" ([`crate::accounts::Role`]).
    pub role: String,
}

impl User {
    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }
}

pub fn insert_user(
    conn: &mut DbConn,
    id: &str,
    name: &str,
    password_hash: &str,
    role: &str,
    now: Micros,
) -> Result<(), DbError> {
    diesel::insert_into(users::table)
        .values((
            users::id.eq(id),
            users::name.eq(name),
            users::password_hash.eq(password_hash),
            users::is_admin.eq(role == "administrator"),
            users::role.eq(role),
            users::is_conflict.eq(false),
            users::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The user of this name, whatever its case ("Alice" is alice: names are unique so).
pub fn user_by_name(conn: &mut DbConn, name: &str) -> Result<Option<User>, DbError> {
    diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);
    Ok(users::table
        .filter(lower(users::name).eq(name.to_lowercase()))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

pub fn user_by_id(conn: &mut DbConn, id: &str) -> Result<Option<User>, DbError> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

pub fn set_password_hash(conn: &mut DbConn, user_id: &str, hash: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(user_id))
        .set(users::password_hash.eq(hash))
        .execute(conn)?;
    Ok(())
}

pub fn set_disabled(conn: &mut DbConn, user_id: &str, at: Option<Micros>) -> Result<(), DbError> {
    diesel::update(users::table.find(user_id))
        .set(users::disabled_at.eq(at))
        .execute(conn)?;
    Ok(())
}

/// Every user, by name.
pub fn list_users(conn: &mut DbConn) -> Result<Vec<User>, DbError> {
    Ok(users::table
        .order(users::name)
        .select(User::as_select())
        .load(conn)?)
}

pub fn set_conflict_flag(conn: &mut DbConn, user_id: &str, flag: bool) -> Result<(), DbError> {
    diesel::update(users::table.find(user_id))
        .set(users::is_conflict.eq(flag))
        .execute(conn)?;
    Ok(())
}

pub fn count_users(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(users::table.count().get_result(conn)?)
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs a `SELECT COUNT(*) AS n ...`.
pub fn count(conn: &mut DbConn, sql: Sql) -> Result<i64, DbError> {
    Ok(sql.first::<Count>(conn)?.map_or(0, |c| c.n))
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = devices)]
pub struct Device {
    pub id: String,
    pub user_id: String,
    pub label: String,
    pub last_session_id: Option<String>,
    pub revoked_at: Option<i64>,
}

pub fn insert_device(
    conn: &mut DbConn,
    id: &str,
    user_id: &str,
    label: &str,
    token_hash: &str,
    now: Micros,
) -> Result<(), DbError> {
    diesel::insert_into(devices::table)
        .values((
            devices::id.eq(id),
            devices::user_id.eq(user_id),
            devices::label.eq(label),
            devices::token_hash.eq(token_hash),
            devices::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// The device holding this token (by its hash), unless revoked.
pub fn device_by_token_hash(conn: &mut DbConn, hash: &str) -> Result<Option<Device>, DbError> {
    Ok(devices::table
        .filter(devices::token_hash.eq(hash))
        .filter(devices::revoked_at.is_null())
        .select(Device::as_select())
        .first(conn)
        .optional()?)
}

pub fn device_by_id(conn: &mut DbConn, id: &str) -> Result<Option<Device>, DbError> {
    Ok(devices::table
        .find(id)
        .select(Device::as_select())
        .first(conn)
        .optional()?)
}

pub fn set_last_session(
    conn: &mut DbConn,
    device_id: &str,
    session_id: &str,
) -> Result<(), DbError> {
    diesel::update(devices::table.find(device_id))
        .set(devices::last_session_id.eq(session_id))
        .execute(conn)?;
    Ok(())
}

/// Device labels by id, for lists.
pub fn device_labels(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>, DbError> {
    let mut out = std::collections::HashMap::new();
    for chunk in ids.chunks(super::rows::BATCH) {
        out.extend(
            devices::table
                .filter(devices::id.eq_any(chunk))
                .select((devices::id, devices::label))
                .load::<(String, String)>(conn)?,
        );
    }
    Ok(out)
}

/// A device as listed on the devices page.
#[derive(Debug, Clone, Queryable)]
pub struct DeviceSummary {
    pub id: String,
    pub label: String,
    pub owner: String,
    pub user_id: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub last_sync: Option<i64>,
}

/// Devices of one user (or everyone's for `None`), newest first.
pub fn list_devices(
    conn: &mut DbConn,
    user_id: Option<&str>,
) -> Result<Vec<DeviceSummary>, DbError> {
    let mut query = devices::table
        .inner_join(users::table.on(users::id.eq(devices::user_id)))
        .left_join(
            sync_sessions::table.on(devices::last_session_id.eq(sync_sessions::id.nullable())),
        )
        .select((
            devices::id,
            devices::label,
            users::name,
            devices::user_id,
            devices::created_at,
            devices::revoked_at,
            sync_sessions::started.nullable(),
        ))
        .order((
            devices::revoked_at.is_not_null(),
            devices::created_at.desc(),
            devices::id,
        ))
        .into_boxed();
    if let Some(u) = user_id {
        query = query.filter(devices::user_id.eq(u.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// Locks the device's row until the transaction ends (an update that changes nothing),
/// so that two session opens of one device take turns. Other devices do not wait.
pub fn lock_device(conn: &mut DbConn, id: &str) -> Result<(), DbError> {
    diesel::update(devices::table.find(id))
        .set(devices::label.eq(devices::label))
        .execute(conn)?;
    Ok(())
}

pub fn rename_device(conn: &mut DbConn, id: &str, label: &str) -> Result<(), DbError> {
    diesel::update(devices::table.find(id))
        .set(devices::label.eq(label))
        .execute(conn)?;
    Ok(())
}

/// Revokes a device: its token stops working at once.
pub fn revoke_device(conn: &mut DbConn, id: &str, now: Micros) -> Result<(), DbError> {
    diesel::update(
        devices::table
            .find(id)
            .filter(devices::revoked_at.is_null()),
    )
    .set(devices::revoked_at.eq(now))
    .execute(conn)?;
    Ok(())
}
