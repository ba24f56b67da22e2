//! The administrators' users page's work: every user with their role, state and sessions,
//! and what an administrator does about one. The same as `offsync user
//! passwd|disable|enable` on the command line, through [`crate::accounts`].

use super::present::timestamp;
use crate::accounts::{self, AccountError, Role};
use crate::db::repo::{accounts as users, web_sessions};
use crate::db::{DbConn, DbError};

pub struct UserRow {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    pub disabled: Option<String>,
    pub sessions: i64,
    pub is_me: bool,
}

pub struct UsersView {
    pub users: Vec<UserRow>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// Every user, as administrator `me` sees them.
pub fn list(conn: &mut DbConn, me: &str) -> Result<Vec<UserRow>, DbError> {
    users::list_users(conn)?
        .into_iter()
        .map(|u| {
            Ok(UserRow {
                sessions: web_sessions::count_for_user(conn, &u.id)?,
                is_me: u.id == me,
                disabled: u.disabled_at.map(timestamp),
                role: Role::of(&u).as_str(),
                id: u.id,
                name: u.name,
            })
        })
        .collect()
}

/// What an administrator does about a user.
pub enum Action {
    Disable,
    Enable,
    Password(String),
    SignOut,
}

impl Action {
    /// The action a page's address names (`/users/{id}/{action}`), if any.
    pub fn named(word: &str, password: Option<String>) -> Option<Action> {
        Some(match word {
            "disable" => Action::Disable,
            "enable" => Action::Enable,
            "password" => Action::Password(password.unwrap_or_default()),
            "sign-out" => Action::SignOut,
            _ => return None,
        })
    }
}

/// What an action did.
pub enum Acted {
    /// Done; the sentence for the page.
    Done(String),
    /// Administrator signed themselves out with all their sessions.
    SignedOutSelf,
}

/// Carries out `action` on user `id` for administrator `me`; the list of users after it.
pub fn act(conn: &mut DbConn, me: &str, id: &str, action: Action) -> Result<Acted, AccountError> {
    if me == id && matches!(action, Action::Disable) {
        return Err(AccountError::Invalid(
            "You cannot disable yourself; ask another administrator.".into(),
        ));
    }
    let user =
        users::user_by_id(conn, id)?.ok_or_else(|| AccountError::NoSuchUser(id.to_owned()))?;
    Ok(Acted::Done(match action {
        Action::Disable => {
            accounts::set_disabled(conn, &user.name, true)?;
            format!(
                "{} is disabled: signed out, and their devices stopped.",
                user.name
            )
        }
        Action::Enable => {
            accounts::set_disabled(conn, &user.name, false)?;
            format!("{} is enabled again.", user.name)
        }
        Action::Password(password) => {
            accounts::set_password(conn, &user.name, &password)?;
            format!(
                "{} has a new password and is signed out everywhere.",
                user.name
            )
        }
        Action::SignOut => {
            let n = accounts::end_all_sessions(conn, &user.id)?;
            if user.id == me {
                return Ok(Acted::SignedOutSelf);
            }
            format!("{} is signed out everywhere ({n} sessions).", user.name)
        }
    }))
}
