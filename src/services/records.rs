//! The record pages' work, for every synced table from the domain declaration: a list, a
//! record with its parents above and its children below, the forms, and a create, save or
//! delete. Each is one call that takes a connection and returns what its page shows; the
//! writes go through [`crate::editing`], which owns their transactions.

use std::collections::{BTreeMap, HashMap};

use chrono_tz::Tz;

use super::present::{self, field_label, row_label, table_title};
use crate::db::repo::rows::{self, Filter, Row};
use crate::db::{DbConn, DbError};
use crate::domain::{Field, FieldType, TABLES, Table, TableId, table_by_name, time, value};
use crate::editing::{self, EditError, Mode, Rights};
use crate::offline::store as offline_store;

pub const PER_PAGE: i64 = 25;
/// Child rows shown on a record page before "see all".
const CHILDREN_SHOWN: i64 = 100;

/// The person at the pages, as the record pages need them.
#[derive(Debug, Clone)]
pub struct Who {
    pub rights: Rights,
    /// Date-times are shown and read in this zone (the browser's, else the setting).
    pub zone: Tz,
    /// Who the changes are by (the user's name; "this laptop" on a laptop).
    pub name: String,
    /// The engineer a new inspection is by, when known (on a laptop: who connected it).
    pub engineer: Option<String>,
}

/// One cell: text, and a link when it names another record.
pub struct Cell {
    pub text: String,
    pub href: String,
    /// Shown on hover: a date-time in UTC.
    pub title: String,
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
    zone: Tz,
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
                title: String::new(),
            },
            (FieldType::Timestamp, Some(t)) => Cell {
                text: present::instant_in(t, zone).unwrap_or_else(|| present::value(f.ty, Some(t))),
                href: String::new(),
                title: present::value(f.ty, Some(t)),
            },
            _ => Cell {
                text: present::value(f.ty, v.as_deref()),
                href: String::new(),
                title: String::new(),
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
    who: &Who,
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
            .map(|r| row_view(table, r, &parents, false, who.zone))
            .collect(),
        q,
        page,
        pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
        total,
        can_create: def.parent().is_none()
            && who.rights.mode() == Mode::Online
            && who.rights.may_create(def),
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
    /// Offline: the record's open conflicts on the main site, in words, with their ids.
    pub open_conflicts: Vec<(String, String)>,
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
    who: &Who,
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
        .map(|k| row_view(child, k, &HashMap::new(), true, who.zone))
        .collect();
    // One level further down: an asset's page shows each inspection's readings.
    let (mut sub_title, mut sub_noun, mut sub_columns) = (String::new(), String::new(), Vec::new());
    if let Some((gc, gfk)) = TABLES[child].children().next() {
        let ids: Vec<String> = kids.iter().map(|k| k.id.clone()).collect();
        let mut by_parent: HashMap<String, Vec<RowView>> = HashMap::new();
        for g in rows::under_parents(conn, gc, &ids)? {
            let parent = g.values[gfk].clone().unwrap_or_default();
            by_parent.entry(parent).or_default().push(row_view(
                gc,
                &g,
                &HashMap::new(),
                true,
                who.zone,
            ));
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
        can_create: who.rights.may_create(&TABLES[child]),
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
    who: &Who,
    table: TableId,
    id: &str,
) -> Result<Option<RecordView>, DbError> {
    let rights = who.rights;
    let Some(row) = rows::get(conn, table, id)? else {
        return Ok(None);
    };
    let def = &TABLES[table];
    let parents = parent_labels(conn, table, std::slice::from_ref(&row))?;
    let view = row_view(table, &row, &parents, false, who.zone);
    let fields = def
        .fields
        .iter()
        .map(|f| field_label(f.name))
        .zip(view.cells)
        .collect();
    let sections = def
        .children()
        .map(|(child, fk)| section(conn, who, &row, child, fk))
        .collect::<Result<Vec<_>, _>>()?;
    let (pending, not_taken, open_conflicts) = match rights.mode() {
        Mode::Online => (false, Vec::new(), Vec::new()),
        Mode::Offline => {
            let pending = offline_store::changes_of(conn, table, std::slice::from_ref(&row.id))?
                .contains_key(&row.id);
            let not_taken = offline_store::conflicts(conn)?
                .into_iter()
                .filter(|c| c.table_name == def.name && c.row_id == row.id)
                .map(|c| field_label(&c.field))
                .collect();
            let open = offline_store::open_conflicts(conn, Some((def.name, &row.id)))?
                .into_iter()
                .map(|c| (super::laptop::sentence(&c, def.noun), c.id))
                .collect();
            (pending, not_taken, open)
        }
    };
    Ok(Some(RecordView {
        can_edit: rights.may_edit_any(def),
        can_delete: rights.may_delete(def),
        pending,
        not_taken,
        open_conflicts,
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
    /// "text", "textarea", "select" or "datetime-local".
    pub kind: &'static str,
    /// A select's choices: (the value posted, what the person reads).
    pub options: Vec<(String, String)>,
    /// A select that starts at "Choose…" until something is chosen (a parent; a set of
    /// words starts at its first).
    pub choose: bool,
    pub value: String,
    /// What a read-only field shows: a parent's name, a date-time in the person's zone.
    pub display: String,
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
    /// The zone the form's date-times are in (posted back as `tz`).
    pub zone: String,
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

fn hint(field: &Field, zone: Tz) -> String {
    match field.ty {
        FieldType::Timestamp => format!("In your time ({zone}); kept as UTC."),
        FieldType::Decimal => "A number such as 4.25".into(),
        _ => String::new(),
    }
}

/// How many parents a form offers to choose from (the latest first).
const PARENT_CHOICES: i64 = 500;

/// The rows of `parent` a form offers, as (reference, name): "P-001 · 2026-11-19 09:00
/// · Jo Bloggs" for an inspection (its asset, then its own label), a site's code for an
/// asset. `current` (the reference the form holds) is always among them.
fn parent_choices(
    conn: &mut DbConn,
    parent: TableId,
    current: &str,
) -> Result<Vec<(String, String)>, DbError> {
    let filter = Filter {
        search: None,
        parent: None,
    };
    let rows = rows::list(conn, parent, &filter, PARENT_CHOICES, 0)?;
    let above = parent_labels(conn, parent, &rows)?;
    let def = &TABLES[parent];
    let mut out: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            let reference = def
                .natural_key_index()
                .and_then(|k| r.values[k].clone())
                .unwrap_or_else(|| r.id.clone());
            let own = row_label(parent, &r.values);
            let name = match def.parent().and_then(|(fk, _)| r.values[fk].as_ref()) {
                Some(pid) => match above.get(pid) {
                    Some(p) => format!("{p} · {own}"),
                    None => own,
                },
                None => own,
            };
            (reference, name)
        })
        .collect();
    if !current.is_empty() && !out.iter().any(|(r, _)| r == current) {
        out.insert(0, parent_named(conn, parent, current)?);
    }
    Ok(out)
}

/// The parent a form holds, as (reference, name): a natural key names itself, an id is
/// looked up.
fn parent_named(
    conn: &mut DbConn,
    parent: TableId,
    reference: &str,
) -> Result<(String, String), DbError> {
    let name = match rows::get(conn, parent, reference)? {
        Some(r) => row_label(parent, &r.values),
        None => reference.to_owned(),
    };
    Ok((reference.to_owned(), name))
}

/// The form's inputs; `editable` says which fields may be changed. Date-times are shown in
/// the person's zone; a parent is a choice of names.
fn inputs(
    conn: &mut DbConn,
    who: &Who,
    table: TableId,
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
    editable: impl Fn(&Field) -> bool,
) -> Result<Vec<FieldInput>, DbError> {
    let mut out = Vec::new();
    for f in TABLES[table].fields {
        let raw = values.get(f.name).cloned().unwrap_or_default();
        let (kind, options, value, display) = match f.ty {
            FieldType::Enum(words) => (
                "select",
                words
                    .iter()
                    .map(|w| ((*w).to_owned(), (*w).to_owned()))
                    .collect(),
                raw.clone(),
                raw,
            ),
            FieldType::Timestamp => {
                let local = present::local_input(&raw, who.zone).unwrap_or(raw.clone());
                let display = present::instant_in(&raw, who.zone).unwrap_or(raw);
                ("datetime-local", Vec::new(), local, display)
            }
            FieldType::Parent(p) => {
                let pt = table_by_name(p).unwrap_or_default();
                // A parent shown read-only needs its own name only, not the list.
                let options = match (editable(f), raw.is_empty()) {
                    (true, _) => parent_choices(conn, pt, &raw)?,
                    (false, true) => Vec::new(),
                    (false, false) => vec![parent_named(conn, pt, &raw)?],
                };
                let display = options
                    .iter()
                    .find(|(r, _)| *r == raw)
                    .map_or_else(|| raw.clone(), |(_, name)| name.clone());
                ("select", options, raw, display)
            }
            FieldType::Text if present::is_multiline(f.name) => {
                ("textarea", Vec::new(), raw.clone(), raw)
            }
            _ => ("text", Vec::new(), raw.clone(), raw),
        };
        out.push(FieldInput {
            name: f.name.to_owned(),
            label: field_label(f.name),
            kind,
            options,
            value,
            display,
            required: !f.nullable,
            choose: matches!(f.ty, FieldType::Parent(_)),
            hint: hint(f, who.zone),
            error: errors.get(f.name).cloned().unwrap_or_default(),
            server: String::new(),
            readonly: !editable(f),
            shown: None,
        });
    }
    Ok(out)
}

/// An edit form's inputs: `values` shown, each remembered as the text it started from (in
/// the form's own terms: a date-time in the person's zone).
fn edit_inputs(
    conn: &mut DbConn,
    who: &Who,
    table: TableId,
    values: &BTreeMap<String, String>,
    shown: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
) -> Result<Vec<FieldInput>, DbError> {
    let rights = who.rights;
    let mut fields = inputs(conn, who, table, values, errors, |f| rights.may_edit(f))?;
    for (input, f) in fields.iter_mut().zip(TABLES[table].fields) {
        let was = shown.get(f.name).cloned().unwrap_or_default();
        input.shown = Some(match f.ty {
            FieldType::Timestamp => present::local_input(&was, who.zone).unwrap_or(was),
            _ => was,
        });
    }
    Ok(fields)
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
/// was made from; the CSRF token was checked on the way in. Date-times come in the zone
/// the form was made in (its `tz`) and are kept as UTC from here on.
pub struct Posted {
    values: BTreeMap<String, String>,
    version: Option<i64>,
}

impl Posted {
    pub fn new(table: TableId, pairs: Vec<(String, String)>, zone: Tz) -> Posted {
        let zone = pairs
            .iter()
            .find(|(k, _)| k == "tz")
            .and_then(|(_, v)| v.parse::<Tz>().ok())
            .unwrap_or(zone);
        let mut values = BTreeMap::new();
        let mut version = None;
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" | "tz" => {}
                "version" => version = v.parse().ok(),
                _ => {
                    let name = k.strip_prefix("was.").unwrap_or(&k);
                    let instant = TABLES[table]
                        .field_index(name)
                        .is_some_and(|i| TABLES[table].fields[i].ty == FieldType::Timestamp);
                    let v = match instant {
                        true => present::from_local_input(&v, zone),
                        false => v,
                    };
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

fn form_view(
    who: &Who,
    table: TableId,
    heading: String,
    action: String,
    cancel: String,
    fields: Vec<FieldInput>,
) -> FormView {
    FormView {
        readonly_why: readonly_why(who.rights),
        heading,
        noun: TABLES[table].noun.to_owned(),
        action,
        cancel,
        version: String::new(),
        fields,
        stale: None,
        invalid: false,
        zone: who.zone.name().to_owned(),
    }
}

fn new_form_view(
    conn: &mut DbConn,
    who: &Who,
    table: TableId,
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
    cancel: String,
) -> Result<FormView, DbError> {
    let def = &TABLES[table];
    let fields = inputs(conn, who, table, values, errors, |_| true)?;
    let mut view = form_view(
        who,
        table,
        format!("New {}", def.noun),
        format!("/{}/new", def.name),
        cancel,
        fields,
    );
    view.invalid = !errors.is_empty();
    Ok(view)
}

/// The form for a new row, under `parent` when one is given. A date-time starts at now,
/// an inspector as the engineer at the pages.
pub fn new_form(
    conn: &mut DbConn,
    who: &Who,
    table: TableId,
    parent: Option<&str>,
) -> Result<FormView, EditError> {
    let def = &TABLES[table];
    if !who.rights.may_create(def) {
        return Err(forbidden(who.rights, def, "created"));
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
    for f in def.fields {
        match (f.ty, f.name) {
            // Now, to the minute: what a person would pick.
            (FieldType::Timestamp, _) => {
                let now = time::now();
                values.insert(f.name.to_owned(), time::format(now - now % 60_000_000));
            }
            // The one field that names a person: the engineer making the inspection.
            (FieldType::Text, "inspector") => {
                if let Some(name) = &who.engineer {
                    values.insert(f.name.to_owned(), name.clone());
                }
            }
            _ => {}
        }
    }
    Ok(new_form_view(
        conn,
        who,
        table,
        &values,
        &BTreeMap::new(),
        cancel,
    )?)
}

pub fn create(
    conn: &mut DbConn,
    who: &Who,
    table: TableId,
    posted: Posted,
) -> Result<Saved, EditError> {
    match editing::create(conn, who.rights, table, &posted.values, &who.name) {
        Ok(id) => Ok(Saved::Done {
            go_to: href(table, &id),
        }),
        Err(EditError::Invalid(errors)) => Ok(Saved::Invalid(new_form_view(
            conn,
            who,
            table,
            &posted.values,
            &errors,
            format!("/{}", TABLES[table].name),
        )?)),
        Err(e) => Err(e),
    }
}

fn edit_view(
    who: &Who,
    table: TableId,
    id: &str,
    heading: String,
    version: String,
    fields: Vec<FieldInput>,
) -> FormView {
    let mut view = form_view(
        who,
        table,
        heading,
        format!("{}/edit", href(table, id)),
        href(table, id),
        fields,
    );
    view.version = version;
    view
}

/// The form to edit row `id`, each field starting from its value now.
pub fn edit_form(
    conn: &mut DbConn,
    who: &Who,
    table: TableId,
    id: &str,
) -> Result<FormView, EditError> {
    let row = rows::get(conn, table, id)?.ok_or(EditError::NotFound)?;
    let values = editing::form_values_of(conn, table, &row.values)?;
    let fields = edit_inputs(conn, who, table, &values, &values, &BTreeMap::new())?;
    Ok(edit_view(
        who,
        table,
        id,
        format!(
            "Edit {} {}",
            TABLES[table].noun,
            row_label(table, &row.values)
        ),
        row.last_updated.to_string(),
        fields,
    ))
}

/// Saves the fields of row `id` that the person touched.
pub fn update(
    conn: &mut DbConn,
    who: &Who,
    table: TableId,
    id: &str,
    posted: Posted,
) -> Result<Saved, EditError> {
    let version = posted.version.unwrap_or(-1);
    let heading = format!("Edit {}", TABLES[table].noun);
    match editing::update(
        conn,
        who.rights,
        table,
        id,
        version,
        &posted.values,
        &who.name,
    ) {
        Ok(()) => Ok(Saved::Done {
            go_to: href(table, id),
        }),
        Err(EditError::Invalid(errors)) => {
            let fields = edit_inputs(conn, who, table, &posted.values, &posted.shown(), &errors)?;
            let shown_version = posted.version.map(|v| v.to_string()).unwrap_or_default();
            let mut view = edit_view(who, table, id, heading, shown_version, fields);
            view.invalid = true;
            Ok(Saved::Invalid(view))
        }
        Err(EditError::Stale(row)) => {
            let server = editing::form_values_of(conn, table, &row.values)?;
            let fields = stale_inputs(conn, who, table, &posted, &server)?;
            let mut view = edit_view(
                who,
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
    conn: &mut DbConn,
    who: &Who,
    table: TableId,
    posted: &Posted,
    server: &BTreeMap<String, String>,
) -> Result<Vec<FieldInput>, DbError> {
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
    let mut fields = edit_inputs(conn, who, table, &shown_values, server, &BTreeMap::new())?;
    for (input, f) in fields.iter_mut().zip(TABLES[table].fields) {
        let now = server.get(f.name).cloned().unwrap_or_default();
        let differs = !value::same(
            f.ty,
            Some(now.as_str()),
            shown_values.get(f.name).map(String::as_str),
        );
        if differs {
            input.server = match (now.is_empty(), f.ty) {
                (true, _) => "(empty)".into(),
                (false, FieldType::Timestamp) => present::instant_in(&now, who.zone).unwrap_or(now),
                (false, _) => now,
            };
        }
    }
    Ok(fields)
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
    who: &Who,
    table: TableId,
    id: &str,
) -> Result<DeleteView, EditError> {
    let def = &TABLES[table];
    if !who.rights.may_delete(def) {
        return Err(forbidden(who.rights, def, "deleted"));
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
    who: &Who,
    table: TableId,
    id: &str,
    version: Option<i64>,
) -> Result<Deleted, EditError> {
    let def = &TABLES[table];
    let parent = rows::get(conn, table, id)?.and_then(|row| {
        def.parent()
            .and_then(|(fk, pt)| row.values[fk].clone().map(|pid| href(pt, &pid)))
    });
    match editing::delete(
        conn,
        who.rights,
        table,
        id,
        version.unwrap_or(-1),
        &who.name,
    ) {
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
