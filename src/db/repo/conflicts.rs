//! Recorded conflicts and their fields.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

use crate::db::{DbConn, DbError, Sql};
use crate::domain::Micros;

use super::accounts::count;

/// What kind of disagreement a conflict records (stored as its word, the CHECK list of
/// `conflicts.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// Fields edited on both sides.
    Fields,
    /// The device deleted a row the server changed since.
    Delete,
    /// The device edited a row the server deleted since.
    EditDeleted,
    /// The device created a row whose natural key the server already had.
    Duplicate,
    /// The device created a row under a parent the server deleted (or under such a row):
    /// the row waits in the conflict, not on the server.
    ParentDeleted,
}

impl ConflictKind {
    pub const ALL: [ConflictKind; 5] = [
        ConflictKind::Fields,
        ConflictKind::Delete,
        ConflictKind::EditDeleted,
        ConflictKind::Duplicate,
        ConflictKind::ParentDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::Fields => "fields",
            ConflictKind::Delete => "delete",
            ConflictKind::EditDeleted => "edit_deleted",
            ConflictKind::Duplicate => "duplicate",
            ConflictKind::ParentDeleted => "parent_deleted",
        }
    }

    pub fn parse(word: &str) -> Option<ConflictKind> {
        ConflictKind::ALL.into_iter().find(|k| k.as_str() == word)
    }
}

/// Whether a conflict still waits for someone (stored as its word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictStatus {
    Open,
    Resolved,
}

impl ConflictStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStatus::Open => "open",
            ConflictStatus::Resolved => "resolved",
        }
    }
}

/// A recorded conflict, as stored.
#[derive(Debug, Clone, QueryableByName)]
pub struct Conflict {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = Text)]
    pub device_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub session_id: Option<String>,
    #[diesel(sql_type = Text)]
    pub table_name: String,
    #[diesel(sql_type = Text)]
    pub row_id: String,
    #[diesel(sql_type = Text)]
    pub kind: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub client_id: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub base: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub server_updated: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub offline_updated: Option<i64>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = BigInt)]
    pub created_at: i64,
    #[diesel(sql_type = BigInt)]
    pub updated_at: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub resolved_at: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub resolved_by: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub resolution: Option<String>,
    /// Who made the server's side, as the row stood before the upload touched it.
    #[diesel(sql_type = Nullable<Text>)]
    pub server_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct ConflictField {
    #[diesel(sql_type = Text)]
    pub field: String,
    #[diesel(sql_type = Bool)]
    pub base_known: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub base_value: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub server_value: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub offline_value: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub choice: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub chosen_value: Option<String>,
}

impl Conflict {
    /// Its kind; the schema's CHECK admits no other word.
    pub fn conflict_kind(&self) -> ConflictKind {
        ConflictKind::parse(&self.kind).unwrap_or(ConflictKind::Fields)
    }

    pub fn is_open(&self) -> bool {
        self.status == ConflictStatus::Open.as_str()
    }
}

const COLUMNS: &str = "SELECT id, user_id, device_id, session_id, table_name, row_id, kind, \
    client_id, base, server_updated, offline_updated, status, created_at, updated_at, \
    resolved_at, resolved_by, resolution, server_by FROM conflicts";

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<Conflict>, DbError> {
    let mut sql = Sql::new(COLUMNS);
    sql.push(" WHERE id = ").param(id);
    sql.first(conn)
}

/// Refreshes an open conflict with a later upload's view of the same row.
pub fn update_open(conn: &mut DbConn, c: &Conflict) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE conflicts SET device_id = ");
    sql.param(&c.device_id)
        .push(", session_id = ")
        .param(c.session_id.clone())
        .push(", kind = ")
        .param(&c.kind)
        .push(", client_id = ")
        .param(c.client_id.clone())
        .push(", base = ")
        .param(c.base)
        .push(", server_updated = ")
        .param(c.server_updated)
        .push(", offline_updated = ")
        .param(c.offline_updated)
        .push(", server_by = ")
        .param(c.server_by.clone())
        .push(", updated_at = ")
        .param(c.updated_at)
        .push(" WHERE id = ")
        .param(&c.id);
    sql.execute(conn)?;
    Ok(())
}

/// Sets the server side of a conflict to what the server holds now (a stale form).
pub fn refresh_server(
    conn: &mut DbConn,
    id: &str,
    server_updated: Option<Micros>,
    fields: &[(String, Option<String>)],
) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE conflicts SET server_updated = ");
    sql.param(server_updated).push(" WHERE id = ").param(id);
    sql.execute(conn)?;
    for (field, value) in fields {
        let mut sql = Sql::new("UPDATE conflict_fields SET server_value = ");
        sql.param(value.clone())
            .push(" WHERE conflict_id = ")
            .param(id)
            .push(" AND field = ")
            .param(field);
        sql.execute(conn)?;
    }
    Ok(())
}

/// Inserts or replaces one field of a conflict.
pub fn put_field(conn: &mut DbConn, conflict_id: &str, f: &ConflictField) -> Result<(), DbError> {
    let mut del = Sql::new("DELETE FROM conflict_fields WHERE conflict_id = ");
    del.param(conflict_id).push(" AND field = ").param(&f.field);
    del.execute(conn)?;
    insert_fields(conn, &[(conflict_id, f)])
}

/// Inserts conflict fields, many per statement.
fn insert_fields(conn: &mut DbConn, fields: &[(&str, &ConflictField)]) -> Result<(), DbError> {
    for part in fields.chunks(200) {
        let mut sql = Sql::new(
            "INSERT INTO conflict_fields (conflict_id, field, base_known, base_value, \
             server_value, offline_value) VALUES ",
        );
        for (n, (id, f)) in part.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { ", (" })
                .params([*id, f.field.as_str()])
                .push(", ")
                .param(f.base_known)
                .push(", ")
                .params([
                    f.base_value.clone(),
                    f.server_value.clone(),
                    f.offline_value.clone(),
                ])
                .push(")");
        }
        sql.execute(conn)?;
    }
    Ok(())
}

pub fn fields(conn: &mut DbConn, conflict_id: &str) -> Result<Vec<ConflictField>, DbError> {
    let mut sql = Sql::new(
        "SELECT field, base_known, base_value, server_value, offline_value, choice, chosen_value \
         FROM conflict_fields WHERE conflict_id = ",
    );
    sql.param(conflict_id).push(" ORDER BY field");
    sql.load(conn)
}

pub fn record_choice(
    conn: &mut DbConn,
    conflict_id: &str,
    field: &str,
    choice: &str,
    value: Option<&str>,
) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE conflict_fields SET choice = ");
    sql.param(choice)
        .push(", chosen_value = ")
        .param(value)
        .push(" WHERE conflict_id = ")
        .param(conflict_id)
        .push(" AND field = ")
        .param(field);
    sql.execute(conn)?;
    Ok(())
}

pub fn close(
    conn: &mut DbConn,
    id: &str,
    by_user: &str,
    resolution: &str,
    now: Micros,
) -> Result<(), DbError> {
    let mut sql = Sql::new("UPDATE conflicts SET status = 'resolved', resolved_at = ");
    sql.param(now)
        .push(", updated_at = ")
        .param(now)
        .push(", resolved_by = ")
        .param(by_user)
        .push(", resolution = ")
        .param(resolution)
        .push(" WHERE id = ")
        .param(id);
    sql.execute(conn)?;
    Ok(())
}

/// Which conflicts a list shows.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    /// One user's, or everyone's for `None` (administrators).
    pub user_id: Option<&'a str>,
    pub table: Option<&'a str>,
    pub device_id: Option<&'a str>,
}

fn scope(sql: &mut Sql, scope: &Scope<'_>, status: ConflictStatus) {
    sql.push(" WHERE status = ").param(status.as_str());
    if let Some(u) = scope.user_id {
        sql.push(" AND user_id = ").param(u);
    }
    if let Some(t) = scope.table {
        sql.push(" AND table_name = ").param(t);
    }
    if let Some(d) = scope.device_id {
        sql.push(" AND device_id = ").param(d);
    }
}

/// Conflicts with `status` in `within`, most recently changed first.
pub fn list(
    conn: &mut DbConn,
    within: &Scope<'_>,
    status: ConflictStatus,
    limit: i64,
    offset: i64,
) -> Result<Vec<Conflict>, DbError> {
    let mut sql = Sql::new(COLUMNS);
    scope(&mut sql, within, status);
    sql.push(" ORDER BY updated_at DESC, id LIMIT ")
        .param(limit)
        .push(" OFFSET ")
        .param(offset);
    sql.load(conn)
}

pub fn count_in(
    conn: &mut DbConn,
    within: &Scope<'_>,
    status: ConflictStatus,
) -> Result<i64, DbError> {
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM conflicts");
    scope(&mut sql, within, status);
    count(conn, sql)
}

/// A user's (or everyone's) open conflicts.
pub fn count_open(conn: &mut DbConn, user_id: Option<&str>) -> Result<i64, DbError> {
    count_in(
        conn,
        &Scope {
            user_id,
            ..Scope::default()
        },
        ConflictStatus::Open,
    )
}

/// The names of the differing fields of many conflicts, by conflict id.
pub fn field_names_of(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<std::collections::HashMap<String, Vec<String>>, DbError> {
    #[derive(QueryableByName)]
    struct Named {
        #[diesel(sql_type = Text)]
        conflict_id: String,
        #[diesel(sql_type = Text)]
        field: String,
    }
    let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for chunk in ids.chunks(super::rows::BATCH) {
        let mut sql =
            Sql::new("SELECT conflict_id, field FROM conflict_fields WHERE conflict_id IN (");
        sql.params(chunk).push(") ORDER BY conflict_id, field");
        for n in sql.load::<Named>(conn)? {
            out.entry(n.conflict_id).or_default().push(n.field);
        }
    }
    Ok(out)
}

/// A user's open conflicts of one kind in one table.
pub fn open_of_kind(
    conn: &mut DbConn,
    user_id: &str,
    table: &str,
    conflict_kind: ConflictKind,
) -> Result<Vec<Conflict>, DbError> {
    let mut sql = Sql::new(COLUMNS);
    sql.push(" WHERE user_id = ")
        .param(user_id)
        .push(" AND table_name = ")
        .param(table)
        .push(" AND status = 'open' AND kind = ")
        .param(conflict_kind.as_str());
    sql.load(conn)
}

/// The user's open conflicts on any of these rows of one table, by row id.
pub fn open_for_rows(
    conn: &mut DbConn,
    user_id: &str,
    table: &str,
    row_ids: &[String],
) -> Result<std::collections::HashMap<String, Conflict>, DbError> {
    let mut out = std::collections::HashMap::new();
    for chunk in row_ids.chunks(super::rows::BATCH) {
        let mut sql = Sql::new(COLUMNS);
        sql.push(" WHERE user_id = ")
            .param(user_id)
            .push(" AND table_name = ")
            .param(table)
            .push(" AND status = 'open' AND row_id IN (")
            .params(chunk)
            .push(")");
        for c in sql.load::<Conflict>(conn)? {
            out.insert(c.row_id.clone(), c);
        }
    }
    Ok(out)
}

/// Inserts new conflicts and their fields, many per statement.
pub fn insert_many(
    conn: &mut DbConn,
    items: &[(Conflict, Vec<ConflictField>)],
) -> Result<(), DbError> {
    for chunk in items.chunks(100) {
        let mut sql = Sql::new(
            "INSERT INTO conflicts (id, user_id, device_id, session_id, table_name, row_id, kind, \
             client_id, base, server_updated, offline_updated, status, created_at, updated_at, \
             server_by) VALUES ",
        );
        for (n, (c, _)) in chunk.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { ", (" })
                .params([&c.id, &c.user_id, &c.device_id])
                .push(", ")
                .param(c.session_id.clone())
                .push(", ")
                .params([&c.table_name, &c.row_id, &c.kind])
                .push(", ")
                .param(c.client_id.clone())
                .push(", ")
                .params([c.base, c.server_updated, c.offline_updated])
                .push(", 'open', ")
                .params([c.created_at, c.updated_at])
                .push(", ")
                .param(c.server_by.clone())
                .push(")");
        }
        sql.execute(conn)?;
        let fields: Vec<(&str, &ConflictField)> = chunk
            .iter()
            .flat_map(|(c, fs)| fs.iter().map(move |f| (c.id.as_str(), f)))
            .collect();
        insert_fields(conn, &fields)?;
    }
    Ok(())
}
