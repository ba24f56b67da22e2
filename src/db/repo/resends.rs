//! Rows a device deleted that the server kept (a stale delete is a conflict): the device
//! gets them again, with everything below them, until it completes a session whose
//! download carried them. Without this a laptop would get the row back with its next
//! change but never its unchanged children.

use diesel::prelude::*;

use crate::db::schema::resends;
use crate::db::{DbConn, DbError};
use crate::domain::{Micros, TABLES, TableId, table_by_name};

/// Marks rows to be sent to the device again (already marked ones stay marked, as new).
pub fn add(
    conn: &mut DbConn,
    device_id: &str,
    table: TableId,
    ids: &[String],
    now: Micros,
) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(()); // the usual batch: no stale delete in it
    }
    let table_name = TABLES[table].name;
    diesel::delete(
        resends::table
            .filter(resends::device_id.eq(device_id))
            .filter(resends::table_name.eq(table_name))
            .filter(resends::row_id.eq_any(ids)),
    )
    .execute(conn)?;
    for id in ids {
        diesel::insert_into(resends::table)
            .values((
                resends::device_id.eq(device_id),
                resends::table_name.eq(table_name),
                resends::row_id.eq(id),
                resends::created_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// The device's rows to send again, parents' tables first; marks them as sent in
/// `session_id`.
pub fn take_pending(
    conn: &mut DbConn,
    device_id: &str,
    session_id: &str,
) -> Result<Vec<(TableId, String)>, DbError> {
    let pending: Vec<(String, String)> = resends::table
        .filter(resends::device_id.eq(device_id))
        .order((resends::created_at, resends::row_id))
        .select((resends::table_name, resends::row_id))
        .load(conn)?;
    if !pending.is_empty() {
        diesel::update(resends::table.filter(resends::device_id.eq(device_id)))
            .set(resends::sent_in_session.eq(session_id))
            .execute(conn)?;
    }
    let mut out: Vec<(TableId, String)> = pending
        .into_iter()
        .filter_map(|(t, id)| Some((table_by_name(&t)?, id)))
        .collect();
    out.sort_by_key(|(t, _)| *t);
    Ok(out)
}

/// The rows a completed session carried are delivered.
pub fn acknowledge(conn: &mut DbConn, session_id: &str) -> Result<(), DbError> {
    diesel::delete(resends::table.filter(resends::sent_in_session.eq(session_id))).execute(conn)?;
    Ok(())
}
