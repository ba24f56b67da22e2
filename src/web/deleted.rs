//! "Recently deleted" for administrators: the sites and assets deleted lately, each with
//! what went with it, and Restore (an administrator's undo, from the tombstone). The work is
//! in [`crate::services::deleted`].

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path};
use askama::Template;

use super::auth::{Checked, Viewer};
use super::error::PageError;
use super::{AppState, page, page_with_status, see_other};
use crate::db::DbError;
use crate::domain::TABLES;
use crate::editing::{self, EditError};
use crate::logsafe::Escaped;
use crate::services::deleted::{self, DeletedView, restorable_table};

page!(DeletedPage, "deleted.html", DeletedView);

async fn render(
    state: &AppState,
    v: Viewer,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let rows = state.db(deleted::list).await?;
    let view = DeletedView {
        rows,
        notice,
        error,
    };
    let layout = v.layout;
    Ok(page_with_status(
        status,
        DeletedPage { layout, view }.render()?,
    ))
}

/// `GET /deleted`.
pub async fn list(state: Data<AppState>, v: Viewer) -> Result<HttpResponse, PageError> {
    let v = v.administrator("Recently deleted records are")?;
    render(&state, v, StatusCode::OK, None, None).await
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

crate::csrf_field!(CsrfForm);

/// `POST /deleted/{table}/{id}/restore`.
pub async fn restore(
    state: Data<AppState>,
    v: Viewer,
    path: Path<(String, String)>,
    Checked(_form): Checked<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let v = v.administrator("Recently deleted records are")?;
    let (name, id) = path.into_inner();
    let table = restorable_table(&name).ok_or_else(PageError::not_found)?;
    let (actor, row_id) = (v.user.name.clone(), id.clone());
    let outcome = state
        .db(move |conn| Ok::<_, DbError>(editing::restore(conn, table, &row_id, &actor)))
        .await?;
    match outcome {
        Ok(n) => {
            tracing::info!(by = %Escaped(&v.user.name), table = name, id = %Escaped(&id), rows = n, "restored");
            Ok(see_other(&format!("/{}/{id}", TABLES[table].name)))
        }
        Err(EditError::Forbidden(why)) => {
            render(&state, v, StatusCode::CONFLICT, None, Some(why)).await
        }
        Err(e) => Err(e.into()),
    }
}
