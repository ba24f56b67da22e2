//! Client ids joined onto existing rows (PROTOCOL.md §4.5).

use std::collections::HashMap;

use diesel::prelude::*;

use crate::db::schema::aliases;
use crate::db::{DbConn, DbError};
use crate::domain::{Micros, TABLES, TableId, table_by_name};

use super::rows::BATCH;

/// Whether any client id of this table has been joined onto another row.
pub fn exist(conn: &mut DbConn, table: TableId) -> Result<bool, DbError> {
    let found: Option<String> = aliases::table
        .filter(aliases::table_name.eq(TABLES[table].name))
        .select(aliases::client_id)
        .first(conn)
        .optional()?;
    Ok(found.is_some())
}

/// The canonical id of each of `ids` that is a client id of `table`.
pub fn canonical_ids(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<HashMap<String, String>, DbError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(BATCH) {
        out.extend(
            aliases::table
                .filter(aliases::table_name.eq(TABLES[table].name))
                .filter(aliases::client_id.eq_any(chunk))
                .select((aliases::client_id, aliases::canonical_id))
                .load::<(String, String)>(conn)?,
        );
    }
    Ok(out)
}

pub fn insert(
    conn: &mut DbConn,
    table: TableId,
    client_id: &str,
    canonical_id: &str,
    device_id: &str,
    now: Micros,
) -> Result<(), DbError> {
    diesel::insert_into(aliases::table)
        .values((
            aliases::table_name.eq(TABLES[table].name),
            aliases::client_id.eq(client_id),
            aliases::canonical_id.eq(canonical_id),
            aliases::device_id.eq(device_id),
            aliases::acknowledged.eq(false),
            aliases::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// A device's aliases that no completed session has delivered yet; marks them as sent
/// in `session_id`.
pub fn take_pending(
    conn: &mut DbConn,
    device_id: &str,
    session_id: &str,
) -> Result<Vec<(TableId, String, String)>, DbError> {
    let undelivered = aliases::device_id
        .eq(device_id)
        .and(aliases::acknowledged.eq(false));
    let pending: Vec<(String, String, String)> = aliases::table
        .filter(undelivered)
        .order((aliases::created_at, aliases::client_id))
        .select((
            aliases::table_name,
            aliases::client_id,
            aliases::canonical_id,
        ))
        .load(conn)?;
    if !pending.is_empty() {
        diesel::update(aliases::table.filter(undelivered))
            .set(aliases::sent_in_session.eq(session_id))
            .execute(conn)?;
    }
    Ok(pending
        .into_iter()
        .filter_map(|(t, client, canonical)| Some((table_by_name(&t)?, client, canonical)))
        .collect())
}

/// The aliases a completed session delivered are done.
pub fn acknowledge(conn: &mut DbConn, session_id: &str) -> Result<(), DbError> {
    diesel::update(aliases::table.filter(aliases::sent_in_session.eq(session_id)))
        .set(aliases::acknowledged.eq(true))
        .execute(conn)?;
    Ok(())
}
