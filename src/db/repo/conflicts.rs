//! Recorded conflicts and their fields, through diesel's typed query builder
//! (`db::schema`).

use std::collections::HashMap;

use diesel::prelude::*;

use crate::db::schema::{conflict_fields, conflicts};
use crate::db::{DbConn, DbError, Sql};
use crate::domain::Micros;

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
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = conflicts)]
pub struct Conflict {
    pub id: String,
    pub user_id: String,
    pub device_id: String,
    pub session_id: Option<String>,
    pub table_name: String,
    pub row_id: String,
    pub kind: String,
    pub client_id: Option<String>,
    pub base: Option<i64>,
    pub server_updated: Option<i64>,
    pub offline_updated: Option<i64>,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
    /// Who made the server's side, as the row stood before the upload touched it.
    pub server_by: Option<String>,
}

/// One field of a conflict: the base where known, both sides, and what was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = conflict_fields)]
pub struct ConflictField {
    pub field: String,
    pub base_known: bool,
    pub base_value: Option<String>,
    pub server_value: Option<String>,
    pub offline_value: Option<String>,
    pub choice: Option<String>,
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

pub fn get(conn: &mut DbConn, id: &str) -> Result<Option<Conflict>, DbError> {
    Ok(conflicts::table
        .find(id)
        .select(Conflict::as_select())
        .first(conn)
        .optional()?)
}

/// Sets the server side of a conflict to what the server holds now (a stale form).
pub fn refresh_server(
    conn: &mut DbConn,
    id: &str,
    server_updated: Option<Micros>,
    fields: &[(String, Option<String>)],
) -> Result<(), DbError> {
    diesel::update(conflicts::table.find(id))
        .set(conflicts::server_updated.eq(server_updated))
        .execute(conn)?;
    for (field, value) in fields {
        diesel::update(conflict_fields::table.find((id, field)))
            .set(conflict_fields::server_value.eq(value))
            .execute(conn)?;
    }
    Ok(())
}

/// Inserts conflict fields, or replaces them (and any choice made) where the conflict has
/// them already, many per statement.
///
/// The one place the fixed tables are written with [`Sql`]: diesel's query builder cannot
/// insert many rows in one statement over a `MultiConnection` (its `BatchInsert` has no
/// backend-neutral form), and an upload records thousands of conflicts in one go.
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
        sql.push(
            " ON CONFLICT (conflict_id, field) DO UPDATE SET base_known = excluded.base_known, \
             base_value = excluded.base_value, server_value = excluded.server_value, \
             offline_value = excluded.offline_value, choice = NULL, chosen_value = NULL",
        );
        sql.execute(conn)?;
    }
    Ok(())
}

pub fn fields(conn: &mut DbConn, conflict_id: &str) -> Result<Vec<ConflictField>, DbError> {
    Ok(conflict_fields::table
        .filter(conflict_fields::conflict_id.eq(conflict_id))
        .order(conflict_fields::field)
        .select(ConflictField::as_select())
        .load(conn)?)
}

pub fn record_choice(
    conn: &mut DbConn,
    conflict_id: &str,
    field: &str,
    choice: &str,
    value: Option<&str>,
) -> Result<(), DbError> {
    diesel::update(conflict_fields::table.find((conflict_id, field)))
        .set((
            conflict_fields::choice.eq(choice),
            conflict_fields::chosen_value.eq(value),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn close(
    conn: &mut DbConn,
    id: &str,
    by_user: &str,
    resolution: &str,
    now: Micros,
) -> Result<(), DbError> {
    diesel::update(conflicts::table.find(id))
        .set((
            conflicts::status.eq(ConflictStatus::Resolved.as_str()),
            conflicts::resolved_at.eq(now),
            conflicts::updated_at.eq(now),
            conflicts::resolved_by.eq(by_user),
            conflicts::resolution.eq(resolution),
        ))
        .execute(conn)?;
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

/// The conflicts with `status` in `within`, as a query to narrow further.
fn scoped<'a>(
    within: &Scope<'a>,
    status: ConflictStatus,
) -> conflicts::BoxedQuery<'a, <DbConn as diesel::Connection>::Backend> {
    let mut q = conflicts::table
        .filter(conflicts::status.eq(status.as_str()))
        .into_boxed();
    if let Some(u) = within.user_id {
        q = q.filter(conflicts::user_id.eq(u));
    }
    if let Some(t) = within.table {
        q = q.filter(conflicts::table_name.eq(t));
    }
    if let Some(d) = within.device_id {
        q = q.filter(conflicts::device_id.eq(d));
    }
    q
}

/// Conflicts with `status` in `within`, most recently changed first.
pub fn list(
    conn: &mut DbConn,
    within: &Scope<'_>,
    status: ConflictStatus,
    limit: i64,
    offset: i64,
) -> Result<Vec<Conflict>, DbError> {
    Ok(scoped(within, status)
        .order((conflicts::updated_at.desc(), conflicts::id))
        .limit(limit)
        .offset(offset)
        .select(Conflict::as_select())
        .load(conn)?)
}

pub fn count_in(
    conn: &mut DbConn,
    within: &Scope<'_>,
    status: ConflictStatus,
) -> Result<i64, DbError> {
    Ok(scoped(within, status).count().get_result(conn)?)
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

/// The fields of many conflicts, by conflict id, a few queries for all.
pub fn fields_of(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<HashMap<String, Vec<ConflictField>>, DbError> {
    let mut out: HashMap<String, Vec<ConflictField>> = HashMap::new();
    for chunk in ids.chunks(super::rows::BATCH) {
        let found: Vec<(String, ConflictField)> = conflict_fields::table
            .filter(conflict_fields::conflict_id.eq_any(chunk))
            .order((conflict_fields::conflict_id, conflict_fields::field))
            .select((conflict_fields::conflict_id, ConflictField::as_select()))
            .load(conn)?;
        for (id, field) in found {
            out.entry(id).or_default().push(field);
        }
    }
    Ok(out)
}

/// The names of the differing fields of many conflicts, by conflict id.
pub fn field_names_of(
    conn: &mut DbConn,
    ids: &[String],
) -> Result<HashMap<String, Vec<String>>, DbError> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in ids.chunks(super::rows::BATCH) {
        let named: Vec<(String, String)> = conflict_fields::table
            .filter(conflict_fields::conflict_id.eq_any(chunk))
            .order((conflict_fields::conflict_id, conflict_fields::field))
            .select((conflict_fields::conflict_id, conflict_fields::field))
            .load(conn)?;
        for (id, field) in named {
            out.entry(id).or_default().push(field);
        }
    }
    Ok(out)
}

/// `status = 'open'` written as a literal: the one-open-conflict-per-row index is partial
/// (`WHERE status = 'open'`), and SQLite uses a partial index only when the query names
/// the same constant. Bound as a parameter, each batch of an upload scanned all of the
/// user's open conflicts instead (an eighth of an upload with 5% conflicts).
fn is_open() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>("conflicts.status = 'open'")
}

/// A user's open conflicts of one kind in one table.
pub fn open_of_kind(
    conn: &mut DbConn,
    user_id: &str,
    table: &str,
    conflict_kind: ConflictKind,
) -> Result<Vec<Conflict>, DbError> {
    Ok(conflicts::table
        .filter(conflicts::user_id.eq(user_id))
        .filter(conflicts::table_name.eq(table))
        .filter(is_open())
        .filter(conflicts::kind.eq(conflict_kind.as_str()))
        .select(Conflict::as_select())
        .load(conn)?)
}

/// The user's open conflicts on any of these rows of one table, by row id.
pub fn open_for_rows(
    conn: &mut DbConn,
    user_id: &str,
    table: &str,
    row_ids: &[String],
) -> Result<HashMap<String, Conflict>, DbError> {
    let mut out = HashMap::new();
    for chunk in row_ids.chunks(super::rows::BATCH) {
        let found: Vec<Conflict> = conflicts::table
            .filter(conflicts::user_id.eq(user_id))
            .filter(conflicts::table_name.eq(table))
            .filter(is_open())
            .filter(conflicts::row_id.eq_any(chunk))
            .select(Conflict::as_select())
            .load(conn)?;
        out.extend(found.into_iter().map(|c| (c.row_id.clone(), c)));
    }
    Ok(out)
}

#[derive(QueryableByName)]
struct Recorded {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    row_id: String,
}

/// Records open conflicts and their fields, many per statement (see [`insert_fields`] for
/// why this is [`Sql`]). A row that already has an open conflict of the user keeps that one
/// (one open conflict per user and row): its id, its creation time and, when the new one
/// has none, its client id; the rest and the fields given are replaced (a field's choice
/// with them), other fields stay.
///
/// One upsert per hundred conflicts, not a lookup first: with the statistics of a table that
/// an upload is filling, PostgreSQL looked the batch's rows up through `conflicts_by_user`
/// and read every open conflict of the user each time (a sixth of an upload with 5%
/// conflicts).
pub fn record_open(
    conn: &mut DbConn,
    items: &[(Conflict, Vec<ConflictField>)],
) -> Result<(), DbError> {
    // In one order of rows, as the rows themselves are locked, so that two uploads of one
    // user meeting on the same open conflicts wait for each other instead of deadlocking.
    let mut items: Vec<&(Conflict, Vec<ConflictField>)> = items.iter().collect();
    items.sort_by(|(a, _), (b, _)| (&a.table_name, &a.row_id).cmp(&(&b.table_name, &b.row_id)));
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
                .push(", ")
                .param(ConflictStatus::Open.as_str())
                .push(", ")
                .params([c.created_at, c.updated_at])
                .push(", ")
                .param(c.server_by.clone())
                .push(")");
        }
        sql.push(
            " ON CONFLICT (user_id, table_name, row_id) WHERE status = 'open' DO UPDATE SET \
             device_id = excluded.device_id, session_id = excluded.session_id, \
             kind = excluded.kind, client_id = COALESCE(excluded.client_id, conflicts.client_id), \
             base = excluded.base, server_updated = excluded.server_updated, \
             offline_updated = excluded.offline_updated, server_by = excluded.server_by, \
             updated_at = excluded.updated_at \
             RETURNING id, table_name, row_id",
        );
        // The id each row's conflict has now: the new one, or the open one it joined.
        let ids: HashMap<(String, String), String> = sql
            .load::<Recorded>(conn)?
            .into_iter()
            .map(|r| ((r.table_name, r.row_id), r.id))
            .collect();
        let mut fields = Vec::new();
        for (c, fs) in chunk {
            let key = (c.table_name.clone(), c.row_id.clone());
            let id = ids.get(&key).ok_or_else(|| {
                DbError::Corrupt(format!(
                    "the conflict on {} {} was not recorded",
                    c.table_name, c.row_id
                ))
            })?;
            fields.extend(fs.iter().map(|f| (id.as_str(), f)));
        }
        insert_fields(conn, &fields)?;
    }
    Ok(())
}
