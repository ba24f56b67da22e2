//! The laptop's own records: the log of local changes not yet synced, the server's values
//! of fields changed locally, local conflict marks, and small state. Repository functions
//! over `&mut DbConn`, like `db::repo`.

use std::collections::{HashMap, HashSet};

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::db::repo::accounts::count;
use crate::db::repo::rows::BATCH;
use crate::db::{DbConn, DbError, Sql};
use crate::domain::{Micros, TABLES, TableId};

/// One field of a local change: the new value and the local value it replaced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldLog {
    pub field: String,
    pub value: Option<String>,
    pub was: Option<String>,
}

/// What a logged local change did (stored as its word: the CHECK of `offline_changes.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Edit,
    Delete,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Create => "create",
            ChangeKind::Edit => "edit",
            ChangeKind::Delete => "delete",
        }
    }

    fn parse(word: &str) -> Option<ChangeKind> {
        [ChangeKind::Create, ChangeKind::Edit, ChangeKind::Delete]
            .into_iter()
            .find(|k| k.as_str() == word)
    }
}

/// One logged local change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub seq: i64,
    pub table: TableId,
    pub row_id: String,
    pub kind: ChangeKind,
    /// The server version the change was made on (none for a create).
    pub base: Option<Micros>,
    pub fields: Vec<FieldLog>,
}

#[derive(QueryableByName)]
struct RawChange {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    row_id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    base: Option<i64>,
    #[diesel(sql_type = Text)]
    fields: String,
}

impl RawChange {
    /// The change, or an error naming the entry: an unreadable entry stops the sync rather
    /// than being skipped (and then deleted with the rest).
    fn into_change(self) -> Result<Change, DbError> {
        let unreadable = |why: String| {
            DbError::Corrupt(format!(
                "change {} of the laptop's log ({} {}) cannot be read: {why}",
                self.seq, self.table_name, self.row_id
            ))
        };
        let table = crate::domain::table_by_name(&self.table_name)
            .ok_or_else(|| unreadable(format!("unknown table {:?}", self.table_name)))?;
        let fields = serde_json::from_str(&self.fields).map_err(|e| unreadable(e.to_string()))?;
        let kind = ChangeKind::parse(&self.kind)
            .ok_or_else(|| unreadable(format!("unknown kind {:?}", self.kind)))?;
        Ok(Change {
            seq: self.seq,
            table,
            row_id: self.row_id,
            kind,
            base: self.base,
            fields,
        })
    }
}

fn changes(raw: Vec<RawChange>) -> Result<Vec<Change>, DbError> {
    raw.into_iter().map(RawChange::into_change).collect()
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The newest change's number (0 when there is none).
pub fn max_seq(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(
        Sql::new("SELECT COALESCE(MAX(seq), 0) AS n FROM offline_changes")
            .first::<Number>(conn)?
            .map_or(0, |n| n.n),
    )
}

/// Appends a change to the log.
pub fn log_change(
    conn: &mut DbConn,
    table: TableId,
    row_id: &str,
    kind: ChangeKind,
    base: Option<Micros>,
    fields: &[FieldLog],
    now: Micros,
) -> Result<(), DbError> {
    let seq = max_seq(conn)? + 1;
    let json = serde_json::to_string(fields).unwrap_or_else(|_| "[]".into());
    let mut sql = Sql::new(
        "INSERT INTO offline_changes (seq, table_name, row_id, kind, base, fields, changed_at) VALUES (",
    );
    sql.param(seq)
        .push(", ")
        .params([TABLES[table].name, row_id, kind.as_str()])
        .push(", ")
        .param(base)
        .push(", ")
        .param(json)
        .push(", ")
        .param(now)
        .push(")");
    sql.execute(conn)?;
    // A new change of a held row is the engineer's correction: it goes up again.
    release(conn, table, row_id)?;
    Ok(())
}

/// A change the server refused, kept out of uploads until corrected or discarded.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Held {
    #[diesel(sql_type = Text)]
    pub table_name: String,
    #[diesel(sql_type = Text)]
    pub row_id: String,
    #[diesel(sql_type = Text)]
    pub code: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub field: Option<String>,
    #[diesel(sql_type = Text)]
    pub message: String,
    #[diesel(sql_type = BigInt)]
    pub held_at: i64,
}

/// Holds a row's changes back from uploads.
pub fn hold(conn: &mut DbConn, h: &Held) -> Result<(), DbError> {
    let table = crate::domain::table_by_name(&h.table_name)
        .ok_or_else(|| DbError::Corrupt(format!("unknown table {:?}", h.table_name)))?;
    release(conn, table, &h.row_id)?;
    let mut sql = Sql::new(
        "INSERT INTO offline_held (table_name, row_id, code, field, message, held_at) VALUES (",
    );
    sql.params([h.table_name.as_str(), h.row_id.as_str(), h.code.as_str()])
        .push(", ")
        .param(h.field.clone())
        .push(", ")
        .param(h.message.as_str())
        .push(", ")
        .param(h.held_at)
        .push(")");
    sql.execute(conn)?;
    Ok(())
}

/// Lets a row's changes go up again.
pub fn release(conn: &mut DbConn, table: TableId, row_id: &str) -> Result<(), DbError> {
    delete_for_rows(conn, "offline_held", table, &[row_id.to_owned()])
}

/// Every held change, newest first.
pub fn held(conn: &mut DbConn) -> Result<Vec<Held>, DbError> {
    Sql::new(
        "SELECT table_name, row_id, code, field, message, held_at FROM offline_held \
         ORDER BY held_at DESC, table_name, row_id",
    )
    .load(conn)
}

/// Whether the row was created on this laptop and not yet synced.
pub fn is_local_only(conn: &mut DbConn, table: TableId, row_id: &str) -> Result<bool, DbError> {
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM offline_changes WHERE table_name = ");
    sql.param(TABLES[table].name)
        .push(" AND row_id = ")
        .param(row_id)
        .push(" AND kind = 'create'");
    Ok(count(conn, sql)? > 0)
}

/// Forgets every logged change of these rows.
pub fn drop_changes(conn: &mut DbConn, table: TableId, ids: &[String]) -> Result<(), DbError> {
    delete_for_rows(conn, "offline_changes", table, ids)
}

/// Deletes what `log` (a table keyed by `table_name` and `row_id`) holds for these rows.
fn delete_for_rows(
    conn: &mut DbConn,
    log: &str,
    table: TableId,
    ids: &[String],
) -> Result<(), DbError> {
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::new(format!("DELETE FROM {log} WHERE table_name = "));
        sql.param(TABLES[table].name)
            .push(" AND row_id IN (")
            .params(chunk)
            .push(")");
        sql.execute(conn)?;
    }
    Ok(())
}

/// How many rows have changes waiting to be synced.
pub fn pending_rows(conn: &mut DbConn) -> Result<i64, DbError> {
    count(
        conn,
        Sql::new(
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT table_name, row_id FROM offline_changes) AS p",
        ),
    )
}

/// A page of one table's changes numbered up to `upto`, in (row, seq) order after `after`.
pub fn changes_page(
    conn: &mut DbConn,
    table: TableId,
    upto: i64,
    after: Option<&(String, i64)>,
    limit: i64,
) -> Result<Vec<Change>, DbError> {
    let mut sql = Sql::new(
        "SELECT seq, table_name, row_id, kind, base, fields FROM offline_changes WHERE table_name = ",
    );
    sql.param(TABLES[table].name)
        .push(" AND seq <= ")
        .param(upto);
    if let Some((row, seq)) = after {
        sql.push(" AND (row_id, seq) > (")
            .param(row)
            .push(", ")
            .param(*seq)
            .push(")");
    }
    sql.push(" ORDER BY row_id, seq LIMIT ").param(limit);
    changes(sql.load::<RawChange>(conn)?)
}

/// Every change of these rows, oldest first, by row.
pub fn changes_of(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<HashMap<String, Vec<Change>>, DbError> {
    let mut out: HashMap<String, Vec<Change>> = HashMap::new();
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::new(
            "SELECT seq, table_name, row_id, kind, base, fields FROM offline_changes WHERE table_name = ",
        );
        sql.param(TABLES[table].name)
            .push(" AND row_id IN (")
            .params(chunk)
            .push(") ORDER BY seq");
        for c in changes(sql.load::<RawChange>(conn)?)? {
            out.entry(c.row_id.clone()).or_default().push(c);
        }
    }
    Ok(out)
}

/// Forgets the changes a completed sync uploaded (not those held back).
pub fn drop_upto(conn: &mut DbConn, upto: i64) -> Result<(), DbError> {
    let mut sql = Sql::new("DELETE FROM offline_changes WHERE seq <= ");
    sql.param(upto).push(
        " AND NOT EXISTS (SELECT 1 FROM offline_held h \
         WHERE h.table_name = offline_changes.table_name AND h.row_id = offline_changes.row_id)",
    );
    sql.execute(conn)?;
    // A shadow is only needed while its field has a change waiting.
    Sql::new(
        "DELETE FROM offline_shadow WHERE NOT EXISTS (SELECT 1 FROM offline_changes c \
         WHERE c.table_name = offline_shadow.table_name AND c.row_id = offline_shadow.row_id)",
    )
    .execute(conn)?;
    Ok(())
}

/// Renames a row everywhere in the log (the server joined it onto another id), including
/// where its children's changes name it as their parent.
pub fn rename_row(conn: &mut DbConn, table: TableId, from: &str, to: &str) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE offline_changes SET row_id = ");
    sql.param(to)
        .push(" WHERE table_name = ")
        .param(TABLES[table].name)
        .push(" AND row_id = ")
        .param(from);
    sql.execute(conn)?;
    for (child, fk) in TABLES[table].children() {
        let field = TABLES[child].fields[fk].name;
        let mut sql = Sql::new(
            "SELECT seq, table_name, row_id, kind, base, fields FROM offline_changes WHERE table_name = ",
        );
        sql.param(TABLES[child].name);
        for c in changes(sql.load::<RawChange>(conn)?)? {
            if !c
                .fields
                .iter()
                .any(|f| f.field == field && f.value.as_deref() == Some(from))
            {
                continue;
            }
            let fields: Vec<FieldLog> = c
                .fields
                .into_iter()
                .map(|mut f| {
                    if f.field == field && f.value.as_deref() == Some(from) {
                        f.value = Some(to.to_owned());
                    }
                    f
                })
                .collect();
            let mut up = Sql::new("UPDATE offline_changes SET fields = ");
            up.param(serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into()))
                .push(" WHERE seq = ")
                .param(c.seq);
            up.execute(conn)?;
        }
    }
    Ok(())
}

/// Records the server's value of a locally changed field.
pub fn put_shadow(
    conn: &mut DbConn,
    table: TableId,
    row_id: &str,
    field: &str,
    value: Option<&str>,
) -> Result<(), DbError> {
    let mut del = Sql::new("DELETE FROM offline_shadow WHERE table_name = ");
    del.param(TABLES[table].name)
        .push(" AND row_id = ")
        .param(row_id)
        .push(" AND field = ")
        .param(field);
    del.execute(conn)?;
    let mut sql =
        Sql::new("INSERT INTO offline_shadow (table_name, row_id, field, value) VALUES (");
    sql.params([TABLES[table].name, row_id, field])
        .push(", ")
        .param(value)
        .push(")");
    sql.execute(conn)?;
    Ok(())
}

/// The server's last known value of a locally changed field, if one was downloaded.
pub fn shadow(
    conn: &mut DbConn,
    table: TableId,
    row_id: &str,
    field: &str,
) -> Result<Option<Option<String>>, DbError> {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = Nullable<Text>)]
        value: Option<String>,
    }
    let mut sql = Sql::new("SELECT value FROM offline_shadow WHERE table_name = ");
    sql.param(TABLES[table].name)
        .push(" AND row_id = ")
        .param(row_id)
        .push(" AND field = ")
        .param(field);
    Ok(sql.first::<Value>(conn)?.map(|v| v.value))
}

/// Marks a local change the server did not take.
pub fn mark_conflict(
    conn: &mut DbConn,
    table: TableId,
    row_id: &str,
    field: &str,
    local: Option<&str>,
    server: Option<&str>,
    now: Micros,
) -> Result<(), DbError> {
    let mut del = Sql::new("DELETE FROM offline_conflicts WHERE table_name = ");
    del.param(TABLES[table].name)
        .push(" AND row_id = ")
        .param(row_id)
        .push(" AND field = ")
        .param(field);
    del.execute(conn)?;
    let mut sql = Sql::new(
        "INSERT INTO offline_conflicts (table_name, row_id, field, local_value, server_value, marked_at) VALUES (",
    );
    sql.params([TABLES[table].name, row_id, field])
        .push(", ")
        .params([local, server])
        .push(", ")
        .param(now)
        .push(")");
    sql.execute(conn)?;
    Ok(())
}

/// Clears a row's conflict marks (the server's resolution arrived).
pub fn clear_conflicts(conn: &mut DbConn, table: TableId, row_id: &str) -> Result<(), DbError> {
    delete_for_rows(conn, "offline_conflicts", table, &[row_id.to_owned()])
}

/// Clears the conflict marks of many rows of one table.
pub fn clear_conflicts_of(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<(), DbError> {
    delete_for_rows(conn, "offline_conflicts", table, ids)
}

/// A local change the server did not take.
#[derive(Debug, Clone, QueryableByName)]
pub struct LocalConflict {
    #[diesel(sql_type = Text)]
    pub table_name: String,
    #[diesel(sql_type = Text)]
    pub row_id: String,
    #[diesel(sql_type = Text)]
    pub field: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub local_value: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub server_value: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub marked_at: i64,
}

pub fn conflicts(conn: &mut DbConn) -> Result<Vec<LocalConflict>, DbError> {
    Sql::new(
        "SELECT table_name, row_id, field, local_value, server_value, marked_at FROM offline_conflicts \
         ORDER BY marked_at DESC, table_name, row_id, field LIMIT 1000",
    )
    .load(conn)
}

pub fn conflict_count(conn: &mut DbConn) -> Result<i64, DbError> {
    count(
        conn,
        Sql::new(
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT table_name, row_id FROM offline_conflicts) AS c",
        ),
    )
}

/// Fields of these rows that have changes waiting, by row: `after` limits it to changes
/// numbered above it (those made after an upload was taken).
pub fn pending_fields(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
    after: i64,
) -> Result<HashMap<String, HashSet<String>>, DbError> {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for (row, changes) in changes_of(conn, table, ids)? {
        for c in changes.into_iter().filter(|c| c.seq > after) {
            out.entry(row.clone())
                .or_default()
                .extend(c.fields.into_iter().map(|f| f.field));
        }
    }
    Ok(out)
}

pub fn get_state(conn: &mut DbConn, name: &str) -> Result<Option<String>, DbError> {
    #[derive(QueryableByName)]
    struct Value {
        #[diesel(sql_type = Nullable<Text>)]
        value: Option<String>,
    }
    let mut sql = Sql::new("SELECT value FROM offline_state WHERE name = ");
    sql.param(name);
    Ok(sql.first::<Value>(conn)?.and_then(|v| v.value))
}

pub fn set_state(conn: &mut DbConn, name: &str, value: &str) -> Result<(), DbError> {
    let mut del = Sql::new("DELETE FROM offline_state WHERE name = ");
    del.param(name);
    del.execute(conn)?;
    let mut sql = Sql::new("INSERT INTO offline_state (name, value) VALUES (");
    sql.params([name, value]).push(")");
    sql.execute(conn)?;
    Ok(())
}
