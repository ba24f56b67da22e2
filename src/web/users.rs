//! The administrators' users page: every user with their sessions and devices, and what an
//! administrator does about one (disable or enable, a new password, sign them out
//! everywhere). The work is in [`crate::services::users`].

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path};
use askama::Template;

use super::auth::{Checked, Viewer};
use super::error::PageError;
use super::{AppState, page, page_with_status, see_other};
use crate::accounts::AccountError;
use crate::logsafe::Escaped;
use crate::services::users::{self, Acted, Action, UsersView};

page!(UsersPage, "users.html", UsersView);

/// The users page with a notice or an error above the list.
async fn render(
    state: &AppState,
    v: Viewer,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let me = v.user.id.clone();
    let users = state.db(move |conn| users::list(conn, &me)).await?;
    let view = UsersView {
        users,
        notice,
        error,
    };
    let layout = v.layout;
    Ok(page_with_status(
        status,
        UsersPage { layout, view }.render()?,
    ))
}

/// `GET /users`.
pub async fn list(state: Data<AppState>, v: Viewer) -> Result<HttpResponse, PageError> {
    let v = v.administrator("The users page is")?;
    render(&state, v, StatusCode::OK, None, None).await
}

#[derive(serde::Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    password: Option<String>,
}

crate::csrf_field!(ActionForm);

/// `POST /users/{id}/{action}`: disable, enable, password, sign-out.
pub async fn act(
    state: Data<AppState>,
    session: Session,
    v: Viewer,
    path: Path<(String, String)>,
    Checked(form): Checked<ActionForm>,
) -> Result<HttpResponse, PageError> {
    let v = v.administrator("The users page is")?;
    let (id, word) = path.into_inner();
    let action = Action::named(&word, form.password).ok_or_else(PageError::not_found)?;
    let me = v.user.id.clone();
    let outcome = state
        .db(move |conn| Ok::<_, PageError>(users::act(conn, &me, &id, action)))
        .await?;
    match outcome {
        Ok(acted) => {
            tracing::info!(by = %Escaped(&v.user.name), action = %Escaped(&word), "user changed");
            match acted {
                Acted::SignedOutSelf => {
                    session.purge();
                    Ok(see_other("/login"))
                }
                Acted::Done(notice) => render(&state, v, StatusCode::OK, Some(notice), None).await,
            }
        }
        Err(AccountError::NoSuchUser(_)) => Err(PageError::not_found()),
        Err(AccountError::Invalid(m)) => {
            render(&state, v, StatusCode::BAD_REQUEST, None, Some(m)).await
        }
        Err(AccountError::Db(e)) => Err(e.into()),
        Err(e) => Err(PageError::internal(e)),
    }
}
