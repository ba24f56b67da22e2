//! The administrators' users page: every user with their sessions and devices, and what an
//! administrator does about one (disable or enable, a new password, sign them out
//! everywhere). The same as `offsync user passwd|disable|enable` on the command line.

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Path};
use askama::Template;

use super::auth::{Checked, Layout, Viewer};
use super::error::PageError;
use crate::services::present::timestamp;
use super::{AppState, see_other};
use crate::accounts::{self, AccountError};
use crate::db::DbError;
use crate::db::repo::{accounts as users, web_sessions};
use crate::logsafe::Escaped;

pub struct UserRow {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    pub disabled: Option<String>,
    pub sessions: i64,
    pub is_me: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserRow>,
    notice: Option<String>,
    error: Option<String>,
}

async fn render(
    state: &AppState,
    v: Viewer,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let pool = state.pool.clone();
    let me = v.user.id.clone();
    let users = super::block(move || {
        let mut conn = pool.get()?;
        users::list_users(&mut conn)?
            .into_iter()
            .map(|u| {
                Ok(UserRow {
                    sessions: web_sessions::count_for_user(&mut conn, &u.id)?,
                    is_me: u.id == me,
                    disabled: u.disabled_at.map(timestamp),
                    role: accounts::Role::of(&u).as_str(),
                    id: u.id,
                    name: u.name,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()
    })
    .await??;
    let page = UsersPage {
        layout: v.layout,
        users,
        notice,
        error,
    };
    Ok(super::page_with_status(status, page.render()?))
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

/// `POST /users/{id}/{action}`: disable, enable, password, sign-out.
pub async fn act(
    state: Data<AppState>,
    session: Session,
    v: Viewer,
    path: Path<(String, String)>,
    Checked(form): Checked<ActionForm>,
) -> Result<HttpResponse, PageError> {
    let v = v.administrator("The users page is")?;
    let (id, action) = path.into_inner();
    if v.user.id == id && action == "disable" {
        return render(
            &state,
            v,
            StatusCode::BAD_REQUEST,
            None,
            Some("You cannot disable yourself; ask another administrator.".into()),
        )
        .await;
    }
    let pool = state.pool.clone();
    let password = form.password.clone().unwrap_or_default();
    let action_done = action.clone();
    let outcome = super::block(move || -> Result<String, AccountError> {
        let mut conn = pool.get().map_err(DbError::from)?;
        let user = users::user_by_id(&mut conn, &id)?
            .ok_or_else(|| AccountError::NoSuchUser(id.clone()))?;
        Ok(match action_done.as_str() {
            "disable" => {
                accounts::set_disabled(&mut conn, &user.name, true)?;
                format!(
                    "{} is disabled: signed out, and their devices stopped.",
                    user.name
                )
            }
            "enable" => {
                accounts::set_disabled(&mut conn, &user.name, false)?;
                format!("{} is enabled again.", user.name)
            }
            "password" => {
                accounts::set_password(&mut conn, &user.name, &password)?;
                format!(
                    "{} has a new password and is signed out everywhere.",
                    user.name
                )
            }
            "sign-out" => {
                let n = accounts::end_all_sessions(&mut conn, &user.id)?;
                format!("{} is signed out everywhere ({n} sessions).", user.name)
            }
            _ => return Err(AccountError::Invalid("no such action".into())),
        })
    })
    .await?;
    match outcome {
        Ok(notice) => {
            tracing::info!(by = %Escaped(&v.user.name), action = %Escaped(&action), "user changed");
            if action == "sign-out" && notice.starts_with(&v.user.name) {
                // Signed themselves out with everyone else.
                session.purge();
                return Ok(see_other("/login"));
            }
            render(&state, v, StatusCode::OK, Some(notice), None).await
        }
        Err(AccountError::NoSuchUser(_)) => Err(PageError::not_found()),
        Err(AccountError::Invalid(m)) if m == "no such action" => Err(PageError::not_found()),
        Err(AccountError::Invalid(m)) => {
            render(&state, v, StatusCode::BAD_REQUEST, None, Some(m)).await
        }
        Err(AccountError::Db(e)) => Err(e.into()),
        Err(e) => Err(PageError::internal(e)),
    }
}

crate::csrf_field!(ActionForm);
