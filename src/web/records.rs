//! The record pages of every synced table: a list, a record, the new and edit forms, and
//! the delete question. Each handler reads the request, calls its service in
//! [`crate::services::records`] and renders what it returns.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Html, Path, Query};
use askama::Template;

use super::auth::{Checked, Viewer};
use super::error::PageError;
use super::{AppState, page, page_with_status, see_other};
use crate::domain::{TableId, table_by_name};
use crate::services::records::{
    self, DeleteView, Deleted, FormView, ListView, Posted, RecordView, Saved,
};

page!(ListPage, "records.html", ListView);
page!(RecordPage, "record.html", RecordView);
page!(FormPage, "record_form.html", FormView);
page!(DeletePage, "confirm_delete.html", DeleteView);

fn table_of(name: &str) -> Result<TableId, PageError> {
    table_by_name(name).ok_or_else(PageError::not_found)
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
    let table = table_of(&path)?;
    let Query(ListQuery { q, page }) = query;
    let page = crate::services::present::page_number(page);
    let who = v.who();
    let view = state
        .db(move |conn| records::list(conn, &who, table, q.unwrap_or_default(), page))
        .await?;
    let layout = v.layout;
    Ok(Html::new(ListPage { layout, view }.render()?))
}

/// `GET /{table}/{id}`: a record with its parents above and its children below.
pub async fn show(
    state: Data<AppState>,
    v: Viewer,
    path: Path<(String, String)>,
) -> Result<Html, PageError> {
    let (name, id) = path.into_inner();
    let table = table_of(&name)?;
    let who = v.who();
    let view = state
        .db(move |conn| records::record(conn, &who, table, &id))
        .await?
        .ok_or_else(PageError::not_found)?;
    let layout = v.layout;
    Ok(Html::new(RecordPage { layout, view }.render()?))
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
    let parent = query.into_inner().parent;
    let who = v.who();
    let view = state
        .db(move |conn| records::new_form(conn, &who, table, parent.as_deref()))
        .await?;
    let layout = v.layout;
    Ok(Html::new(FormPage { layout, view }.render()?))
}

/// A create or save as the browser sees it: to the record, or the form again.
fn saved(state: &AppState, v: Viewer, outcome: Saved) -> Result<HttpResponse, PageError> {
    let (status, view) = match outcome {
        Saved::Done { go_to } => {
            changed_here(state);
            return Ok(see_other(&go_to));
        }
        Saved::Invalid(view) => (StatusCode::UNPROCESSABLE_ENTITY, view),
        Saved::Stale(view) => (StatusCode::CONFLICT, view),
    };
    let layout = v.layout;
    Ok(page_with_status(
        status,
        FormPage { layout, view }.render()?,
    ))
}

/// `POST /{table}/new`.
pub async fn create(
    state: Data<AppState>,
    v: Viewer,
    path: Path<String>,
    Checked(form): Checked<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let table = table_of(&path)?;
    let who = v.who();
    let outcome = state
        .db(move |conn| {
            let posted = Posted::new(table, form, who.zone);
            records::create(conn, &who, table, posted)
        })
        .await?;
    saved(&state, v, outcome)
}

/// On a laptop, a change was made: its background syncer takes it up soon.
fn changed_here(state: &AppState) {
    if let Some(app) = state.laptop() {
        app.changed();
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
    let who = v.who();
    let view = state
        .db(move |conn| records::edit_form(conn, &who, table, &id))
        .await?;
    let layout = v.layout;
    Ok(Html::new(FormPage { layout, view }.render()?))
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
    let who = v.who();
    let outcome = state
        .db(move |conn| {
            let posted = Posted::new(table, form, who.zone);
            records::update(conn, &who, table, &id, posted)
        })
        .await?;
    saved(&state, v, outcome)
}

/// `GET /{table}/{id}/delete`: asks first (and says what goes with it).
pub async fn delete_form(
    state: Data<AppState>,
    v: Viewer,
    path: Path<(String, String)>,
) -> Result<Html, PageError> {
    let (name, id) = path.into_inner();
    let table = table_of(&name)?;
    let who = v.who();
    let view = state
        .db(move |conn| records::delete_form(conn, &who, table, &id))
        .await?;
    let layout = v.layout;
    Ok(Html::new(DeletePage { layout, view }.render()?))
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
    let who = v.who();
    let version = form
        .iter()
        .find(|(k, _)| k == "version")
        .and_then(|(_, v)| v.parse().ok());
    let outcome = state
        .db(move |conn| records::delete(conn, &who, table, &id, version))
        .await?;
    match outcome {
        Deleted::Done { go_to } => {
            changed_here(&state);
            Ok(see_other(&go_to))
        }
        Deleted::Stale(message) => Err(PageError::new(StatusCode::CONFLICT, message)),
    }
}
