//! The HTTP side of a sync: the device API with a real client (rustls, timeouts), and
//! retries with backoff for transient failures (never for a 4xx, which would fail again).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the request; retrying would not help.
    #[error("the server refused {what}: {status} {}", refusal.message)]
    Refused {
        what: &'static str,
        status: u16,
        refusal: Box<Refusal>,
    },
    /// No answer from the server at all, even after retries: down, or no network.
    #[error("cannot reach {base}: {reason}")]
    CannotReach { base: String, reason: String },
    /// The server failed, even after retries.
    #[error("{what} failed after {attempts} attempts: {reason}")]
    Unreachable {
        what: &'static str,
        attempts: u32,
        reason: String,
    },
    #[error("the server's answer to {what} was not understood: {reason}")]
    Protocol { what: &'static str, reason: String },
}

/// What a refusal's `<error>` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: String,
    pub message: String,
    /// The row the refusal names (`<error table=".." id=".." field="..">`).
    pub table: Option<String>,
    pub id: Option<String>,
    pub field: Option<String>,
}

/// The main server, as this device talks to it.
#[derive(Clone)]
pub struct Upstream {
    pub base: String,
    token: String,
    http: Client,
    /// Attempts per step, and the first pause between them (doubled each time).
    pub attempts: u32,
    pub backoff: Duration,
    /// How long in all the client waits when the server answers "busy, come back in N
    /// seconds" (503 or 429 with `Retry-After`) before it gives up.
    pub max_wait: Duration,
}

/// The longest single wait a `Retry-After` is obeyed for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A transient answer's `Retry-After`, in seconds (the HTTP-date form is not used by
/// offsync and is treated as absent).
fn retry_after(r: &Response) -> Option<Duration> {
    if !is_transient(r.status()) {
        return None;
    }
    let seconds: u64 = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// A session as the server opened it.
#[derive(Debug, Clone)]
pub struct OpenSession {
    pub id: String,
    pub since: Option<String>,
    pub started: String,
}

/// The counts of an applied upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadResult {
    pub applied: u64,
    pub unchanged: u64,
    pub conflicts: u64,
}

fn attr(xml: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = xml.find(&needle)? + needle.len();
    let end = xml[start..].find('"')? + start;
    Some(
        quick_xml::escape::unescape(&xml[start..end])
            .ok()?
            .into_owned(),
    )
}

/// Why a request got no usable answer.
enum Failure {
    /// Nothing came back: refused, timed out, no route, a name that does not resolve.
    NoAnswer(String),
    /// Something on this side (the file to upload, building the request).
    Other(String),
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Failure {
        if e.is_connect() || e.is_timeout() {
            Failure::NoAnswer(root_cause(&e, e.is_timeout()))
        } else if e.is_request() || e.is_body() {
            // Cut off while sending or reading: the line dropped.
            Failure::NoAnswer(root_cause(&e, false))
        } else {
            Failure::Other(e.to_string())
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Other(e.to_string())
    }
}

/// The innermost cause in words ("connection refused", "timed out"), without the
/// operating system's error number: what a person reads first.
fn root_cause(e: &(dyn std::error::Error + 'static), timeout: bool) -> String {
    if timeout {
        return "no answer in time (timed out)".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "no answer".into(),
    }
}

impl Upstream {
    pub fn new(base: &str, token: &str) -> Result<Upstream, ClientError> {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Generous: a first download of a large data set streams for a while.
            .timeout(Duration::from_secs(30 * 60))
            .user_agent(concat!("offsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Protocol {
                what: "setting up the HTTP client",
                reason: e.to_string(),
            })?;
        Ok(Upstream {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http,
            attempts: 4,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(15 * 60),
        })
    }

    /// Runs `send` until it gets an answer that is not a transient failure.
    fn with_retries(
        &self,
        what: &'static str,
        send: impl Fn() -> Result<Response, Failure>,
    ) -> Result<Response, ClientError> {
        let mut pause = self.backoff;
        let mut last;
        let mut no_answer;
        let mut waited = Duration::ZERO;
        let mut attempt = 1;
        loop {
            match send() {
                Ok(r) if r.status().is_success() => return Ok(r),
                // A busy server says when to come back: being told to wait is not a failed
                // attempt, up to a bound on the whole wait.
                Ok(r) if retry_after(&r).is_some() && waited < self.max_wait => {
                    let wait = retry_after(&r).unwrap_or_default().min(MAX_RETRY_AFTER);
                    tracing::info!(what, status = %r.status(), seconds = wait.as_secs(), "the server asked to wait");
                    waited += wait;
                    std::thread::sleep(wait);
                    continue;
                }
                Ok(r) if is_transient(r.status()) => {
                    last = format!("the server answered {}", r.status());
                    no_answer = false;
                }
                Ok(r) => return Err(refused(what, r)),
                Err(Failure::NoAnswer(reason)) => {
                    last = reason;
                    no_answer = true;
                }
                Err(Failure::Other(reason)) => {
                    last = reason;
                    no_answer = false;
                }
            }
            if attempt >= self.attempts.max(1) {
                break;
            }
            // Not a warning: the outcome, after the last attempt, is what a person reads.
            tracing::info!(what, attempt, reason = %last, "retrying");
            std::thread::sleep(pause);
            pause *= 2;
            attempt += 1;
        }
        if no_answer {
            return Err(ClientError::CannotReach {
                base: self.base.clone(),
                reason: last,
            });
        }
        Err(ClientError::Unreachable {
            what,
            attempts: self.attempts.max(1),
            reason: last,
        })
    }

    /// Connects this laptop to the main server at `base` (docs/protocol.md §9): signs in as
    /// `user` and registers a device named `label`. One attempt: a person is waiting, and a
    /// wrong password must not count twice. The answer is the upstream to sync with.
    pub fn enrol(
        base: &str,
        user: &str,
        password: &str,
        label: &str,
    ) -> Result<Upstream, ClientError> {
        let mut upstream = Upstream::new(base, "")?;
        let url = format!("{}/api/devices", upstream.base);
        let r = upstream
            .http
            .post(&url)
            .timeout(Duration::from_secs(30))
            .form(&[("username", user), ("password", password), ("label", label)])
            .send();
        let r = match r {
            Ok(r) if r.status() == StatusCode::CREATED => r,
            Ok(r) => return Err(refused("connecting this laptop", r)),
            Err(e) => {
                let reason = match Failure::from(e) {
                    Failure::NoAnswer(reason) | Failure::Other(reason) => reason,
                };
                return Err(ClientError::CannotReach {
                    base: upstream.base,
                    reason,
                });
            }
        };
        let body = text(r, "connecting this laptop")?;
        upstream.token =
            attr(&body, "token").ok_or_else(|| protocol("connecting this laptop", &body))?;
        Ok(upstream)
    }

    /// The user's open conflicts on the main site (docs/protocol.md §10), to show offline.
    pub fn open_conflicts(&self) -> Result<Vec<crate::offline::store::OpenConflict>, ClientError> {
        let url = format!("{}/api/sync/conflicts", self.base);
        let r = self.with_retries("reading your conflicts", || {
            self.http
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .map_err(Failure::from)
        })?;
        let body = text(r, "reading your conflicts")?;
        parse_open_conflicts(&body).map_err(|reason| ClientError::Protocol {
            what: "reading your conflicts",
            reason,
        })
    }

    /// The device token, to keep in the laptop's database.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn open(&self, clock: &str) -> Result<OpenSession, ClientError> {
        self.open_session(clock, false)
    }

    /// A session whose download is whole, as a first sync's (docs/protocol.md §11).
    pub fn open_whole(&self, clock: &str) -> Result<OpenSession, ClientError> {
        self.open_session(clock, true)
    }

    fn open_session(&self, clock: &str, whole: bool) -> Result<OpenSession, ClientError> {
        // The laptop's clock, so that the server can show change times corrected for it.
        let url = format!(
            "{}/api/sync/sessions?clock={}{}",
            self.base,
            clock.replace('+', "%2B"),
            if whole { "&whole=1" } else { "" }
        );
        let r = self.with_retries("opening a session", || {
            self.http
                .post(&url)
                .bearer_auth(&self.token)
                .send()
                .map_err(Failure::from)
        })?;
        let body = text(r, "opening a session")?;
        Ok(OpenSession {
            id: attr(&body, "id").ok_or_else(|| protocol("opening a session", &body))?,
            since: attr(&body, "since"),
            started: attr(&body, "started").ok_or_else(|| protocol("opening a session", &body))?,
        })
    }

    /// Uploads the changeset file as the form file `changes`.
    pub fn upload(&self, session: &str, file: &Path) -> Result<UploadResult, ClientError> {
        let url = format!("{}/api/sync/sessions/{session}/upload", self.base);
        let r = self.with_retries("uploading", || {
            let opened = std::fs::File::open(file).map_err(Failure::from)?;
            let length = opened.metadata().map_err(Failure::from)?.len();
            let part = reqwest::blocking::multipart::Part::reader_with_length(opened, length)
                .file_name("changes.xml.gz")
                .mime_str("application/gzip")
                .map_err(Failure::from)?;
            let form = reqwest::blocking::multipart::Form::new().part("changes", part);
            self.http
                .post(&url)
                .bearer_auth(&self.token)
                .multipart(form)
                .send()
                .map_err(Failure::from)
        })?;
        let body = text(r, "uploading")?;
        let n = |k| {
            attr(&body, k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| protocol("uploading", &body))
        };
        Ok(UploadResult {
            applied: n("applied")?,
            unchanged: n("unchanged")?,
            conflicts: n("conflicts")?,
        })
    }

    /// The download's body, to be read as a stream.
    pub fn download(&self, session: &str) -> Result<impl Read + use<>, ClientError> {
        let url = format!("{}/api/sync/sessions/{session}/changes", self.base);
        self.with_retries("downloading", || {
            self.http
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .map_err(Failure::from)
        })
    }

    /// A resumable download (docs/protocol.md §8), from its start or after a checkpoint.
    pub fn download_part(
        &self,
        session: &str,
        after: Option<&str>,
    ) -> Result<impl Read + use<>, ClientError> {
        let mut url = format!(
            "{}/api/sync/sessions/{session}/changes?resumable=1",
            self.base
        );
        if let Some(token) = after {
            // Tokens are letters, digits, dots and dashes (docs/protocol.md §8).
            url.push_str("&after=");
            url.push_str(token);
        }
        self.with_retries("downloading", || {
            self.http
                .get(&url)
                .bearer_auth(&self.token)
                .send()
                .map_err(Failure::from)
        })
    }

    pub fn complete(&self, session: &str) -> Result<(), ClientError> {
        let url = format!("{}/api/sync/sessions/{session}/complete", self.base);
        self.with_retries("completing", || {
            self.http
                .post(&url)
                .bearer_auth(&self.token)
                .send()
                .map_err(Failure::from)
        })?;
        Ok(())
    }
}

fn is_transient(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

fn refused(what: &'static str, r: Response) -> ClientError {
    let status = r.status().as_u16();
    let body = r.text().unwrap_or_default();
    ClientError::Refused {
        what,
        status,
        refusal: Box::new(Refusal {
            code: attr(&body, "code").unwrap_or_default(),
            table: attr(&body, "table"),
            id: attr(&body, "id"),
            field: attr(&body, "field"),
            message: body
                .split_once('>')
                .and_then(|(_, rest)| rest.rsplit_once("</error>"))
                .map(|(m, _)| {
                    quick_xml::escape::unescape(m).map_or_else(|_| m.to_owned(), |m| m.into_owned())
                })
                .unwrap_or(body),
        }),
    }
}

fn text(r: Response, what: &'static str) -> Result<String, ClientError> {
    r.text().map_err(|e| ClientError::Unreachable {
        what,
        attempts: 1,
        reason: e.to_string(),
    })
}

fn protocol(what: &'static str, body: &str) -> ClientError {
    ClientError::Protocol {
        what,
        reason: body.chars().take(200).collect(),
    }
}

/// The `<conflicts>` document of docs/protocol.md §10.
fn parse_open_conflicts(body: &str) -> Result<Vec<crate::offline::store::OpenConflict>, String> {
    use crate::offline::store::{OpenConflict, OpenConflictField};
    use quick_xml::events::{BytesStart, Event};
    fn attrs(e: &BytesStart<'_>) -> Result<std::collections::HashMap<String, String>, String> {
        let mut out = std::collections::HashMap::new();
        for a in e.attributes() {
            let a = a.map_err(|e| e.to_string())?;
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?
                .into_owned();
            let key = a.key.0.to_owned();
            out.insert(key, value);
        }
        Ok(out)
    }
    let mut reader = quick_xml::Reader::from_str(body);
    let mut out = Vec::new();
    let mut current: Option<OpenConflict> = None;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        let (e, empty) = match &event {
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::End(e) if e.name().into_inner() == "conflict" => {
                out.extend(current.take());
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match e.name().into_inner() {
            "conflict" => {
                let mut a = attrs(e)?;
                let mut need = |name: &str| {
                    a.remove(name)
                        .ok_or_else(|| format!("a conflict without {name}"))
                };
                let c = OpenConflict {
                    id: need("id")?,
                    table_name: need("table")?,
                    row_id: need("row")?,
                    kind: need("kind")?,
                    recorded: need("recorded")?,
                    server_by: a.remove("serverBy"),
                    server_at: a.remove("serverAt"),
                    fields: Vec::new(),
                };
                match empty {
                    true => out.push(c),
                    false => current = Some(c),
                }
            }
            "field" => {
                let mut a = attrs(e)?;
                let field = OpenConflictField {
                    name: a.remove("name").ok_or("a field without a name")?,
                    server: a.remove("server"),
                    offline: a.remove("offline"),
                };
                if let Some(c) = current.as_mut() {
                    c.fields.push(field);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
