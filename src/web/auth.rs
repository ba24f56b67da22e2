//! Signing in and out of the pages, the signed-in user, and CSRF tokens.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Form};
use actix_web::{HttpRequest, HttpResponse, web::Html};
use askama::Template;
use rand::RngCore;

use super::error::PageError;
use super::{AppState, page_with_status, see_other};
use crate::accounts::{self, SignIn};
use crate::db::DbError;
use crate::db::repo::accounts::User;
use crate::db::repo::conflicts;
use crate::logsafe::Escaped;

/// The cookie's secret of the server-side session ([`accounts::start_session`]).
const SESSION_KEY: &str = "session";
const CSRF_KEY: &str = "csrf";

/// The session's CSRF token, made on first use.
pub fn csrf_token(session: &Session) -> String {
    if let Ok(Some(t)) = session.get::<String>(CSRF_KEY) {
        return t;
    }
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    // A session that cannot be written only means the next form post is refused.
    let _ = session.insert(CSRF_KEY, &token);
    token
}

/// Refuses a form post whose token is not the session's.
pub fn check_csrf(session: &Session, posted: Option<&str>) -> Result<(), PageError> {
    let expected = session.get::<String>(CSRF_KEY).ok().flatten();
    match (expected, posted) {
        (Some(e), Some(p)) if constant_time_eq(e.as_bytes(), p.as_bytes()) => Ok(()),
        _ => Err(PageError::new(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this site. Go back, reload the page and try again.",
        )),
    }
}

/// A form that carries the CSRF token of the session it was shown in.
pub trait CsrfField {
    fn csrf(&self) -> Option<&str>;
}

/// A posted form, taken only when its CSRF token is the session's (403 otherwise): the way
/// in for every state-changing page request.
pub struct Checked<T>(pub T);

impl<T> actix_web::FromRequest for Checked<T>
where
    T: serde::de::DeserializeOwned + CsrfField + 'static,
{
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Checked<T>, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_session::SessionExt;
        let session = req.get_session();
        let form = Form::<T>::from_request(req, payload);
        Box::pin(async move {
            let form = form.await?.into_inner();
            check_csrf(&session, form.csrf())?;
            Ok(Checked(form))
        })
    }
}

/// Forms whose token is their `csrf` field.
#[macro_export]
macro_rules! csrf_field {
    ($($form:ty),* $(,)?) => {
        $(impl $crate::web::auth::CsrfField for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        })*
    };
}

/// A form read as name/value pairs (the record forms, whose fields come from the
/// declaration): its token is the pair named `csrf`.
impl CsrfField for Vec<(String, String)> {
    fn csrf(&self) -> Option<&str> {
        self.iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str())
    }
}

csrf_field!(LoginForm, CsrfOnly);

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What every page's layout shows about the person.
pub struct Layout {
    pub user_name: Option<String>,
    pub is_admin: bool,
    pub is_conflict: bool,
    pub conflicts: i64,
    pub csrf: String,
    /// The offline copy's header (offline mode only).
    pub offline: Option<super::offline::OfflineBar>,
}

/// The signed-in user and the layout facts about them.
pub struct Viewer {
    pub user: User,
    pub layout: Layout,
    /// What they may do with the records (the laptop's on the offline copy).
    pub rights: crate::editing::Rights,
    /// The zone their browser is in (its `offsync-tz` cookie), else the setting's.
    pub zone: chrono_tz::Tz,
    /// The engineer at the pages, when known: the signed-in user; on a laptop, who
    /// connected it.
    pub engineer: Option<String>,
}

/// The cookie the pages' script sets to the browser's time zone (an IANA name).
pub const ZONE_COOKIE: &str = "offsync-tz";

impl Viewer {
    /// The viewer as the record pages' services need them.
    pub fn who(&self) -> crate::services::records::Who {
        crate::services::records::Who {
            rights: self.rights,
            zone: self.zone,
            name: self.user.name.clone(),
            engineer: self.engineer.clone(),
        }
    }

    /// The viewer, if an administrator; else 403 saying `what` is for administrators.
    pub fn administrator(self, what: &str) -> Result<Viewer, PageError> {
        if !self.user.is_admin {
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                format!("{what} for administrators."),
            ));
        }
        Ok(self)
    }
}

/// The way in for every page: the signed-in user with their rights, or (as the handler's
/// error) a redirect to the sign-in page. On the laptop copy, the laptop.
impl actix_web::FromRequest for Viewer {
    type Error = PageError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Viewer, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_session::SessionExt;
        let state = req.app_data::<Data<AppState>>().cloned();
        let session = req.get_session();
        let zone = req
            .cookie(ZONE_COOKIE)
            .and_then(|c| c.value().parse::<chrono_tz::Tz>().ok());
        Box::pin(async move {
            let state =
                state.ok_or_else(|| PageError::internal("the server's state is missing"))?;
            let mut v = viewer(&state, &session).await?;
            if let Some(zone) = zone {
                v.zone = zone;
            }
            Ok(v)
        })
    }
}

/// The signed-in user, or a redirect to the sign-in page. The offline copy has no sign-in:
/// the laptop's owner is the person at it.
pub async fn viewer(state: &AppState, session: &Session) -> Result<Viewer, PageError> {
    if state.laptop().is_some() {
        let layout = super::offline::offline_layout(state, session).await?;
        let user = User {
            id: String::new(),
            name: "this laptop".into(),
            password_hash: String::new(),
            is_admin: false,
            is_conflict: false,
            disabled_at: None,
            role: String::new(),
        };
        let engineer = state
            .laptop()
            .and_then(super::offline::OfflineApp::engineer);
        return Ok(Viewer {
            user,
            layout,
            rights: crate::editing::Rights::Laptop,
            zone: crate::config::tuning().time_zone,
            engineer,
        });
    }
    let Some(secret) = session.get::<String>(SESSION_KEY).ok().flatten() else {
        return Err(PageError::sign_in());
    };
    let timeouts = state.sessions;
    let found = state
        .db(move |conn| {
            let user = accounts::session_user(conn, &secret, &timeouts)?;
            let open = match &user {
                Some(u) => conflicts::count_open(conn, Some(&u.id))?,
                None => 0,
            };
            Ok::<_, crate::db::DbError>(user.map(|u| (u, open)))
        })
        .await?;
    let Some((user, open)) = found else {
        session.purge();
        return Err(PageError::sign_in());
    };
    let layout = Layout {
        user_name: Some(user.name.clone()),
        is_admin: user.is_admin,
        is_conflict: user.is_conflict,
        conflicts: open,
        csrf: csrf_token(session),
        offline: None,
    };
    let rights = accounts::Role::of(&user).rights();
    Ok(Viewer {
        engineer: Some(user.name.clone()),
        user,
        layout,
        rights,
        zone: crate::config::tuning().time_zone,
    })
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    username: String,
    error: Option<String>,
}

fn anonymous_layout(session: &Session) -> Layout {
    Layout {
        user_name: None,
        is_admin: false,
        is_conflict: false,
        conflicts: 0,
        csrf: csrf_token(session),
        offline: None,
    }
}

/// `GET /login`.
pub async fn login_form(session: Session) -> Result<Html, PageError> {
    let page = LoginPage {
        layout: anonymous_layout(&session),
        username: String::new(),
        error: None,
    };
    Ok(Html::new(page.render()?))
}

#[derive(serde::Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: Option<String>,
}

/// `POST /login`: rate-limited per account name and per client address
/// ([`accounts::SignInLimits`]). A welcome starts a server-side session.
pub async fn login(
    state: Data<AppState>,
    session: Session,
    req: HttpRequest,
    Checked(form): Checked<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let address = client_address(&req, state.proxies);
    let (limits, timeouts) = (state.sign_in, state.sessions);
    let (name, password, from) = (form.username.clone(), form.password, address.clone());
    let outcome = state
        .db(move |conn| {
            let outcome = accounts::sign_in_limited(conn, &name, &password, &from, &limits)?;
            let secret = match &outcome {
                SignIn::Welcome(user) => Some(accounts::start_session(conn, &user.id, &timeouts)?),
                _ => None,
            };
            Ok::<_, DbError>((outcome, secret))
        })
        .await?;
    let (user, secret) = match outcome {
        (SignIn::Welcome(user), Some(secret)) => (user, secret),
        (refused, _) => {
            let (status, error, retry_after) = refusal(&refused);
            tracing::info!(user = %Escaped(&form.username), address = %Escaped(&address), %status, "sign-in refused");
            let page = LoginPage {
                layout: anonymous_layout(&session),
                username: form.username,
                error: Some(error),
            };
            let mut response = page_with_status(status, page.render()?);
            if let Some(seconds) = retry_after {
                response.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(seconds),
                );
            }
            return Ok(response);
        }
    };
    // A new session on sign-in, so that a session id or a CSRF token planted (or read)
    // before it is worthless after: the next page makes a new token.
    session.remove(CSRF_KEY);
    session.renew();
    session
        .insert(SESSION_KEY, &secret)
        .map_err(PageError::internal)?;
    tracing::info!(user = %Escaped(&user.name), "signed in");
    Ok(see_other("/"))
}

/// Why a sign-in was refused, as the page says it: the status, the sentence, and the
/// seconds to wait when it was throttled.
fn refusal(outcome: &SignIn) -> (StatusCode, String, Option<u64>) {
    match outcome {
        SignIn::Disabled => (
            StatusCode::FORBIDDEN,
            "This account is disabled. Ask an administrator to enable it.".into(),
            None,
        ),
        SignIn::Throttled {
            account,
            retry_after,
        } => {
            let minutes = retry_after.as_secs().div_ceil(60);
            let whose = match account {
                true => "for this account",
                false => "from this address",
            };
            let plural = if minutes == 1 { "" } else { "s" };
            (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins {whose}. Please wait {minutes} minute{plural} and try again."
                ),
                Some(retry_after.as_secs()),
            )
        }
        SignIn::Refused | SignIn::Welcome(_) => (
            StatusCode::UNAUTHORIZED,
            "That user name and password do not match. Please try again.".into(),
            None,
        ),
    }
}

/// The proxies in front of the server: how many, and which header they write. Each one
/// appends the address it saw to the header, so with `count` proxies the client is the
/// `count`-th address from the right; whatever stands further left was written by the
/// client and is not believed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Proxies {
    pub count: usize,
    /// RFC 7239 `Forwarded` (its `for=`) instead of `X-Forwarded-For`.
    pub forwarded_header: bool,
}

/// The client's IP address: the TCP peer, or behind trusted proxies the address the
/// outermost one saw.
pub fn client_address(req: &HttpRequest, proxies: Proxies) -> String {
    let peer = req.peer_addr().map(|a| a.ip());
    let told = (proxies.count > 0)
        .then(|| {
            let hops = forwarded_hops(req, proxies.forwarded_header);
            // Fewer hops than proxies: the request did not come through all of them.
            let hop = hops.len().checked_sub(proxies.count).map(|i| &hops[i])?;
            parse_hop(hop)
        })
        .flatten();
    told.or(peer)
        .map_or_else(|| "unknown".into(), |ip| ip.to_string())
}

/// The addresses in the proxies' header, left to right, over every line of it.
fn forwarded_hops(req: &HttpRequest, forwarded: bool) -> Vec<String> {
    let name = if forwarded {
        actix_web::http::header::FORWARDED
    } else {
        actix_web::http::header::HeaderName::from_static("x-forwarded-for")
    };
    let mut hops = Vec::new();
    for value in req.headers().get_all(name) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for element in value.split(',').take(64) {
            let hop = if forwarded {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| v.trim().trim_matches('"').to_owned())
                })
            } else {
                Some(element.trim().to_owned())
            };
            hops.push(hop.unwrap_or_default());
        }
    }
    hops
}

/// An address as a proxy writes it: `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:80` or bare
/// IPv6.
fn parse_hop(hop: &str) -> Option<std::net::IpAddr> {
    hop.parse::<std::net::IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            hop.strip_prefix('[')?
                .split(']')
                .next()?
                .parse::<std::net::IpAddr>()
                .ok()
        })
}

#[derive(serde::Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

/// `POST /logout`: ends this session on the server, so that no copy of the cookie works.
pub async fn logout(
    state: Data<AppState>,
    session: Session,
    Checked(_form): Checked<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    if let Some(secret) = session.get::<String>(SESSION_KEY).ok().flatten() {
        state
            .db(move |conn| accounts::end_session(conn, &secret))
            .await?;
    }
    session.purge();
    Ok(see_other("/login"))
}

/// `POST /logout/everywhere`: ends every session of the signed-in user (a lost laptop, a
/// shared computer), this one included.
pub async fn logout_everywhere(
    state: Data<AppState>,
    session: Session,
    v: Viewer,
    Checked(_form): Checked<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user_id = v.user.id.clone();
    let ended = state
        .db(move |conn| accounts::end_all_sessions(conn, &user_id))
        .await?;
    tracing::info!(user = %Escaped(&v.user.name), sessions = ended, "signed out everywhere");
    session.purge();
    Ok(see_other("/login"))
}

/// `GET /`: the sites for a signed-in person, else the sign-in page.
pub async fn home(session: Session) -> HttpResponse {
    let signed_in = session.get::<String>(SESSION_KEY).ok().flatten().is_some();
    see_other(if signed_in { "/sites" } else { "/login" })
}
