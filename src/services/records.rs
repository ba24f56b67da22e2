//! The record pages' work, for every synced table from the domain declaration: a list, a
//! record with its parents above and its children below, the forms, and a create, save or
//! delete. Each is one call that takes a connection and returns what its page shows; the
//! writes go through [`crate::editing`], which owns their transactions.

use std::collections::{BTreeMap, HashMap};

use super::present::{self, field_label, row_label, table_title};
use crate::db::repo::rows::{self, Filter, Row};
use crate::db::{DbConn, DbError};
use crate::domain::{Field, FieldType, TABLES, Table, TableId, table_by_name, value};
use crate::editing::{self, EditError, Mode, Rights};
use crate::offline::store as offline_store;

pub const PER_PAGE: i64 = 25;
/// Child rows shown on a record page before "see all".
const CHILDREN_SHOWN: i64 = 100;

/// One cell: text, and a link when it names another record.
pub struct Cell {
    pub text: String,
    pub href: String,
}

pub struct RowView {
    pub href: String,
    pub label: String,
    pub cells: Vec<Cell>,
    /// Rows one level further down (an inspection's readings on an asset's page).
    pub sub: Vec<RowView>,
    pub sub_new: String,
}

impl RowView {
    pub fn has_sub(&self) -> bool {
        !self.sub.is_empty()
    }
}

pub fn href(table: TableId, id: &str) -> String {
    format!("/{}/{id}", TABLES[table].name)
}

/// Labels of the parents of `rows`, by parent id, one query.
fn parent_labels(
    conn: &mut DbConn,
    table: TableId,
    rows: &[Row],
) -> Result<HashMap<String, String>, DbError> {
    let Some((fk, parent)) = TABLES[table].parent() else {
        return Ok(HashMap::new());
    };
    let ids: Vec<String> = rows.iter().filter_map(|r| r.values[fk].clone()).collect();
    Ok(rows::by_ids(conn, parent, &ids, false)?
        .into_iter()
        .map(|(id, r)| (id, row_label(parent, &r.values)))
        .collect())
}

fn row_view(
    table: TableId,
    row: &Row,
    parents: &HashMap<String, String>,
    skip_parent: bool,
) -> RowView {
    let def = &TABLES[table];
    let cells = def
        .fields
        .iter()
        .zip(&row.values)
        .filter(|(f, _)| !(skip_parent && matches!(f.ty, FieldType::Parent(_))))
        .map(|(f, v)| match (f.ty, v) {
            (FieldType::Parent(p), Some(id)) => Cell {
                text: parents.get(id).cloned().unwrap_or_else(|| id.clone()),
                href: format!("/{p}/{id}"),
            },
            _ => Cell {
                text: present::value(f.ty, v.as_deref()),
                href: String::new(),
            },
        })
        .collect();
    RowView {
        href: href(table, &row.id),
        label: row_label(table, &row.values),
        cells,
        sub: Vec::new(),
        sub_new: String::new(),
    }
}

fn columns(table: TableId, skip_parent: bool) -> Vec<String> {
    TABLES[table]
        .fields
        .iter()
        .filter(|f| !(skip_parent && matches!(f.ty, FieldType::Parent(_))))
        .map(|f| field_label(f.name))
        .collect()
}

/// A searchable, paginated list of one table.
pub struct ListView {
    pub table: String,
    pub title: String,
    pub noun: String,
    pub columns: Vec<String>,
    pub rows: Vec<RowView>,
    pub q: String,
    pub page: i64,
    pub pages: i64,
    pub total: i64,
    pub can_create: bool,
}

pub fn list(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    q: String,
    page: i64,
) -> Result<ListView, DbError> {
    let filter = Filter {
        search: Some(q.clone()).filter(|q| !q.trim().is_empty()),
        parent: None,
    };
    let total = rows::count(conn, table, &filter)?;
    let list = rows::list(conn, table, &filter, PER_PAGE, (page - 1) * PER_PAGE)?;
    let parents = parent_labels(conn, table, &list)?;
    let def = &TABLES[table];
    Ok(ListView {
        table: def.name.to_owned(),
        title: table_title(table),
        noun: def.noun.to_owned(),
        columns: columns(table, false),
        rows: list
            .iter()
            .map(|r| row_view(table, r, &parents, false))
            .collect(),
        q,
        page,
        pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
        total,
        can_create: def.parent().is_none()
            && rights.mode() == Mode::Online
            && rights.may_create(def),
    })
}

pub struct Section {
    pub can_create: bool,
    pub title: String,
    pub noun: String,
    pub columns: Vec<String>,
    pub rows: Vec<RowView>,
    pub total: i64,
    pub new_href: String,
    pub sub_title: String,
    pub sub_noun: String,
    pub sub_columns: Vec<String>,
}

/// One record with its parents above and its children below.
pub struct RecordView {
    pub crumbs: Vec<(String, String)>,
    pub noun: String,
    pub title: String,
    pub fields: Vec<(String, Cell)>,
    pub updated: String,
    pub changed_by: String,
    pub edit_href: String,
    pub delete_href: String,
    pub sections: Vec<Section>,
    pub can_edit: bool,
    pub can_delete: bool,
    /// Offline: local changes not yet synced, and fields the server did not take.
    pub pending: bool,
    pub not_taken: Vec<String>,
}

/// The chain of parents above a row, top first, as (label, link).
fn ancestors(
    conn: &mut DbConn,
    table: TableId,
    row: &Row,
) -> Result<Vec<(String, String)>, DbError> {
    let mut out = Vec::new();
    let (mut t, mut values) = (table, row.values.clone());
    while let Some((fk, parent)) = TABLES[t].parent() {
        let Some(pid) = values[fk].clone() else { break };
        let Some(p) = rows::get(conn, parent, &pid)? else {
            break;
        };
        out.push((
            format!("{} {}", TABLES[parent].noun, row_label(parent, &p.values)),
            href(parent, &pid),
        ));
        t = parent;
        values = p.values;
    }
    out.push((table_title(t), format!("/{}", TABLES[t].name)));
    out.reverse();
    Ok(out)
}

/// The children of `row` in one table, each with its own children (one query for those).
fn section(
    conn: &mut DbConn,
    rights: Rights,
    row: &Row,
    child: TableId,
    fk: usize,
) -> Result<Section, DbError> {
    let filter = Filter {
        search: None,
        parent: Some((fk, row.id.clone())),
    };
    let total = rows::count(conn, child, &filter)?;
    let kids = rows::list(conn, child, &filter, CHILDREN_SHOWN, 0)?;
    let mut views: Vec<RowView> = kids
        .iter()
        .map(|k| row_view(child, k, &HashMap::new(), true))
        .collect();
    // One level further down: an asset's page shows each inspection's readings.
    let (mut sub_title, mut sub_noun, mut sub_columns) = (String::new(), String::new(), Vec::new());
    if let Some((gc, gfk)) = TABLES[child].children().next() {
        let ids: Vec<String> = kids.iter().map(|k| k.id.clone()).collect();
        let mut by_parent: HashMap<String, Vec<RowView>> = HashMap::new();
        for g in rows::under_parents(conn, gc, &ids)? {
            let parent = g.values[gfk].clone().unwrap_or_default();
            by_parent
                .entry(parent)
                .or_default()
                .push(row_view(gc, &g, &HashMap::new(), true));
        }
        for (view, kid) in views.iter_mut().zip(&kids) {
            view.sub = by_parent.remove(&kid.id).unwrap_or_default();
            view.sub_new = format!("/{}/new?parent={}", TABLES[gc].name, kid.id);
        }
        sub_title = table_title(gc);
        sub_noun = TABLES[gc].noun.to_owned();
        sub_columns = columns(gc, true);
    }
    Ok(Section {
        can_create: rights.may_create(&TABLES[child]),
        title: table_title(child),
        noun: TABLES[child].noun.to_owned(),
        columns: columns(child, true),
        rows: views,
        total,
        new_href: format!("/{}/new?parent={}", TABLES[child].name, row.id),
        sub_title,
        sub_noun,
        sub_columns,
    })
}

/// The record `id` of `table`, or `None` when there is no such live row.
pub fn record(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    id: &str,
) -> Result<Option<RecordView>, DbError> {
    let Some(row) = rows::get(conn, table, id)? else {
        return Ok(None);
    };
    let def = &TABLES[table];
    let parents = parent_labels(conn, table, std::slice::from_ref(&row))?;
    let view = row_view(table, &row, &parents, false);
    let fields = def
        .fields
        .iter()
        .map(|f| field_label(f.name))
        .zip(view.cells)
        .collect();
    let sections = def
        .children()
        .map(|(child, fk)| section(conn, rights, &row, child, fk))
        .collect::<Result<Vec<_>, _>>()?;
    let (pending, not_taken) = match rights.mode() {
        Mode::Online => (false, Vec::new()),
        Mode::Offline => {
            let pending = offline_store::changes_of(conn, table, std::slice::from_ref(&row.id))?
                .contains_key(&row.id);
            let not_taken = offline_store::conflicts(conn)?
                .into_iter()
                .filter(|c| c.table_name == def.name && c.row_id == row.id)
                .map(|c| field_label(&c.field))
                .collect();
            (pending, not_taken)
        }
    };
    Ok(Some(RecordView {
        can_edit: rights.may_edit_any(def),
        can_delete: rights.may_delete(def),
        pending,
        not_taken,
        crumbs: ancestors(conn, table, &row)?,
        noun: def.noun.to_owned(),
        title: row_label(table, &row.values),
        fields,
        updated: present::timestamp(row.last_updated),
        changed_by: row.changed_by.clone().unwrap_or_else(|| "unknown".into()),
        edit_href: format!("{}/edit", href(table, &row.id)),
        delete_href: format!("{}/delete", href(table, &row.id)),
        sections,
    }))
}

/// One input of a record form.
pub struct FieldInput {
    pub name: String,
    pub label: String,
    pub kind: &'static str,
    pub options: Vec<String>,
    pub value: String,
    pub required: bool,
    pub hint: String,
    pub error: String,
    /// When the row changed meanwhile: the value now on the server, where it differs.
    pub server: String,
    /// Shown but not editable (offline, a field only the main site changes).
    pub readonly: bool,
    /// In an edit form, the text the field was shown with (sent back as `was.NAME`, so
    /// that a save writes only what the person touched).
    pub shown: Option<String>,
}

/// A new or edit form.
pub struct FormView {
    pub heading: String,
    pub noun: String,
    pub action: String,
    pub cancel: String,
    pub version: String,
    pub fields: Vec<FieldInput>,
    /// Why the save was not made: the row changed meanwhile.
    pub stale: Option<String>,
    /// Some fields need attention; nothing was saved.
    pub invalid: bool,
    /// Why a field shown is not editable here.
    pub readonly_why: &'static str,
}

/// What a create or save did.
pub enum Saved {
    /// Written; the record's page is at `go_to`.
    Done { go_to: String },
    /// Nothing written: fields need attention (the form again, with messages).
    Invalid(FormView),
    /// Nothing written: the row changed meanwhile (the form again, both values shown).
    Stale(FormView),
}

/// Why a field is shown but not editable, for the form.
fn readonly_why(rights: Rights) -> &'static str {
    match rights {
        Rights::Laptop => "Changed on the main site only.",
        _ => "Changed by the office only.",
    }
}

fn hint(field: &Field) -> String {
    match field.ty {
        FieldType::Timestamp => "Date and time with its zone, e.g. 2026-11-21T09:00:00Z".into(),
        FieldType::Decimal => "A number such as 4.25".into(),
        FieldType::Parent(p) => {
            let parent = table_by_name(p).unwrap_or_default();
            match TABLES[parent].natural_key {
                Some(k) => format!("The {}'s {k}", TABLES[parent].noun),
                None => format!("The {}'s id", TABLES[parent].noun),
            }
        }
        _ => String::new(),
    }
}

/// The form's inputs; `editable` says which fields may be changed.
fn inputs(
    table: TableId,
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
    editable: impl Fn(&Field) -> bool,
) -> Vec<FieldInput> {
    TABLES[table]
        .fields
        .iter()
        .map(|f| {
            let (kind, options) = match f.ty {
                FieldType::Enum(words) => {
                    ("select", words.iter().map(|w| (*w).to_owned()).collect())
                }
                FieldType::Text if present::is_multiline(f.name) => ("textarea", Vec::new()),
                _ => ("text", Vec::new()),
            };
            FieldInput {
                name: f.name.to_owned(),
                label: field_label(f.name),
                kind,
                options,
                value: values.get(f.name).cloned().unwrap_or_default(),
                required: !f.nullable,
                hint: hint(f),
                error: errors.get(f.name).cloned().unwrap_or_default(),
                server: String::new(),
                readonly: !editable(f),
                shown: None,
            }
        })
        .collect()
}

/// An edit form's inputs: `values` shown, each remembered as the text it started from.
fn edit_inputs(
    table: TableId,
    values: &BTreeMap<String, String>,
    shown: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
    rights: Rights,
) -> Vec<FieldInput> {
    let mut fields = inputs(table, values, errors, |f| rights.may_edit(f));
    for f in &mut fields {
        f.shown = Some(shown.get(&f.name).cloned().unwrap_or_default());
    }
    fields
}

/// Why a create or delete is refused, as the page says it.
fn forbidden(rights: Rights, table: &Table, what: &str) -> EditError {
    EditError::Forbidden(match rights {
        Rights::Laptop => format!(
            "On a laptop, {} are not {what}: that is done on the main site.",
            table.name
        ),
        _ => format!("You may not do this: {}.", rights.refusal(table, what)),
    })
}

/// A posted record form: the field texts (with their `was.NAME` texts) and the version it
/// was made from; the CSRF token was checked on the way in.
pub struct Posted {
    values: BTreeMap<String, String>,
    version: Option<i64>,
}

impl Posted {
    pub fn new(pairs: Vec<(String, String)>) -> Posted {
        let mut values = BTreeMap::new();
        let mut version = None;
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => {}
                "version" => version = v.parse().ok(),
                _ => {
                    values.insert(k, v);
                }
            }
        }
        Posted { values, version }
    }

    /// The `was.NAME` texts, by field name.
    fn shown(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("was.")?.to_owned(), v.clone())))
            .collect()
    }
}

fn new_form_view(
    rights: Rights,
    table: TableId,
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
    cancel: String,
) -> FormView {
    let def = &TABLES[table];
    FormView {
        readonly_why: readonly_why(rights),
        heading: format!("New {}", def.noun),
        noun: def.noun.to_owned(),
        action: format!("/{}/new", def.name),
        cancel,
        version: String::new(),
        fields: inputs(table, values, errors, |_| true),
        stale: None,
        invalid: !errors.is_empty(),
    }
}

/// The form for a new row, under `parent` when one is given.
pub fn new_form(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    parent: Option<&str>,
) -> Result<FormView, EditError> {
    let def = &TABLES[table];
    if !rights.may_create(def) {
        return Err(forbidden(rights, def, "created"));
    }
    let mut values = BTreeMap::new();
    let mut cancel = format!("/{}", def.name);
    if let (Some((fk, pt)), Some(pid)) = (def.parent(), parent) {
        values.insert(
            def.fields[fk].name.to_owned(),
            editing::parent_reference(conn, pt, pid)?,
        );
        cancel = href(pt, pid);
    }
    Ok(new_form_view(
        rights,
        table,
        &values,
        &BTreeMap::new(),
        cancel,
    ))
}

pub fn create(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    posted: Posted,
    actor: &str,
) -> Result<Saved, EditError> {
    match editing::create(conn, rights, table, &posted.values, actor) {
        Ok(id) => Ok(Saved::Done {
            go_to: href(table, &id),
        }),
        Err(EditError::Invalid(errors)) => Ok(Saved::Invalid(new_form_view(
            rights,
            table,
            &posted.values,
            &errors,
            format!("/{}", TABLES[table].name),
        ))),
        Err(e) => Err(e),
    }
}

fn edit_view(
    rights: Rights,
    table: TableId,
    id: &str,
    heading: String,
    version: String,
    fields: Vec<FieldInput>,
) -> FormView {
    let def = &TABLES[table];
    FormView {
        readonly_why: readonly_why(rights),
        heading,
        noun: def.noun.to_owned(),
        action: format!("{}/edit", href(table, id)),
        cancel: href(table, id),
        version,
        fields,
        stale: None,
        invalid: false,
    }
}

/// The form to edit row `id`, each field starting from its value now.
pub fn edit_form(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    id: &str,
) -> Result<FormView, EditError> {
    let row = rows::get(conn, table, id)?.ok_or(EditError::NotFound)?;
    let values = editing::form_values_of(conn, table, &row.values)?;
    Ok(edit_view(
        rights,
        table,
        id,
        format!(
            "Edit {} {}",
            TABLES[table].noun,
            row_label(table, &row.values)
        ),
        row.last_updated.to_string(),
        edit_inputs(table, &values, &values, &BTreeMap::new(), rights),
    ))
}

/// Saves the fields of row `id` that the person touched.
pub fn update(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    id: &str,
    posted: Posted,
    actor: &str,
) -> Result<Saved, EditError> {
    let version = posted.version.unwrap_or(-1);
    let heading = format!("Edit {}", TABLES[table].noun);
    match editing::update(conn, rights, table, id, version, &posted.values, actor) {
        Ok(()) => Ok(Saved::Done {
            go_to: href(table, id),
        }),
        Err(EditError::Invalid(errors)) => {
            let fields = edit_inputs(table, &posted.values, &posted.shown(), &errors, rights);
            let shown_version = posted.version.map(|v| v.to_string()).unwrap_or_default();
            let mut view = edit_view(rights, table, id, heading, shown_version, fields);
            view.invalid = true;
            Ok(Saved::Invalid(view))
        }
        Err(EditError::Stale(row)) => {
            let server = editing::form_values_of(conn, table, &row.values)?;
            let fields = stale_inputs(rights, table, &posted, &server);
            let mut view = edit_view(
                rights,
                table,
                id,
                heading,
                row.last_updated.to_string(),
                fields,
            );
            view.stale = Some(format!(
                "This {} was changed by {} at {} while you were editing. Your values are kept below, \
                 with the values now on the server beside each field that differs. Save again to keep yours.",
                TABLES[table].noun,
                row.changed_by.as_deref().unwrap_or("someone"),
                present::timestamp(row.last_updated)
            ));
            Ok(Saved::Stale(view))
        }
        Err(e) => Err(e),
    }
}

/// A stale form shown again: fields the person did not touch now show the server's value;
/// touched ones keep theirs, with the server's beside them where it differs. Every field
/// starts from the server's value now, so that saving again writes only what was touched.
fn stale_inputs(
    rights: Rights,
    table: TableId,
    posted: &Posted,
    server: &BTreeMap<String, String>,
) -> Vec<FieldInput> {
    let before = posted.shown();
    let mut shown_values = posted.values.clone();
    for f in TABLES[table].fields {
        let typed = posted.values.get(f.name).map(|v| value::normalize(f, v));
        let untouched = typed == before.get(f.name).map(|v| value::normalize(f, v));
        if untouched || typed.is_none() {
            let now = server.get(f.name).cloned().unwrap_or_default();
            shown_values.insert(f.name.to_owned(), now);
        }
    }
    let mut fields = edit_inputs(table, &shown_values, server, &BTreeMap::new(), rights);
    for f in &mut fields {
        let now = server.get(&f.name).cloned().unwrap_or_default();
        if now != f.value {
            f.server = if now.is_empty() {
                "(empty)".into()
            } else {
                now
            };
        }
    }
    fields
}

/// The question before a delete, with what goes with the row.
pub struct DeleteView {
    pub noun: String,
    pub title: String,
    pub action: String,
    pub cancel: String,
    pub version: String,
    pub below: Vec<String>,
}

pub fn delete_form(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    id: &str,
) -> Result<DeleteView, EditError> {
    let def = &TABLES[table];
    if !rights.may_delete(def) {
        return Err(forbidden(rights, def, "deleted"));
    }
    let row = rows::get(conn, table, id)?.ok_or(EditError::NotFound)?;
    let mut below = Vec::new();
    for (child, fk) in def.children() {
        let filter = Filter {
            search: None,
            parent: Some((fk, row.id.clone())),
        };
        let n = rows::count(conn, child, &filter)?;
        if n > 0 {
            below.push(format!(
                "{n} {} (and everything under them)",
                TABLES[child].name
            ));
        }
    }
    Ok(DeleteView {
        noun: def.noun.to_owned(),
        title: row_label(table, &row.values),
        action: format!("{}/delete", href(table, &row.id)),
        cancel: href(table, &row.id),
        version: row.last_updated.to_string(),
        below,
    })
}

/// What a delete did.
pub enum Deleted {
    /// Gone (with its children); the page to show next is `go_to`, its parent's.
    Done { go_to: String },
    /// Not deleted: the row changed after the person opened it; says by whom.
    Stale(String),
}

pub fn delete(
    conn: &mut DbConn,
    rights: Rights,
    table: TableId,
    id: &str,
    posted: Posted,
    actor: &str,
) -> Result<Deleted, EditError> {
    let def = &TABLES[table];
    let parent = rows::get(conn, table, id)?.and_then(|row| {
        def.parent()
            .and_then(|(fk, pt)| row.values[fk].clone().map(|pid| href(pt, &pid)))
    });
    match editing::delete(conn, rights, table, id, posted.version.unwrap_or(-1), actor) {
        Ok(_) => Ok(Deleted::Done {
            go_to: parent.unwrap_or_else(|| format!("/{}", def.name)),
        }),
        Err(EditError::Stale(row)) => Ok(Deleted::Stale(format!(
            "This {} was changed by {} at {} after you opened it, so it was not deleted. Look at it again first.",
            def.noun,
            row.changed_by.as_deref().unwrap_or("someone"),
            present::timestamp(row.last_updated)
        ))),
        Err(e) => Err(e),
    }
}
