//! Edits from the pages: creating, changing and deleting rows, online (every field, stamped
//! by the server) and offline (what offline may do, logged until a sync uploads it). A save
//! writes only the fields the person touched: those whose submitted text differs from the
//! text the form was shown with (`was.FIELD`, sent back by the form). A save over a change
//! made meanwhile is judged field by field as an upload is (`domain::rules`): a touched
//! field the other change left alone is written; one both changed comes back to the person.
//! Knows nothing of HTTP; the pages turn its errors into messages beside the fields.

use std::collections::BTreeMap;

use crate::db::integrity::{self, Blocked};
use crate::db::repo::rows::{self, Row};
use crate::db::{DbConn, DbError, write_txn};
use crate::domain::rules::{Verdict, judge_field, next_stamp};
use crate::domain::{
    Field, FieldType, Micros, TABLES, Table, TableId, Values, table_by_name, value,
};
use crate::offline::store::{self, ChangeKind, FieldLog};

/// Who is editing: the main site (every field, stamped by the server), or the offline copy
/// on a laptop (only what offline may do, remembered until a sync has uploaded it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Online,
    Offline,
}

/// What the person at the pages may do with the synced tables, by where they are and their
/// role (issue 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rights {
    /// An administrator: everything, deleting sites and assets included.
    Administrator,
    /// The office (PROTOCOL §1's online users): every field and every create; deletes only
    /// what a laptop may delete too (inspections and readings).
    Office,
    /// A field engineer on the main site: what a laptop may do (the fields offline may
    /// edit, the creates and deletes offline may make); a row they create they fill whole.
    Engineer,
    /// The offline copy on a laptop.
    Laptop,
}

impl Rights {
    /// Where the edits are made: the main site stamps them, a laptop logs them.
    pub fn mode(self) -> Mode {
        match self {
            Rights::Laptop => Mode::Offline,
            _ => Mode::Online,
        }
    }

    pub fn may_edit(self, field: &Field) -> bool {
        matches!(self, Rights::Administrator | Rights::Office) || field.offline_edit
    }

    pub fn may_edit_any(self, table: &Table) -> bool {
        table.fields.iter().any(|f| self.may_edit(f))
    }

    pub fn may_create(self, table: &Table) -> bool {
        matches!(self, Rights::Administrator | Rights::Office) || table.offline_create
    }

    pub fn may_delete(self, table: &Table) -> bool {
        self == Rights::Administrator || table.offline_delete
    }

    /// Why a create or delete is refused, for the page.
    pub fn refusal(self, table: &Table, verb: &str) -> String {
        match self {
            Rights::Laptop => format!("{} are {verb} on the main site, not offline", table.name),
            _ => format!(
                "{} are {verb} by {}",
                table.name,
                if verb == "deleted" {
                    "administrators"
                } else {
                    "the office"
                }
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no such row")]
    NotFound,
    /// Not something this person (or the offline copy) may do.
    #[error("{0}")]
    Forbidden(String),
    /// Messages by field name; nothing was written.
    #[error("some fields need attention")]
    Invalid(BTreeMap<String, String>),
    /// The row changed since the form was shown; nothing was written.
    #[error("the row was changed meanwhile")]
    Stale(Box<Row>),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for EditError {
    fn from(e: diesel::result::Error) -> Self {
        EditError::Db(DbError::Query(e))
    }
}

/// How a parent is typed into a form: its natural key where it has one (a site's code, an
/// asset's tag), else its id.
pub fn parent_reference(conn: &mut DbConn, parent: TableId, id: &str) -> Result<String, DbError> {
    let def = &TABLES[parent];
    Ok(match def.natural_key_index() {
        Some(k) => rows::get(conn, parent, id)?
            .and_then(|r| r.values[k].clone())
            .unwrap_or_else(|| id.to_owned()),
        None => id.to_owned(),
    })
}

/// The stored value of one field's form text, or the message to show beside it. An empty
/// input is NULL for a nullable field (a form cannot tell "empty" from "none").
fn value_from_form(
    conn: &mut DbConn,
    f: &Field,
    raw: &str,
) -> Result<Result<Option<String>, String>, DbError> {
    let raw = if value::normalize(f, raw).is_empty() {
        None
    } else {
        Some(raw)
    };
    Ok(match (f.ty, raw) {
        (FieldType::Parent(p), Some(reference)) => {
            let parent = table_by_name(p).unwrap_or_default();
            resolve_parent(conn, parent, value::normalize(f, reference).as_ref())?
                .ok_or_else(|| {
                    format!("there is no {} {:?}", TABLES[parent].noun, reference.trim())
                })
                .map(Some)
        }
        _ => value::parse(f, raw).map_err(|e| match e {
            value::ValueError::Null => "is required".to_owned(),
            other => other.to_string(),
        }),
    })
}

/// Turns a whole form into stored values (a create), with a message per bad field.
fn values_from_form(
    conn: &mut DbConn,
    table: TableId,
    input: &BTreeMap<String, String>,
) -> Result<Values, EditError> {
    let def = &TABLES[table];
    let mut errors = BTreeMap::new();
    let mut values = Vec::with_capacity(def.fields.len());
    for f in def.fields {
        let raw = input.get(f.name).map(String::as_str).unwrap_or_default();
        match value_from_form(conn, f, raw)? {
            Ok(v) => values.push(v),
            Err(message) => {
                errors.insert(f.name.to_owned(), message);
                values.push(None);
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(EditError::Invalid(errors))
    }
}

/// A touched field: its index, its new stored value, and the text the form said it showed.
type Touched = (usize, Option<String>, Option<String>);

/// The fields a save touched, with their stored values: each editable field whose
/// submitted text differs from the text the form showed (`was.NAME`, else `shown_now`,
/// the row's text now, for forms that do not send it). With the text the form says it
/// showed, when it says so, for judging a save over a change made meanwhile.
fn touched(
    conn: &mut DbConn,
    table: TableId,
    input: &BTreeMap<String, String>,
    shown_now: &BTreeMap<String, String>,
    editable: impl Fn(&Field) -> bool,
) -> Result<Vec<Touched>, EditError> {
    let def = &TABLES[table];
    let mut errors = BTreeMap::new();
    let mut out = Vec::new();
    for (i, f) in def.fields.iter().enumerate() {
        let Some(raw) = input.get(f.name) else {
            continue; // left out: untouched
        };
        let said = input.get(&format!("was.{}", f.name)).cloned();
        let shown = said
            .clone()
            .or_else(|| shown_now.get(f.name).cloned())
            .unwrap_or_default();
        if value::normalize(f, raw) == value::normalize(f, &shown) {
            continue;
        }
        if !editable(f) {
            continue; // a read-only field cannot be changed from this form
        }
        match value_from_form(conn, f, raw)? {
            Ok(v) => out.push((i, v, said)),
            Err(message) => {
                errors.insert(f.name.to_owned(), message);
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(EditError::Invalid(errors))
    }
}

fn resolve_parent(
    conn: &mut DbConn,
    parent: TableId,
    reference: &str,
) -> Result<Option<String>, DbError> {
    let def = &TABLES[parent];
    if def.natural_key_index().is_some()
        && let Some(row) =
            rows::by_natural_keys(conn, parent, &[reference.to_owned()])?.remove(reference)
    {
        return Ok(Some(row.id));
    }
    let Ok(id) = value::parse_id(reference) else {
        return Ok(None);
    };
    Ok(rows::existing(conn, parent, std::slice::from_ref(&id))?
        .into_iter()
        .next())
}

/// The row may hold these values (its parent live, its natural key its own): else a
/// message beside the field at fault.
fn check_row(
    conn: &mut DbConn,
    table: TableId,
    id: &str,
    values: &Values,
) -> Result<(), EditError> {
    let Some(why) = integrity::check_row(conn, table, id, values)? else {
        return Ok(());
    };
    let field = match &why {
        Blocked::Parent { field, .. } | Blocked::KeyTaken { field, .. } => *field,
    };
    let mut errors = BTreeMap::new();
    errors.insert(field.to_owned(), why.to_string());
    Err(EditError::Invalid(errors))
}

/// Creates a row from form input; returns its id.
pub fn create(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    input: &BTreeMap<String, String>,
    actor: &str,
) -> Result<String, EditError> {
    let def = &TABLES[table];
    let mode = rights.mode();
    if !rights.may_create(def) {
        return Err(EditError::Forbidden(rights.refusal(def, "created")));
    }
    let id = uuid::Uuid::now_v7().to_string();
    write_txn(conn, |c, now| {
        let values = values_from_form(c, table, input)?;
        check_row(c, table, &id, &values)?;
        match mode {
            Mode::Online => {
                rows::insert(c, table, &[(id.clone(), values, next_stamp(now, 0))], actor)?;
            }
            Mode::Offline => {
                // No server version yet: 0 until the first sync brings the server's stamp.
                rows::insert(c, table, &[(id.clone(), values.clone(), 0)], actor)?;
                store::log_change(
                    c,
                    table,
                    &id,
                    ChangeKind::Create,
                    None,
                    &full_log(def, &values),
                    now,
                )?;
            }
        }
        Ok(id)
    })
}

/// Changes the fields of a row that the form touched. If the row is no longer at
/// `version`, each touched field is judged against the row now (PROTOCOL §4.3, on the
/// form's text): written when only this form changed it, `Stale` when the other change
/// touched it too. Offline, only the fields offline may edit are taken, and the change is
/// logged with the value each field had (its `was`).
pub fn update(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    id: &str,
    version: Micros,
    input: &BTreeMap<String, String>,
    actor: &str,
) -> Result<(), EditError> {
    let def = &TABLES[table];
    let mode = rights.mode();
    write_txn(conn, |c, now| {
        let row = rows::by_ids(c, table, &[id.to_owned()], true)?
            .remove(id)
            .ok_or(EditError::NotFound)?;
        let shown_now = form_values_of(c, table, &row.values)?;
        let editable = |f: &Field| rights.may_edit(f);
        let mut changes = touched(c, table, input, &shown_now, editable)?;
        if row.last_updated != version {
            for (i, _, shown) in &changes {
                let f = &def.fields[*i];
                let now_text = shown_now
                    .get(f.name)
                    .map(String::as_str)
                    .unwrap_or_default();
                let posted = input.get(f.name).map(String::as_str).unwrap_or_default();
                let text = |t: &str| Some(value::normalize(f, t).into_owned());
                let was = shown.as_deref().map(text);
                let verdict = judge_field(
                    FieldType::Text,
                    text(now_text).as_deref(),
                    text(posted).as_deref(),
                    was.as_ref().map(|w| w.as_deref()),
                    false,
                );
                if verdict == Verdict::Conflict {
                    return Err(EditError::Stale(Box::new(row)));
                }
            }
        }
        changes.retain(|(i, v, _)| {
            !value::same(def.fields[*i].ty, v.as_deref(), row.values[*i].as_deref())
        });
        if changes.is_empty() {
            return Ok(());
        }
        let mut values = row.values.clone();
        for (i, v, _) in &changes {
            values[*i] = v.clone();
        }
        check_row(c, table, id, &values)?;
        let writes: Vec<(usize, Option<String>)> =
            changes.iter().map(|(i, v, _)| (*i, v.clone())).collect();
        match mode {
            Mode::Online => {
                rows::update(
                    c,
                    table,
                    id,
                    &writes,
                    next_stamp(now, row.last_updated),
                    actor,
                )?;
            }
            Mode::Offline => {
                // The stamp stays the server's: it is the base of the change.
                rows::update(c, table, id, &writes, row.last_updated, actor)?;
                if row.last_updated == 0 && !store::is_local_only(c, table, id)? {
                    // Made here, uploaded, and not taken yet (held in a conflict on the
                    // server): it is still a create, sent whole.
                    let fields = full_log(def, &values);
                    store::log_change(c, table, id, ChangeKind::Create, None, &fields, now)?;
                } else {
                    let logs: Vec<FieldLog> = changes
                        .into_iter()
                        .map(|(i, value, _)| FieldLog {
                            field: def.fields[i].name.to_owned(),
                            value,
                            was: row.values[i].clone(),
                        })
                        .collect();
                    store::log_change(
                        c,
                        table,
                        id,
                        ChangeKind::Edit,
                        Some(row.last_updated),
                        &logs,
                        now,
                    )?;
                }
            }
        }
        Ok(())
    })
}

/// A whole row as a change-log entry (a create).
fn full_log(def: &crate::domain::Table, values: &Values) -> Vec<FieldLog> {
    def.fields
        .iter()
        .zip(values)
        .map(|(f, value)| FieldLog {
            field: f.name.to_owned(),
            value: value.clone(),
            was: None,
        })
        .collect()
}

/// The form text of stored values (parents by their natural key).
pub fn form_values_of(
    conn: &mut DbConn,
    table: TableId,
    values: &[Option<String>],
) -> Result<BTreeMap<String, String>, DbError> {
    let mut out = BTreeMap::new();
    for (f, v) in TABLES[table].fields.iter().zip(values) {
        let Some(v) = v else { continue };
        let shown = match f.ty {
            FieldType::Parent(p) => {
                parent_reference(conn, table_by_name(p).unwrap_or_default(), v)?
            }
            _ => v.clone(),
        };
        out.insert(f.name.to_owned(), shown);
    }
    Ok(out)
}

/// Every row below these (children, their children, ...), by table.
fn descendants(
    conn: &mut DbConn,
    table: TableId,
    ids: &[String],
) -> Result<Vec<(TableId, Vec<String>)>, DbError> {
    let mut out = Vec::new();
    for (child, _) in TABLES[table].children() {
        let kids: Vec<String> = rows::under_parents(conn, child, ids)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        if !kids.is_empty() {
            out.extend(descendants(conn, child, &kids)?);
            out.push((child, kids));
        }
    }
    Ok(out)
}

/// Deletes a row and everything below it, if it is still at `version`; returns how many
/// rows went. Offline, a row never synced is simply forgotten; any other is remembered as
/// a delete, and its children's unsynced changes are dropped (the server deletes them too).
pub fn delete(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    id: &str,
    version: Micros,
    actor: &str,
) -> Result<usize, EditError> {
    let def = &TABLES[table];
    let mode = rights.mode();
    if !rights.may_delete(def) {
        return Err(EditError::Forbidden(rights.refusal(def, "deleted")));
    }
    write_txn(conn, |c, now| {
        let row = rows::by_ids(c, table, &[id.to_owned()], true)?
            .remove(id)
            .ok_or(EditError::NotFound)?;
        if row.last_updated != version {
            return Err(EditError::Stale(Box::new(row)));
        }
        if mode == Mode::Offline {
            for (t, ids) in descendants(c, table, &[id.to_owned()])? {
                store::drop_changes(c, t, &ids)?;
            }
            if store::is_local_only(c, table, id)? {
                store::drop_changes(c, table, &[id.to_owned()])?;
            } else {
                store::log_change(
                    c,
                    table,
                    id,
                    ChangeKind::Delete,
                    Some(row.last_updated),
                    &[],
                    now,
                )?;
            }
        }
        Ok(rows::delete_cascade(
            c,
            table,
            &[id.to_owned()],
            now,
            actor,
        )?)
    })
}

/// Offline: forgets a row's changes waiting to be synced and puts the row back as the
/// server last sent it (the way out of a change the server refused): an edit's fields get
/// the values they started from, a create is removed with what was made under it, a
/// delete is undone.
pub fn discard(conn: &mut DbConn, table: TableId, id: &str) -> Result<(), EditError> {
    let def = &TABLES[table];
    write_txn(conn, |c, now| {
        let changes = store::changes_of(c, table, &[id.to_owned()])?
            .remove(id)
            .unwrap_or_default();
        let Some(first) = changes.first() else {
            store::release(c, table, id)?;
            return Ok(());
        };
        if first.kind == ChangeKind::Create {
            for (t, ids) in descendants(c, table, &[id.to_owned()])? {
                store::drop_changes(c, t, &ids)?;
            }
            rows::delete_cascade(c, table, &[id.to_owned()], now, "discarded on this laptop")?;
            rows::remove_tombstones(c, table, &[id.to_owned()])?;
        } else if changes.iter().any(|ch| ch.kind == ChangeKind::Delete) {
            let tomb = rows::tombstones(c, table, &[id.to_owned()])?.remove(id);
            if let Some(values) = tomb.and_then(|t| t.values) {
                rows::remove_tombstone(c, table, id)?;
                let base = first.base.unwrap_or(0);
                rows::insert(c, table, &[(id.to_owned(), values, base)], "server")?;
            }
        } else {
            // Each field back to the value its first change started from.
            let mut back: Vec<(usize, Option<String>)> = Vec::new();
            for ch in &changes {
                for f in &ch.fields {
                    if let Some(i) = def.field_index(&f.field)
                        && !back.iter().any(|(j, _)| *j == i)
                    {
                        back.push((i, f.was.clone()));
                    }
                }
            }
            if let Some(row) = rows::get(c, table, id)? {
                rows::update(c, table, id, &back, row.last_updated, "server")?;
            }
        }
        store::drop_changes(c, table, &[id.to_owned()])?;
        store::release(c, table, id)?;
        Ok(())
    })
}

/// Brings a deleted row back from its tombstone (an administrator's undo), with what was
/// deleted with it below it (the tombstones its delete wrote under it: one transaction, one
/// change id), so that a site comes back with its assets, inspections and readings. Every
/// row gets a new stamp: laptops receive it as a new write at their next sync. Refused, with
/// the reason, when its parent is deleted too (restore that first) or another row has
/// taken its natural key since. Returns how many rows came back.
pub fn restore(
    conn: &mut DbConn,
    table: TableId,
    id: &str,
    actor: &str,
) -> Result<usize, EditError> {
    write_txn(conn, |c, now| {
        let deleted = rows::deleted_row(c, table, id)?.ok_or(EditError::NotFound)?;
        let change_id = deleted.change_id;
        restore_rows(c, table, vec![deleted], change_id, now, actor)
    })
}

fn restore_rows(
    c: &mut DbConn,
    table: TableId,
    deleted: Vec<rows::Deleted>,
    change_id: i64,
    now: Micros,
    actor: &str,
) -> Result<usize, EditError> {
    if deleted.is_empty() {
        return Ok(0);
    }
    let def = &TABLES[table];
    let mut back = Vec::with_capacity(deleted.len());
    for d in deleted {
        let values = d.tombstone.values.ok_or_else(|| {
            EditError::Forbidden(format!(
                "this {} cannot be restored: its values were not kept",
                def.noun
            ))
        })?;
        if let Some(why) = integrity::check_row(c, table, &d.tombstone.id, &values)? {
            return Err(EditError::Forbidden(match why {
                Blocked::Parent { .. } => format!(
                    "this {} belongs under a record that is deleted too: restore that first",
                    def.noun
                ),
                other => format!("this {} cannot be restored: {other}", def.noun),
            }));
        }
        let stamp = next_stamp(now, d.tombstone.last_updated);
        back.push((d.tombstone.id, values, stamp));
    }
    let ids: Vec<String> = back.iter().map(|(id, _, _)| id.clone()).collect();
    rows::insert(c, table, &back, actor)?;
    rows::remove_tombstones(c, table, &ids)?;
    let ids: std::collections::HashSet<String> = ids.into_iter().collect();
    let mut restored = back.len();
    for (child, fk) in def.children() {
        let kids: Vec<rows::Deleted> = rows::deleted_together(c, child, change_id)?
            .into_iter()
            .filter(|d| d.parent(fk).is_some_and(|p| ids.contains(p)))
            .collect();
        restored += restore_rows(c, child, kids, change_id, now, actor)?;
    }
    Ok(restored)
}
