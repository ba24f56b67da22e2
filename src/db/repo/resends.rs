//! Rows a device deleted that the server kept (a stale delete is a conflict): the device
//! gets them again, with everything below them, until it completes a session whose
//! download carried them. Without this a laptop would get the row back with its next
//! change but never its unchanged children.

use diesel::QueryableByName;
use diesel::sql_types::Text;

use crate::db::{DbConn, DbError, Sql};
use crate::domain::{Micros, TABLES, TableId, table_by_name};

/// Marks rows to be sent to the device again (already marked ones stay marked).
pub fn add(
    conn: &mut DbConn,
    device_id: &str,
    table: TableId,
    ids: &[String],
    now: Micros,
) -> Result<(), DbError> {
    for id in ids {
        let mut del = Sql::new("DELETE FROM resends WHERE device_id = ");
        del.param(device_id)
            .push(" AND table_name = ")
            .param(TABLES[table].name)
            .push(" AND row_id = ")
            .param(id);
        del.execute(conn)?;
        let mut sql =
            Sql::new("INSERT INTO resends (device_id, table_name, row_id, created_at) VALUES (");
        sql.params([device_id, TABLES[table].name, id.as_str()])
            .push(", ")
            .param(now)
            .push(")");
        sql.execute(conn)?;
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
    #[derive(QueryableByName)]
    struct Pending {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        row_id: String,
    }
    let mut sql = Sql::new("SELECT table_name, row_id FROM resends WHERE device_id = ");
    sql.param(device_id).push(" ORDER BY created_at, row_id");
    let pending = sql.load::<Pending>(conn)?;
    if !pending.is_empty() {
        let mut mark = Sql::new("UPDATE resends SET sent_in_session = ");
        mark.param(session_id)
            .push(" WHERE device_id = ")
            .param(device_id);
        mark.execute(conn)?;
    }
    let mut out: Vec<(TableId, String)> = pending
        .into_iter()
        .filter_map(|p| Some((table_by_name(&p.table_name)?, p.row_id)))
        .collect();
    out.sort_by_key(|(t, _)| *t);
    Ok(out)
}

/// The rows a completed session carried are delivered.
pub fn acknowledge(conn: &mut DbConn, session_id: &str) -> Result<(), DbError> {
    let mut sql = Sql::new("DELETE FROM resends WHERE sent_in_session = ");
    sql.param(session_id);
    sql.execute(conn)?;
    Ok(())
}
