//! The offline copy's own parts of the pages: the header with the upstream, the last sync,
//! the waiting changes and the "Sync now" button; running a sync in the background; and the
//! list of local changes the server did not take.

use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::web::{Data, Html};
use askama::Template;

use super::auth::{Checked, Layout, Viewer};
use super::error::PageError;
use super::{AppState, see_other};
use crate::db::{DbError, Pool};
use crate::domain::Micros;
use crate::domain::{table_by_name, time};
use crate::offline::client::{ClientError, Upstream};
use crate::offline::store;
use crate::offline::sync;
use crate::services::present::{field_label, timestamp};

/// What the offline copy shares between its pages.
pub struct OfflineApp {
    /// The main server and this laptop's token there, once connected; `None` until the
    /// engineer connects it (the connect page) or after "Disconnect".
    connection: Arc<RwLock<Option<Upstream>>>,
    /// The main server's address to offer on the connect page.
    server_hint: Mutex<String>,
    /// The main-site user who connected the laptop (a new inspection's inspector), kept
    /// with the connection rather than read again for every page.
    engineer: RwLock<Option<String>>,
    /// Asked of every request when the copy listens beyond loopback
    /// ([`super::laptop::Guard`]).
    pub password: Option<String>,
    status: Arc<Mutex<SyncStatus>>,
    /// Wakes the background syncer (a change was made, or "Sync now").
    wake: Arc<(Mutex<Wake>, Condvar)>,
    /// Whether a background syncer runs ([`OfflineApp::sync_in_background`]).
    background: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone, Default)]
struct SyncStatus {
    running: bool,
    /// Rows of the download so far, and how many it holds once the server has said.
    done: u64,
    total: Option<u64>,
    /// The last sync's outcome, for the header.
    message: Option<String>,
    failed: bool,
    /// Since when the server has not answered, and why.
    unreachable: Option<(Micros, String)>,
    /// The server refused this laptop's token (401): revoked, or its owner disabled.
    rejected: bool,
    /// When a sync last completed (this laptop's clock).
    last_success: Option<Micros>,
}

/// Why the background syncer should run before its next tick.
#[derive(Debug, Default)]
struct Wake {
    /// "Sync now": at once, whatever the backoff.
    now: bool,
    /// A change was made here: soon, once the server answers.
    changed: bool,
}

/// Reports a running sync's progress into the header's status.
struct ToStatus(Arc<Mutex<SyncStatus>>);

impl sync::Progress for ToStatus {
    fn downloaded(&self, rows: u64) {
        if let Ok(mut s) = self.0.lock() {
            s.done = rows;
        }
    }

    fn expect(&self, rows: u64) {
        if let Ok(mut s) = self.0.lock() {
            s.total = Some(rows);
        }
    }
}

/// The first wait after the server did not answer; it doubles up to the sync interval.
const FIRST_RETRY: Duration = Duration::from_secs(15);

impl OfflineApp {
    /// The copy, connected to `upstream` when it has a token, else showing the connect page
    /// with `server_hint` (the main server's address, when known) filled in.
    pub fn new(upstream: Option<Upstream>, server_hint: String) -> OfflineApp {
        OfflineApp {
            connection: Arc::new(RwLock::new(upstream)),
            server_hint: Mutex::new(server_hint),
            engineer: RwLock::new(None),
            password: None,
            status: Arc::new(Mutex::new(SyncStatus::default())),
            wake: Arc::new((Mutex::new(Wake::default()), Condvar::new())),
            background: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The copy's password for its pages (needed to listen beyond loopback).
    pub fn with_password(mut self, password: Option<String>) -> OfflineApp {
        self.password = password;
        self
    }

    /// Who connected the laptop, as kept in its database.
    pub fn with_engineer(self, engineer: Option<String>) -> OfflineApp {
        if let Ok(mut e) = self.engineer.write() {
            *e = engineer;
        }
        self
    }

    /// Who connected the laptop, when it was connected on its page.
    pub fn engineer(&self) -> Option<String> {
        self.engineer.read().ok().and_then(|e| e.clone())
    }

    /// The main server and token to sync with, while connected.
    pub fn upstream(&self) -> Option<Upstream> {
        self.connection.read().ok().and_then(|c| c.clone())
    }

    /// The main server's address as the connect page offers it.
    pub fn server_hint(&self) -> String {
        match self.upstream() {
            Some(u) => u.base,
            None => self
                .server_hint
                .lock()
                .map(|h| h.clone())
                .unwrap_or_default(),
        }
    }

    /// Connected (the enrolment answered): syncs with `upstream` from now on, at once.
    pub fn connect(&self, upstream: Upstream, engineer: Option<String>, pool: Pool) {
        if let Ok(mut e) = self.engineer.write() {
            *e = engineer;
        }
        if let Ok(mut hint) = self.server_hint.lock() {
            hint.clone_from(&upstream.base);
        }
        if let Ok(mut c) = self.connection.write() {
            *c = Some(upstream);
        }
        if let Ok(mut s) = self.status.lock() {
            *s = SyncStatus::default();
        }
        self.sync_now(pool);
    }

    /// Disconnected: no more syncs until connected again.
    pub fn disconnect(&self) {
        if let Ok(mut c) = self.connection.write() {
            *c = None;
        }
        if let Ok(mut e) = self.engineer.write() {
            *e = None;
        }
        if let Ok(mut s) = self.status.lock() {
            *s = SyncStatus::default();
        }
    }

    /// Whether a sync is running now.
    pub fn is_syncing(&self) -> bool {
        self.status().running
    }

    fn status(&self) -> SyncStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Starts a sync on a thread of its own unless one is running; false if one was.
    pub fn start_sync(&self, pool: Pool) -> bool {
        if self.status().running {
            return false;
        }
        let (status, connection) = (self.status.clone(), self.connection.clone());
        // Its own thread: the blocking HTTP client must not run on the server's runtime.
        std::thread::spawn(move || run_once(&status, &connection, &pool));
        true
    }

    /// Syncs by itself while the copy runs: at once, soon after a change here, and every
    /// `every`; while the server does not answer, again after 15 s, 30 s, 1 min… up to
    /// `every`. Never two syncs at once (and `sync::sync` holds the laptop's sync lock).
    pub fn sync_in_background(&self, pool: Pool, every: Duration) {
        self.background
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let (status, connection, wake) = (
            self.status.clone(),
            self.connection.clone(),
            self.wake.clone(),
        );
        std::thread::spawn(move || {
            let mut retry = FIRST_RETRY;
            loop {
                run_once(&status, &connection, &pool);
                let unreachable = status.lock().is_ok_and(|s| s.unreachable.is_some());
                let wait = if unreachable {
                    let wait = retry.min(every);
                    retry = (retry * 2).min(every);
                    wait
                } else {
                    retry = FIRST_RETRY;
                    every
                };
                let (lock, signal) = &*wake;
                let Ok(mut woken) = lock.lock() else { return };
                let deadline = std::time::Instant::now() + wait;
                loop {
                    // A change waits for the server to answer; "Sync now" does not.
                    if woken.now || (woken.changed && !unreachable) {
                        break;
                    }
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    woken = match signal.wait_timeout(woken, left) {
                        Ok((guard, _)) => guard,
                        Err(_) => return,
                    };
                }
                *woken = Wake::default();
            }
        });
    }

    /// A change was made on this laptop: the background syncer takes it up soon.
    pub fn changed(&self) {
        self.nudge(|w| w.changed = true);
    }

    /// "Sync now": the background syncer runs at once, or without one a sync starts.
    fn sync_now(&self, pool: Pool) {
        if self.background.load(std::sync::atomic::Ordering::Relaxed) {
            self.nudge(|w| w.now = true);
        } else {
            self.start_sync(pool);
        }
    }

    fn nudge(&self, set: impl FnOnce(&mut Wake)) {
        let (lock, signal) = &*self.wake;
        if let Ok(mut w) = lock.lock() {
            set(&mut w);
            signal.notify_all();
        }
    }
}

/// One sync with the upstream connected now, unless not connected or one is running.
fn run_once(
    status: &Arc<Mutex<SyncStatus>>,
    connection: &RwLock<Option<Upstream>>,
    pool: &Pool,
) -> bool {
    let Some(upstream) = connection.read().ok().and_then(|c| c.clone()) else {
        return false;
    };
    {
        let Ok(mut s) = status.lock() else {
            return false;
        };
        if s.running {
            return false;
        }
        s.running = true;
        s.done = 0;
        s.total = None;
    }
    let outcome = sync::sync(pool, &upstream, &ToStatus(status.clone()));
    let now = time::now();
    if let Ok(mut s) = status.lock() {
        s.running = false;
        match outcome {
            Ok(summary) => {
                s.message = Some(summary.to_string());
                s.failed = false;
                s.unreachable = None;
                s.rejected = false;
                s.last_success = Some(now);
            }
            Err(sync::SyncFailure::Client(ClientError::CannotReach { reason, .. })) => {
                // One calm line, kept since the first failure.
                if s.unreachable.is_none() {
                    tracing::info!(reason = %reason, "the server is unreachable; retrying later");
                }
                let since = s.unreachable.as_ref().map_or(now, |(t, _)| *t);
                s.unreachable = Some((since, reason));
                s.message = None;
                s.failed = false;
            }
            Err(sync::SyncFailure::Client(ClientError::Refused { status: 401, .. })) => {
                s.message = Some(
                    "The main site no longer accepts this laptop: its device was revoked, or \
                     its owner disabled. Connect it again to go on syncing."
                        .into(),
                );
                s.failed = true;
                s.rejected = true;
                s.unreachable = None;
            }
            Err(e) => {
                s.message = Some(format!("sync failed: {e}"));
                s.failed = true;
                s.unreachable = None;
            }
        }
    }
    true
}

/// The offline header's facts.
pub struct OfflineBar {
    pub upstream: String,
    /// Whether the laptop has a main server and a token (else: "Connect this laptop").
    pub connected: bool,
    /// The server refused the token: the laptop must be connected again.
    pub rejected: bool,
    /// "Synced 4 min ago", "Not synced yet".
    pub synced: String,
    /// When, in full, for the hover.
    pub last_sync: String,
    pub pending: i64,
    pub conflicts: i64,
    /// Changes the server refused, held on the laptop.
    pub held: usize,
    pub running: bool,
    /// "12,400 of 80,000 rows" while a download runs.
    pub progress: String,
    /// "Server unreachable since 10:14 (connection refused)".
    pub unreachable: String,
    pub message: String,
    pub failed: bool,
}

/// "4 min ago" and the like, from `then` to `now`.
fn ago(then: Micros, now: Micros) -> String {
    let seconds = (now - then).max(0) / 1_000_000;
    match seconds {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", seconds / 60),
        3600..=86_399 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

/// 12400 → "12,400" (indicatif's, already here for the command line's bar).
fn grouped(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

/// The layout facts of the offline copy (no sign-in: the laptop is its device).
pub async fn offline_layout(state: &AppState, session: &Session) -> Result<Layout, PageError> {
    let Some(app) = state.laptop() else {
        return Err(PageError::not_found());
    };
    let (last_sync, pending, conflicts, held) = state
        .db(move |conn| {
            let last = store::get_state(conn, "last_sync")?;
            Ok::<_, DbError>((
                last,
                store::pending_rows(conn)?,
                store::conflict_count(conn)?,
                store::held(conn)?.len(),
            ))
        })
        .await?;
    let status = app.status();
    let now = time::now();
    let last = status
        .last_success
        .or_else(|| last_sync.and_then(|t| time::parse(&t)));
    Ok(Layout {
        user_name: None,
        is_admin: false,
        is_conflict: false,
        conflicts: 0,
        csrf: super::auth::csrf_token(session),
        offline: Some(OfflineBar {
            upstream: app.server_hint(),
            connected: app.upstream().is_some(),
            rejected: status.rejected,
            synced: last.map_or_else(
                || "Not synced yet".into(),
                |t| format!("Synced {}", ago(t, now)),
            ),
            last_sync: last.map_or_else(|| "never".into(), timestamp),
            pending,
            conflicts,
            held,
            running: status.running,
            progress: match (status.running, status.total) {
                (true, Some(total)) => {
                    format!("{} of {} rows", grouped(status.done), grouped(total))
                }
                _ => String::new(),
            },
            unreachable: status.unreachable.map_or_else(String::new, |(since, why)| {
                let at = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(since)
                    .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
                    .unwrap_or_default();
                format!("Server unreachable since {at} ({why})")
            }),
            message: status.message.unwrap_or_default(),
            failed: status.failed,
        }),
    })
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
    back: Option<String>,
}

/// `POST /sync`: "Sync now".
pub async fn sync_now(
    state: Data<AppState>,
    Checked(form): Checked<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let Some(app) = state.laptop() else {
        return Err(PageError::not_found());
    };
    app.sync_now(state.pool.clone());
    // Back to the page the button was on (a path of this site only).
    Ok(see_other(
        super::local_path(form.back.as_deref()).unwrap_or("/"),
    ))
}

pub struct LocalConflictView {
    pub record: String,
    pub href: String,
    pub field: String,
    pub local: String,
    pub server: String,
    pub when: String,
}

/// A change the server refused, as the engineer reads it.
pub struct HeldView {
    pub table: String,
    pub id: String,
    pub record: String,
    pub href: String,
    pub field: String,
    pub reason: String,
    pub when: String,
}

#[derive(Template)]
#[template(path = "offline_conflicts.html")]
struct ConflictsPage {
    layout: Layout,
    items: Vec<LocalConflictView>,
    held: Vec<HeldView>,
    open: Vec<crate::services::laptop::OpenConflictView>,
    upstream: String,
}

/// A record's name for a person: its noun and label (the record's name, never a UUID
/// where it has one).
fn record_name(
    conn: &mut crate::db::DbConn,
    table_name: &str,
    id: &str,
) -> Result<String, DbError> {
    let Some(t) = table_by_name(table_name) else {
        return Ok(table_name.to_owned());
    };
    let noun = crate::domain::TABLES[t].noun;
    Ok(match crate::db::repo::rows::get(conn, t, id)? {
        Some(row) => format!(
            "{noun} {}",
            crate::services::present::row_label(t, &row.values)
        ),
        None => format!("{noun} {id}"),
    })
}

/// `GET /conflicts` on the laptop: local changes the server kept its own value for.
pub async fn conflicts(state: Data<AppState>, v: Viewer) -> Result<Html, PageError> {
    let (items, held, open) = state
        .db(move |conn| {
            let mut held = Vec::new();
            for h in store::held(conn)? {
                held.push(HeldView {
                    record: record_name(conn, &h.table_name, &h.row_id)?,
                    href: format!("/{}/{}", h.table_name, h.row_id),
                    field: h.field.as_deref().map(field_label).unwrap_or_default(),
                    reason: h.message,
                    when: timestamp(h.held_at),
                    table: h.table_name,
                    id: h.row_id,
                });
            }
            let items = store::conflicts(conn)?
                .into_iter()
                .map(|c| LocalConflictView {
                    href: format!("/{}/{}", c.table_name, c.row_id),
                    record: table_by_name(&c.table_name).map_or_else(
                        || c.table_name.clone(),
                        |t| crate::domain::TABLES[t].noun.to_owned(),
                    ),
                    field: field_label(&c.field),
                    local: c.local_value.unwrap_or_else(|| "(empty)".into()),
                    server: c.server_value.unwrap_or_else(|| "(empty)".into()),
                    when: timestamp(c.marked_at),
                })
                .collect::<Vec<_>>();
            let open = crate::services::laptop::open_conflicts(conn)?;
            Ok::<_, DbError>((items, held, open))
        })
        .await?;
    let upstream = state
        .laptop()
        .map(OfflineApp::server_hint)
        .unwrap_or_default();
    let page = ConflictsPage {
        layout: v.layout,
        items,
        held,
        open,
        upstream,
    };
    Ok(Html::new(page.render()?))
}

#[derive(serde::Deserialize)]
pub struct DiscardForm {
    csrf: Option<String>,
    table: String,
    id: String,
}

/// `POST /changes/discard`: forgets one refused change and puts the record back as the
/// server last sent it; the rest of the laptop's changes are untouched.
pub async fn discard_change(
    state: Data<AppState>,
    Checked(form): Checked<DiscardForm>,
) -> Result<HttpResponse, PageError> {
    let table = table_by_name(&form.table).ok_or_else(PageError::not_found)?;
    let pool = state.pool.clone();
    super::block(move || {
        let mut conn = pool.get().map_err(DbError::from)?;
        crate::editing::discard(&mut conn, table, &form.id)
    })
    .await?
    .map_err(PageError::internal)?;
    Ok(see_other("/conflicts"))
}

/// `GET /`: the records, or "Connect this laptop" on a laptop that is not connected.
pub async fn home(state: Data<AppState>) -> HttpResponse {
    match state.laptop().and_then(OfflineApp::upstream) {
        Some(_) => see_other("/sites"),
        None => see_other("/connect"),
    }
}

crate::csrf_field!(CsrfForm, DiscardForm);

#[derive(Template)]
#[template(path = "offline_bar.html")]
struct BarFragment {
    layout: Layout,
    o: OfflineBar,
}

/// `GET /sync/bar`: the header's bar alone, as the page shows it, for the page's script to
/// put in place every few seconds (no reload; without the script a reload shows the same).
pub async fn bar(state: Data<AppState>, session: Session) -> Result<HttpResponse, PageError> {
    let mut layout = offline_layout(&state, &session).await?;
    let o = layout.offline.take().ok_or_else(PageError::not_found)?;
    let body = BarFragment { layout, o }.render()?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::html())
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_says_counts_and_times_as_people_do() {
        assert_eq!(grouped(12_400), "12,400");
        assert_eq!(grouped(80_000_000), "80,000,000");
        let now = 1_800_000_000_000_000;
        assert_eq!(ago(now - 5_000_000, now), "just now");
        assert_eq!(ago(now - 4 * 60_000_000, now), "4 min ago");
        assert_eq!(ago(now - 3 * 3_600_000_000, now), "3 h ago");
        assert_eq!(ago(now - 50 * 3_600_000_000, now), "2 days ago");
    }
}
