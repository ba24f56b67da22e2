//! Connections, the pool, migrations, and the few statements that differ between SQLite
//! and PostgreSQL. Everything above this module speaks one dialect-neutral SQL through
//! [`Sql`]; the only backend-specific code lives in [`dialect`].

pub mod cursor;
pub mod dialect;
pub mod integrity;
pub mod repo;
pub mod schema;
mod sql;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use sql::{Bind, PgSql, Sql};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// One connection to either database; diesel routes each query to the right backend.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Sqlite(diesel::SqliteConnection),
    Pg(diesel::PgConnection),
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConn = r2d2::PooledConnection<Manager>;

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    Scheme(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("the database is unavailable: {0}")]
    Pool(#[from] r2d2::PoolError),
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("running migrations: {0}")]
    Migration(String),
    /// Stored data that cannot be read back (never skipped: the message names it).
    #[error("{0}")]
    Corrupt(String),
}

/// What kind of failure of the database itself an error is (the `kind` label of the
/// `offsync_database_faults_total` metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Down, unreachable, out of connections, or no connection free in time.
    Unavailable,
    /// Locked (SQLite), a deadlock or a serialisation failure: the work may be retried.
    Busy,
    ReadOnly,
    DiskFull,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Unavailable => "unavailable",
            Fault::Busy => "busy",
            Fault::ReadOnly => "read_only",
            Fault::DiskFull => "disk_full",
        }
    }
}

impl DbError {
    /// A failure of the database itself, as opposed to a statement that is wrong.
    pub fn fault_kind(&self) -> Option<Fault> {
        match self {
            DbError::Pool(_) | DbError::Connect(_) => Some(Fault::Unavailable),
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                let m = info.message().to_ascii_lowercase();
                let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
                if matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
                    || any(&["terminating connection", "connection", "disk i/o error"])
                {
                    Some(Fault::Unavailable)
                } else if matches!(
                    kind,
                    diesel::result::DatabaseErrorKind::SerializationFailure
                ) || any(&[
                    "database is locked",
                    "deadlock detected",
                    "could not serialize",
                    "lock timeout",
                    "canceling statement due to lock timeout",
                ]) {
                    Some(Fault::Busy)
                } else if any(&["readonly database", "read-only"]) {
                    Some(Fault::ReadOnly)
                } else if any(&[
                    "database or disk is full",
                    "no space left",
                    "could not extend file",
                ]) {
                    Some(Fault::DiskFull)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// What to tell the client of a fault, who is answered 503 and may try again (once an
    /// operator has seen to it, for the last two).
    pub fn fault(&self) -> Option<&'static str> {
        Some(match self.fault_kind()? {
            Fault::Unavailable => "the database is unavailable; try again shortly",
            Fault::Busy => "the database is busy; try again shortly",
            Fault::ReadOnly => {
                "the database is read-only; no change can be saved until an operator fixes it"
            }
            Fault::DiskFull => {
                "the database's disk is full; no change can be saved until an operator frees space"
            }
        })
    }

    pub fn is_unavailable(&self) -> bool {
        self.fault().is_some()
    }

    /// The `Retry-After` of the 503 a fault is answered with, in seconds.
    pub fn retry_after_seconds(&self) -> u64 {
        match self.fault_kind() {
            Some(Fault::Busy) => 2,
            Some(Fault::Unavailable) => 5,
            _ => 30,
        }
    }

    /// Whether the same transaction run again may well succeed: it lost a race with
    /// another one (a deadlock, a serialisation failure, a row or key that another
    /// transaction wrote between this one's check and its write).
    pub fn lost_a_race(&self) -> bool {
        use diesel::result::DatabaseErrorKind as Kind;
        match self {
            DbError::Query(diesel::result::Error::DatabaseError(
                Kind::UniqueViolation | Kind::ForeignKeyViolation | Kind::SerializationFailure,
                _,
            )) => true,
            _ => self.fault_kind() == Some(Fault::Busy),
        }
    }
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(String),
    Postgres(String),
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, DbError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(DbError::Scheme(url.into()));
            }
            Ok(Target::Sqlite(path.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Target::Postgres(url.to_owned()))
        } else {
            Err(DbError::Scheme(url.into()))
        }
    }
}

fn sqlite_busy_timeout_ms() -> u128 {
    crate::config::tuning().sqlite_busy_timeout.as_millis()
}

/// Opens connections for the pool, picking the backend by URL scheme.
#[derive(Debug, Clone)]
pub struct Manager {
    target: Target,
}

impl Manager {
    fn open(&self) -> Result<DbConn, DbError> {
        match &self.target {
            Target::Sqlite(path) => {
                let mut c = diesel::SqliteConnection::establish(path)
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                // busy_timeout: writers queue instead of failing with "database is
                // locked". Foreign keys are off by default. temp_store: a statement that
                // changes many rows keeps its undo journal in memory, not in a temporary
                // file (a tenth of an upload's time went to writing that file). (WAL is set
                // once, in `connect`: it belongs to the file, and switching takes a lock of
                // its own.)
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
                    sqlite_busy_timeout_ms()
                ))?;
                Ok(DbConn::Sqlite(c))
            }
            Target::Postgres(url) => diesel::PgConnection::establish(url)
                .map(DbConn::Pg)
                .map_err(|e| DbError::Connect(one_line(&e.to_string()))),
        }
    }
}

/// libpq's message on one line: it spans several, and repeats itself when it tried with
/// TLS and then without (`sslmode=prefer`, the default).
fn one_line(message: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    for line in message.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() && !parts.contains(&line) {
            parts.push(line);
        }
    }
    parts.join("; ")
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = DbError;

    fn connect(&self) -> Result<DbConn, DbError> {
        self.open()
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), DbError> {
        conn.batch_execute("SELECT 1").map_err(DbError::from)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// The pool's size and how long a request waits for a connection before it is answered
/// 503 with `Retry-After`.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    pub max_size: u32,
    pub wait: Duration,
}

impl PoolSettings {
    pub fn sized(max_size: u32) -> Self {
        PoolSettings {
            max_size,
            wait: Duration::from_secs(5),
        }
    }
}

/// Reports the pool's waits and timeouts as metrics.
#[derive(Debug)]
struct PoolEvents;

impl r2d2::HandleEvent for PoolEvents {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        crate::telemetry::pool_waited(event.duration());
    }

    fn handle_timeout(&self, _event: r2d2::event::TimeoutEvent) {
        crate::telemetry::pool_timed_out();
    }
}

/// Logs a failed connection as one line.
#[derive(Debug)]
struct PoolErrors;

impl r2d2::HandleError<DbError> for PoolErrors {
    fn handle_error(&self, error: DbError) {
        tracing::warn!(%error, "a database connection failed");
    }
}

/// Opens a pool on `url` and brings the schema up to date.
pub fn connect(url: &str, max_size: u32) -> Result<Pool, DbError> {
    connect_with(url, PoolSettings::sized(max_size))
}

/// Opens a pool with these settings. A first connection is made at once, so that a wrong
/// URL, host, password or `sslmode` is one clear error now rather than retries later.
pub fn connect_with(url: &str, settings: PoolSettings) -> Result<Pool, DbError> {
    let target = match Target::parse(url)? {
        Target::Postgres(url) => Target::Postgres(postgres_url(&url, socket_dir())),
        sqlite => sqlite,
    };
    if let Target::Sqlite(path) = &target {
        create_private(path);
        // WAL: readers never block the writer. Set before the pool opens its connections.
        let opened = diesel::SqliteConnection::establish(path)
            .map_err(|e| DbError::Connect(e.to_string()))
            .and_then(|mut c| {
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL;",
                    sqlite_busy_timeout_ms()
                ))
                .map_err(DbError::from)
            });
        if let Err(e) = opened {
            return Err(unwritable(path).unwrap_or(e));
        }
    }
    let manager = Manager { target };
    let mut first = manager.open()?;
    migrate(&mut first)?;
    drop(first);
    let postgres = matches!(manager.target, Target::Postgres(_));
    r2d2::Pool::builder()
        .max_size(settings.max_size)
        .min_idle(Some(0))
        .connection_timeout(settings.wait)
        .test_on_check_out(postgres)
        .event_handler(Box::new(PoolEvents))
        .error_handler(Box::new(PoolErrors))
        .build(manager)
        .map_err(|e| DbError::Connect(e.to_string()))
}

/// Makes a new SQLite database file readable and writable by its owner only (0600), before
/// SQLite creates it with the process's umask (usually 0644: anyone on the machine could
/// read the data, and on a laptop the device token). SQLite gives the `-wal` and `-shm`
/// files the database file's mode. An existing file is left as it is; a path that cannot be
/// created here is left to SQLite, whose error names the problem.
fn create_private(path: &str) {
    if path.starts_with(':') || path.starts_with("file:") {
        return;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let _ = options.open(path);
}

/// Where this machine's PostgreSQL has its Unix socket: Debian and Ubuntu put it in
/// /var/run/postgresql, a libpq built from source looks in /tmp only.
fn socket_dir() -> Option<&'static str> {
    ["/var/run/postgresql", "/run/postgresql", "/tmp"]
        .into_iter()
        .find(|dir| {
            std::fs::read_dir(dir).is_ok_and(|mut entries| {
                entries.any(|e| {
                    e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".s.PGSQL."))
                })
            })
        })
}

/// The URL to give libpq: one that names no host (`postgres:///offsync`, a Unix socket)
/// gets the directory of this machine's socket, unless it or `PGHOST` names one; and a
/// connect timeout, unless it names one, so that an unreachable host fails in seconds.
fn postgres_url(url: &str, socket_dir: Option<&str>) -> String {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .unwrap_or(url);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let has = |key: &str| query.split('&').any(|kv| kv.split('=').next() == Some(key));
    let mut extra = Vec::new();
    if host.is_empty()
        && !has("host")
        && std::env::var_os("PGHOST").is_none()
        && let Some(dir) = socket_dir
    {
        extra.push(format!("host={dir}"));
    }
    if !has("connect_timeout") && std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
        extra.push("connect_timeout=10".to_owned());
    }
    if extra.is_empty() {
        return url.to_owned();
    }
    let joiner = if url.contains('?') { "&" } else { "?" };
    format!("{url}{joiner}{}", extra.join("&"))
}

/// Why a SQLite file cannot be opened for writing, when that is the reason: SQLite's own
/// "unable to open database file" does not say (a WAL database needs its directory
/// writable for the `-wal` and `-shm` files).
fn unwritable(path: &str) -> Option<DbError> {
    let file = std::path::Path::new(path);
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let probe = dir.join(format!(".offsync-write-test-{}", std::process::id()));
    let problem = match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            std::fs::OpenOptions::new()
                .append(true)
                .open(file)
                .err()
                .filter(|e| e.kind() != std::io::ErrorKind::NotFound)?
        }
        Err(e) => e,
    };
    Some(DbError::Connect(format!(
        "cannot write to the database {} or its directory ({problem}); offsync needs both \
         writable",
        file.display()
    )))
}

fn migrate(conn: &mut DbConn) -> Result<(), DbError> {
    let result = match conn {
        DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConn::Pg(c) => {
            // Several instances may start at once; one migrates, the others wait.
            c.batch_execute("SELECT pg_advisory_lock(74110001)")?;
            let r = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ());
            c.batch_execute("SELECT pg_advisory_unlock(74110001)")?;
            r
        }
    };
    result.map_err(|e| DbError::Migration(e.to_string()))
}

/// Runs `f` in one write transaction, with the transaction's clock reading for its
/// stamps. Rolls back when `f` fails.
pub fn write_txn<T, E>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn, crate::domain::Micros) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DbError> + From<diesel::result::Error>,
{
    conn.transaction(|c| {
        dialect::begin_write(c)?;
        let now = dialect::clock(c)?;
        f(c, now)
    })
}

#[cfg(test)]
mod tests {
    use super::postgres_url;

    #[test]
    fn a_url_without_a_host_gets_the_socket_directory() {
        let url = |u| postgres_url(u, Some("/var/run/postgresql"));
        assert_eq!(
            url("postgres:///offsync"),
            "postgres:///offsync?host=/var/run/postgresql&connect_timeout=10"
        );
        assert_eq!(
            url("postgresql://me@/offsync?sslmode=disable"),
            "postgresql://me@/offsync?sslmode=disable&host=/var/run/postgresql&connect_timeout=10"
        );
        assert_eq!(
            url("postgres://me:pw@db.example:5432/offsync?connect_timeout=3"),
            "postgres://me:pw@db.example:5432/offsync?connect_timeout=3"
        );
        assert_eq!(
            url("postgres:///offsync?host=/srv/pg&connect_timeout=2"),
            "postgres:///offsync?host=/srv/pg&connect_timeout=2"
        );
        assert_eq!(
            postgres_url("postgres:///offsync", None),
            "postgres:///offsync?connect_timeout=10"
        );
    }
}
