//! Connections, the pool, migrations, and the few statements that differ between SQLite
//! and PostgreSQL. Everything above this module speaks one dialect-neutral SQL through
//! [`Sql`]; the only backend-specific code lives in [`dialect`].

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

pub use sql::{Bind, Sql};

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

impl DbError {
    /// A failure of the database itself (down, locked, read-only, out of disk or
    /// connections), as opposed to a statement that is wrong: what to tell the client,
    /// who is answered 503 and may try again once an operator has seen to it.
    pub fn fault(&self) -> Option<&'static str> {
        const DOWN: &str = "the database is unavailable; try again shortly";
        const BUSY: &str = "the database is busy; try again shortly";
        match self {
            DbError::Pool(_) | DbError::Connect(_) => Some(DOWN),
            DbError::Query(diesel::result::Error::DatabaseError(kind, info)) => {
                let m = info.message().to_ascii_lowercase();
                let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
                if matches!(kind, diesel::result::DatabaseErrorKind::ClosedConnection)
                    || any(&["terminating connection", "connection", "disk i/o error"])
                {
                    Some(DOWN)
                } else if any(&[
                    "database is locked",
                    "deadlock detected",
                    "could not serialize",
                ]) {
                    Some(BUSY)
                } else if any(&["readonly database", "read-only"]) {
                    Some(
                        "the database is read-only; no change can be saved until an operator fixes it",
                    )
                } else if any(&[
                    "database or disk is full",
                    "no space left",
                    "could not extend file",
                ]) {
                    Some(
                        "the database's disk is full; no change can be saved until an operator frees space",
                    )
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    pub fn is_unavailable(&self) -> bool {
        self.fault().is_some()
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

/// How long a SQLite writer waits for the write lock before its request is answered 503
/// "the database is busy": `OFFSYNC_SQLITE_BUSY_TIMEOUT_MS`, 30 s by default.
fn sqlite_busy_timeout_ms() -> u64 {
    static MS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MS.get_or_init(|| {
        std::env::var("OFFSYNC_SQLITE_BUSY_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30_000)
    })
}

/// Opens connections for the pool, picking the backend by URL scheme.
#[derive(Debug, Clone)]
pub struct Manager {
    target: Target,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = DbError;

    fn connect(&self) -> Result<DbConn, DbError> {
        match &self.target {
            Target::Sqlite(path) => {
                let mut c = diesel::SqliteConnection::establish(path)
                    .map_err(|e| DbError::Connect(e.to_string()))?;
                // busy_timeout: writers queue instead of failing with "database is
                // locked". Foreign keys are off by default. (WAL is set once, in `connect`:
                // it belongs to the file, and switching takes a lock of its own.)
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON;",
                    sqlite_busy_timeout_ms()
                ))?;
                Ok(DbConn::Sqlite(c))
            }
            Target::Postgres(url) => diesel::PgConnection::establish(url)
                .map(DbConn::Pg)
                .map_err(|e| DbError::Connect(e.to_string())),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), DbError> {
        conn.batch_execute("SELECT 1").map_err(DbError::from)
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}

/// Opens a pool on `url` and brings the schema up to date.
pub fn connect(url: &str, max_size: u32) -> Result<Pool, DbError> {
    let target = Target::parse(url)?;
    if let Target::Sqlite(path) = &target {
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
    let pool = r2d2::Pool::builder()
        .max_size(max_size)
        // A request waits this long for a connection, then is answered 503.
        .connection_timeout(Duration::from_secs(5))
        .test_on_check_out(matches!(target, Target::Postgres(_)))
        .build(Manager { target })
        .map_err(|e| DbError::Connect(e.to_string()))?;
    let mut conn = pool.get()?;
    migrate(&mut conn)?;
    Ok(pool)
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

/// Runs `f` in one write transaction holding `lock`, with the transaction's clock
/// reading (see [`dialect`] for why both matter). Rolls back when `f` fails.
pub fn write_txn<T, E>(
    conn: &mut DbConn,
    lock: dialect::WriteLock,
    f: impl FnOnce(&mut DbConn, crate::domain::Micros) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<DbError> + From<diesel::result::Error>,
{
    conn.transaction(|c| {
        dialect::begin_write(c, lock)?;
        let now = dialect::clock(c)?;
        f(c, now)
    })
}
