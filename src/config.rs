//! Every setting offsync reads, in one place: the command line's (each with its environment
//! variable; `offsync COMMAND --help` lists them) and the few tuning knobs that only the
//! environment sets. Nothing else in offsync reads the environment for a setting.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::Args;

#[derive(Debug, Args)]
pub struct UpstreamArgs {
    /// The main server, e.g. https://offsync.example.org. Kept in the laptop's database
    /// once given, so later runs need it no more.
    #[arg(long, env = "OFFSYNC_UPSTREAM")]
    pub upstream: Option<String>,
    /// This laptop's device token (from `offsync device add` or the Devices page). Kept in
    /// the laptop's database once given. A command line is visible to every user of the
    /// machine (`ps`) and stays in shell history: prefer --token-file or OFFSYNC_TOKEN.
    #[arg(long, env = "OFFSYNC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding this laptop's device token.
    #[arg(long, env = "OFFSYNC_TOKEN_FILE", conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct OfflineArgs {
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// Address to listen on. Loopback unless told otherwise: any other address needs a
    /// password for the pages (OFFSYNC_OFFLINE_PASSWORD or --password-file).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub bind: String,
    /// Sync by itself every this many minutes while the copy runs (also at start and soon
    /// after a change); 0: only when "Sync now" is pressed.
    #[arg(long, env = "OFFSYNC_SYNC_EVERY_MINUTES", default_value_t = 5)]
    pub sync_every_minutes: u64,
    /// A file holding the password the pages ask for (HTTP Basic; any user name).
    #[arg(long, env = "OFFSYNC_OFFLINE_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Do not open the copy's page in the browser at start (it is opened when run from a
    /// desktop session).
    #[arg(long, env = "OFFSYNC_NO_OPEN")]
    pub no_open: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Largest accepted upload, compressed, in bytes.
    #[arg(long, env = "OFFSYNC_MAX_UPLOAD_BYTES", default_value_t = 64 << 20)]
    pub max_upload_bytes: u64,
    /// Largest accepted upload after decompression, in bytes.
    #[arg(long, env = "OFFSYNC_MAX_DECOMPRESSED_BYTES", default_value_t = 1 << 30)]
    pub max_decompressed_bytes: u64,
    /// File holding the key that signs session cookies (made when missing). Give every
    /// instance the same file. Default: beside the SQLite database, or ./offsync-session.key.
    #[arg(long, env = "OFFSYNC_SESSION_KEY_FILE")]
    pub session_key_file: Option<PathBuf>,
    /// Mark session cookies Secure (when served behind TLS).
    #[arg(long, env = "OFFSYNC_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// A browser session ends after this many minutes without a request.
    #[arg(long, env = "OFFSYNC_SESSION_IDLE_MINUTES", default_value_t = 8 * 60)]
    pub session_idle_minutes: u64,
    /// A browser session ends this many hours after sign-in, however busy.
    #[arg(long, env = "OFFSYNC_SESSION_MAX_HOURS", default_value_t = 7 * 24)]
    pub session_max_hours: u64,
    /// Failed sign-ins allowed per account name from one client address within 15 minutes.
    #[arg(long, env = "OFFSYNC_SIGN_IN_PER_ACCOUNT", default_value_t = 5)]
    pub sign_in_per_account: u32,
    /// Failed sign-ins allowed per account name from all addresses together within 15
    /// minutes.
    #[arg(
        long,
        env = "OFFSYNC_SIGN_IN_PER_ACCOUNT_CEILING",
        default_value_t = 100
    )]
    pub sign_in_per_account_ceiling: u32,
    /// Failed sign-ins allowed per client address within 15 minutes.
    #[arg(long, env = "OFFSYNC_SIGN_IN_PER_ADDRESS", default_value_t = 20)]
    pub sign_in_per_address: u32,
    /// How many proxies stand in front of this server (each appending to X-Forwarded-For):
    /// the client's address is taken that many places from the right. 0: the TCP peer.
    #[arg(long, env = "OFFSYNC_TRUSTED_PROXIES", default_value_t = 0)]
    pub trusted_proxies: usize,
    /// The proxies write RFC 7239 `Forwarded` instead of X-Forwarded-For.
    #[arg(long, env = "OFFSYNC_FORWARDED_HEADER")]
    pub forwarded_header: bool,
    /// The same as --trusted-proxies 1 (kept for existing deployments).
    #[arg(long, env = "OFFSYNC_TRUST_FORWARDED_FOR", hide = true)]
    pub trust_forwarded_for: bool,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "OFFSYNC_WORKERS")]
    pub workers: Option<usize>,
    /// Database connections in the pool.
    #[arg(long, env = "OFFSYNC_POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,
    /// How long a request waits for a pooled connection before it is answered 503 with
    /// Retry-After, in milliseconds.
    #[arg(long, env = "OFFSYNC_POOL_WAIT_MS", default_value_t = 5000)]
    pub pool_wait_ms: u64,
    /// Uploads applied at once by this instance (default: half the pool). Others wait
    /// their turn without holding a connection.
    #[arg(long, env = "OFFSYNC_UPLOADS_AT_ONCE")]
    pub uploads_at_once: Option<usize>,
    /// How long an upload waits for its turn before it is answered 503 with Retry-After,
    /// in milliseconds.
    #[arg(long, env = "OFFSYNC_UPLOAD_WAIT_MS", default_value_t = 20000)]
    pub upload_wait_ms: u64,
    /// Load the demo data set first if the database is empty.
    #[arg(long)]
    pub demo: bool,
}

/// The knobs set only by the environment, read once.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// How long a SQLite writer waits for the write lock before its request is answered
    /// 503 "the database is busy" (`OFFSYNC_SQLITE_BUSY_TIMEOUT_MS`, 30 s).
    pub sqlite_busy_timeout: Duration,
    /// The page cache of the SQLite connection applying an upload or an import, in MiB
    /// (`OFFSYNC_SQLITE_UPLOAD_CACHE_MIB`, 48): the judge looks up every uploaded row by its
    /// index, and with SQLite's default 2 MiB every batch read its pages from the file again
    /// (a third of an upload's time at 100,000 rows).
    pub sqlite_upload_cache_mib: i64,
    /// How long an upload's body may send nothing before it is refused
    /// (`OFFSYNC_BODY_IDLE_SECONDS`, 60): a client that stops mid-body holds no worker and
    /// no temporary file for longer.
    pub body_idle: Duration,
    /// Logs as one JSON object per line (`OFFSYNC_LOG_FORMAT=json`); which lines is
    /// `OFFSYNC_LOG` (an `EnvFilter`, read by the logger itself).
    pub json_logs: bool,
    /// The laptop copy's password for its pages (`OFFSYNC_OFFLINE_PASSWORD`), kept off the
    /// command line, where every user of the machine could read it.
    pub laptop_password: Option<String>,
    /// The time zone pages show and read date-times in when the browser has not said its
    /// own (`OFFSYNC_TIME_ZONE`, an IANA name such as `Europe/London`; else this machine's
    /// zone, which on a laptop is the engineer's; else UTC).
    pub time_zone: chrono_tz::Tz,
}

fn number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

pub fn tuning() -> &'static Tuning {
    static TUNING: OnceLock<Tuning> = OnceLock::new();
    TUNING.get_or_init(|| Tuning {
        sqlite_busy_timeout: Duration::from_millis(
            number("OFFSYNC_SQLITE_BUSY_TIMEOUT_MS").unwrap_or(30_000),
        ),
        sqlite_upload_cache_mib: number("OFFSYNC_SQLITE_UPLOAD_CACHE_MIB")
            .filter(|m: &i64| *m > 0)
            .unwrap_or(48),
        body_idle: Duration::from_secs(
            number("OFFSYNC_BODY_IDLE_SECONDS")
                .filter(|s: &u64| *s > 0)
                .unwrap_or(60),
        ),
        json_logs: std::env::var("OFFSYNC_LOG_FORMAT").is_ok_and(|f| f == "json"),
        laptop_password: std::env::var("OFFSYNC_OFFLINE_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()),
        time_zone: std::env::var("OFFSYNC_TIME_ZONE")
            .ok()
            .or_else(|| iana_time_zone::get_timezone().ok())
            .and_then(|name| name.trim().parse().ok())
            .unwrap_or(chrono_tz::UTC),
    })
}

/// The laptop's database when none is given: `offsync-offline.db` in the platform's data
/// directory for offsync (`~/.local/share/offsync` on Linux, or `$XDG_DATA_HOME/offsync`;
/// `~/Library/Application Support/offsync` on macOS; `%APPDATA%\\offsync\\data` on
/// Windows), made (owner only) when missing. Not the current directory: started from
/// another folder, a laptop would silently show an empty copy.
pub fn laptop_database_url() -> anyhow::Result<String> {
    use anyhow::Context;
    let dirs = directories::ProjectDirs::from("", "", "offsync").context(
        "this account has no home directory to keep the laptop's data in: give --database-url",
    )?;
    let dir = dirs.data_dir();
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("making the laptop's data directory {}", dir.display()))?;
    Ok(format!(
        "sqlite://{}",
        dir.join("offsync-offline.db").display()
    ))
}
