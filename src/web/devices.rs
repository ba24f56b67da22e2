//! Devices: registering a laptop (its token shown once), renaming, revoking, and each
//! device's sync history. People see their own devices; administrators everyone's.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{Data, Html, Path, Query};
use askama::Template;

use super::auth::{Checked, Layout, Viewer};
use super::error::PageError;
use super::{AppState, page_with_status, see_other};
use crate::accounts::{self, AccountError};
use crate::db::repo::accounts::{self as repo, Device, DeviceSummary};
use crate::db::repo::sessions::{self, SessionSummary};
use crate::db::{DbConn, DbError, write_txn};
use crate::services::present::timestamp;

const PER_PAGE: i64 = 50;

pub struct DeviceLine {
    pub id: String,
    pub label: String,
    pub owner: String,
    pub created: String,
    pub last_sync: String,
    pub revoked: bool,
}

impl From<DeviceSummary> for DeviceLine {
    fn from(d: DeviceSummary) -> Self {
        DeviceLine {
            id: d.id,
            label: d.label,
            owner: d.owner,
            created: timestamp(d.created_at),
            last_sync: d.last_sync.map_or_else(|| "never".into(), timestamp),
            revoked: d.revoked_at.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    layout: Layout,
    devices: Vec<DeviceLine>,
    show_owner: bool,
    label: String,
    error: Option<String>,
    new_token: Option<(String, String)>,
}

fn devices_page(
    conn: &mut DbConn,
    v: Viewer,
    label: String,
    error: Option<String>,
    new_token: Option<(String, String)>,
) -> Result<DevicesPage, DbError> {
    let scope = if v.user.is_admin {
        None
    } else {
        Some(v.user.id.as_str())
    };
    let devices = repo::list_devices(conn, scope)?
        .into_iter()
        .map(DeviceLine::from)
        .collect();
    Ok(DevicesPage {
        layout: v.layout,
        devices,
        show_owner: v.user.is_admin,
        label,
        error,
        new_token,
    })
}

/// `GET /devices`.
pub async fn list(state: Data<AppState>, v: Viewer) -> Result<Html, PageError> {
    let page = state
        .db(move |conn| devices_page(conn, v, String::new(), None, None))
        .await?;
    Ok(Html::new(page.render()?))
}

#[derive(serde::Deserialize)]
pub struct LabelForm {
    csrf: Option<String>,
    label: String,
}

/// `POST /devices`: registers a device for the signed-in person and shows its token once.
pub async fn register(
    state: Data<AppState>,
    v: Viewer,
    Checked(form): Checked<LabelForm>,
) -> Result<HttpResponse, PageError> {
    let label = form.label.trim().to_owned();
    let (page, status) = state
        .db(
            move |conn| match accounts::add_device(conn, &v.user.name, &label) {
                Ok((device, token)) => Ok::<_, PageError>((
                    devices_page(conn, v, String::new(), None, Some((device.label, token)))?,
                    StatusCode::CREATED,
                )),
                Err(AccountError::Invalid(m)) => Ok((
                    devices_page(conn, v, label, Some(m), None)?,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )),
                Err(AccountError::Db(e)) => Err(e.into()),
                Err(other) => Err(PageError::internal(other)),
            },
        )
        .await?;
    Ok(page_with_status(status, page.render()?))
}

/// The device `id` if `v` may see it.
fn visible(conn: &mut DbConn, v: &Viewer, id: &str) -> Result<Device, PageError> {
    match repo::device_by_id(conn, id)? {
        Some(d) if d.user_id == v.user.id || v.user.is_admin => Ok(d),
        _ => Err(PageError::not_found()),
    }
}

pub struct SessionLine {
    pub status: String,
    pub since: String,
    pub started: String,
    pub finished: String,
    pub counts: String,
    pub downloaded: String,
    pub failure: String,
    pub clock: String,
}

impl From<SessionSummary> for SessionLine {
    fn from(s: SessionSummary) -> Self {
        let counts = match (s.applied, s.unchanged, s.conflicts) {
            (Some(a), Some(u), Some(c)) => format!("{a} applied, {u} unchanged, {c} conflicts"),
            _ => "no upload".into(),
        };
        SessionLine {
            status: s.status,
            since: s.since.map_or_else(|| "everything".into(), timestamp),
            started: timestamp(s.started),
            finished: s.finished.map(timestamp).unwrap_or_default(),
            counts,
            downloaded: s
                .downloaded
                .map(|d| d.to_string())
                .unwrap_or_else(|| "—".into()),
            failure: s.failure.unwrap_or_default(),
            clock: s
                .clock_offset
                .filter(|o| o.abs() >= 1_000_000)
                .map(|o| format!("laptop clock {:+} s", o / 1_000_000))
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    layout: Layout,
    id: String,
    label: String,
    owner: String,
    revoked: bool,
    sessions: Vec<SessionLine>,
    page: i64,
    pages: i64,
    total: i64,
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    page: Option<i64>,
}

/// `GET /devices/{id}`: the device and its sync history.
pub async fn show(
    state: Data<AppState>,
    v: Viewer,
    path: Path<String>,
    query: Query<PageQuery>,
) -> Result<Html, PageError> {
    let id = path.into_inner();
    let page = query.page.unwrap_or(1).max(1);
    let out = state
        .db(move |conn| {
            let device = visible(conn, &v, &id)?;
            let total = sessions::count_for_device(conn, &device.id)?;
            let list = sessions::history(conn, &device.id, PER_PAGE, (page - 1) * PER_PAGE)?;
            let owner = repo::user_by_id(conn, &device.user_id)?
                .map(|u| u.name)
                .unwrap_or_default();
            Ok::<_, PageError>(DevicePage {
                layout: v.layout,
                id: device.id,
                label: device.label,
                owner,
                revoked: device.revoked_at.is_some(),
                sessions: list.into_iter().map(SessionLine::from).collect(),
                page,
                pages: ((total + PER_PAGE - 1) / PER_PAGE).max(1),
                total,
            })
        })
        .await?;
    Ok(Html::new(out.render()?))
}

/// `POST /devices/{id}/rename`.
pub async fn rename(
    state: Data<AppState>,
    v: Viewer,
    path: Path<String>,
    Checked(form): Checked<LabelForm>,
) -> Result<HttpResponse, PageError> {
    let label = form.label.trim().to_owned();
    if label.is_empty() || label.len() > 200 {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "A device name must be 1 to 200 characters.",
        ));
    }
    let id = path.into_inner();
    let target = format!("/devices/{id}");
    state
        .db(move |conn| {
            let device = visible(conn, &v, &id)?;
            write_txn(conn, |c, _| repo::rename_device(c, &device.id, &label))?;
            Ok::<_, PageError>(())
        })
        .await?;
    Ok(see_other(&target))
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// `POST /devices/{id}/revoke`: the token stops working at once.
pub async fn revoke(
    state: Data<AppState>,
    v: Viewer,
    path: Path<String>,
    Checked(_form): Checked<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let id = path.into_inner();
    let target = format!("/devices/{id}");
    state.db(move |conn| {
        let device = visible(conn, &v, &id)?;
        write_txn(conn, |c, now| repo::revoke_device(c, &device.id, now))?;
        tracing::info!(device = %device.id, by = %crate::logsafe::Escaped(&v.user.name), "device revoked");
        Ok::<_, PageError>(())
    })
    .await?;
    Ok(see_other(&target))
}

crate::csrf_field!(LabelForm, CsrfForm);
