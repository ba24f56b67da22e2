//! The fleet: every active device with where its syncing stands, for administrators.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::db::{DbConn, DbError, Sql};
use crate::domain::Micros;

/// One device and its latest sessions.
#[derive(Debug, Clone, QueryableByName)]
pub struct FleetDevice {
    #[diesel(sql_type = Text)]
    pub id: String,
    #[diesel(sql_type = Text)]
    pub label: String,
    #[diesel(sql_type = Text)]
    pub owner: String,
    /// When its last completed session started.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_success: Option<Micros>,
    /// Its latest session, whatever became of it.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_attempt: Option<Micros>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_status: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub failure: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub client_version: Option<String>,
    /// Device clock minus server clock at its latest session, µs.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub clock_offset: Option<i64>,
    #[diesel(sql_type = BigInt)]
    pub open_conflicts: i64,
}

/// Every device that is not revoked. One query: the latest session by the
/// `(device_id, started)` index, the conflicts counted per device.
pub fn devices(conn: &mut DbConn) -> Result<Vec<FleetDevice>, DbError> {
    Sql::new(
        "SELECT d.id, d.label, u.name AS owner, \
           (SELECT s.started FROM sync_sessions s WHERE s.id = d.last_session_id) AS last_success, \
           l.started AS last_attempt, l.status AS last_status, l.failure, l.client_version, \
           l.clock_offset, \
           (SELECT COUNT(*) FROM conflicts c WHERE c.device_id = d.id AND c.status = 'open') \
             AS open_conflicts \
         FROM devices d JOIN users u ON u.id = d.user_id \
         LEFT JOIN sync_sessions l ON l.id = (SELECT s.id FROM sync_sessions s \
           WHERE s.device_id = d.id ORDER BY s.started DESC, s.id LIMIT 1) \
         WHERE d.revoked_at IS NULL",
    )
    .load(conn)
}
