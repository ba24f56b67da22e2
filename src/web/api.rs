//! The device API (PROTOCOL.md §3): thin handlers that authenticate the device, move the
//! request body to and from the blocking pool, and call the sync engine.

use std::future::{Ready, ready};
use std::io::{Seek, SeekFrom, Write};

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::web::{self, Bytes, Data, Path};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use super::AppState;
use super::error::ApiError;
use crate::accounts::{self, AccountError, Enrolment, SignIn};
use crate::db::repo::accounts::Device;
use crate::domain::time;
use crate::sync::code::ErrorCode;
use crate::sync::{download, session};

/// The token's text from `Authorization: Bearer TOKEN`.
pub struct BearerToken(Option<String>);

impl FromRequest for BearerToken {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` is `Bearer`.
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_owned());
        ready(Ok(BearerToken(token)))
    }
}

async fn authenticate(state: &AppState, token: BearerToken) -> Result<Device, ApiError> {
    let Some(token) = token.0 else {
        return Err(ApiError::unauthorized());
    };
    let pool = state.pool.clone();
    let device = super::block(move || {
        let mut conn = pool.get()?;
        accounts::device_for_token(&mut conn, &token)
    })
    .await??;
    device.ok_or_else(ApiError::unauthorized)
}

fn xml(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type(ContentType::xml())
        .body(body)
}

#[derive(serde::Deserialize)]
pub struct ClockParam {
    clock: Option<String>,
    /// `1`: a session whose download is whole, as a first sync's (docs/protocol.md §11).
    whole: Option<String>,
}

/// The offsync version a client names in its `User-Agent` (`offsync/0.1.0`), for the
/// fleet page; other clients name none.
fn client_version(req: &HttpRequest) -> Option<String> {
    let agent = req.headers().get(actix_web::http::header::USER_AGENT)?;
    let version = agent.to_str().ok()?.strip_prefix("offsync/")?;
    let version: String = version
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        .take(40)
        .collect();
    (!version.is_empty()).then_some(version)
}

/// `POST /api/sync/sessions`: opens a session. The device's clock may come as a query
/// parameter or a form field named `clock`; `whole=1` asks for a whole download.
pub async fn open_session(
    state: Data<AppState>,
    req: HttpRequest,
    token: BearerToken,
    query: web::Query<ClockParam>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, token).await?;
    let form = serde_urlencoded::from_bytes::<ClockParam>(&body).ok();
    let query = query.into_inner();
    let whole = query
        .whole
        .as_deref()
        .or(form.as_ref().and_then(|f| f.whole.as_deref()))
        == Some("1");
    let from_form = form.and_then(|f| f.clock);
    let clock = match query.clock.or(from_form) {
        Some(text) => Some(time::parse(&text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidClock,
                format!("clock {text:?} is not an RFC 3339 timestamp"),
            )
        })?),
        None => None,
    };
    let pool = state.pool.clone();
    let version = client_version(&req);
    let s = super::block(move || {
        let mut conn = pool.get().map_err(crate::db::DbError::from)?;
        session::open(&mut conn, &device, clock, version.as_deref(), whole)
    })
    .await??;
    Ok(xml(StatusCode::CREATED, session::session_xml(&s, false)))
}

/// What the parts of an upload other than `changes` may hold together, in bytes.
const OTHER_PARTS_LIMIT: usize = 64 << 10;

fn body_idle() -> std::time::Duration {
    crate::config::tuning().body_idle
}

/// The next part or chunk of a multipart body, unless the client sends nothing for
/// [`body_idle`].
async fn next_part<S: futures_util::Stream + Unpin>(
    stream: &mut S,
) -> Result<Option<S::Item>, ApiError> {
    actix_web::rt::time::timeout(body_idle(), stream.next())
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::Malformed,
                format!(
                    "the upload's body stalled: nothing arrived for {} s",
                    body_idle().as_secs()
                ),
            )
        })
}

fn broken_multipart(e: actix_multipart::MultipartError) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::Malformed,
        format!("a broken multipart body: {e}"),
    )
}

/// `POST /api/sync/sessions/{id}/upload`: the changeset in the multipart file `changes`.
pub async fn upload(
    state: Data<AppState>,
    token: BearerToken,
    path: Path<String>,
    form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, token).await?;
    let session_id = path.into_inner();
    let (file, sha256) = spool_changes(form, state.limits.max_upload_bytes).await?;
    let Some(turn) = state.uploads.turn().await else {
        let at_once = state.uploads.limits().at_once;
        return Err(ApiError::busy(
            format!("{at_once} uploads are being applied on this server; try again shortly"),
            state.uploads.retry_after(),
        ));
    };
    let pool = state.pool.clone();
    let limits = state.limits;
    let result = super::block(move || {
        let result = session::upload(&pool, &device, &session_id, file, &sha256, limits);
        drop(turn);
        result
    })
    .await??;
    Ok(xml(StatusCode::OK, result))
}

/// The form's file part `changes`, streamed to an anonymous temporary file (at most
/// `limit` bytes) with its SHA-256 (to recognise a repeated upload); other parts are read
/// past within a small budget.
async fn spool_changes(
    mut form: Multipart,
    limit: u64,
) -> Result<(std::fs::File, String), ApiError> {
    let mut received: Option<(std::fs::File, String)> = None;
    let mut other_bytes = 0usize;
    while let Some(field) = next_part(&mut form).await? {
        let mut field = field.map_err(broken_multipart)?;
        if field.name() != Some("changes") || received.is_some() {
            while let Some(chunk) = next_part(&mut field).await? {
                other_bytes += chunk.map_err(broken_multipart)?.len();
                if other_bytes > OTHER_PARTS_LIMIT {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        ErrorCode::TooLarge,
                        format!(
                            "the parts other than \"changes\" are larger than {OTHER_PARTS_LIMIT} bytes"
                        ),
                    ));
                }
            }
            continue;
        }
        let mut file = tempfile::tempfile().map_err(ApiError::internal)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = next_part(&mut field).await? {
            let chunk = chunk.map_err(broken_multipart)?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::TooLarge,
                    format!("the uploaded file is larger than {limit} bytes"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).map_err(ApiError::internal)?;
        }
        file.seek(SeekFrom::Start(0)).map_err(ApiError::internal)?;
        received = Some((file, hex::encode(hasher.finalize())));
    }
    received.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::MissingFile,
            "the upload has no file part named \"changes\"",
        )
    })
}

/// Hands the gzip stream from the blocking writer to the response, in bounded pieces.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 << 10;

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

/// `GET /api/sync/sessions/{id}/changes`: the gzip changeset of everything changed since
/// the session's `since`, streamed as it is read.
#[derive(serde::Deserialize)]
pub struct DownloadParams {
    /// Ask for a resumable download (docs/protocol.md §8): checkpoints and an item count.
    resumable: Option<String>,
    /// Resume after this checkpoint.
    after: Option<String>,
}

pub async fn download_changes(
    state: Data<AppState>,
    token: BearerToken,
    path: Path<String>,
    query: web::Query<DownloadParams>,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, token).await?;
    let session_id = path.into_inner();
    let query = query.into_inner();
    let after = match query.after.as_deref() {
        Some(token) => Some(download::Resume::parse(token).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::Malformed,
                format!(
                    "after={token:?} is not a checkpoint of a download; resume after the \
                     after of the last <checkpoint> received, or start again without after"
                ),
            )
        })?),
        None => None,
    };
    let part = download::Part {
        resumable: after.is_some()
            || query
                .resumable
                .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes")),
        after,
    };
    let pool = state.pool.clone();
    let prepared = super::block(move || {
        let mut conn = pool.get().map_err(crate::db::DbError::from)?;
        download::prepare(&mut conn, &device, &session_id)
    })
    .await??;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let pool = state.pool.clone();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _request = span.enter();
        let error_tx = tx.clone();
        let mut out = ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        let outcome = download::write(&pool, &prepared, &part, &mut out).and_then(|n| {
            out.flush()?;
            Ok(n)
        });
        match outcome {
            Ok(rows) => tracing::info!(session = %prepared.session.id, rows, "download sent"),
            Err(e) => {
                tracing::warn!(session = %prepared.session.id, error = %e, "download cut short");
                // Ends the response with an error, so the client sees a broken stream
                // rather than a complete-looking one.
                let _ = error_tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        .streaming(body))
}

/// `POST /api/sync/sessions/{id}/complete`.
pub async fn complete_session(
    state: Data<AppState>,
    token: BearerToken,
    path: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, token).await?;
    let session_id = path.into_inner();
    let pool = state.pool.clone();
    let s = super::block(move || {
        let mut conn = pool.get().map_err(crate::db::DbError::from)?;
        session::complete(&mut conn, &device, &session_id)
    })
    .await??;
    Ok(xml(StatusCode::OK, session::session_xml(&s, true)))
}

/// `GET /api/sync/state`.
pub async fn sync_state(
    state: Data<AppState>,
    token: BearerToken,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, token).await?;
    let pool = state.pool.clone();
    let st = super::block(move || {
        let mut conn = pool.get().map_err(crate::db::DbError::from)?;
        session::state(&mut conn, &device)
    })
    .await??;
    let mut body = String::from("<state");
    if let Some(t) = st.last_sync {
        body.push_str(&format!(" lastSync=\"{}\"", time::format(t)));
    }
    body.push_str(&format!(
        " isConflict=\"{}\" conflicts=\"{}\"/>",
        st.is_conflict, st.conflicts
    ));
    Ok(xml(StatusCode::OK, body))
}

/// Any other path under `/api`: an `<error>` body rather than an HTML page.
pub async fn api_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        "no such API endpoint",
    ))
}

#[derive(serde::Deserialize)]
pub struct EnrolForm {
    username: String,
    password: String,
    label: String,
}

/// `POST /api/devices`: a laptop connects itself (docs/protocol.md §9). The person signs in
/// with their main-site account, counted against the same limits as the sign-in page; a
/// welcome registers a device of theirs and answers its token, once.
pub async fn enrol(
    state: Data<AppState>,
    req: HttpRequest,
    form: web::Form<EnrolForm>,
) -> Result<HttpResponse, ApiError> {
    let address = super::auth::client_address(&req, state.proxies);
    let limits = state.sign_in;
    let EnrolForm {
        username,
        password,
        label,
    } = form.into_inner();
    let who = username.clone();
    let from = address.clone();
    let pool = state.pool.clone();
    let outcome = super::block(move || {
        let mut conn = pool.get().map_err(crate::db::DbError::from)?;
        accounts::enrol(&mut conn, &username, &password, &from, &limits, &label)
    })
    .await?
    .map_err(|e| match e {
        AccountError::Db(db) => ApiError::from(db),
        other => ApiError::internal(other),
    })?;
    let log_who = crate::logsafe::Escaped(&who);
    let log_from = crate::logsafe::Escaped(&address);
    match outcome {
        Enrolment::Welcome(device, token) => {
            tracing::info!(user = %log_who, device = %device.id, address = %log_from, "laptop connected");
            Ok(xml(
                StatusCode::CREATED,
                format!(
                    "<device id=\"{}\" label=\"{}\" token=\"{}\"/>",
                    device.id,
                    quick_xml::escape::escape(device.label.as_str()),
                    token
                ),
            ))
        }
        Enrolment::Invalid(m) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidValue,
            m,
        )),
        Enrolment::Refused(refused) => {
            tracing::info!(user = %log_who, address = %log_from, "laptop connection refused");
            Err(enrol_refusal(&refused))
        }
    }
}

/// Why a laptop may not connect, in the sign-in page's words.
fn enrol_refusal(outcome: &SignIn) -> ApiError {
    match outcome {
        SignIn::Disabled => ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::AccountDisabled,
            "this account is disabled; ask an administrator to enable it",
        ),
        SignIn::Throttled {
            account,
            retry_after,
        } => {
            let whose = match account {
                true => "for this account",
                false => "from this address",
            };
            let minutes = retry_after.as_secs().div_ceil(60);
            ApiError {
                retry_after: Some(retry_after.as_secs()),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TooManyAttempts,
                    format!(
                        "too many failed sign-ins {whose}; wait {minutes} minute{} and try again",
                        if minutes == 1 { "" } else { "s" }
                    ),
                )
            }
        }
        SignIn::Refused | SignIn::Welcome(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            "that user name and password do not match",
        ),
    }
}

/// `GET /api/sync/conflicts`: the device user's open conflicts (docs/protocol.md §10), for
/// the laptop to show offline.
pub async fn open_conflicts(
    state: Data<AppState>,
    token: BearerToken,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, token).await?;
    let pool = state.pool.clone();
    let body = super::block(move || {
        let mut conn = pool.get()?;
        crate::sync::open_conflicts::document(&mut conn, &device.user_id)
    })
    .await??;
    Ok(xml(StatusCode::OK, body))
}
