//! Rows of the synced tables, read and written in batches. SQL is generated from the
//! domain declaration, so a new table or field needs no change here.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::db::cursor::{PG_CURSOR_SETS, Window, change_id_sql, cursor_sets};
use crate::db::schema::tombstones;
use crate::db::{DbConn, DbError, PgSql, Sql, dialect};
use crate::domain::rules::next_stamp;
use crate::domain::{MAX_FIELDS, Micros, TABLES, Table, TableId, Values};

/// A row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub last_updated: Micros,
    pub values: Values,
    /// Who made the last write.
    pub changed_by: Option<String>,
}

/// The fixed-width shape every row is read into: the table's fields, padded with NULLs.
#[derive(QueryableByName)]
struct RawRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    last_updated: i64,
    #[diesel(sql_type = Nullable<Text>)]
    changed_by: Option<String>,
    #[diesel(sql_type = BigInt)]
    change_id: i64,
    /// A walk's [`Mark::place`] (`seq` or the rowid) where it has one, else 0.
    #[diesel(sql_type = BigInt)]
    rid: i64,
    #[diesel(sql_type = Nullable<Text>)]
    f0: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    f1: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    f2: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    f3: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    f4: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    f5: Option<String>,
}

impl RawRow {
    fn into_row(self, table: &Table) -> Row {
        let mut all = [self.f0, self.f1, self.f2, self.f3, self.f4, self.f5];
        let values = all[..table.fields.len()]
            .iter_mut()
            .map(Option::take)
            .collect();
        Row {
            id: self.id,
            last_updated: self.last_updated,
            values,
            changed_by: self.changed_by,
        }
    }
}

/// Up to this many ids go into one `IN (...)`; far below both backends' parameter limits.
pub const BATCH: usize = 500;

fn select_columns(table: &Table) -> String {
    select_keyed(table, ("change_id", "CAST(0 AS BIGINT)"))
}

/// [`select_columns`] with a walk's position read in the place of the change id and of
/// `rid` ([`Walk::keys`]).
fn select_keyed(table: &Table, (key, rid): (&str, &str)) -> String {
    let mut cols = format!("SELECT id, last_updated, changed_by, {key} AS change_id, {rid} AS rid");
    for i in 0..MAX_FIELDS {
        match table.fields.get(i) {
            Some(f) => cols.push_str(&format!(", {} AS f{i}", f.name)),
            None => cols.push_str(&format!(", CAST(NULL AS TEXT) AS f{i}")),
        }
    }
    cols.push_str(" FROM ");
    cols.push_str(table.name);
    cols
}

fn load(conn: &mut DbConn, table: &Table, sql: &Sql) -> Result<Vec<Row>, DbError> {
    Ok(rows_of(sql.load::<RawRow>(conn)?, table))
}

fn rows_of(raw: Vec<RawRow>, table: &Table) -> Vec<Row> {
    raw.into_iter().map(|r| r.into_row(table)).collect()
}

/// The rows with these ids, locked for update where the backend supports it.
pub fn by_ids(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
    lock: bool,
) -> Result<HashMap<String, Row>, DbError> {
    let table = &TABLES[table];
    let mut out = HashMap::with_capacity(ids.len());
    if let DbConn::Pg(pg) = conn {
        for chunk in ids.chunks(BATCH) {
            let mut sql = PgSql::new(select_columns(table));
            sql.push(" WHERE id = ANY(")
                .texts(chunk.iter().map(|id| Some(id.as_str())))
                .push(") ORDER BY id");
            if lock {
                sql.push(" FOR UPDATE");
            }
            out.extend(
                sql.load::<RawRow>(pg)?
                    .into_iter()
                    .map(|r| (r.id.clone(), r.into_row(table))),
            );
        }
        return Ok(out);
    }
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::new(select_columns(table));
        sql.push(" WHERE id IN (")
            .params(chunk)
            .push(") ORDER BY id");
        if lock {
            sql.push(dialect::for_update(conn));
        }
        // A full batch's text is the same every time (one per table): prepared once per
        // connection, as an upload's lookups run hundreds of times.
        let found = if chunk.len() == BATCH {
            rows_of(sql.load_prepared::<RawRow>(conn)?, table)
        } else {
            load(conn, table, &sql)?
        };
        for row in found {
            out.insert(row.id.clone(), row);
        }
    }
    Ok(out)
}

/// One row by id.
pub fn get(conn: &mut DbConn, table: TableId, id: &str) -> Result<Option<Row>, DbError> {
    Ok(by_ids(conn, table, &[id.to_owned()], false)?.remove(id))
}

/// The rows whose natural key is one of `keys`, by key.
pub fn by_natural_keys(
    conn: &mut DbConn,
    table: TableId,
    keys: &[String],
) -> Result<HashMap<String, Row>, DbError> {
    let def = &TABLES[table];
    let Some(k) = def.natural_key_index() else {
        return Ok(HashMap::new());
    };
    let mut out = HashMap::new();
    for chunk in keys.chunks(BATCH) {
        let mut sql = Sql::new(select_columns(def));
        sql.push(&format!(" WHERE {} IN (", def.fields[k].name))
            .params(chunk)
            .push(")");
        for row in load(conn, def, &sql)? {
            if let Some(key) = row.values[k].clone() {
                out.insert(key, row);
            }
        }
    }
    Ok(out)
}

/// Inserts rows, many per statement.
pub fn insert(
    conn: &mut DbConn,
    table: TableId,
    rows: &[(String, Values, Micros)],
    actor: &str,
) -> Result<(), DbError> {
    let def = &TABLES[table];
    let columns: Vec<&str> = def.fields.iter().map(|f| f.name).collect();
    let per_statement = (BATCH * 4 / (columns.len() + 3)).max(1);
    for chunk in rows.chunks(per_statement) {
        let mut sql = Sql::new(format!(
            "INSERT INTO {} (id, {}, last_updated, changed_by, change_id) VALUES ",
            def.name,
            columns.join(", ")
        ));
        let change_id = change_id_sql(conn);
        for (i, (id, values, stamp)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.param(id).push(", ");
            sql.params(values.iter().cloned()).push(", ");
            sql.param(*stamp).push(", ").param(actor).push(", ");
            sql.push(change_id).push(")");
        }
        sql.execute(conn)?;
    }
    Ok(())
}

/// Sets some fields of one row and stamps it.
pub fn update(
    conn: &mut DbConn,
    table: TableId,
    id: &str,
    fields: &[(usize, Option<String>)],
    stamp: Micros,
    actor: &str,
) -> Result<(), DbError> {
    let def = &TABLES[table];
    let mut sql = Sql::new(format!("UPDATE {} SET ", def.name));
    for (index, value) in fields {
        sql.push(def.fields[*index].name)
            .push(" = ")
            .param(value.clone())
            .push(", ");
    }
    sql.push("last_updated = ").param(stamp);
    sql.push(", changed_by = ").param(actor);
    sql.push(", ").push(cursor_sets(conn));
    sql.push(" WHERE id = ").param(id);
    sql.execute(conn)?;
    Ok(())
}

/// A deleted row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tombstone {
    pub id: String,
    pub last_updated: Micros,
    /// The row's values when it was deleted, for restoring it.
    pub values: Option<Values>,
    /// Who deleted it.
    pub changed_by: Option<String>,
}

/// A tombstone as stored (its values as JSON).
#[derive(QueryableByName, Queryable, Selectable)]
#[diesel(table_name = tombstones)]
struct RawTombstone {
    #[diesel(sql_type = Nullable<Text>)]
    changed_by: Option<String>,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = BigInt)]
    last_updated: i64,
    #[diesel(sql_type = Nullable<Text>)]
    row_data: Option<String>,
}

impl RawTombstone {
    fn into_tombstone(self) -> Tombstone {
        Tombstone {
            id: self.id,
            last_updated: self.last_updated,
            values: self.row_data.and_then(|d| serde_json::from_str(&d).ok()),
            changed_by: self.changed_by,
        }
    }
}

pub fn tombstones(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<HashMap<String, Tombstone>, DbError> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(BATCH) {
        let found: Vec<RawTombstone> = tombstones::table
            .filter(tombstones::table_name.eq(TABLES[table].name))
            .filter(tombstones::id.eq_any(chunk))
            .select(RawTombstone::as_select())
            .load(conn)?;
        out.extend(found.into_iter().map(|t| {
            let t = t.into_tombstone();
            (t.id.clone(), t)
        }));
    }
    Ok(out)
}

/// A tombstone with the id of the transaction that wrote it (the delete it went with).
#[derive(Debug, Clone)]
pub struct Deleted {
    pub table: TableId,
    pub tombstone: Tombstone,
    pub change_id: i64,
}

fn deleted_of(raw: Vec<RawChangedTombstone>) -> Vec<Deleted> {
    raw.into_iter()
        .filter_map(|t| {
            let table = crate::domain::table_by_name(&t.tombstone.table_name)?;
            Some(Deleted {
                table,
                tombstone: t.tombstone.into_tombstone(),
                change_id: t.change_id,
            })
        })
        .collect()
}

impl Deleted {
    /// The parent it was under, by its `fk` field, where its values were kept.
    pub fn parent(&self, fk: usize) -> Option<&str> {
        self.tombstone.values.as_ref()?.get(fk)?.as_deref()
    }
}

/// The latest tombstones of `tables`, newest first.
pub fn recently_deleted(
    conn: &mut DbConn,
    tables: &[TableId],
    limit: usize,
) -> Result<Vec<Deleted>, DbError> {
    let mut sql = Sql::new(
        "SELECT table_name, id, last_updated, row_data, changed_by, change_id \
         FROM tombstones WHERE table_name IN (",
    );
    sql.params(tables.iter().map(|t| TABLES[*t].name))
        .push(") ORDER BY last_updated DESC, id LIMIT ")
        .param(limit as i64);
    Ok(deleted_of(sql.load::<RawChangedTombstone>(conn)?))
}

/// The tombstone of one row, with its delete's transaction id.
pub fn deleted_row(
    conn: &mut DbConn,
    table: TableId,
    id: &str,
) -> Result<Option<Deleted>, DbError> {
    let mut sql = Sql::new(
        "SELECT table_name, id, last_updated, row_data, changed_by, change_id \
         FROM tombstones WHERE table_name = ",
    );
    sql.param(TABLES[table].name).push(" AND id = ").param(id);
    Ok(deleted_of(sql.load::<RawChangedTombstone>(conn)?).pop())
}

/// The tombstones of `table` that one delete (transaction `change_id`) wrote.
pub fn deleted_together(
    conn: &mut DbConn,
    table: TableId,
    change_id: i64,
) -> Result<Vec<Deleted>, DbError> {
    let mut sql = Sql::new(
        "SELECT table_name, id, last_updated, row_data, changed_by, change_id \
         FROM tombstones WHERE table_name = ",
    );
    sql.param(TABLES[table].name)
        .push(" AND change_id = ")
        .param(change_id)
        .push(" ORDER BY id");
    Ok(deleted_of(sql.load::<RawChangedTombstone>(conn)?))
}

/// Gives a tombstone a new stamp (a resolution that keeps a row deleted is a new write).
pub fn touch_tombstone(
    conn: &mut DbConn,
    table: TableId,
    id: &str,
    stamp: Micros,
    actor: &str,
) -> Result<(), DbError> {
    diesel::update(tombstones::table.find((TABLES[table].name, id)))
        .set((
            tombstones::last_updated.eq(stamp),
            tombstones::changed_by.eq(actor),
            tombstones::change_id.eq(diesel::dsl::sql::<BigInt>(change_id_sql(conn))),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes the tombstones of many rows of one table (they exist again).
pub fn remove_tombstones(conn: &mut DbConn, table: TableId, ids: &[String]) -> Result<(), DbError> {
    for chunk in ids.chunks(BATCH) {
        diesel::delete(
            tombstones::table
                .filter(tombstones::table_name.eq(TABLES[table].name))
                .filter(tombstones::id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// Removes a tombstone (the row is restored).
pub fn remove_tombstone(conn: &mut DbConn, table: TableId, id: &str) -> Result<(), DbError> {
    diesel::delete(tombstones::table.find((TABLES[table].name, id))).execute(conn)?;
    Ok(())
}

/// Records a row as deleted with its last values (replacing an older tombstone: a row
/// deleted, restored and deleted again). Also how a row the server never took is made
/// known as gone, so that the laptop that made it drops it.
pub fn put_tombstone(
    conn: &mut DbConn,
    table: TableId,
    id: &str,
    values: &[Option<String>],
    stamp: Micros,
    actor: &str,
) -> Result<(), DbError> {
    let data = serde_json::to_string(values).unwrap_or_default();
    remove_tombstone(conn, table, id)?;
    diesel::insert_into(tombstones::table)
        .values((
            tombstones::table_name.eq(TABLES[table].name),
            tombstones::id.eq(id),
            tombstones::last_updated.eq(stamp),
            tombstones::row_data.eq(data),
            tombstones::changed_by.eq(actor),
            tombstones::change_id.eq(diesel::dsl::sql::<BigInt>(change_id_sql(conn))),
        ))
        .execute(conn)?;
    Ok(())
}

/// Deletes rows and, first, every row below them; each gets a tombstone stamped after
/// `now` (and after its own last stamp). Returns how many rows were deleted.
pub fn delete_cascade(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
    now: Micros,
    actor: &str,
) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut deleted = 0;
    for (child, fk) in TABLES[table].children() {
        let def = &TABLES[child];
        for chunk in ids.chunks(BATCH) {
            let mut sql = Sql::new(select_columns(def));
            sql.push(&format!(" WHERE {} IN (", def.fields[fk].name))
                .params(chunk)
                .push(")");
            let kids: Vec<String> = load(conn, def, &sql)?.into_iter().map(|r| r.id).collect();
            deleted += delete_cascade(conn, child, &kids, now, actor)?;
        }
    }
    let def = &TABLES[table];
    for chunk in ids.chunks(BATCH) {
        let rows = by_ids(conn, table, chunk, false)?;
        for row in rows.values() {
            let stamp = next_stamp(now, row.last_updated);
            put_tombstone(conn, table, &row.id, &row.values, stamp, actor)?;
        }
        let mut sql = Sql::new(format!("DELETE FROM {} WHERE id IN (", def.name));
        sql.params(chunk).push(")");
        deleted += sql.execute(conn)?;
    }
    Ok(deleted)
}

/// The order a walk over a window's rows takes, and so what the number in its position is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// `(change_id, seq, id)` on PostgreSQL, which its cursor index holds: any window.
    /// `seq` is the row's place among its transaction's writes (a sequence's next value at
    /// each write), so an upload's new index entries go at the index's end instead of among
    /// the ids (half the time of each written row there; docs/performance.md). The id
    /// orders the rows written before `seq` existed (0).
    ChangeSeq,
    /// `(change_id, rowid)` on SQLite, whose cursor index is on `change_id` alone (SQLite
    /// orders equal keys by rowid): a new entry of an upload's rows, which all have one
    /// change id, is then a number beside a number, not a 36-character id among 100,000
    /// (half of the index work of each written row; docs/performance.md). A position is the
    /// change id, the rowid and the id, the rowid taken from the id while the row exists
    /// (as for [`Walk::Rowid`]).
    ChangeRowid,
    /// `rowid` on SQLite, for a window with no start (a first download): the table in file
    /// order. One import writes all its rows with one change id, so walking by change id
    /// and id visited their pages at random (2.7× the floor's time for 100k rows; in file
    /// order 1.4×). A row keeps its rowid when updated. SQLite says VACUUM may renumber the
    /// rowids of a table like these (its copy keeps them today) and would keep their
    /// order, so a position is taken from its row's id while that row exists.
    Rowid,
}

impl Walk {
    fn of(conn: &DbConn, window: &Window) -> Walk {
        match (conn, &window.from) {
            (DbConn::Sqlite(_), crate::db::cursor::From::Everything) => Walk::Rowid,
            (DbConn::Sqlite(_), _) => Walk::ChangeRowid,
            (DbConn::Pg(_), _) => Walk::ChangeSeq,
        }
    }

    /// What a page's rows are read with as their position: ([`Mark::key`],
    /// [`Mark::place`]).
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            Walk::ChangeSeq => ("change_id", "seq"),
            Walk::Rowid => ("rowid", "CAST(0 AS BIGINT)"),
            Walk::ChangeRowid => ("change_id", "rowid"),
        }
    }
}

/// Where a walk's last row stands: see [`Position::after`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Its place in the walk's order: its change id, or in a first download on SQLite its
    /// rowid.
    pub key: i64,
    /// Its place among the rows of its change id: its `seq` on PostgreSQL, its rowid on
    /// SQLite; none in a first download on SQLite, or in a token from before places.
    pub place: Option<i64>,
    pub id: String,
}

/// Which rows of a [`Walk::ChangeRowid`] page a query reads: the rest of the last row's
/// change id, or the change ids after it (one range of the index each, where a row-value
/// comparison with the rowid would scan the change id's rows from their start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stretch {
    Whole,
    SameChange,
    LaterChanges,
}

/// ` WHERE` the rows of a table written in `window`, after `after` in the walk's order: a
/// row value, so that both databases seek the index to a page's start instead of scanning
/// the window from its start for every page.
fn push_rows_in(
    sql: &mut Sql,
    table: &Table,
    walk: Walk,
    window: &Window,
    after: Option<&Mark>,
    stretch: Stretch,
) {
    sql.push(" WHERE ");
    window.push_condition(sql, after.is_some() && walk != Walk::Rowid);
    // The row's rowid now (VACUUM may renumber them), or where it was if it is gone.
    let rowid_of = |sql: &mut Sql, m: &Mark, rowid: i64| {
        sql.push(&format!(
            "COALESCE((SELECT rowid FROM {} WHERE id = ",
            table.name
        ))
        .param(&m.id)
        .push("), ")
        .param(rowid)
        .push(")");
    };
    let Some(m) = after else { return };
    match walk {
        Walk::ChangeSeq => match m.place {
            Some(seq) => {
                sql.push(" AND (change_id, seq, id) > (")
                    .param(m.key)
                    .push(", ")
                    .param(seq)
                    .push(", ")
                    .param(&m.id)
                    .push(")");
            }
            // A token from before places (it walked a change id's rows by id): that change
            // id is sent again whole, so that nothing of it is missed.
            None => {
                sql.push(" AND change_id >= ").param(m.key);
            }
        },
        Walk::Rowid => {
            sql.push(" AND rowid > ");
            rowid_of(sql, m, m.key);
        }
        Walk::ChangeRowid => match (stretch, m.place) {
            (Stretch::SameChange, Some(rowid)) => {
                sql.push(" AND change_id = ")
                    .param(m.key)
                    .push(" AND rowid > ");
                rowid_of(sql, m, rowid);
            }
            // A token from before places, as for PostgreSQL above.
            (Stretch::SameChange, None) => {
                sql.push(" AND change_id = ").param(m.key);
            }
            (Stretch::LaterChanges | Stretch::Whole, _) => {
                sql.push(" AND change_id > ").param(m.key);
            }
        },
    }
}

/// ` WHERE` the tombstones written in `window`, after `after` in `(change_id, table, id)`
/// order (as [`push_rows_in`]).
fn push_tombstones_in(sql: &mut Sql, window: &Window, after: Option<&(i64, String, String)>) {
    sql.push(" WHERE ");
    window.push_condition(sql, after.is_some());
    if let Some((change_id, table, id)) = after {
        sql.push(" AND (change_id, table_name, id) > (")
            .param(*change_id)
            .push(", ")
            .param(table)
            .push(", ")
            .param(id)
            .push(")");
    }
}

/// A page of the rows written in `window`, in the walk's order after `after`, with their
/// positions in it (change id or rowid).
fn changed_in(
    conn: &mut DbConn,
    table: TableId,
    window: &Window,
    after: Option<&Mark>,
    limit: usize,
) -> Result<Vec<(Mark, Row)>, DbError> {
    let def = &TABLES[table];
    let walk = Walk::of(conn, window);
    let mut page = Vec::with_capacity(limit);
    for &stretch in stretches(walk, after) {
        let mut sql = Sql::new(select_keyed(def, walk.keys()));
        push_rows_in(&mut sql, def, walk, window, after, stretch);
        sql.push(match (walk, stretch) {
            (Walk::ChangeSeq, _) => " ORDER BY change_id, seq, id LIMIT ",
            (Walk::Rowid, _) | (Walk::ChangeRowid, Stretch::SameChange) => " ORDER BY rowid LIMIT ",
            (Walk::ChangeRowid, _) => " ORDER BY change_id, rowid LIMIT ",
        })
        .param((limit - page.len()) as i64);
        // One text per table and stretch (the window's values are parameters): prepared
        // once per connection, not parsed and planned for every page.
        let found = dialect::in_index_order(conn, |c| sql.load_prepared::<RawRow>(c))?;
        page.extend(found.into_iter().map(|r| {
            let mark = Mark {
                key: r.change_id,
                place: (walk != Walk::Rowid).then_some(r.rid),
                id: r.id.clone(),
            };
            (mark, r.into_row(def))
        }));
        if page.len() == limit {
            break;
        }
    }
    Ok(page)
}

/// The queries a page after `after` takes, in order.
fn stretches(walk: Walk, after: Option<&Mark>) -> &'static [Stretch] {
    match (walk, after) {
        (Walk::ChangeRowid, Some(_)) => &[Stretch::SameChange, Stretch::LaterChanges],
        _ => &[Stretch::Whole],
    }
}

/// How many rows of `table` were written in `window` after `after` (for a download's
/// progress).
pub fn count_in(
    conn: &mut DbConn,
    table: TableId,
    window: &Window,
    after: Option<&Mark>,
) -> Result<i64, DbError> {
    let def = &TABLES[table];
    let walk = Walk::of(conn, window);
    let mut n = 0;
    for &stretch in stretches(walk, after) {
        let mut sql = Sql::new(format!("SELECT COUNT(*) AS n FROM {}", def.name));
        push_rows_in(&mut sql, def, walk, window, after, stretch);
        n += super::accounts::count(conn, sql)?;
    }
    Ok(n)
}

/// How many tombstones were written in `window` after `after`.
pub fn count_tombstones_in(
    conn: &mut DbConn,
    window: &Window,
    after: Option<&(i64, String, String)>,
) -> Result<i64, DbError> {
    let mut sql = Sql::new("SELECT COUNT(*) AS n FROM tombstones");
    push_tombstones_in(&mut sql, window, after);
    super::accounts::count(conn, sql)
}

/// Where a walk over changed rows stands: the table (in declaration order, parents first)
/// and the last row sent of it. Small and plain, so that a download can be resumed from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub table: TableId,
    /// The last row sent.
    pub after: Option<Mark>,
}

/// A walk over every row written in a window, table by table (parents first), one keyset
/// page of `limit` rows at a time. Each step takes the connection to query on, so a caller
/// may hold one throughout or take one per page.
pub struct ChangedPages {
    window: Window,
    limit: usize,
    pub position: Position,
}

impl ChangedPages {
    pub fn new(window: Window, limit: usize) -> Self {
        Self::from_position(window, limit, Position::default())
    }

    /// Goes on from where an earlier walk over the same window stood.
    pub fn from_position(window: Window, limit: usize, position: Position) -> Self {
        ChangedPages {
            window,
            limit,
            position,
        }
    }

    /// The next non-empty page and its table; `None` when every table is done.
    pub fn next(&mut self, conn: &mut DbConn) -> Result<Option<(TableId, Vec<Row>)>, DbError> {
        while self.position.table < TABLES.len() {
            let table = self.position.table;
            let page = changed_in(
                conn,
                table,
                &self.window,
                self.position.after.as_ref(),
                self.limit,
            )?;
            match page.last() {
                Some((mark, _)) if page.len() == self.limit => {
                    self.position.after = Some(mark.clone())
                }
                _ => {
                    self.position.table += 1;
                    self.position.after = None;
                }
            }
            if !page.is_empty() {
                return Ok(Some((table, page.into_iter().map(|(_, r)| r).collect())));
            }
        }
        Ok(None)
    }
}

/// A tombstone with the id of the transaction that wrote it.
#[derive(QueryableByName)]
struct RawChangedTombstone {
    #[diesel(embed)]
    tombstone: RawTombstone,
    #[diesel(sql_type = BigInt)]
    change_id: i64,
}

/// A page of the tombstones written in `window`, in (change_id, table, id) order after
/// `after`. Keyset paging with a row-value comparison, which the index serves directly
/// and diesel's query builder cannot write: the one query of the fixed tables in [`Sql`].
pub fn tombstones_in(
    conn: &mut DbConn,
    window: &Window,
    after: Option<&(i64, String, String)>,
    limit: usize,
) -> Result<Vec<(i64, TableId, Tombstone)>, DbError> {
    let mut sql = Sql::new(
        "SELECT table_name, id, last_updated, row_data, changed_by, change_id \
         FROM tombstones",
    );
    push_tombstones_in(&mut sql, window, after);
    sql.push(" ORDER BY change_id, table_name, id LIMIT ")
        .param(limit as i64);
    Ok(
        dialect::in_index_order(conn, |c| sql.load_prepared::<RawChangedTombstone>(c))?
            .into_iter()
            .filter_map(|t| {
                let table = crate::domain::table_by_name(&t.tombstone.table_name)?;
                Some((t.change_id, table, t.tombstone.into_tombstone()))
            })
            .collect(),
    )
}

/// Which of `ids` exist in `table`.
pub fn existing(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<std::collections::HashSet<String>, DbError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let mut out = std::collections::HashSet::new();
    for chunk in ids.chunks(BATCH) {
        let mut sql = Sql::new(format!(
            "SELECT id FROM {} WHERE id IN (",
            TABLES[table].name
        ));
        sql.params(chunk).push(")");
        out.extend(sql.load::<Id>(conn)?.into_iter().map(|r| r.id));
    }
    Ok(out)
}

/// One row's changed fields and its new stamp, for [`update_many`].
pub type RowUpdate = (String, Vec<(usize, Option<String>)>, Micros);

/// Applies many updates with few statements: on PostgreSQL, rows changing the same set of
/// fields are written together, `UPDATE ... FROM unnest(ids, values..., stamps)`; on SQLite
/// one prepared statement per row ([`update_each`]).
pub fn update_many(
    conn: &mut DbConn,
    table: TableId,
    updates: &[RowUpdate],
    actor: &str,
) -> Result<(), DbError> {
    let def = &TABLES[table];
    let mut groups: HashMap<Vec<usize>, Vec<&RowUpdate>> = HashMap::new();
    for u in updates {
        groups
            .entry(u.1.iter().map(|(i, _)| *i).collect())
            .or_default()
            .push(u);
    }
    let DbConn::Pg(pg) = conn else {
        return update_each(conn, def, groups, actor);
    };
    // One statement per set of fields and batch, its values as arrays, one per column: its
    // text is the same for every batch (prepared once per connection).
    for (fields, rows) in groups {
        for chunk in rows.chunks(BATCH) {
            let mut sql = PgSql::new(format!("UPDATE {} SET ", def.name));
            for (n, i) in fields.iter().enumerate() {
                sql.push(&format!("{} = v.f{n}, ", def.fields[*i].name));
            }
            sql.push("last_updated = v.stamp, changed_by = ")
                .text(actor)
                .push(", ")
                .push(PG_CURSOR_SETS)
                .push(" FROM unnest(")
                .texts(chunk.iter().map(|(id, _, _)| Some(id.as_str())));
            for n in 0..fields.len() {
                sql.push(", ")
                    .texts(chunk.iter().map(|(_, values, _)| values[n].1.as_deref()));
            }
            sql.push(", ")
                .ints(chunk.iter().map(|(_, _, stamp)| *stamp))
                .push(") AS v(id");
            for n in 0..fields.len() {
                sql.push(&format!(", f{n}"));
            }
            sql.push(&format!(", stamp) WHERE {}.id = v.id", def.name));
            sql.execute(pg)?;
        }
    }
    Ok(())
}

/// [`update_many`] on SQLite: one prepared statement per set of fields, run once per row.
/// With no round trips to save, a many-row `UPDATE … FROM (VALUES …)` only adds work there
/// (the VALUES table, its join, a statement journal): per-row statements took 26% off the
/// CPU time of the thread applying an upload of 100k edits (docs/performance.md).
fn update_each(
    conn: &mut DbConn,
    def: &Table,
    groups: HashMap<Vec<usize>, Vec<&RowUpdate>>,
    actor: &str,
) -> Result<(), DbError> {
    for (fields, rows) in groups {
        let mut text = format!("UPDATE {} SET ", def.name);
        for i in &fields {
            text.push_str(def.fields[*i].name);
            text.push_str(" = ?, ");
        }
        text.push_str("last_updated = ?, changed_by = ?, ");
        text.push_str(cursor_sets(conn));
        text.push_str(" WHERE id = ?");
        // One text for every row: only the values change.
        let mut sql = Sql::new(text);
        for (id, values, stamp) in rows {
            sql.clear_binds()
                .bind_all(values.iter().map(|(_, v)| v.clone()))
                .bind(*stamp)
                .bind(actor)
                .bind(id.as_str());
            sql.execute_prepared(conn)?;
        }
    }
    Ok(())
}

/// Which rows a list shows: a text search over the table's text fields, and/or the rows
/// under one parent.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub search: Option<String>,
    /// (foreign-key field index, parent id)
    pub parent: Option<(usize, String)>,
}

fn filter_sql(sql: &mut Sql, table: &Table, filter: &Filter) {
    sql.push(" WHERE 1 = 1");
    if let Some((fk, parent)) = &filter.parent {
        sql.push(&format!(" AND {} = ", table.fields[*fk].name))
            .param(parent);
    }
    if let Some(q) = filter.search.as_deref().filter(|q| !q.trim().is_empty()) {
        // LIKE with its wildcards escaped; LOWER on both sides because PostgreSQL's LIKE
        // is case-sensitive and SQLite's is not.
        let pattern = format!(
            "%{}%",
            q.trim()
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let texts: Vec<&str> = table
            .fields
            .iter()
            .filter(|f| matches!(f.ty, crate::domain::FieldType::Text))
            .map(|f| f.name)
            .collect();
        if !texts.is_empty() {
            sql.push(" AND (");
            for (i, name) in texts.iter().enumerate() {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push(&format!("LOWER({name}) LIKE "))
                    .param(pattern.clone())
                    .push(" ESCAPE '\\'");
            }
            sql.push(")");
        }
    }
}

/// The order rows are listed in: by natural key, else newest first by the first field
/// that is not a parent (an inspection's time, a reading's kind).
fn list_order(table: &Table) -> String {
    match table.natural_key {
        Some(k) => format!(" ORDER BY {k}, id"),
        None => {
            let first = table
                .fields
                .iter()
                .find(|f| !matches!(f.ty, crate::domain::FieldType::Parent(_)))
                .map_or("id", |f| f.name);
            format!(" ORDER BY {first} DESC, id")
        }
    }
}

/// A page of rows for a list.
pub fn list(
    conn: &mut DbConn,
    table: TableId,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> Result<Vec<Row>, DbError> {
    let def = &TABLES[table];
    let mut sql = Sql::new(select_columns(def));
    filter_sql(&mut sql, def, filter);
    sql.push(&list_order(def));
    sql.push(" LIMIT ")
        .param(limit)
        .push(" OFFSET ")
        .param(offset);
    load(conn, def, &sql)
}

pub fn count(conn: &mut DbConn, table: TableId, filter: &Filter) -> Result<i64, DbError> {
    let def = &TABLES[table];
    let mut sql = Sql::new(format!("SELECT COUNT(*) AS n FROM {}", def.name));
    filter_sql(&mut sql, def, filter);
    super::accounts::count(conn, sql)
}

/// The rows of `table` under any of `parents`, listed in order.
pub fn under_parents(
    conn: &mut DbConn,
    table: TableId,
    parents: &[String],
) -> Result<Vec<Row>, DbError> {
    let def = &TABLES[table];
    let Some((fk, _)) = def.parent() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for chunk in parents.chunks(BATCH) {
        let mut sql = Sql::new(select_columns(def));
        sql.push(&format!(" WHERE {} IN (", def.fields[fk].name))
            .params(chunk)
            .push(")");
        sql.push(&list_order(def));
        out.extend(load(conn, def, &sql)?);
    }
    Ok(out)
}
