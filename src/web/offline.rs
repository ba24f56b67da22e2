//! The offline copy's own parts of the pages: the header with the upstream, the last sync,
//! the waiting changes and the "Sync now" button; running a sync in the background; and the
//! list of local changes the server did not take.

use std::sync::{Arc, Mutex};

use actix_session::Session;
use actix_web::HttpResponse;
use actix_web::web::{Data, Html};
use askama::Template;

use super::auth::{Checked, Layout, Viewer};
use super::error::PageError;
use super::present::{field_label, timestamp};
use super::{AppState, see_other};
use crate::db::{DbError, Pool};
use crate::domain::{table_by_name, time};
use crate::offline::client::Upstream;
use crate::offline::store;
use crate::offline::sync::{self, Quiet};

/// What the offline copy shares between its pages.
pub struct OfflineApp {
    pub upstream: Upstream,
    /// Asked of every request when the copy listens beyond loopback
    /// ([`super::laptop::Guard`]).
    pub password: Option<String>,
    status: Arc<Mutex<SyncStatus>>,
}

#[derive(Debug, Clone, Default)]
struct SyncStatus {
    running: bool,
    /// The last sync's outcome, for the header.
    message: Option<String>,
    failed: bool,
}

impl OfflineApp {
    pub fn new(upstream: Upstream) -> OfflineApp {
        OfflineApp {
            upstream,
            password: None,
            status: Arc::new(Mutex::new(SyncStatus::default())),
        }
    }

    /// The copy's password for its pages (needed to listen beyond loopback).
    pub fn with_password(mut self, password: Option<String>) -> OfflineApp {
        self.password = password;
        self
    }

    fn status(&self) -> SyncStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Starts a sync in the background unless one is running; false if one was.
    pub fn start_sync(&self, pool: Pool) -> bool {
        {
            let Ok(mut s) = self.status.lock() else {
                return false;
            };
            if s.running {
                return false;
            }
            s.running = true;
        }
        let status = self.status.clone();
        let upstream = self.upstream.clone();
        // Its own thread: the blocking HTTP client must not run on the server's runtime.
        std::thread::spawn(move || {
            let outcome = sync::sync(&pool, &upstream, &Quiet);
            let (message, failed) = match outcome {
                Ok(s) => (s.to_string(), false),
                Err(e) => (format!("sync failed: {e}"), true),
            };
            tracing::info!(%message, "sync finished");
            if let Ok(mut s) = status.lock() {
                *s = SyncStatus {
                    running: false,
                    message: Some(message),
                    failed,
                };
            }
        });
        true
    }
}

/// The offline header's facts.
pub struct OfflineBar {
    pub upstream: String,
    pub last_sync: String,
    pub pending: i64,
    pub conflicts: i64,
    /// Changes the server refused, held on the laptop.
    pub held: usize,
    pub running: bool,
    pub message: String,
    pub failed: bool,
}

/// The layout facts of the offline copy (no sign-in: the laptop is its device).
pub async fn offline_layout(state: &AppState, session: &Session) -> Result<Layout, PageError> {
    let Some(app) = state.laptop() else {
        return Err(PageError::not_found());
    };
    let pool = state.pool.clone();
    let (last_sync, pending, conflicts, held) = super::block(move || {
        let mut conn = pool.get()?;
        let last = store::get_state(&mut conn, "last_sync")?;
        Ok::<_, DbError>((
            last,
            store::pending_rows(&mut conn)?,
            store::conflict_count(&mut conn)?,
            store::held(&mut conn)?.len(),
        ))
    })
    .await??;
    let status = app.status();
    Ok(Layout {
        user_name: None,
        is_admin: false,
        is_conflict: false,
        conflicts: 0,
        csrf: super::auth::csrf_token(session),
        offline: Some(OfflineBar {
            upstream: app.upstream.base.clone(),
            last_sync: last_sync
                .and_then(|t| time::parse(&t))
                .map_or_else(|| "never".into(), timestamp),
            pending,
            conflicts,
            held,
            running: status.running,
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
    app.start_sync(state.pool.clone());
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
        Some(row) => format!("{noun} {}", super::present::row_label(t, &row.values)),
        None => format!("{noun} {id}"),
    })
}

/// `GET /conflicts` on the laptop: local changes the server kept its own value for.
pub async fn conflicts(state: Data<AppState>, v: Viewer) -> Result<Html, PageError> {
    let pool = state.pool.clone();
    let (items, held) = super::block(move || {
        let mut conn = pool.get()?;
        let mut held = Vec::new();
        for h in store::held(&mut conn)? {
            held.push(HeldView {
                record: record_name(&mut conn, &h.table_name, &h.row_id)?,
                href: format!("/{}/{}", h.table_name, h.row_id),
                field: h.field.as_deref().map(field_label).unwrap_or_default(),
                reason: h.message,
                when: timestamp(h.held_at),
                table: h.table_name,
                id: h.row_id,
            });
        }
        let items = store::conflicts(&mut conn)?
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
        Ok::<_, DbError>((items, held))
    })
    .await??;
    let upstream = state
        .laptop()
        .map(|o| o.upstream.base.clone())
        .unwrap_or_default();
    let page = ConflictsPage {
        layout: v.layout,
        items,
        held,
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

/// `GET /`: the laptop opens on its sites.
pub async fn home() -> HttpResponse {
    see_other("/sites")
}

crate::csrf_field!(CsrfForm, DiscardForm);
