//! The laptop copy's connection to the main site: "Connect this laptop" (the engineer signs
//! in with their main-site account and names the laptop; the server registers the device
//! and hands over its token, docs/protocol.md §9) and "Disconnect this laptop" (once its
//! changes are synced: forgets the server, the token and the data downloaded).

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Html};
use askama::Template;

use super::auth::{Checked, Layout};
use super::error::PageError;
use super::offline::{OfflineApp, offline_layout};
use super::{AppState, page_with_status, see_other};
use crate::db::DbError;
use crate::offline::client::{ClientError, Upstream};
use crate::offline::store;

#[derive(Template)]
#[template(path = "connect.html")]
struct ConnectPage {
    layout: Layout,
    /// Connected: to which server; else the form.
    connected: bool,
    server: String,
    username: String,
    label: String,
    error: Option<String>,
    /// Why "Disconnect" is not offered now (changes not synced yet).
    not_yet: Option<String>,
}

fn laptop(state: &AppState) -> Result<&OfflineApp, PageError> {
    state.laptop().ok_or_else(PageError::not_found)
}

/// This computer's name, as a laptop's first name on the Devices page.
fn default_label() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    match host.trim() {
        "" => "Laptop".into(),
        name => name.chars().take(200).collect(),
    }
}

/// Why the laptop may not be disconnected yet, if it may not.
async fn not_yet(state: &AppState) -> Result<Option<String>, PageError> {
    let syncing = laptop(state)?.is_syncing();
    let (pending, held) = state
        .db(|conn| Ok::<_, DbError>((store::pending_rows(conn)?, store::held(conn)?.len())))
        .await?;
    Ok(match (syncing, pending, held) {
        (true, _, _) => Some("A sync is running; wait for it to finish.".into()),
        (_, 0, 0) => None,
        (_, 0, n) => Some(format!(
            "{n} change{} refused by the server wait here; discard or correct them first.",
            if n == 1 { " was" } else { "s were" }
        )),
        (_, n, _) => Some(format!(
            "{n} change{} not synced yet; sync first, so that nothing is lost.",
            if n == 1 { " is" } else { "s are" }
        )),
    })
}

/// The connection page as the laptop stands now, with `error` above it.
async fn connection_page(
    state: &AppState,
    session: &Session,
    error: Option<String>,
) -> Result<ConnectPage, PageError> {
    let app = laptop(state)?;
    Ok(ConnectPage {
        layout: offline_layout(state, session).await?,
        connected: app.upstream().is_some(),
        server: app.server_hint(),
        username: String::new(),
        label: default_label(),
        error,
        not_yet: not_yet(state).await?,
    })
}

/// `GET /connect`.
pub async fn form(state: Data<AppState>, session: Session) -> Result<Html, PageError> {
    let page = connection_page(&state, &session, None).await?;
    Ok(Html::new(page.render()?))
}

#[derive(serde::Deserialize)]
pub struct ConnectForm {
    csrf: Option<String>,
    server: String,
    username: String,
    password: String,
    label: String,
}

/// What the engineer reads when the server did not connect the laptop.
fn refusal(e: &ClientError) -> (StatusCode, String) {
    match e {
        ClientError::Refused {
            status, refusal, ..
        } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            let text = match refusal.code.as_str() {
                "unauthorized" => {
                    "That user name and password do not match an account on the main site."
                        .to_owned()
                }
                "not-found" => {
                    "The main site at this address does not connect laptops: check the address \
                     (the one you sign in at), or ask for a device token from its Devices page."
                        .to_owned()
                }
                _ => {
                    let mut m = refusal.message.clone();
                    if let Some(first) = m.get_mut(..1) {
                        first.make_ascii_uppercase();
                    }
                    format!("{m}.")
                }
            };
            (status, text)
        }
        ClientError::CannotReach { base, reason } => (
            StatusCode::BAD_GATEWAY,
            format!("Cannot reach {base}: {reason}. Check the address and the network."),
        ),
        other => (StatusCode::BAD_GATEWAY, other.to_string()),
    }
}

/// `POST /connect`: signs in on the main site and keeps the device's token here.
pub async fn connect(
    state: Data<AppState>,
    session: Session,
    Checked(form): Checked<ConnectForm>,
) -> Result<HttpResponse, PageError> {
    let app = laptop(&state)?;
    let server = form.server.trim().trim_end_matches('/').to_owned();
    let again = |error: String, status: StatusCode, layout: Layout| {
        let page = ConnectPage {
            layout,
            connected: false,
            server: server.clone(),
            username: form.username.clone(),
            label: form.label.clone(),
            error: Some(error),
            not_yet: None,
        };
        Ok::<_, PageError>(page_with_status(status, page.render()?))
    };
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        let layout = offline_layout(&state, &session).await?;
        return again(
            "The main site's address starts with https:// (or http://).".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            layout,
        );
    }
    let (base, user, password, label) = (
        server.clone(),
        form.username.clone(),
        form.password.clone(),
        form.label.clone(),
    );
    // The blocking HTTP client on the blocking pool, never on the server's runtime.
    let enrolled = super::block(move || Upstream::enrol(&base, &user, &password, &label)).await?;
    let upstream = match enrolled {
        Ok(upstream) => upstream,
        Err(e) => {
            let (status, error) = refusal(&e);
            tracing::info!(server = %crate::logsafe::Escaped(&server), reason = %crate::logsafe::Escaped(&e.to_string()), "connecting this laptop failed");
            let layout = offline_layout(&state, &session).await?;
            return again(error, status, layout);
        }
    };
    let (base, token) = (upstream.base.clone(), upstream.token().to_owned());
    let engineer = form.username.trim().to_owned();
    state
        .db({
            let engineer = engineer.clone();
            move |conn| store::keep_connection(conn, &base, &token, &engineer)
        })
        .await?;
    tracing::info!(server = %crate::logsafe::Escaped(&upstream.base), "this laptop is connected");
    app.connect(upstream, Some(engineer), state.pool.clone());
    Ok(see_other("/"))
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

crate::csrf_field!(ConnectForm, CsrfForm);

/// `POST /disconnect`: forgets the main site, the token and the data, once nothing of this
/// laptop's own waits to be synced.
pub async fn disconnect(
    state: Data<AppState>,
    session: Session,
    Checked(_form): Checked<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let app = laptop(&state)?;
    if let Some(why) = not_yet(&state).await? {
        let error = format!("This laptop was not disconnected: {why}");
        let page = connection_page(&state, &session, Some(error)).await?;
        return Ok(page_with_status(StatusCode::CONFLICT, page.render()?));
    }
    app.disconnect();
    state.db(store::forget_data).await?;
    tracing::info!("this laptop is disconnected; its data is forgotten");
    Ok(see_other("/connect"))
}
