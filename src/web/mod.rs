//! The HTTP edge. Every route of the main site and of the laptop copy is in [`routes`];
//! every request meets the same checks on its way in (the laptop's [`laptop`] guard, the
//! page rules, a request id), and a handler's own way in is its extractors: the signed-in
//! [`auth::Viewer`] with its rights, the device's [`api::BearerToken`]. Handlers are thin:
//! they read the request, call one [`crate::services`] function through [`AppState::db`]
//! and render what it returns with an askama template ([`page!`]).

pub mod api;
mod assets;
pub mod auth;
pub mod conflicts;
pub mod connect;
pub mod deleted;
pub mod devices;
pub mod error;
pub mod fleet;
pub mod gate;
pub mod laptop;
pub mod offline;
pub mod records;
pub mod routes;
pub mod users;

use std::net::TcpListener;

use actix_session::SessionMiddleware;
use actix_session::config::CookieContentSecurity;
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite};
use actix_web::dev::Server;
use actix_web::http::header::ContentType;
use actix_web::middleware::DefaultHeaders;
use actix_web::web::{self, Data};
use actix_web::{App, HttpResponse, HttpServer};

use crate::accounts::{SessionTimeouts, SignInLimits};
use crate::db::Pool;
use crate::editing::Mode;
use crate::logsafe::Escaped;
use crate::sync::session::Limits;

/// A page: the layout every page has around the view model its service returned, which
/// the template reads through `Deref` (`{{ title }}` is the view's `title`).
macro_rules! page {
    ($name:ident, $path:tt, $view:ty) => {
        #[derive(askama::Template)]
        #[template(path = $path)]
        struct $name {
            layout: $crate::web::auth::Layout,
            view: $view,
        }

        impl std::ops::Deref for $name {
            type Target = $view;
            fn deref(&self) -> &$view {
                &self.view
            }
        }
    };
}
pub(crate) use page;

/// Which of the two this server is.
pub enum Site {
    /// The main site.
    Main,
    /// The offline copy on a laptop: its upstream and sync status.
    Laptop(offline::OfflineApp),
}

/// What every handler shares.
pub struct AppState {
    pub pool: Pool,
    pub limits: Limits,
    pub site: Site,
    pub sign_in: SignInLimits,
    pub sessions: SessionTimeouts,
    pub proxies: auth::Proxies,
    pub uploads: std::sync::Arc<gate::UploadGate>,
}

impl AppState {
    /// The laptop copy's own state, on a laptop.
    pub fn laptop(&self) -> Option<&offline::OfflineApp> {
        match &self.site {
            Site::Laptop(app) => Some(app),
            Site::Main => None,
        }
    }

    /// Runs `work` on the blocking pool with a pooled connection: the one way a handler
    /// reaches the database. `work` is a service call (or a few), which owns its
    /// transactions; its errors become the page's.
    pub async fn db<T, E, F>(&self, work: F) -> Result<T, error::PageError>
    where
        F: FnOnce(&mut crate::db::DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<error::PageError> + Send + 'static,
    {
        let pool = self.pool.clone();
        block(move || {
            let mut conn = pool.get().map_err(crate::db::DbError::from)?;
            work(&mut conn).map_err(Into::into)
        })
        .await?
    }

    /// Where edits are made: stamped by this server, or logged on a laptop.
    pub fn mode(&self) -> Mode {
        match self.site {
            Site::Main => Mode::Online,
            Site::Laptop(_) => Mode::Offline,
        }
    }
}

/// Settings of the web layer.
#[derive(Clone)]
pub struct WebSettings {
    pub limits: Limits,
    /// Signs the session cookie; the same key on every instance keeps sessions valid
    /// across them.
    pub session_key: Key,
    /// Mark the cookie Secure (serve behind TLS).
    pub secure_cookies: bool,
    pub workers: usize,
    pub sign_in: SignInLimits,
    /// How long a browser session stands.
    pub sessions: SessionTimeouts,
    /// The proxies in front of this server, whose word on the client's address is taken.
    pub proxies: auth::Proxies,
    pub uploads: gate::UploadLimits,
}

/// A 303 to `to`: where the browser goes after a form post, or from a bare address.
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to))
        .finish()
}

/// `path` when it is a path on this site, to send a browser back to: one `/`, then not a
/// second `/` or a `\\` (which browsers read as `/`, so `/\\evil.example/` is another
/// site), and no control characters.
pub fn local_path(path: Option<&str>) -> Option<&str> {
    let path = path?;
    let rest = path.strip_prefix('/')?;
    let fine = !rest.starts_with('/')
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path.len() <= 2048;
    fine.then_some(path)
}

/// A rendered page with another status than 200 (a form shown again with its messages).
pub fn page_with_status(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .body(body)
}

/// `GET /healthz`: 200 when the database answers.
pub async fn healthz(state: Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    let ok = block(move || {
        let mut conn = pool.get()?;
        crate::db::repo::accounts::count_users(&mut conn)
    })
    .await
    .map(|r| r.is_ok())
    .unwrap_or(false);
    if ok {
        HttpResponse::Ok()
            .content_type(ContentType::plaintext())
            .body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type(ContentType::plaintext())
            .body("database unavailable\n")
    }
}

/// `web::block` with the request's tracing span (and so its id) carried into the blocking
/// thread, so that what a handler logs there names its request.
pub async fn block<F, R>(f: F) -> Result<R, actix_web::error::BlockingError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    web::block(move || span.in_scope(f)).await
}

/// Gives every request an id: a span around its handling (so every log line it causes
/// carries the id), an `X-Request-Id` response header, and one access-log line. A proxy's
/// `X-Request-Id` is kept when it looks like one.
fn with_request_id<S, B>(
    req: actix_web::dev::ServiceRequest,
    service: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>
+ use<S, B>
where
    S: actix_web::dev::Service<
            actix_web::dev::ServiceRequest,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
{
    use actix_web::http::header::{HeaderName, HeaderValue};
    use tracing::Instrument;
    const HEADER: HeaderName = HeaderName::from_static("x-request-id");
    let id = req
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(new_request_id, str::to_owned);
    let span = tracing::info_span!("request", id = %id);
    let (method, path) = (req.method().clone(), req.path().to_owned());
    let started = std::time::Instant::now();
    let response = span.in_scope(|| service.call(req));
    async move {
        let outcome = response.await;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        match outcome {
            Ok(mut res) => {
                let status = res.status().as_u16();
                if let Ok(value) = HeaderValue::from_str(&id) {
                    res.headers_mut().insert(HEADER, value);
                }
                tracing::info!(target: "offsync::http", %method, path = %Escaped(&path), status, ms = format_args!("{ms:.1}"));
                Ok(res)
            }
            Err(e) => {
                tracing::warn!(target: "offsync::http", %method, path = %Escaped(&path), error = %Escaped(&e.to_string()), ms = format_args!("{ms:.1}"));
                Err(e)
            }
        }
    }
    .instrument(span)
}

/// Rules every answer follows: HEAD is served as GET (the connection sends no body for a
/// HEAD request, and the headers are the GET's), and a page (HTML) says `Cache-Control:
/// no-store`, so that a signed-in page, or one showing a new device token, is not kept by
/// the browser or a proxy for the next person at the machine.
fn page_rules<S, B>(
    mut req: actix_web::dev::ServiceRequest,
    service: &S,
) -> impl std::future::Future<Output = Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>>
+ use<S, B>
where
    S: actix_web::dev::Service<
            actix_web::dev::ServiceRequest,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
{
    use actix_web::http::{Method, header};
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let response = service.call(req);
    async move {
        let mut res = response.await?;
        let headers = res.headers_mut();
        let page = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        if page && !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
        }
        Ok(res)
    }
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

/// Starts serving on `listener` (already bound, so tests can use port 0): the main site,
/// or with `offline` the offline copy of it.
pub fn serve(
    listener: TcpListener,
    pool: Pool,
    settings: WebSettings,
    offline: Option<offline::OfflineApp>,
) -> std::io::Result<Server> {
    let state = Data::new(AppState {
        pool,
        limits: settings.limits,
        site: match offline {
            Some(app) => Site::Laptop(app),
            None => Site::Main,
        },
        sign_in: settings.sign_in,
        sessions: settings.sessions,
        proxies: settings.proxies,
        uploads: gate::UploadGate::new(settings.uploads),
    });
    let address = listener.local_addr()?;
    let guard = match state.laptop() {
        Some(app) => {
            if app.password.is_none() && laptop::Guard::needs_password(address) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "the laptop copy listens beyond loopback ({address}) only with a \
                         password for its pages (OFFSYNC_OFFLINE_PASSWORD or --password-file)"
                    ),
                ));
            }
            Some(laptop::Guard::for_address(address, app.password.clone()))
        }
        None => None,
    };
    let key = settings.session_key.clone();
    let secure = settings.secure_cookies;
    // Each its own cookie: on one machine, signing in to one must not sign out the other.
    let cookie = match state.mode() {
        Mode::Online => "offsync",
        Mode::Offline => "offsync-laptop",
    };
    let server = HttpServer::new(move || {
        let guard = guard.clone();
        let session = SessionMiddleware::builder(CookieSessionStore::default(), key.clone())
            .cookie_name(cookie.into())
            .cookie_http_only(true)
            .cookie_same_site(SameSite::Lax)
            .cookie_secure(secure)
            .cookie_content_security(CookieContentSecurity::Private)
            .build();
        App::new()
            .app_data(state.clone())
            .app_data(
                web::FormConfig::default()
                    .limit(256 << 10)
                    .error_handler(|e, _| {
                        error::PageError::new(
                            actix_web::http::StatusCode::BAD_REQUEST,
                            format!("The form could not be read ({e}). Go back and try again."),
                        )
                        .into()
                    }),
            )
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                error::PageError::new(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    format!("The address is not understood ({e})."),
                )
                .into()
            }))
            .wrap(session)
            .wrap(
                DefaultHeaders::new()
                    .add(("X-Content-Type-Options", "nosniff"))
                    .add(("Referrer-Policy", "same-origin"))
                    .add((
                        "Content-Security-Policy",
                        "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
                    )),
            )
            .wrap_fn(page_rules)
            .wrap_fn(move |req, srv| laptop::guard(guard.as_ref(), req, srv))
            .wrap_fn(with_request_id)
            .configure(|cfg| match state.mode() {
                Mode::Online => routes::main_site(cfg),
                Mode::Offline => routes::laptop(cfg),
            })
    })
    // No Nagle: a response's last small write (the chunked body's end) must not wait for
    // the client's delayed acknowledgement (40 ms on every streamed download).
    .on_connect(|connection, _| {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
        }
    })
    .workers(settings.workers.max(1))
    .listen(listener)?
    .run();
    Ok(server)
}
