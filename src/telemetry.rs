//! What operators watch: counters, gauges and histograms through the `metrics` facade,
//! rendered in Prometheus's text format at `/metrics` (docs/operations.md lists them).
//! The recorder is the process's, installed on first use; the values read from the
//! database (open conflicts, the pool) are set when `/metrics` is scraped.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::db::DbError;

/// The process's recorder; `None` if another recorder was installed first (a program
/// embedding offsync's library with its own), in which case offsync's metrics go there.
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let rows = [1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];
            let seconds = [
                0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_rows".into()), &rows)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                })
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Installs the recorder (call once at start, so that the first metrics are kept).
pub fn init() {
    handle();
}

/// The metrics in Prometheus's text format.
pub fn render() -> String {
    handle().map(PrometheusHandle::render).unwrap_or_default()
}

/// How a sync session ended: `completed`, `failed` (its upload was refused), `abandoned`
/// (the device opened a newer one).
pub fn sync_ended(outcome: &'static str) {
    counter!("offsync_syncs_total", "outcome" => outcome).increment(1);
}

/// An upload applied: its rows (applied, unchanged and conflicts) and how long it took.
pub fn upload_applied(rows: u64, took: Duration) {
    histogram!("offsync_upload_rows").record(rows as f64);
    histogram!("offsync_upload_seconds").record(took.as_secs_f64());
}

/// An upload run again after it lost a race with another transaction (a deadlock, a
/// serialisation failure, a key created meanwhile).
pub fn upload_retried() {
    counter!("offsync_upload_retries_total").increment(1);
}

/// An upload that found no turn in time (answered 503 with `Retry-After`).
pub fn upload_turned_away() {
    counter!("offsync_uploads_turned_away_total").increment(1);
}

/// A download written to its end.
pub fn download_sent(rows: u64, took: Duration) {
    histogram!("offsync_download_rows").record(rows as f64);
    histogram!("offsync_download_seconds").record(took.as_secs_f64());
}

/// Uploads being applied on this instance, and waiting for their turn.
pub fn uploads(in_flight: usize, waiting: usize) {
    gauge!("offsync_uploads_in_flight").set(in_flight as f64);
    gauge!("offsync_uploads_waiting").set(waiting as f64);
}

/// A request answered 503 because of the database, by [`crate::db::Fault`] kind.
pub fn database_fault(e: &DbError) {
    if let Some(kind) = e.fault_kind() {
        counter!("offsync_database_faults_total", "kind" => kind.as_str()).increment(1);
    }
}

/// The pool as it stands.
pub fn pool(in_use: u32, idle: u32) {
    gauge!("offsync_pool_connections", "state" => "in_use").set(f64::from(in_use));
    gauge!("offsync_pool_connections", "state" => "idle").set(f64::from(idle));
}

/// How long a request waited for a pooled connection.
pub fn pool_waited(took: Duration) {
    histogram!("offsync_pool_wait_seconds").record(took.as_secs_f64());
}

/// A request that found no connection free in time (it is answered 503).
pub fn pool_timed_out() {
    counter!("offsync_pool_timeouts_total").increment(1);
}

/// Open conflicts, everyone's.
pub fn open_conflicts(n: i64) {
    gauge!("offsync_open_conflicts").set(n as f64);
}
