//! `GET /fleet`: every active device with where its syncing stands, for administrators;
//! `GET /metrics`: the metrics in Prometheus's text format, for the operators' scraper.

use actix_web::HttpResponse;
use actix_web::web::{Data, Html, Query};
use askama::Template;

use super::AppState;
use super::auth::{Layout, Viewer};
use super::error::PageError;
use crate::db::repo::conflicts;
use crate::db::repo::fleet::{self, FleetDevice};
use crate::domain::Micros;
use crate::services::present::timestamp;

const DAY: Micros = 86_400_000_000;

pub struct FleetLine {
    pub id: String,
    pub label: String,
    pub owner: String,
    pub last_success: String,
    pub last_attempt: String,
    pub status: String,
    pub failure: String,
    pub version: String,
    pub conflicts: i64,
    pub clock: String,
    /// Not synced (successfully) for the page's number of days, or never.
    pub stale: bool,
}

/// How the page is sorted: one of the columns, after the stale devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    #[default]
    LastSuccess,
    LastAttempt,
    Device,
    Owner,
    Conflicts,
    Version,
    Clock,
}

impl SortBy {
    pub const ALL: [(SortBy, &'static str, &'static str); 7] = [
        (SortBy::Device, "device", "Device"),
        (SortBy::Owner, "owner", "User"),
        (SortBy::LastSuccess, "last_success", "Last successful sync"),
        (SortBy::LastAttempt, "last_attempt", "Last attempt"),
        (SortBy::Version, "version", "offsync version"),
        (SortBy::Conflicts, "conflicts", "Pending conflicts"),
        (SortBy::Clock, "clock", "Clock offset"),
    ];
}

#[derive(serde::Deserialize)]
pub struct FleetQuery {
    sort: Option<SortBy>,
    days: Option<u32>,
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    layout: Layout,
    devices: Vec<FleetLine>,
    stale: usize,
    days: u32,
    sort: SortBy,
}

impl FleetPage {
    /// Each column's key, title and `aria-sort` ("" when the page is not sorted by it).
    fn columns(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        SortBy::ALL
            .iter()
            .map(|(by, key, title)| {
                let aria = match by {
                    _ if *by != self.sort => "",
                    SortBy::Device | SortBy::Owner | SortBy::LastSuccess | SortBy::Version => {
                        "ascending"
                    }
                    _ => "descending",
                };
                (*key, *title, aria)
            })
            .collect()
    }

    fn sort_key(&self) -> &'static str {
        SortBy::ALL
            .iter()
            .find(|(by, _, _)| *by == self.sort)
            .map_or("last_success", |(_, key, _)| key)
    }
}

/// The devices in the page's order: not synced for `days` first (longest first), then by
/// the chosen column.
fn ordered(mut devices: Vec<FleetDevice>, sort: SortBy, now: Micros, days: u32) -> Vec<FleetLine> {
    let horizon = now - i64::from(days) * DAY;
    let stale = |d: &FleetDevice| d.last_success.is_none_or(|t| t < horizon);
    devices.sort_by(|a, b| {
        let by_column = match sort {
            SortBy::LastSuccess => a.last_success.cmp(&b.last_success),
            SortBy::LastAttempt => b.last_attempt.cmp(&a.last_attempt),
            SortBy::Device => a.label.to_lowercase().cmp(&b.label.to_lowercase()),
            SortBy::Owner => a.owner.to_lowercase().cmp(&b.owner.to_lowercase()),
            SortBy::Conflicts => b.open_conflicts.cmp(&a.open_conflicts),
            SortBy::Version => a.client_version.cmp(&b.client_version),
            SortBy::Clock => b
                .clock_offset
                .map(i64::abs)
                .cmp(&a.clock_offset.map(i64::abs)),
        };
        stale(b)
            .cmp(&stale(a))
            .then(by_column)
            .then_with(|| a.id.cmp(&b.id))
    });
    devices
        .into_iter()
        .map(|d| FleetLine {
            stale: stale(&d),
            last_success: d.last_success.map_or_else(|| "never".into(), timestamp),
            last_attempt: d.last_attempt.map_or_else(|| "never".into(), timestamp),
            status: d.last_status.unwrap_or_default(),
            failure: d.failure.unwrap_or_default(),
            version: d.client_version.unwrap_or_else(|| "—".into()),
            conflicts: d.open_conflicts,
            clock: d
                .clock_offset
                .map_or_else(|| "—".into(), |o| format!("{:+.1} s", o as f64 / 1e6)),
            id: d.id,
            label: d.label,
            owner: d.owner,
        })
        .collect()
}

pub async fn page(
    state: Data<AppState>,
    v: Viewer,
    query: Query<FleetQuery>,
) -> Result<Html, PageError> {
    let v = v.administrator("The fleet page is")?;
    let sort = query.sort.unwrap_or_default();
    let days = query.days.unwrap_or(7).clamp(1, 3650);
    let devices = state.db(fleet::devices).await?;
    let now = chrono::Utc::now().timestamp_micros();
    let devices = ordered(devices, sort, now, days);
    let page = FleetPage {
        layout: v.layout,
        stale: devices.iter().filter(|d| d.stale).count(),
        devices,
        days,
        sort,
    };
    Ok(Html::new(page.render()?))
}

/// `GET /metrics`. The gauges read from the database are brought up to date first.
pub async fn metrics(state: Data<AppState>) -> HttpResponse {
    let pool = state.pool.clone();
    let counted = super::block(move || {
        let pooled = pool.state();
        crate::telemetry::pool(
            pooled.connections - pooled.idle_connections,
            pooled.idle_connections,
        );
        let mut conn = pool.get()?;
        conflicts::count_open(&mut conn, None)
    })
    .await;
    if let Ok(Ok(open)) = counted {
        crate::telemetry::open_conflicts(open);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::render())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, last_success: Option<Micros>, conflicts: i64) -> FleetDevice {
        FleetDevice {
            id: id.into(),
            label: id.into(),
            owner: "o".into(),
            last_success,
            last_attempt: last_success,
            last_status: None,
            failure: None,
            client_version: None,
            clock_offset: None,
            open_conflicts: conflicts,
        }
    }

    #[test]
    fn stale_devices_come_first_then_the_chosen_column() {
        let now = 100 * DAY;
        let devices = vec![
            device("fresh-many", Some(now - DAY), 5),
            device("old", Some(now - 30 * DAY), 0),
            device("never", None, 1),
            device("fresh-none", Some(now - 2 * DAY), 0),
        ];
        let order = |sort| -> Vec<String> {
            ordered(devices.clone(), sort, now, 7)
                .into_iter()
                .map(|l| l.id)
                .collect()
        };
        assert_eq!(
            order(SortBy::LastSuccess),
            ["never", "old", "fresh-none", "fresh-many"]
        );
        assert_eq!(
            order(SortBy::Conflicts),
            ["never", "old", "fresh-many", "fresh-none"]
        );
        let lines = ordered(devices.clone(), SortBy::Device, now, 7);
        assert_eq!(lines.iter().filter(|l| l.stale).count(), 2);
    }
}
