//! The conflict pages (PROTOCOL.md §5): the list with filters and bulk resolution, one
//! conflict side by side with its form, and the resolution history. The work is in
//! [`crate::services::conflicts`].

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Form, Html, Path, Query};
use askama::Template;

use super::auth::{Viewer, check_csrf};
use super::error::PageError;
use super::{AppState, page, page_with_status, see_other};
use crate::services::conflicts::{
    self, ConflictView, HistoryView, ListAsk, ListView, Resolved, resolution_of, side,
};
use crate::services::present::page_number;

page!(ListPage, "conflicts.html", ListView);
page!(ConflictPage, "conflict.html", ConflictView);
page!(HistoryPage, "history.html", HistoryView);

#[derive(serde::Deserialize)]
pub struct ListQuery {
    page: Option<i64>,
    table: Option<String>,
    device: Option<String>,
    resolved: Option<u32>,
    skipped: Option<u32>,
}

/// Whose conflicts the viewer sees: their own, or an administrator everyone's.
fn user_scope(v: &Viewer) -> Option<String> {
    (!v.user.is_admin).then(|| v.user.id.clone())
}

/// `GET /conflicts`.
pub async fn list(
    state: Data<AppState>,
    v: Viewer,
    query: Query<ListQuery>,
) -> Result<Html, PageError> {
    let q = query.into_inner();
    let ask = ListAsk {
        user: user_scope(&v),
        table: q.table,
        device: q.device,
        page: page_number(q.page),
        notice: match (q.resolved, q.skipped) {
            (Some(n), Some(0) | None) => Some(format!("{n} resolved.")),
            (Some(n), Some(m)) => Some(format!(
                "{n} resolved; {m} could not be resolved this way — open them to see why."
            )),
            _ => None,
        },
    };
    let view = state.db(move |conn| conflicts::list(conn, ask)).await?;
    let layout = v.layout;
    Ok(Html::new(ListPage { layout, view }.render()?))
}

/// `GET /conflicts/{id}`.
pub async fn show_conflict(
    state: Data<AppState>,
    v: Viewer,
    path: Path<String>,
) -> Result<Html, PageError> {
    let id = path.into_inner();
    let user = v.user.clone();
    let view = state
        .db(move |conn| conflicts::show(conn, &user, &id))
        .await?;
    let layout = v.layout;
    Ok(Html::new(ConflictPage { layout, view }.render()?))
}

/// The value of the first `name` in a posted form.
fn posted<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /conflicts/{id}`: the choices field by field, or `all` kept on one side. (The
/// CSRF token is checked here rather than by `Checked`: the form's names are the fields'.)
pub async fn resolve_conflict(
    state: Data<AppState>,
    session: Session,
    v: Viewer,
    path: Path<String>,
    form: Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let pairs = form.into_inner();
    check_csrf(&session, posted(&pairs, "csrf"))?;
    let all = posted(&pairs, "all").and_then(side);
    let res = resolution_of(&pairs);
    let (id, user) = (path.into_inner(), v.user.clone());
    let outcome = state
        .db(move |conn| conflicts::resolve_one(conn, &user, &id, all, res))
        .await?;
    match outcome {
        Resolved::Done => Ok(see_other("/conflicts")),
        Resolved::Again { stale, view } => {
            let status = match stale {
                true => StatusCode::CONFLICT,
                false => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let layout = v.layout;
            Ok(page_with_status(
                status,
                ConflictPage {
                    layout,
                    view: *view,
                }
                .render()?,
            ))
        }
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
    check_csrf(&session, posted(&pairs, "csrf"))?;
    let Some(all) = posted(&pairs, "all").and_then(side) else {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose to keep the server or the offline versions.",
        ));
    };
    let ids: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "ids")
        .map(|(_, v)| v)
        .collect();
    tracing::info!(user = %crate::logsafe::Escaped(&v.user.name), conflicts = ids.len(), "resolving in bulk");
    let user = v.user.clone();
    let (resolved, skipped) = state
        .db(move |conn| conflicts::resolve_bulk(conn, &user, &ids, all))
        .await?;
    Ok(see_other(&format!(
        "/conflicts?resolved={resolved}&skipped={skipped}"
    )))
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
    let page = page_number(query.page);
    let user = user_scope(&v);
    let view = state
        .db(move |conn| conflicts::history(conn, user.as_deref(), page))
        .await?;
    let layout = v.layout;
    Ok(Html::new(HistoryPage { layout, view }.render()?))
}
