//! Client ids joined onto existing rows (PROTOCOL.md §4.5).

use std::collections::HashMap;

use diesel::QueryableByName;
use diesel::sql_types::Text;

use crate::db::{DbConn, DbError, Sql};
use crate::domain::{Micros, TABLES, TableId};

use super::rows::BATCH;

/// The canonical id of each of `ids` that is a client id of `table`.
/// Whether any client id of this table has been joined onto another row.
pub fn exist(conn: &mut DbConn, table: TableId) -> Result<bool, DbError> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM (SELECT 1 FROM aliases WHERE table_name = ");
    sql.param(TABLES[table].name).push(" LIMIT 1) AS one");
    Ok(sql.load::<Found>(conn)?.first().is_some_and(|f| f.n > 0))
}

pub fn canonical_ids(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<HashMap<String, String>, DbError> {
    #[derive(QueryableByName)]
    struct Pair {
        #[diesel(sql_type = Text)]
        client_id: String,
        #[diesel(sql_type = Text)]
        canonical_id: String,
    }
    let mut out = HashMap::new();
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::new("SELECT client_id, canonical_id FROM aliases WHERE table_name = ");
        sql.param(TABLES[table].name)
            .push(" AND client_id IN (")
            .params(chunk)
            .push(")");
        out.extend(
            sql.load::<Pair>(conn)?
                .into_iter()
                .map(|p| (p.client_id, p.canonical_id)),
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
    let mut sql = Sql::new(
        "INSERT INTO aliases (table_name, client_id, canonical_id, device_id, acknowledged, created_at) VALUES (",
    );
    sql.params([TABLES[table].name, client_id, canonical_id, device_id])
        .push(", ")
        .param(false)
        .push(", ")
        .param(now)
        .push(")");
    sql.execute(conn)?;
    Ok(())
}

/// A device's aliases that no completed session has delivered yet; marks them as sent
/// in `session_id`.
pub fn take_pending(
    conn: &mut DbConn,
    device_id: &str,
    session_id: &str,
) -> Result<Vec<(TableId, String, String)>, DbError> {
    #[derive(QueryableByName)]
    struct Pending {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        client_id: String,
        #[diesel(sql_type = Text)]
        canonical_id: String,
    }
    let mut sql =
        Sql::new("SELECT table_name, client_id, canonical_id FROM aliases WHERE device_id = ");
    sql.param(device_id)
        .push(" AND acknowledged = ")
        .param(false)
        .push(" ORDER BY created_at, client_id");
    let pending = sql.load::<Pending>(conn)?;
    if !pending.is_empty() {
        let mut mark = Sql::new("UPDATE aliases SET sent_in_session = ");
        mark.param(session_id)
            .push(" WHERE device_id = ")
            .param(device_id)
            .push(" AND acknowledged = ")
            .param(false);
        mark.execute(conn)?;
    }
    Ok(pending
        .into_iter()
        .filter_map(|p| {
            Some((
                crate::domain::table_by_name(&p.table_name)?,
                p.client_id,
                p.canonical_id,
            ))
        })
        .collect())
}

/// The aliases a completed session delivered are done.
pub fn acknowledge(conn: &mut DbConn, session_id: &str) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE aliases SET acknowledged = ");
    sql.param(true)
        .push(" WHERE sent_in_session = ")
        .param(session_id);
    sql.execute(conn)?;
    Ok(())
}
