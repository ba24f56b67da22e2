//! The conflict pages (PROTOCOL.md §5): the list, one conflict side by side, and
//! posting the choice.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::web::{self, Data, Form, Html, Path, Query};
use askama::Template;

use super::AppState;
use super::auth::{Layout, check_csrf, viewer};
use super::error::PageError;
use crate::db::repo::accounts::{device_labels, user_by_id};
use crate::db::repo::conflicts::{self, Conflict, ConflictField, kind};
use crate::db::repo::rows;
use crate::db::{DbConn, DbError};
use crate::domain::{TABLES, table_by_name, time};
use crate::sync::resolve::{self, Choice, Outcome, Resolution, ResolveError};

const PER_PAGE: i64 = 50;

/// One line of the list.
struct ListItem {
    id: String,
    table: String,
    record: String,
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
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
}

fn describe_kind(k: &str) -> &'static str {
    match k {
        kind::DELETE => "deleted offline, changed on the server",
        kind::EDIT_DELETED => "changed offline, deleted on the server",
        kind::DUPLICATE => "created twice",
        _ => "changed on both sides",
    }
}

/// How a row is named to people: its natural key, or its table and id.
fn record_labels(
    conn: &mut DbConn,
    items: &[Conflict],
) -> Result<HashMap<(String, String), String>, DbError> {
    let mut by_table: HashMap<usize, Vec<String>> = HashMap::new();
    for c in items {
        if let Some(t) = table_by_name(&c.table_name) {
            by_table.entry(t).or_default().push(c.row_id.clone());
        }
    }
    let mut out = HashMap::new();
    for (t, ids) in by_table {
        let def = &TABLES[t];
        for (id, row) in rows::by_ids(conn, t, &ids, false)? {
            let label = def
                .natural_key_index()
                .and_then(|k| row.values[k].clone())
                .or_else(|| row.values.get(1).cloned().flatten())
                .unwrap_or_else(|| id.clone());
            out.insert((def.name.to_owned(), id), format!("{} {label}", def.noun));
        }
    }
    Ok(out)
}

/// `GET /conflicts`.
pub async fn list(
    state: Data<AppState>,
    session: Session,
    query: Query<PageQuery>,
) -> Result<Html, PageError> {
    let v = viewer(&state, &session).await?;
    let page = query.page.unwrap_or(1).max(1);
    let pool = state.pool.clone();
    let scope = if v.user.is_admin {
        None
    } else {
        Some(v.user.id.clone())
    };
    let (items, total) = web::block(move || {
        let mut conn = pool.get()?;
        let scope = scope.as_deref();
        let total = conflicts::count_open(&mut conn, scope)?;
        let list = conflicts::list(&mut conn, scope, "open", PER_PAGE, (page - 1) * PER_PAGE)?;
        let labels = record_labels(&mut conn, &list)?;
        let devices: Vec<String> = list.iter().map(|c| c.device_id.clone()).collect();
        let device_names = device_labels(&mut conn, &devices)?;
        let mut items = Vec::with_capacity(list.len());
        for c in list {
            let fields = conflicts::fields(&mut conn, &c.id)?
                .into_iter()
                .map(|f| f.field)
                .collect::<Vec<_>>()
                .join(", ");
            items.push(ListItem {
                record: labels
                    .get(&(c.table_name.clone(), c.row_id.clone()))
                    .cloned()
                    .unwrap_or_else(|| format!("{} (deleted)", c.row_id)),
                what: describe_kind(&c.kind).to_owned(),
                fields,
                device: device_names.get(&c.device_id).cloned().unwrap_or_default(),
                when: time::format(c.updated_at),
                table: c.table_name,
                id: c.id,
            });
        }
        Ok::<_, DbError>((items, total))
    })
    .await??;
    let page = ListPage {
        layout: v.layout,
        items,
        page,
        pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
        total,
    };
    Ok(Html::new(page.render()?))
}

/// One field side by side.
struct FieldView {
    name: String,
    base: String,
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
    row_id: String,
    title: String,
    what: String,
    device: String,
    owner: String,
    row_choice: bool,
    row_server: String,
    row_offline: String,
    base: String,
    server_updated: String,
    offline_updated: String,
    client_id: String,
    version: String,
    fields: Vec<FieldView>,
    message: Option<String>,
    resolved: bool,
}

fn show(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(empty)".into())
}

fn show_time(t: Option<i64>) -> String {
    t.map(time::format).unwrap_or_else(|| "unknown".into())
}

fn conflict_page(
    conn: &mut DbConn,
    layout: Layout,
    c: Conflict,
    message: Option<String>,
) -> Result<ConflictPage, PageError> {
    let fields = conflicts::fields(conn, &c.id)?;
    let version = resolve::server_version(conn, &c)?;
    let labels = record_labels(conn, std::slice::from_ref(&c))?;
    let device = device_labels(conn, std::slice::from_ref(&c.device_id))?
        .remove(&c.device_id)
        .unwrap_or_default();
    let owner = user_by_id(conn, &c.user_id)?
        .map(|u| u.name)
        .unwrap_or_default();
    let (row_server, row_offline) = match c.kind.as_str() {
        kind::DELETE => (
            "Keep the row (as the server has it)",
            "Delete the row (as done offline)",
        ),
        _ => (
            "Keep it deleted (as the server has it)",
            "Restore the row with the offline changes",
        ),
    };
    let view = |f: &ConflictField| FieldView {
        name: f.field.clone(),
        base: if f.base_known {
            show(&f.base_value)
        } else {
            "unknown".into()
        },
        server: if c.kind == kind::EDIT_DELETED {
            "(deleted)".into()
        } else {
            show(&f.server_value)
        },
        offline: show(&f.offline_value),
        chosen: f.choice.clone().unwrap_or_default(),
    };
    Ok(ConflictPage {
        title: labels
            .get(&(c.table_name.clone(), c.row_id.clone()))
            .cloned()
            .unwrap_or_else(|| format!("{} {}", c.table_name, c.row_id)),
        what: describe_kind(&c.kind).to_owned(),
        device,
        owner,
        row_choice: matches!(c.kind.as_str(), kind::DELETE | kind::EDIT_DELETED),
        row_server: row_server.into(),
        row_offline: row_offline.into(),
        base: show_time(c.base),
        server_updated: show_time(c.server_updated),
        offline_updated: show_time(c.offline_updated),
        client_id: c.client_id.clone().unwrap_or_default(),
        version: version.map(|v| v.to_string()).unwrap_or_default(),
        fields: fields.iter().map(view).collect(),
        resolved: c.status != "open",
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
    session: Session,
    path: Path<String>,
) -> Result<Html, PageError> {
    let v = viewer(&state, &session).await?;
    let id = path.into_inner();
    let pool = state.pool.clone();
    let page = web::block(move || {
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

/// `POST /conflicts/{id}`.
pub async fn resolve_conflict(
    state: Data<AppState>,
    session: Session,
    path: Path<String>,
    form: Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let v = viewer(&state, &session).await?;
    let pairs = form.into_inner();
    let posted_csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    check_csrf(&session, posted_csrf)?;
    let all = pairs
        .iter()
        .find(|(k, _)| k == "all")
        .map(|(_, v)| v.clone());
    let mut res = parse_resolution(&pairs);
    let id = path.into_inner();
    let pool = state.pool.clone();
    let outcome = web::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        if let Some(all) = all {
            // "Keep all server/offline": every differing field, and the row, one way.
            let choice = if all == "offline" { Choice::Offline } else { Choice::Server };
            let c = resolve::visible(&mut conn, &v.user, &id)?;
            for f in conflicts::fields(&mut conn, &c.id)? {
                res.fields.insert(f.field, choice.clone());
            }
            res.row = Some(choice);
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
        None => Ok(HttpResponse::SeeOther()
            .insert_header((LOCATION, "/conflicts"))
            .finish()),
        Some((status, page)) => Ok(HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(page.render()?)),
    }
}
