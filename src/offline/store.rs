//! The laptop's own records: the log of local changes not yet synced, the server's values
//! of fields changed locally, local conflict marks, changes the server refused, and small
//! state. Repository functions over `&mut DbConn`, like `db::repo`, through diesel's typed
//! query builder (`db::schema`).

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use crate::db::repo::accounts::count;
use crate::db::repo::rows::BATCH;
use crate::db::schema::{
    offline_changes, offline_conflicts, offline_held, offline_shadow, offline_state,
};
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

/// A change as stored (its fields as JSON).
#[derive(Queryable, Selectable)]
#[diesel(table_name = offline_changes)]
struct RawChange {
    seq: i64,
    table_name: String,
    row_id: String,
    kind: String,
    base: Option<i64>,
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

/// The newest change's number (0 when there is none).
pub fn max_seq(conn: &mut DbConn) -> Result<i64, DbError> {
    let newest: Option<i64> = offline_changes::table
        .select(diesel::dsl::max(offline_changes::seq))
        .first(conn)?;
    Ok(newest.unwrap_or(0))
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
    diesel::insert_into(offline_changes::table)
        .values((
            offline_changes::seq.eq(seq),
            offline_changes::table_name.eq(TABLES[table].name),
            offline_changes::row_id.eq(row_id),
            offline_changes::kind.eq(kind.as_str()),
            offline_changes::base.eq(base),
            offline_changes::fields.eq(json),
            offline_changes::changed_at.eq(now),
        ))
        .execute(conn)?;
    // A new change of a held row is the engineer's correction: it goes up again.
    release(conn, table, row_id)?;
    Ok(())
}

/// A change the server refused, kept out of uploads until corrected or discarded.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = offline_held)]
pub struct Held {
    pub table_name: String,
    pub row_id: String,
    pub code: String,
    pub field: Option<String>,
    pub message: String,
    pub held_at: i64,
}

/// Holds a row's changes back from uploads.
pub fn hold(conn: &mut DbConn, h: &Held) -> Result<(), DbError> {
    let table = crate::domain::table_by_name(&h.table_name)
        .ok_or_else(|| DbError::Corrupt(format!("unknown table {:?}", h.table_name)))?;
    release(conn, table, &h.row_id)?;
    diesel::insert_into(offline_held::table)
        .values(h)
        .execute(conn)?;
    Ok(())
}

/// Lets a row's changes go up again.
pub fn release(conn: &mut DbConn, table: TableId, row_id: &str) -> Result<(), DbError> {
    diesel::delete(offline_held::table.find((TABLES[table].name, row_id))).execute(conn)?;
    Ok(())
}

/// Every held change, newest first.
pub fn held(conn: &mut DbConn) -> Result<Vec<Held>, DbError> {
    Ok(offline_held::table
        .order((
            offline_held::held_at.desc(),
            offline_held::table_name,
            offline_held::row_id,
        ))
        .select(Held::as_select())
        .load(conn)?)
}

/// Whether the row was created on this laptop and not yet synced.
pub fn is_local_only(conn: &mut DbConn, table: TableId, row_id: &str) -> Result<bool, DbError> {
    let creates: i64 = offline_changes::table
        .filter(offline_changes::table_name.eq(TABLES[table].name))
        .filter(offline_changes::row_id.eq(row_id))
        .filter(offline_changes::kind.eq(ChangeKind::Create.as_str()))
        .count()
        .get_result(conn)?;
    Ok(creates > 0)
}

/// Forgets every logged change of these rows.
pub fn drop_changes(conn: &mut DbConn, table: TableId, ids: &[String]) -> Result<(), DbError> {
    for chunk in ids.chunks(BATCH) {
        diesel::delete(
            offline_changes::table
                .filter(offline_changes::table_name.eq(TABLES[table].name))
                .filter(offline_changes::row_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// How many rows have changes waiting to be synced. A count of distinct pairs, which
/// diesel's query builder cannot say: one of the few statements of the fixed tables in
/// [`Sql`].
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
    let mut query = offline_changes::table
        .filter(offline_changes::table_name.eq(TABLES[table].name))
        .filter(offline_changes::seq.le(upto))
        .into_boxed();
    if let Some((row, seq)) = after {
        query = query.filter(
            offline_changes::row_id
                .gt(row.clone())
                .or(offline_changes::row_id
                    .eq(row.clone())
                    .and(offline_changes::seq.gt(*seq))),
        );
    }
    changes(
        query
            .order((offline_changes::row_id, offline_changes::seq))
            .limit(limit)
            .select(RawChange::as_select())
            .load(conn)?,
    )
}

/// Every change of these rows, oldest first, by row.
pub fn changes_of(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<HashMap<String, Vec<Change>>, DbError> {
    let mut out: HashMap<String, Vec<Change>> = HashMap::new();
    for chunk in ids.chunks(BATCH) {
        let raw = offline_changes::table
            .filter(offline_changes::table_name.eq(TABLES[table].name))
            .filter(offline_changes::row_id.eq_any(chunk))
            .order(offline_changes::seq)
            .select(RawChange::as_select())
            .load(conn)?;
        for c in changes(raw)? {
            out.entry(c.row_id.clone()).or_default().push(c);
        }
    }
    Ok(out)
}

/// Forgets the changes a completed sync uploaded (not those held back).
pub fn drop_upto(conn: &mut DbConn, upto: i64) -> Result<(), DbError> {
    let held: Vec<(String, String)> = offline_held::table
        .select((offline_held::table_name, offline_held::row_id))
        .load(conn)?;
    for def in TABLES {
        let kept = ids_in(&held, def.name);
        diesel::delete(
            offline_changes::table
                .filter(offline_changes::table_name.eq(def.name))
                .filter(offline_changes::seq.le(upto))
                .filter(offline_changes::row_id.ne_all(kept)),
        )
        .execute(conn)?;
    }
    // A shadow is only needed while its row has a change waiting (what is left of the log:
    // the changes made during the sync and the held ones, few).
    let waiting: Vec<(String, String)> = offline_changes::table
        .select((offline_changes::table_name, offline_changes::row_id))
        .distinct()
        .load(conn)?;
    for def in TABLES {
        let kept = ids_in(&waiting, def.name);
        diesel::delete(
            offline_shadow::table
                .filter(offline_shadow::table_name.eq(def.name))
                .filter(offline_shadow::row_id.ne_all(kept)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// The row ids of one table among (table, row id) pairs.
fn ids_in<'a>(pairs: &'a [(String, String)], table: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(t, _)| t == table)
        .map(|(_, id)| id.as_str())
        .collect()
}

/// Renames a row everywhere in the log (the server joined it onto another id), including
/// where its children's changes name it as their parent.
pub fn rename_row(conn: &mut DbConn, table: TableId, from: &str, to: &str) -> Result<(), DbError> {
    diesel::update(
        offline_changes::table
            .filter(offline_changes::table_name.eq(TABLES[table].name))
            .filter(offline_changes::row_id.eq(from)),
    )
    .set(offline_changes::row_id.eq(to))
    .execute(conn)?;
    for (child, fk) in TABLES[table].children() {
        let field = TABLES[child].fields[fk].name;
        let raw = offline_changes::table
            .filter(offline_changes::table_name.eq(TABLES[child].name))
            .select(RawChange::as_select())
            .load(conn)?;
        for c in changes(raw)? {
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
            let json = serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into());
            diesel::update(offline_changes::table.find(c.seq))
                .set(offline_changes::fields.eq(json))
                .execute(conn)?;
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
    let key = (TABLES[table].name, row_id, field);
    diesel::delete(offline_shadow::table.find(key)).execute(conn)?;
    diesel::insert_into(offline_shadow::table)
        .values((
            offline_shadow::table_name.eq(key.0),
            offline_shadow::row_id.eq(row_id),
            offline_shadow::field.eq(field),
            offline_shadow::value.eq(value),
        ))
        .execute(conn)?;
    Ok(())
}

/// The server's last known value of a locally changed field, if one was downloaded.
pub fn shadow(
    conn: &mut DbConn,
    table: TableId,
    row_id: &str,
    field: &str,
) -> Result<Option<Option<String>>, DbError> {
    Ok(offline_shadow::table
        .find((TABLES[table].name, row_id, field))
        .select(offline_shadow::value)
        .first(conn)
        .optional()?)
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
    let key = (TABLES[table].name, row_id, field);
    diesel::delete(offline_conflicts::table.find(key)).execute(conn)?;
    diesel::insert_into(offline_conflicts::table)
        .values((
            offline_conflicts::table_name.eq(key.0),
            offline_conflicts::row_id.eq(row_id),
            offline_conflicts::field.eq(field),
            offline_conflicts::local_value.eq(local),
            offline_conflicts::server_value.eq(server),
            offline_conflicts::marked_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Clears a row's conflict marks (the server's resolution arrived).
pub fn clear_conflicts(conn: &mut DbConn, table: TableId, row_id: &str) -> Result<(), DbError> {
    clear_conflicts_of(conn, table, &[row_id.to_owned()])
}

/// Clears the conflict marks of many rows of one table.
pub fn clear_conflicts_of(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<(), DbError> {
    for chunk in ids.chunks(BATCH) {
        diesel::delete(
            offline_conflicts::table
                .filter(offline_conflicts::table_name.eq(TABLES[table].name))
                .filter(offline_conflicts::row_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// A local change the server did not take.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = offline_conflicts)]
pub struct LocalConflict {
    pub table_name: String,
    pub row_id: String,
    pub field: String,
    pub local_value: Option<String>,
    pub server_value: Option<String>,
    pub marked_at: i64,
}

pub fn conflicts(conn: &mut DbConn) -> Result<Vec<LocalConflict>, DbError> {
    Ok(offline_conflicts::table
        .order((
            offline_conflicts::marked_at.desc(),
            offline_conflicts::table_name,
            offline_conflicts::row_id,
            offline_conflicts::field,
        ))
        .limit(1000)
        .select(LocalConflict::as_select())
        .load(conn)?)
}

/// How many rows carry conflict marks (a count of distinct pairs: [`Sql`], as in
/// [`pending_rows`]).
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

/// The laptop's main server, kept in its state.
pub const UPSTREAM: &str = "upstream";
/// The laptop's device token, kept in its state (the database file is the owner's alone).
pub const DEVICE_TOKEN: &str = "device_token";
/// The main-site user who connected the laptop: a new inspection's inspector.
pub const ENGINEER: &str = "engineer";

pub fn get_state(conn: &mut DbConn, name: &str) -> Result<Option<String>, DbError> {
    Ok(offline_state::table
        .find(name)
        .select(offline_state::value)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten())
}

pub fn set_state(conn: &mut DbConn, name: &str, value: &str) -> Result<(), DbError> {
    diesel::delete(offline_state::table.find(name)).execute(conn)?;
    diesel::insert_into(offline_state::table)
        .values((offline_state::name.eq(name), offline_state::value.eq(value)))
        .execute(conn)?;
    Ok(())
}

/// Keeps a new connection: the main site, the device's token and who connected it. A
/// laptop with nothing of its own waiting first forgets the data it holds: a new device's
/// first download is whole, but carries no tombstones, so rows deleted meanwhile would
/// linger. One with changes waiting keeps them, to upload with the new token.
pub fn keep_connection(
    conn: &mut DbConn,
    upstream: &str,
    token: &str,
    engineer: &str,
) -> Result<(), DbError> {
    crate::db::write_txn(conn, |c, _| {
        if pending_rows(c)? == 0 && held(c)?.is_empty() {
            clear(c)?;
        }
        set_state(c, UPSTREAM, upstream)?;
        set_state(c, DEVICE_TOKEN, token)?;
        set_state(c, ENGINEER, engineer)
    })
}

/// Forgets what the laptop downloaded and everything about its syncs (its upstream and token
/// too): a laptop disconnected, or connected anew as a new device whose first download is
/// whole. Tombstones and aliases included, so that nothing of the last data set lingers.
pub fn forget_data(conn: &mut DbConn) -> Result<(), DbError> {
    crate::db::write_txn(conn, |c, _| clear(c))
}

/// [`forget_data`]'s deletes, inside the caller's transaction.
fn clear(c: &mut DbConn) -> Result<(), DbError> {
    let fixed = [
        "offline_changes",
        "offline_shadow",
        "offline_conflicts",
        "offline_held",
        "offline_state",
        "offline_open_conflicts",
        "tombstones",
        "aliases",
    ];
    let synced = TABLES.iter().rev().map(|t| t.name);
    for table in fixed.into_iter().chain(synced) {
        // Names from this program's own lists, never from outside.
        diesel::sql_query(format!("DELETE FROM {table}")).execute(c)?;
    }
    Ok(())
}

/// One of the user's open conflicts on the main site, as the last sync brought it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenConflict {
    pub id: String,
    pub table_name: String,
    pub row_id: String,
    /// As the server words it: fields, delete, edit_deleted, duplicate, parent_deleted.
    pub kind: String,
    pub recorded: String,
    pub server_by: Option<String>,
    pub server_at: Option<String>,
    pub fields: Vec<OpenConflictField>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenConflictField {
    pub name: String,
    pub server: Option<String>,
    pub offline: Option<String>,
}

/// Replaces the laptop's copy of its user's open conflicts, in one transaction.
pub fn keep_open_conflicts(conn: &mut DbConn, list: &[OpenConflict]) -> Result<(), DbError> {
    use crate::db::schema::offline_open_conflicts as t;
    crate::db::write_txn(conn, |c, _| {
        diesel::delete(t::table).execute(c)?;
        for o in list {
            let fields = serde_json::to_string(&o.fields)
                .map_err(|e| DbError::Corrupt(format!("a conflict's fields: {e}")))?;
            diesel::insert_into(t::table)
                .values((
                    t::id.eq(&o.id),
                    t::table_name.eq(&o.table_name),
                    t::row_id.eq(&o.row_id),
                    t::kind.eq(&o.kind),
                    t::recorded.eq(&o.recorded),
                    t::server_by.eq(&o.server_by),
                    t::server_at.eq(&o.server_at),
                    t::fields.eq(fields),
                ))
                .execute(c)?;
        }
        Ok::<_, DbError>(())
    })
}

type OpenConflictRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
);

/// The user's open conflicts as of the last sync, the latest first; those of one row when
/// `row` is given.
pub fn open_conflicts(
    conn: &mut DbConn,
    row: Option<(&str, &str)>,
) -> Result<Vec<OpenConflict>, DbError> {
    use crate::db::schema::offline_open_conflicts as t;
    let mut query = t::table.into_boxed();
    if let Some((table, id)) = row {
        query = query.filter(t::table_name.eq(table).and(t::row_id.eq(id)));
    }
    let rows: Vec<OpenConflictRow> = query
        .order((t::recorded.desc(), t::id))
        .select((
            t::id,
            t::table_name,
            t::row_id,
            t::kind,
            t::recorded,
            t::server_by,
            t::server_at,
            t::fields,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(
            |(id, table_name, row_id, kind, recorded, server_by, server_at, fields)| {
                Ok(OpenConflict {
                    fields: serde_json::from_str(&fields)
                        .map_err(|e| DbError::Corrupt(format!("conflict {id}'s fields: {e}")))?,
                    id,
                    table_name,
                    row_id,
                    kind,
                    recorded,
                    server_by,
                    server_at,
                })
            },
        )
        .collect()
}

/// Forgets the logged changes made before `before` (this laptop's clock): a restored
/// laptop's changes that the main site already had. Returns how many rows they touched.
pub fn drop_changes_before(conn: &mut DbConn, before: Micros) -> Result<u64, DbError> {
    use crate::db::schema::offline_changes as ch;
    crate::db::write_txn(conn, |c, _| {
        let rows: Vec<(String, String)> = ch::table
            .filter(ch::changed_at.lt(before))
            .select((ch::table_name, ch::row_id))
            .distinct()
            .load(c)?;
        diesel::delete(ch::table.filter(ch::changed_at.lt(before))).execute(c)?;
        Ok::<_, DbError>(rows.len() as u64)
    })
}

/// The rows a whole download brought, kept in a temporary table (memory does not grow with
/// the download), so that the laptop's other rows can be forgotten after it: a whole
/// download carries no deletes.
pub struct Seen {
    pending: Vec<(TableId, String)>,
}

impl Seen {
    pub fn start(conn: &mut DbConn) -> Result<Seen, DbError> {
        diesel::sql_query(
            "CREATE TEMP TABLE IF NOT EXISTS offline_whole_seen \
             (table_name TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (table_name, id))",
        )
        .execute(conn)?;
        diesel::sql_query("DELETE FROM offline_whole_seen").execute(conn)?;
        Ok(Seen {
            pending: Vec::with_capacity(BATCH),
        })
    }

    pub fn add(&mut self, conn: &mut DbConn, table: TableId, id: &str) -> Result<(), DbError> {
        self.pending.push((table, id.to_owned()));
        if self.pending.len() >= BATCH {
            self.flush(conn)?;
        }
        Ok(())
    }

    fn flush(&mut self, conn: &mut DbConn) -> Result<(), DbError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new("INSERT OR IGNORE INTO offline_whole_seen (table_name, id) VALUES ");
        for (i, (table, id)) in self.pending.drain(..).enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" })
                .param(TABLES[table].name)
                .push(", ")
                .param(&id)
                .push(")");
        }
        sql.execute(conn)?;
        Ok(())
    }

    /// Forgets every synced row the download did not bring, unless a change of this
    /// laptop's waits for it, or a row kept under it (children first).
    pub fn forget_the_rest(mut self, conn: &mut DbConn) -> Result<(), DbError> {
        self.flush(conn)?;
        for def in TABLES.iter().rev() {
            let t = def.name;
            let mut sql = Sql::new(format!(
                "DELETE FROM {t} WHERE NOT EXISTS (SELECT 1 FROM offline_whole_seen s \
                 WHERE s.table_name = "
            ));
            sql.param(t)
                .push(&format!(
                    " AND s.id = {t}.id) AND NOT EXISTS (SELECT 1 FROM offline_changes ch \
                     WHERE ch.table_name = "
                ))
                .param(t)
                .push(&format!(
                    " AND ch.row_id = {t}.id) AND NOT EXISTS (SELECT 1 FROM offline_held h \
                     WHERE h.table_name = "
                ))
                .param(t)
                .push(&format!(" AND h.row_id = {t}.id)"));
            for (child, fk) in def.children() {
                let c = TABLES[child].name;
                let f = TABLES[child].fields[fk].name;
                sql.push(&format!(
                    " AND NOT EXISTS (SELECT 1 FROM {c} WHERE {c}.{f} = {t}.id)"
                ));
            }
            sql.execute(conn)?;
        }
        diesel::sql_query("DROP TABLE offline_whole_seen").execute(conn)?;
        Ok(())
    }
}
