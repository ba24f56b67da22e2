//! The main site: lists, record pages and forms for every synced table, generated from the
//! domain declaration. Online users may change every field; a save over a change made
//! meanwhile shows both values instead of overwriting.

use std::collections::{BTreeMap, HashMap};

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Html, Path, Query};
use askama::Template;

use super::auth::{Checked, Layout, Viewer};
use super::error::PageError;
use super::present::{self, field_label, row_label, table_title};
use super::{AppState, page_with_status, see_other};
use crate::db::repo::rows::{self, Filter, Row};
use crate::db::{DbConn, DbError};
use crate::domain::{FieldType, TABLES, TableId, table_by_name, value};
use crate::editing::{self, EditError, Mode, Rights};
use crate::offline::store as offline_store;

const PER_PAGE: i64 = 25;
/// Child rows shown on a record page before "see all".
const CHILDREN_SHOWN: i64 = 100;

fn table_of(name: &str) -> Result<TableId, PageError> {
    table_by_name(name).ok_or_else(PageError::not_found)
}

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
    fn has_sub(&self) -> bool {
        !self.sub.is_empty()
    }
}

fn href(table: TableId, id: &str) -> String {
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

#[derive(Template)]
#[template(path = "records.html")]
struct ListPage {
    layout: Layout,
    table: String,
    title: String,
    noun: String,
    columns: Vec<String>,
    rows: Vec<RowView>,
    q: String,
    page: i64,
    pages: i64,
    total: i64,
    can_create: bool,
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    page: Option<i64>,
}

/// `GET /{table}`: a searchable, paginated list.
pub async fn list(
    state: Data<AppState>,
    v: Viewer,
    path: Path<String>,
    query: Query<ListQuery>,
) -> Result<Html, PageError> {
    let v_rights = v.rights;
    let table = table_of(&path)?;
    let q = query.q.clone().unwrap_or_default();
    let page = super::present::page_number(query.page);
    let pool = state.pool.clone();
    let filter = Filter {
        search: Some(q.clone()).filter(|q| !q.trim().is_empty()),
        parent: None,
    };
    let (rows, total) = super::block(move || {
        let mut conn = pool.get()?;
        let total = rows::count(&mut conn, table, &filter)?;
        let list = rows::list(&mut conn, table, &filter, PER_PAGE, (page - 1) * PER_PAGE)?;
        let parents = parent_labels(&mut conn, table, &list)?;
        let views = list
            .iter()
            .map(|r| row_view(table, r, &parents, false))
            .collect::<Vec<_>>();
        Ok::<_, DbError>((views, total))
    })
    .await??;
    let def = &TABLES[table];
    let page = ListPage {
        layout: v.layout,
        table: def.name.to_owned(),
        title: table_title(table),
        noun: def.noun.to_owned(),
        columns: columns(table, false),
        rows,
        q,
        page,
        pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
        total,
        can_create: def.parent().is_none()
            && v_rights.mode() == Mode::Online
            && v_rights.may_create(def),
    };
    Ok(Html::new(page.render()?))
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

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    layout: Layout,
    crumbs: Vec<(String, String)>,
    noun: String,
    title: String,
    fields: Vec<(String, Cell)>,
    updated: String,
    changed_by: String,
    edit_href: String,
    delete_href: String,
    sections: Vec<Section>,
    can_edit: bool,
    can_delete: bool,
    /// Offline: local changes not yet synced, and fields the server did not take.
    pending: bool,
    not_taken: Vec<String>,
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

/// `GET /{table}/{id}`: a record with its parents above and its children below.
pub async fn show(
    state: Data<AppState>,
    v: Viewer,
    path: Path<(String, String)>,
) -> Result<Html, PageError> {
    let (name, id) = path.into_inner();
    let table = table_of(&name)?;
    let pool = state.pool.clone();
    let layout = v.layout;
    let rights = v.rights;
    let page = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        let row = rows::get(&mut conn, table, &id)?.ok_or_else(PageError::not_found)?;
        record_page(&mut conn, rights, layout, table, row)
    })
    .await??;
    Ok(Html::new(page.render()?))
}

fn record_page(
    conn: &mut DbConn,
    rights: Rights,
    layout: Layout,
    table: TableId,
    row: Row,
) -> Result<RecordPage, PageError> {
    let def = &TABLES[table];
    let parents = parent_labels(conn, table, std::slice::from_ref(&row))?;
    let view = row_view(table, &row, &parents, false);
    let fields = def
        .fields
        .iter()
        .map(|f| field_label(f.name))
        .zip(view.cells)
        .collect();
    let mut sections = Vec::new();
    for (child, fk) in def.children() {
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
        // One level further down, in one query: an asset's page shows each inspection's readings.
        let grandchild = TABLES[child].children().next();
        let (mut sub_title, mut sub_noun, mut sub_columns) =
            (String::new(), String::new(), Vec::new());
        if let Some((gc, gfk)) = grandchild {
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
        sections.push(Section {
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
        });
    }
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
    Ok(RecordPage {
        can_edit: rights.may_edit_any(def),
        can_delete: rights.may_delete(def),
        pending,
        not_taken,
        layout,
        crumbs: ancestors(conn, table, &row)?,
        noun: def.noun.to_owned(),
        title: row_label(table, &row.values),
        fields,
        updated: present::timestamp(row.last_updated),
        changed_by: row.changed_by.clone().unwrap_or_else(|| "unknown".into()),
        edit_href: format!("{}/edit", href(table, &row.id)),
        delete_href: format!("{}/delete", href(table, &row.id)),
        sections,
    })
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

#[derive(Template)]
#[template(path = "record_form.html")]
struct FormPage {
    layout: Layout,
    heading: String,
    noun: String,
    action: String,
    cancel: String,
    version: String,
    fields: Vec<FieldInput>,
    stale: Option<String>,
    invalid: bool,
    /// Why a field shown is not editable here.
    readonly_why: &'static str,
}

/// Why a field is shown but not editable, for the form.
fn readonly_why(rights: Rights) -> &'static str {
    match rights {
        Rights::Laptop => "Changed on the main site only.",
        _ => "Changed by the office only.",
    }
}

fn hint(table: TableId, index: usize) -> String {
    let f = &TABLES[table].fields[index];
    match f.ty {
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

/// An edit form's inputs: `values` shown, each remembered as the text it started from.
fn edit_inputs(
    table: TableId,
    values: &BTreeMap<String, String>,
    shown: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
    editable: impl Fn(&crate::domain::Field) -> bool,
) -> Vec<FieldInput> {
    let mut fields = inputs(table, values, errors, editable);
    for f in &mut fields {
        f.shown = Some(shown.get(&f.name).cloned().unwrap_or_default());
    }
    fields
}

/// The form's inputs; `editable` says which fields may be changed (all, except offline).
fn inputs(
    table: TableId,
    values: &BTreeMap<String, String>,
    errors: &BTreeMap<String, String>,
    editable: impl Fn(&crate::domain::Field) -> bool,
) -> Vec<FieldInput> {
    TABLES[table]
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
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
                hint: hint(table, i),
                error: errors.get(f.name).cloned().unwrap_or_default(),
                server: String::new(),
                readonly: !editable(f),
                shown: None,
            }
        })
        .collect()
}

#[derive(serde::Deserialize)]
pub struct NewQuery {
    parent: Option<String>,
}

/// `GET /{table}/new[?parent=ID]`.
pub async fn new_form(
    state: Data<AppState>,
    v: Viewer,
    path: Path<String>,
    query: Query<NewQuery>,
) -> Result<Html, PageError> {
    let table = table_of(&path)?;
    let def = &TABLES[table];
    if !v.rights.may_create(def) {
        return Err(forbidden(v.rights, def, "created"));
    }
    let pool = state.pool.clone();
    let parent = query.into_inner().parent;
    let (values, cancel) = super::block(move || {
        let mut conn = pool.get()?;
        let mut values = BTreeMap::new();
        let mut cancel = format!("/{}", def.name);
        if let (Some((fk, pt)), Some(pid)) = (def.parent(), parent) {
            values.insert(
                def.fields[fk].name.to_owned(),
                editing::parent_reference(&mut conn, pt, &pid)?,
            );
            cancel = href(pt, &pid);
        }
        Ok::<_, DbError>((values, cancel))
    })
    .await??;
    let page = FormPage {
        readonly_why: readonly_why(v.rights),
        layout: v.layout,
        heading: format!("New {}", def.noun),
        noun: def.noun.to_owned(),
        action: format!("/{}/new", def.name),
        cancel,
        version: String::new(),
        fields: inputs(table, &values, &BTreeMap::new(), |_| true),
        stale: None,
        invalid: false,
    };
    Ok(Html::new(page.render()?))
}

/// The `was.NAME` texts a posted edit form carried, by field name.
fn shown_of(posted: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    posted
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("was.")?.to_owned(), v.clone())))
        .collect()
}

fn posted(pairs: Vec<(String, String)>) -> (BTreeMap<String, String>, Option<String>, Option<i64>) {
    let mut values = BTreeMap::new();
    let (mut csrf, mut version) = (None, None);
    for (k, v) in pairs {
        match k.as_str() {
            "csrf" => csrf = Some(v),
            "version" => version = v.parse().ok(),
            _ => {
                values.insert(k, v);
            }
        }
    }
    (values, csrf, version)
}

/// `POST /{table}/new`.
pub async fn create(
    state: Data<AppState>,
    v: Viewer,
    path: Path<String>,
    Checked(form): Checked<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let table = table_of(&path)?;
    let (values, _, _) = posted(form);
    let pool = state.pool.clone();
    let actor = v.user.name.clone();
    let rights = v.rights;
    let input = values.clone();
    let outcome = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        editing::create(&mut conn, rights, table, &input, &actor)
    })
    .await?;
    let def = &TABLES[table];
    match outcome {
        Ok(id) => {
            changed_here(&state);
            Ok(see_other(&href(table, &id)))
        }
        Err(EditError::Invalid(errors)) => {
            let page = FormPage {
                readonly_why: readonly_why(v.rights),
                layout: v.layout,
                heading: format!("New {}", def.noun),
                noun: def.noun.to_owned(),
                action: format!("/{}/new", def.name),
                cancel: format!("/{}", def.name),
                version: String::new(),
                fields: inputs(table, &values, &errors, |_| true),
                stale: None,
                invalid: true,
            };
            Ok(page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                page.render()?,
            ))
        }
        Err(e) => Err(edit_error(e)),
    }
}

/// On a laptop, a change was made: its background syncer takes it up soon.
fn changed_here(state: &AppState) {
    if let Some(app) = state.laptop() {
        app.changed();
    }
}

fn forbidden(rights: Rights, table: &crate::domain::Table, what: &str) -> PageError {
    let message = match rights {
        Rights::Laptop => format!(
            "On a laptop, {} are not {what}: that is done on the main site.",
            table.name
        ),
        _ => format!("You may not do this: {}.", rights.refusal(table, what)),
    };
    PageError::new(StatusCode::FORBIDDEN, message)
}

fn edit_error(e: EditError) -> PageError {
    match e {
        EditError::NotFound => PageError::not_found(),
        EditError::Forbidden(m) => PageError::new(StatusCode::FORBIDDEN, m),
        EditError::Db(db) => db.into(),
        other => PageError::internal(other),
    }
}

/// `GET /{table}/{id}/edit`.
pub async fn edit_form(
    state: Data<AppState>,
    v: Viewer,
    path: Path<(String, String)>,
) -> Result<Html, PageError> {
    let (name, id) = path.into_inner();
    let table = table_of(&name)?;
    let pool = state.pool.clone();
    let (row, values) = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        let row = rows::get(&mut conn, table, &id)?.ok_or_else(PageError::not_found)?;
        let values = editing::form_values_of(&mut conn, table, &row.values)?;
        Ok::<_, PageError>((row, values))
    })
    .await??;
    let def = &TABLES[table];
    let rights = v.rights;
    let editable = |f: &crate::domain::Field| rights.may_edit(f);
    let page = FormPage {
        readonly_why: readonly_why(v.rights),
        layout: v.layout,
        heading: format!("Edit {} {}", def.noun, row_label(table, &row.values)),
        noun: def.noun.to_owned(),
        action: format!("{}/edit", href(table, &row.id)),
        cancel: href(table, &row.id),
        version: row.last_updated.to_string(),
        fields: edit_inputs(table, &values, &values, &BTreeMap::new(), editable),
        stale: None,
        invalid: false,
    };
    Ok(Html::new(page.render()?))
}

/// `POST /{table}/{id}/edit`.
pub async fn update(
    state: Data<AppState>,
    v: Viewer,
    path: Path<(String, String)>,
    Checked(form): Checked<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (name, id) = path.into_inner();
    let table = table_of(&name)?;
    let (values, _, version) = posted(form);
    let pool = state.pool.clone();
    let actor = v.user.name.clone();
    let rights = v.rights;
    let input = values.clone();
    let row_id = id.clone();
    let outcome = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        let result = editing::update(
            &mut conn,
            rights,
            table,
            &row_id,
            version.unwrap_or(-1),
            &input,
            &actor,
        );
        // For a stale form: the server's values in form shape, to show beside the user's.
        let server = match &result {
            Err(EditError::Stale(row)) => {
                Some(editing::form_values_of(&mut conn, table, &row.values)?)
            }
            _ => None,
        };
        Ok::<_, DbError>((result, server))
    })
    .await??;
    let def = &TABLES[table];
    let editable = |f: &crate::domain::Field| rights.may_edit(f);
    let page = |fields, version: String, stale, invalid| FormPage {
        readonly_why: readonly_why(v.rights),
        layout: v.layout,
        heading: format!("Edit {}", def.noun),
        noun: def.noun.to_owned(),
        action: format!("{}/edit", href(table, &id)),
        cancel: href(table, &id),
        version,
        fields,
        stale,
        invalid,
    };
    match outcome {
        (Ok(()), _) => {
            changed_here(&state);
            Ok(see_other(&href(table, &id)))
        }
        (Err(EditError::Invalid(errors)), _) => {
            let shown = shown_of(&values);
            let p = page(
                edit_inputs(table, &values, &shown, &errors, editable),
                version.map(|v| v.to_string()).unwrap_or_default(),
                None,
                true,
            );
            Ok(page_with_status(
                StatusCode::UNPROCESSABLE_ENTITY,
                p.render()?,
            ))
        }
        (Err(EditError::Stale(row)), Some(server)) => {
            // Fields the person did not touch now show the server's value; touched ones keep
            // theirs, with the server's beside them where it differs. Every field starts from
            // the server's value now, so that saving again writes only what was touched.
            let before = shown_of(&values);
            let mut shown_values = values.clone();
            for f in TABLES[table].fields {
                let untouched = values.get(f.name).map(|v| value::normalize(f, v))
                    == before.get(f.name).map(|v| value::normalize(f, v));
                if untouched || !values.contains_key(f.name) {
                    let now = server.get(f.name).cloned().unwrap_or_default();
                    shown_values.insert(f.name.to_owned(), now);
                }
            }
            let mut fields = edit_inputs(table, &shown_values, &server, &BTreeMap::new(), editable);
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
            let message = format!(
                "This {} was changed by {} at {} while you were editing. Your values are kept below, \
                 with the values now on the server beside each field that differs. Save again to keep yours.",
                def.noun,
                row.changed_by.as_deref().unwrap_or("someone"),
                present::timestamp(row.last_updated)
            );
            let p = page(fields, row.last_updated.to_string(), Some(message), false);
            Ok(page_with_status(StatusCode::CONFLICT, p.render()?))
        }
        (Err(e), _) => Err(edit_error(e)),
    }
}

#[derive(Template)]
#[template(path = "confirm_delete.html")]
struct DeletePage {
    layout: Layout,
    noun: String,
    title: String,
    action: String,
    cancel: String,
    version: String,
    below: Vec<String>,
}

/// `GET /{table}/{id}/delete`: asks first (and says what goes with it).
pub async fn delete_form(
    state: Data<AppState>,
    v: Viewer,
    path: Path<(String, String)>,
) -> Result<Html, PageError> {
    let (name, id) = path.into_inner();
    let table = table_of(&name)?;
    if !v.rights.may_delete(&TABLES[table]) {
        return Err(forbidden(v.rights, &TABLES[table], "deleted"));
    }
    let pool = state.pool.clone();
    let (row, below) = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        let row = rows::get(&mut conn, table, &id)?.ok_or_else(PageError::not_found)?;
        let mut below = Vec::new();
        for (child, fk) in TABLES[table].children() {
            let n = rows::count(
                &mut conn,
                child,
                &Filter {
                    search: None,
                    parent: Some((fk, row.id.clone())),
                },
            )?;
            if n > 0 {
                below.push(format!(
                    "{n} {} (and everything under them)",
                    TABLES[child].name
                ));
            }
        }
        Ok::<_, PageError>((row, below))
    })
    .await??;
    let def = &TABLES[table];
    let page = DeletePage {
        layout: v.layout,
        noun: def.noun.to_owned(),
        title: row_label(table, &row.values),
        action: format!("{}/delete", href(table, &row.id)),
        cancel: href(table, &row.id),
        version: row.last_updated.to_string(),
        below,
    };
    Ok(Html::new(page.render()?))
}

/// `POST /{table}/{id}/delete`.
pub async fn delete(
    state: Data<AppState>,
    v: Viewer,
    path: Path<(String, String)>,
    Checked(form): Checked<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let (name, id) = path.into_inner();
    let table = table_of(&name)?;
    let (_, _, version) = posted(form);
    let pool = state.pool.clone();
    let actor = v.user.name.clone();
    let rights = v.rights;
    let (outcome, parent) = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        let parent = rows::get(&mut conn, table, &id)?.and_then(|row| {
            TABLES[table]
                .parent()
                .and_then(|(fk, pt)| row.values[fk].clone().map(|pid| href(pt, &pid)))
        });
        let outcome = editing::delete(&mut conn, rights, table, &id, version.unwrap_or(-1), &actor);
        Ok::<_, DbError>((outcome, parent))
    })
    .await??;
    match outcome {
        Ok(_) => {
            changed_here(&state);
            Ok(see_other(
                &parent.unwrap_or_else(|| format!("/{}", TABLES[table].name)),
            ))
        }
        Err(EditError::Stale(row)) => Err(PageError::new(
            StatusCode::CONFLICT,
            format!(
                "This {} was changed by {} at {} after you opened it, so it was not deleted. Look at it again first.",
                TABLES[table].noun,
                row.changed_by.as_deref().unwrap_or("someone"),
                present::timestamp(row.last_updated)
            ),
        )),
        Err(e) => Err(edit_error(e)),
    }
}
