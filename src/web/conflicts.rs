//! The conflict pages (PROTOCOL.md §5): the list with filters and bulk resolution, one
//! conflict side by side with its form, and the resolution history.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Form, Html, Path, Query};
use askama::Template;

use super::auth::{Layout, Viewer, check_csrf};
use super::error::PageError;
use crate::services::present::{field_label, row_label, timestamp};
use super::{AppState, page_with_status, see_other};
use crate::db::repo::accounts::{self, device_labels};
use crate::db::repo::conflicts::{
    self, Conflict, ConflictField, ConflictKind, ConflictStatus, Scope,
};
use crate::db::repo::{rows, sessions};
use crate::db::{DbConn, DbError};
use crate::domain::{TABLES, Values, table_by_name};
use crate::sync::resolve::{self, Choice, Outcome, Resolution, ResolveError};

const PER_PAGE: i64 = 50;

fn describe_kind(k: ConflictKind) -> &'static str {
    match k {
        ConflictKind::Delete => "deleted offline, changed on the server",
        ConflictKind::EditDeleted => "changed offline, deleted on the server",
        ConflictKind::Duplicate => "created on a laptop, already on the server",
        ConflictKind::ParentDeleted => "created offline under a record deleted on the server",
        ConflictKind::Fields => "changed on both sides",
    }
}

/// (table, row id) → (the row's name, its parent's name).
type RecordNames = HashMap<(String, String), (String, String)>;

/// How a conflict's row is named, with its parent for context: ("asset P-001", "site NPS").
/// Deleted rows are named from their tombstone. A few queries for a whole page.
fn record_names(conn: &mut DbConn, items: &[Conflict]) -> Result<RecordNames, DbError> {
    let mut by_table: HashMap<usize, Vec<String>> = HashMap::new();
    for c in items {
        if let Some(t) = table_by_name(&c.table_name) {
            by_table.entry(t).or_default().push(c.row_id.clone());
        }
    }
    let mut out = HashMap::new();
    for (t, ids) in by_table {
        let def = &TABLES[t];
        let mut values: HashMap<String, Values> = rows::by_ids(conn, t, &ids, false)?
            .into_iter()
            .map(|(id, r)| (id, r.values))
            .collect();
        let gone: Vec<String> = ids
            .iter()
            .filter(|i| !values.contains_key(*i))
            .cloned()
            .collect();
        for (id, tomb) in rows::tombstones(conn, t, &gone)? {
            if let Some(v) = tomb.values {
                values.insert(id, v);
            }
        }
        // A create held in its conflict is on the server nowhere: named by what it holds.
        let held: Vec<&Conflict> = items
            .iter()
            .filter(|c| c.table_name == def.name && !values.contains_key(&c.row_id))
            .collect();
        let ids: Vec<String> = held.iter().map(|c| c.id.clone()).collect();
        let mut held_fields = conflicts::fields_of(conn, &ids)?;
        for c in held {
            let mut v: Values = vec![None; def.fields.len()];
            for f in held_fields.remove(&c.id).unwrap_or_default() {
                if let Some(i) = def.field_index(&f.field) {
                    v[i] = f.offline_value;
                }
            }
            values.insert(c.row_id.clone(), v);
        }
        let parents: HashMap<String, String> = match def.parent() {
            Some((fk, pt)) => {
                let pids: Vec<String> = values.values().filter_map(|v| v[fk].clone()).collect();
                parent_names(conn, pt, &pids)?
            }
            None => HashMap::new(),
        };
        for (id, v) in values {
            let context = def
                .parent()
                .and_then(|(fk, _)| v[fk].as_ref())
                .and_then(|p| parents.get(p).cloned())
                .unwrap_or_default();
            out.insert(
                (def.name.to_owned(), id),
                (format!("{} {}", def.noun, row_label(t, &v)), context),
            );
        }
    }
    Ok(out)
}

/// Rows of `table` by id, named for a person ("inspection 2026-11-21 · Jo"), deleted ones
/// too ("… (deleted)").
fn parent_names(
    conn: &mut DbConn,
    table: usize,
    ids: &[String],
) -> Result<HashMap<String, String>, DbError> {
    let noun = TABLES[table].noun;
    let mut out: HashMap<String, String> = rows::by_ids(conn, table, ids, false)?
        .into_iter()
        .map(|(id, r)| (id, format!("{noun} {}", row_label(table, &r.values))))
        .collect();
    let gone: Vec<String> = ids
        .iter()
        .filter(|i| !out.contains_key(*i))
        .cloned()
        .collect();
    for (id, t) in rows::tombstones(conn, table, &gone)? {
        if let Some(v) = t.values {
            out.insert(id, format!("{noun} {} (deleted)", row_label(table, &v)));
        }
    }
    Ok(out)
}

fn name_of(names: &RecordNames, c: &Conflict) -> (String, String) {
    names
        .get(&(c.table_name.clone(), c.row_id.clone()))
        .cloned()
        .unwrap_or_else(|| (format!("{} {}", c.table_name, c.row_id), String::new()))
}

/// One line of the list.
struct ListItem {
    id: String,
    record: String,
    context: String,
    what: String,
    fields: String,
    device: String,
    when: String,
}

#[derive(Template)]
#[template(path = "conflicts.html")]
struct ListPage {
    layout: Layout,
    items: Vec<ListItem>,
    page: i64,
    pages: i64,
    total: i64,
    tables: Vec<String>,
    devices: Vec<(String, String)>,
    table: String,
    device: String,
    query: String,
    notice: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    page: Option<i64>,
    table: Option<String>,
    device: Option<String>,
    resolved: Option<u32>,
    skipped: Option<u32>,
}

fn user_scope(v: &Viewer) -> Option<String> {
    if v.user.is_admin {
        None
    } else {
        Some(v.user.id.clone())
    }
}

/// `GET /conflicts`.
pub async fn list(
    state: Data<AppState>,
    v: Viewer,
    query: Query<ListQuery>,
) -> Result<Html, PageError> {
    let q = query.into_inner();
    let page = crate::services::present::page_number(q.page);
    let table = q
        .table
        .filter(|t| table_by_name(t).is_some())
        .unwrap_or_default();
    let device = q.device.unwrap_or_default();
    let notice = match (q.resolved, q.skipped) {
        (Some(n), Some(0) | None) => Some(format!("{n} resolved.")),
        (Some(n), Some(m)) => Some(format!(
            "{n} resolved; {m} could not be resolved this way — open them to see why."
        )),
        _ => None,
    };
    let pool = state.pool.clone();
    let user = user_scope(&v);
    let (t, d) = (table.clone(), device.clone());
    let (items, total, devices) = super::block(move || {
        let mut conn = pool.get()?;
        let within = Scope {
            user_id: user.as_deref(),
            table: Some(t.as_str()).filter(|t| !t.is_empty()),
            device_id: Some(d.as_str()).filter(|d| !d.is_empty()),
        };
        let total = conflicts::count_in(&mut conn, &within, ConflictStatus::Open)?;
        let list = conflicts::list(
            &mut conn,
            &within,
            ConflictStatus::Open,
            PER_PAGE,
            (page - 1) * PER_PAGE,
        )?;
        let names = record_names(&mut conn, &list)?;
        let ids: Vec<String> = list.iter().map(|c| c.id.clone()).collect();
        let mut fields = conflicts::field_names_of(&mut conn, &ids)?;
        let device_ids: Vec<String> = list.iter().map(|c| c.device_id.clone()).collect();
        let device_names = device_labels(&mut conn, &device_ids)?;
        let devices = accounts::list_devices(&mut conn, user.as_deref())?
            .into_iter()
            .map(|d| {
                (
                    d.id,
                    if user.is_some() {
                        d.label
                    } else {
                        format!("{} ({})", d.label, d.owner)
                    },
                )
            })
            .collect::<Vec<_>>();
        let items = list
            .into_iter()
            .map(|c| {
                let (record, context) = name_of(&names, &c);
                ListItem {
                    fields: fields.remove(&c.id).unwrap_or_default().join(", "),
                    what: describe_kind(c.conflict_kind()).to_owned(),
                    device: device_names.get(&c.device_id).cloned().unwrap_or_default(),
                    when: timestamp(c.updated_at),
                    id: c.id,
                    record,
                    context,
                }
            })
            .collect::<Vec<_>>();
        Ok::<_, DbError>((items, total, devices))
    })
    .await??;
    let mut query = String::new();
    if !table.is_empty() {
        query.push_str(&format!("&table={table}"));
    }
    if !device.is_empty() {
        query.push_str(&format!(
            "&device={}",
            device.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "")
        ));
    }
    let page = ListPage {
        layout: v.layout,
        items,
        page,
        pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
        total,
        tables: TABLES.iter().map(|t| t.name.to_owned()).collect(),
        devices,
        table,
        device,
        query,
        notice,
    };
    Ok(Html::new(page.render()?))
}

/// One field side by side.
struct FieldView {
    name: String,
    /// The field as a person reads it ("Inspection", "Access notes").
    label: String,
    base: String,
    base_known: bool,
    /// The server's value now differs from the base (what changed since the laptop saw it).
    changed: bool,
    server: String,
    offline: String,
    chosen: String,
}

#[derive(Template)]
#[template(path = "conflict.html")]
struct ConflictPage {
    layout: Layout,
    id: String,
    table: String,
    noun: String,
    key_name: String,
    row_id: String,
    title: String,
    context: String,
    what: String,
    kind: String,
    device: String,
    owner: String,
    row_choice: bool,
    /// What happened to the record since the conflict was recorded, when that matters.
    state_note: String,
    /// Where the server's side stands, in one line ("Last changed by … at …").
    server_line: String,
    /// Whether any field has a base to show (a create has none).
    show_base: bool,
    row_server: String,
    row_offline: String,
    base: String,
    offline_updated: String,
    offline_corrected: String,
    client_id: String,
    version: String,
    record_href: String,
    fields: Vec<FieldView>,
    message: Option<String>,
    resolved: bool,
    resolution: String,
}

fn show(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(empty)".into())
}

fn conflict_page(
    conn: &mut DbConn,
    layout: Layout,
    c: Conflict,
    message: Option<String>,
) -> Result<ConflictPage, PageError> {
    let fields = conflicts::fields(conn, &c.id)?;
    let now = resolve::now_of(conn, &c, false)?;
    let version = now.version();
    let (title, context) = name_of(&record_names(conn, std::slice::from_ref(&c))?, &c);
    let device = device_labels(conn, std::slice::from_ref(&c.device_id))?
        .remove(&c.device_id)
        .unwrap_or_default();
    let owner = accounts::user_by_id(conn, &c.user_id)?
        .map(|u| u.name)
        .unwrap_or_default();
    // Who made the server's side: as the row stood before the upload touched it (kept with
    // the conflict), else whoever wrote it last.
    let server_by = c
        .server_by
        .clone()
        .or_else(|| now.changed_by().map(str::to_owned));
    // The laptop's clock may be wrong; the session kept how far off it was.
    let offset = match &c.session_id {
        Some(s) => sessions::clock_offset(conn, s)?,
        None => None,
    };
    let offline_corrected = match (c.offline_updated, offset) {
        (Some(t), Some(o)) if o.abs() >= 1_000_000 => {
            format!("{} by the server's clock", timestamp(t - o))
        }
        _ => String::new(),
    };
    let form = resolve::form_of(c.conflict_kind(), &now);
    let (row_choice, row_server, row_offline) = match form {
        resolve::Form::Row { server, offline } => (true, server, offline),
        resolve::Form::Fields => (false, "", ""),
    };
    let def = table_by_name(&c.table_name).map(|t| &TABLES[t]);
    // The record as the server has it now, field by field (what a stale delete would
    // throw away, what a field conflict is decided against).
    let current = match &now {
        resolve::Now::Live(r) => Some(&r.values),
        _ => None,
    };
    let now_text = |name: &str| match (&now, def.and_then(|d| d.field_index(name))) {
        (resolve::Now::Live(_), Some(i)) => show(&current.and_then(|v| v[i].clone())),
        (resolve::Now::Deleted(_), _) => "(deleted)".into(),
        (resolve::Now::Absent, _) => "(not on the server)".into(),
        _ => "(unknown)".into(),
    };
    let state_note = match (&now, c.is_open()) {
        (_, false) => String::new(),
        (resolve::Now::Deleted(t), true) if c.conflict_kind() != ConflictKind::EditDeleted => {
            format!(
                "Since this conflict was recorded, the record was deleted by {} at {}.",
                t.changed_by.as_deref().unwrap_or("someone"),
                timestamp(t.last_updated)
            )
        }
        (resolve::Now::Live(r), true) if c.conflict_kind() == ConflictKind::EditDeleted => format!(
            "Since this conflict was recorded, the record was restored by {} at {}.",
            r.changed_by.as_deref().unwrap_or("someone"),
            timestamp(r.last_updated)
        ),
        (resolve::Now::Absent, true) => {
            "The laptop created this record under one that had been deleted on the server, \
             so it is not on the server yet."
                .to_owned()
        }
        _ => String::new(),
    };
    // A parent is shown by name, not by id.
    let parent_field = def
        .and_then(|d| d.parent())
        .and_then(|(fk, pt)| def.map(|d| (d.fields[fk].name, pt)));
    let parent_ids: Vec<String> = fields
        .iter()
        .filter(|f| parent_field.is_some_and(|(name, _)| f.field == name))
        .flat_map(|f| {
            [
                f.offline_value.clone(),
                f.server_value.clone(),
                f.base_value.clone(),
            ]
        })
        .flatten()
        .collect();
    let named_parents = match parent_field {
        Some((_, pt)) => parent_names(conn, pt, &parent_ids)?,
        None => HashMap::new(),
    };
    let shown = |v: &Option<String>| match v {
        Some(id) if named_parents.contains_key(id) => named_parents[id].clone(),
        other => show(other),
    };
    let view = |f: &ConflictField| FieldView {
        name: f.field.clone(),
        label: field_label(&f.field),
        base: if f.base_known {
            shown(&f.base_value)
        } else {
            "unknown".into()
        },
        base_known: f.base_known,
        changed: f.base_known
            && match (&now, def.and_then(|d| d.field_index(&f.field))) {
                (resolve::Now::Live(r), Some(i)) => !crate::domain::value::same(
                    def.map_or(crate::domain::FieldType::Text, |d| d.fields[i].ty),
                    r.values[i].as_deref(),
                    f.base_value.as_deref(),
                ),
                _ => false,
            },
        server: match (&now, parent_field) {
            (resolve::Now::Live(r), Some((name, _))) if f.field == name => shown(
                &def.and_then(|d| d.field_index(name))
                    .and_then(|i| r.values[i].clone()),
            ),
            _ => now_text(&f.field),
        },
        offline: if c.conflict_kind() == ConflictKind::Delete {
            "(deleted)".into()
        } else {
            shown(&f.offline_value)
        },
        chosen: f.choice.clone().unwrap_or_default(),
    };
    let record_href = match now {
        resolve::Now::Live(_) => format!("/{}/{}", c.table_name, c.row_id),
        _ => String::new(),
    };
    Ok(ConflictPage {
        noun: def.map_or("record", |d| d.noun).to_owned(),
        key_name: def.and_then(|d| d.natural_key).unwrap_or("key").to_owned(),
        title,
        context,
        what: describe_kind(c.conflict_kind()).to_owned(),
        kind: c.kind.clone(),
        device,
        owner,
        row_choice,
        state_note,
        server_line: match (&now, server_by.as_deref(), c.server_updated) {
            (resolve::Now::Absent, _, _) => "Not on the server".into(),
            (_, Some(by), Some(at)) => format!("Last changed by {by} at {}", timestamp(at)),
            (_, Some(by), None) => format!("Last changed by {by}"),
            (_, None, Some(at)) => format!("Last changed at {}", timestamp(at)),
            (_, None, None) => "Unknown".into(),
        },
        show_base: fields.iter().any(|f| f.base_known),
        row_server: row_server.into(),
        row_offline: row_offline.into(),
        base: c.base.map_or_else(|| "unknown".into(), timestamp),
        offline_updated: c
            .offline_updated
            .map_or_else(|| "unknown".into(), timestamp),
        offline_corrected,
        client_id: c.client_id.clone().unwrap_or_default(),
        version: version.map(|v| v.to_string()).unwrap_or_default(),
        record_href,
        fields: fields.iter().map(view).collect(),
        resolved: !c.is_open(),
        resolution: c.resolution.clone().unwrap_or_default(),
        id: c.id,
        table: c.table_name,
        row_id: c.row_id,
        layout,
        message,
    })
}

/// `GET /conflicts/{id}`.
pub async fn show_conflict(
    state: Data<AppState>,
    v: Viewer,
    path: Path<String>,
) -> Result<Html, PageError> {
    let id = path.into_inner();
    let pool = state.pool.clone();
    let page = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        let c = resolve::visible(&mut conn, &v.user, &id)?;
        conflict_page(&mut conn, v.layout, c, None)
    })
    .await??;
    Ok(Html::new(page.render()?))
}

/// Reads the posted choices: `choice.FIELD` = server | offline | edited (with
/// `edited.FIELD`), `choice.row`, and the version the form was made from.
fn parse_resolution(pairs: &[(String, String)]) -> Resolution {
    let mut res = Resolution::default();
    let mut edited = HashMap::new();
    for (k, v) in pairs {
        if k == "version" {
            res.version = v.parse().ok();
        } else if let Some(f) = k.strip_prefix("edited.") {
            edited.insert(f.to_owned(), v.clone());
        } else if let Some(f) = k.strip_prefix("choice.") {
            let choice = match v.as_str() {
                "server" => Choice::Server,
                "offline" => Choice::Offline,
                "edited" => Choice::Edited(String::new()),
                _ => continue,
            };
            if f == "row" {
                res.row = Some(choice);
            } else {
                res.fields.insert(f.to_owned(), choice);
            }
        }
    }
    for (f, c) in res.fields.iter_mut() {
        if let Choice::Edited(text) = c {
            *text = edited.remove(f).unwrap_or_default();
        }
    }
    res
}

/// Sets every field (and the row) to one side: the "keep all" shortcuts and bulk resolution.
fn keep_all(
    conn: &mut DbConn,
    c: &Conflict,
    side: Choice,
    res: &mut Resolution,
) -> Result<(), DbError> {
    for f in conflicts::fields(conn, &c.id)? {
        res.fields.insert(f.field, side.clone());
    }
    res.row = Some(side);
    Ok(())
}

fn side(word: &str) -> Option<Choice> {
    match word {
        "server" => Some(Choice::Server),
        "offline" => Some(Choice::Offline),
        _ => None,
    }
}

/// `POST /conflicts/{id}`.
pub async fn resolve_conflict(
    state: Data<AppState>,
    session: Session,
    v: Viewer,
    path: Path<String>,
    form: Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let pairs = form.into_inner();
    let posted_csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    check_csrf(&session, posted_csrf)?;
    let all = pairs
        .iter()
        .find(|(k, _)| k == "all")
        .and_then(|(_, v)| side(v));
    let mut res = parse_resolution(&pairs);
    let id = path.into_inner();
    let pool = state.pool.clone();
    let outcome = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        if let Some(all) = all {
            let c = resolve::visible(&mut conn, &v.user, &id)?;
            keep_all(&mut conn, &c, all, &mut res)?;
        }
        let result = resolve::resolve(&mut conn, &v.user, &id, &res);
        let again = |conn: &mut DbConn, layout, message: String| {
            let c = resolve::visible(conn, &v.user, &id)?;
            conflict_page(conn, layout, c, Some(message))
        };
        match result {
            Ok(Outcome::Resolved) => Ok(None),
            Ok(Outcome::Stale) => again(
                &mut conn,
                v.layout,
                "The server's version changed while you were deciding. The new server values are shown below; please choose again.".into(),
            )
            .map(|p| Some((StatusCode::CONFLICT, p))),
            Err(ResolveError::Invalid(m)) | Err(ResolveError::Impossible(m)) => {
                again(&mut conn, v.layout, m).map(|p| Some((StatusCode::UNPROCESSABLE_ENTITY, p)))
            }
            Err(e) => Err(PageError::from(e)),
        }
    })
    .await??;
    match outcome {
        None => Ok(see_other("/conflicts")),
        Some((status, page)) => Ok(page_with_status(status, page.render()?)),
    }
}

/// `POST /conflicts/bulk`: the selected conflicts (`ids`), all kept on one side (`all`).
pub async fn resolve_bulk(
    state: Data<AppState>,
    session: Session,
    v: Viewer,
    form: Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let pairs = form.into_inner();
    check_csrf(
        &session,
        pairs
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str()),
    )?;
    let Some(all) = pairs
        .iter()
        .find(|(k, _)| k == "all")
        .and_then(|(_, v)| side(v))
    else {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose to keep the server or the offline versions.",
        ));
    };
    let ids: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v.clone())
        .take(500)
        .collect();
    let pool = state.pool.clone();
    tracing::info!(user = %crate::logsafe::Escaped(&v.user.name), conflicts = ids.len(), "resolving in bulk");
    let (resolved, skipped) = super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        let (mut resolved, mut skipped) = (0u32, 0u32);
        for id in ids {
            let c = resolve::visible(&mut conn, &v.user, &id)?;
            if !c.is_open() {
                continue;
            }
            let mut res = Resolution {
                version: resolve::server_version(&mut conn, &c)?,
                ..Resolution::default()
            };
            keep_all(&mut conn, &c, all.clone(), &mut res)?;
            match resolve::resolve(&mut conn, &v.user, &id, &res) {
                Ok(Outcome::Resolved) => resolved += 1,
                Ok(Outcome::Stale)
                | Err(ResolveError::Invalid(_) | ResolveError::Impossible(_)) => skipped += 1,
                Err(e) => return Err(PageError::from(e)),
            }
        }
        Ok::<_, PageError>((resolved, skipped))
    })
    .await??;
    let to = format!("/conflicts?resolved={resolved}&skipped={skipped}");
    Ok(see_other(&to))
}

struct HistoryItem {
    id: String,
    record: String,
    context: String,
    what: String,
    resolution: String,
    by: String,
    when: String,
    owner: String,
}

#[derive(Template)]
#[template(path = "history.html")]
struct HistoryPage {
    layout: Layout,
    items: Vec<HistoryItem>,
    show_owner: bool,
    page: i64,
    pages: i64,
    total: i64,
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
}

/// `GET /resolutions`: who chose what, and when.
pub async fn history(
    state: Data<AppState>,
    v: Viewer,
    query: Query<PageQuery>,
) -> Result<Html, PageError> {
    let page = crate::services::present::page_number(query.page);
    let pool = state.pool.clone();
    let user = user_scope(&v);
    let (items, total) = super::block(move || {
        let mut conn = pool.get()?;
        let within = Scope {
            user_id: user.as_deref(),
            ..Scope::default()
        };
        let total = conflicts::count_in(&mut conn, &within, ConflictStatus::Resolved)?;
        let list = conflicts::list(
            &mut conn,
            &within,
            ConflictStatus::Resolved,
            PER_PAGE,
            (page - 1) * PER_PAGE,
        )?;
        let names = record_names(&mut conn, &list)?;
        let mut people = HashMap::new();
        for c in &list {
            for u in [Some(&c.user_id), c.resolved_by.as_ref()]
                .into_iter()
                .flatten()
            {
                if !people.contains_key(u) {
                    let name = accounts::user_by_id(&mut conn, u)?
                        .map(|x| x.name)
                        .unwrap_or_default();
                    people.insert(u.clone(), name);
                }
            }
        }
        let items = list
            .into_iter()
            .map(|c| {
                let (record, context) = name_of(&names, &c);
                HistoryItem {
                    what: describe_kind(c.conflict_kind()).to_owned(),
                    resolution: c.resolution.clone().unwrap_or_default(),
                    by: c
                        .resolved_by
                        .as_ref()
                        .and_then(|u| people.get(u).cloned())
                        .unwrap_or_default(),
                    owner: people.get(&c.user_id).cloned().unwrap_or_default(),
                    when: c.resolved_at.map(timestamp).unwrap_or_default(),
                    id: c.id,
                    record,
                    context,
                }
            })
            .collect::<Vec<_>>();
        Ok::<_, DbError>((items, total))
    })
    .await??;
    let page = HistoryPage {
        layout: v.layout,
        items,
        show_owner: v.user.is_admin,
        page,
        pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
        total,
    };
    Ok(Html::new(page.render()?))
}
