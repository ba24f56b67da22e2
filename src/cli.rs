//! The command line (PROTOCOL.md §6). Parses, opens the database (running migrations),
//! and calls the library; errors go to stderr with a non-zero exit status.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::config::{OfflineArgs, ServeArgs, UpstreamArgs};
use crate::db::{self, Pool, Target};
use crate::offline::client::Upstream;
use crate::offline::sync::{self as offline_sync, Progress, Step};
use crate::sync::session::Limits;
use crate::{accounts, config, demo, sync, web};

/// offsync: the sync server for field inspection data, and its offline copy.
#[derive(Debug, Parser)]
#[command(name = "offsync", version, about)]
pub struct Cli {
    /// Database to use: sqlite://PATH or postgres://USER:PASSWORD@HOST/NAME. Default:
    /// sqlite://offsync.db; for `offline` and `sync`, offsync-offline.db in the platform's
    /// data directory (~/.local/share/offsync on Linux).
    #[arg(long, global = true, env = "DATABASE_URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the main server (migrations run at start).
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Load a changeset (gzip or plain) as online edits, in one transaction.
    Import {
        /// The changeset file.
        file: PathBuf,
    },
    /// Fill an empty database with demo data and demo users; prints their logins.
    Demo,
    /// Run the offline copy on a laptop: the same pages over a local database, with "Sync now".
    Offline(OfflineArgs),
    /// Sync the laptop's database with the main server once (open, upload, download, complete).
    Sync(UpstreamArgs),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user.
    Add {
        name: String,
        #[arg(long)]
        password: String,
        /// The same as --role administrator.
        #[arg(long, conflicts_with = "role")]
        admin: bool,
        /// administrator (everything: users, deleting sites and assets, everyone's
        /// conflicts), office (every field; the default) or engineer (online, what a laptop
        /// may do).
        #[arg(long, value_parser = parse_role)]
        role: Option<accounts::Role>,
    },
    /// Set a user's password; every browser session of theirs ends.
    Passwd {
        name: String,
        #[arg(long, env = "OFFSYNC_NEW_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Disable a user: no sign-in, their sessions end and their devices stop syncing at once.
    Disable { name: String },
    /// Enable a disabled user again.
    Enable { name: String },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Register a device; prints its token alone on stdout.
    Add {
        #[arg(long)]
        user: String,
        #[arg(long)]
        name: String,
    },
}

fn parse_role(text: &str) -> Result<accounts::Role, String> {
    accounts::Role::parse(text)
        .ok_or_else(|| format!("{text:?} is not a role: administrator, office or engineer"))
}

/// Runs the command line; the process's exit status.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    init_logging(if serving { "info" } else { "warn" });
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("offsync: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OFFSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal, never into a log file or collector.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // One JSON object per line for log collectors; otherwise key=value text.
    let _ = if config::tuning().json_logs {
        logs.json().try_init()
    } else {
        logs.try_init()
    };
}

fn open(url: &str, size: u32) -> anyhow::Result<Pool> {
    db::connect(url, size).with_context(|| format!("opening {}", redact(url)))
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let on_laptop = matches!(cli.command, Command::Offline(_) | Command::Sync(_));
    let url = match cli.database_url {
        Some(url) => url,
        None if on_laptop => config::laptop_database_url()?,
        None => "sqlite://offsync.db".to_owned(),
    };
    let url = url.as_str();
    match cli.command {
        Command::Offline(args) => offline(url, args),
        Command::Sync(args) => sync_once(url, args),
        Command::Serve(args) => serve(url, args),
        Command::User(UserCommand::Add {
            name,
            password,
            admin,
            role,
        }) => {
            let pool = open(url, 1)?;
            let mut conn = pool.get()?;
            let role = match (admin, role) {
                (true, _) => accounts::Role::Administrator,
                (false, Some(role)) => role,
                (false, None) => accounts::Role::Office,
            };
            let user = accounts::add_user_with_role(&mut conn, &name, &password, role)?;
            eprintln!("created user {} ({})", user.name, role.as_str());
            Ok(())
        }
        Command::User(UserCommand::Passwd { name, password }) => {
            let pool = open(url, 1)?;
            let user = accounts::set_password(&mut *pool.get()?, &name, &password)?;
            eprintln!("set the password of {}; their sessions ended", user.name);
            Ok(())
        }
        Command::User(UserCommand::Disable { name }) => {
            let pool = open(url, 1)?;
            let user = accounts::set_disabled(&mut *pool.get()?, &name, true)?;
            eprintln!(
                "disabled {}: no sign-in, sessions ended, devices stopped",
                user.name
            );
            Ok(())
        }
        Command::User(UserCommand::Enable { name }) => {
            let pool = open(url, 1)?;
            let user = accounts::set_disabled(&mut *pool.get()?, &name, false)?;
            eprintln!("enabled {}", user.name);
            Ok(())
        }
        Command::Device(DeviceCommand::Add { user, name }) => {
            let pool = open(url, 1)?;
            let mut conn = pool.get()?;
            let (_, token) = accounts::add_device(&mut conn, &user, &name)?;
            println!("{token}");
            Ok(())
        }
        Command::Import { file } => {
            let pool = open(url, 1)?;
            let mut conn = pool.get()?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let done = sync::import::import(&mut conn, input, u64::MAX)
                .map_err(|e| describe_sync_error(&e))
                .with_context(|| format!("importing {}", file.display()))?;
            eprintln!(
                "imported {}: {} created, {} updated, {} deleted",
                file.display(),
                done.created,
                done.updated,
                done.deleted
            );
            Ok(())
        }
        Command::Demo => {
            let pool = open(url, 1)?;
            let mut conn = pool.get()?;
            let logins = demo::load(&mut conn)?;
            print_logins(&logins);
            Ok(())
        }
    }
}

/// A sync error with the row and field it names, for the terminal.
fn describe_sync_error(e: &sync::SyncError) -> anyhow::Error {
    match e {
        sync::SyncError::Rejected {
            table, id, field, ..
        } => {
            let mut at = String::new();
            if let Some(t) = table {
                at.push_str(&format!(" [table {t}"));
                if let Some(i) = id {
                    at.push_str(&format!(", id {i}"));
                }
                if let Some(f) = field {
                    at.push_str(&format!(", field {f}"));
                }
                at.push(']');
            }
            anyhow::anyhow!("{e}{at}")
        }
        other => anyhow::anyhow!("{other}"),
    }
}

fn print_logins(logins: &[(String, String, bool)]) {
    println!("Demo users (user name / password):");
    for (name, password, admin) in logins {
        println!(
            "  {name} / {password}{}",
            if *admin { "  (administrator)" } else { "" }
        );
    }
}

fn serve(url: &str, args: ServeArgs) -> anyhow::Result<()> {
    crate::telemetry::init();
    let pool = db::connect_with(
        url,
        db::PoolSettings {
            max_size: args.pool_size,
            wait: Duration::from_millis(args.pool_wait_ms),
        },
    )
    .with_context(|| format!("opening {}", redact(url)))?;
    if args.demo {
        let mut conn = pool.get()?;
        match demo::load(&mut conn) {
            Ok(logins) => print_logins(&logins),
            Err(demo::DemoError::NotEmpty) => {
                eprintln!("the database already holds data; demo data not loaded")
            }
            Err(e) => return Err(e.into()),
        }
    }
    let key_file = match args.session_key_file {
        Some(p) => p,
        None => default_key_file(url)?,
    };
    let session_key = web_key(&key_file)?;
    let listener =
        TcpListener::bind(&args.bind).with_context(|| format!("binding {}", args.bind))?;
    let address = listener.local_addr()?;
    let settings = web::WebSettings {
        limits: Limits {
            max_upload_bytes: args.max_upload_bytes,
            max_decompressed_bytes: args.max_decompressed_bytes,
        },
        session_key,
        secure_cookies: args.secure_cookies,
        workers: args.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
        }),
        sessions: crate::accounts::SessionTimeouts {
            idle: Duration::from_secs(args.session_idle_minutes.saturating_mul(60)),
            absolute: Duration::from_secs(args.session_max_hours.saturating_mul(3600)),
        },
        sign_in: crate::accounts::SignInLimits {
            per_account: args.sign_in_per_account,
            per_address: args.sign_in_per_address,
            per_account_ceiling: args.sign_in_per_account_ceiling,
            ..Default::default()
        },
        proxies: web::auth::Proxies {
            count: if args.trust_forwarded_for {
                args.trusted_proxies.max(1)
            } else {
                args.trusted_proxies
            },
            forwarded_header: args.forwarded_header,
        },
        uploads: web::gate::UploadLimits {
            at_once: args
                .uploads_at_once
                .unwrap_or_else(|| match Target::parse(url) {
                    Ok(Target::Sqlite(_)) => web::gate::UploadLimits::one_writer().at_once,
                    _ => web::gate::UploadLimits::for_pool(args.pool_size).at_once,
                }),
            wait: Duration::from_millis(args.upload_wait_ms),
        },
    };
    eprintln!(
        "offsync is serving {} on http://{address}/ (sign in at http://{address}/login)",
        redact(url)
    );
    actix_web::rt::System::new()
        .block_on(async move { web::serve(listener, pool, settings, None)?.await })?;
    Ok(())
}

/// What the laptop knows of its main server, as given (then kept in the laptop's database
/// for the next run), else as kept there.
struct Kept {
    /// The main server's address, or empty.
    server: String,
    /// Address and device token, once connected.
    upstream: Option<Upstream>,
    /// Who connected it on its page.
    engineer: Option<String>,
}

fn connection(args: &UpstreamArgs, pool: &Pool) -> anyhow::Result<Kept> {
    use crate::offline::store;
    let mut conn = pool.get()?;
    let given_token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.trim().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the token from {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    if let Some(url) = &args.upstream {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--upstream must be an http:// or https:// URL, not {url:?}");
        }
        store::set_state(&mut conn, store::UPSTREAM, url)?;
    }
    if let Some(token) = &given_token {
        if token.is_empty() {
            bail!("the device token is empty");
        }
        store::set_state(&mut conn, store::DEVICE_TOKEN, token)?;
    }
    let url = store::get_state(&mut conn, store::UPSTREAM)?;
    let token = store::get_state(&mut conn, store::DEVICE_TOKEN)?;
    let upstream = match (&url, token) {
        (Some(url), Some(token)) => Some(Upstream::new(url, &token)?),
        _ => None,
    };
    Ok(Kept {
        server: url.unwrap_or_default(),
        upstream,
        engineer: store::get_state(&mut conn, store::ENGINEER)?,
    })
}

/// The upstream of a connected laptop, for `offsync sync`.
fn upstream(args: &UpstreamArgs, pool: &Pool) -> anyhow::Result<Upstream> {
    let kept = connection(args, pool)?;
    match (kept.upstream, kept.server) {
        (Some(upstream), _) => Ok(upstream),
        (None, url) if url.is_empty() => bail!(
            "this laptop is not connected to a main site yet: start `offsync offline` and \
             connect it on its page, or give --upstream https://… and --token-file FILE"
        ),
        (None, url) => bail!(
            "this laptop is not connected to {url} yet: start `offsync offline` and connect \
             it on its page, or give --token-file FILE (from the main site's Devices page)"
        ),
    }
}

/// Opens `url` in the person's browser when there is a desktop to show it on.
fn open_in_browser(url: &str) {
    let desktop = !cfg!(target_os = "linux")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if desktop && let Err(e) = webbrowser::open(url) {
        eprintln!("(could not open a browser: {e}; open {url} yourself)");
    }
}

fn read_password(path: &Path) -> anyhow::Result<String> {
    let password = std::fs::read_to_string(path)
        .with_context(|| format!("reading the password from {}", path.display()))?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < 8 {
        bail!("the laptop copy's password must have at least 8 characters");
    }
    Ok(password)
}

fn offline(url: &str, args: OfflineArgs) -> anyhow::Result<()> {
    if !matches!(Target::parse(url)?, Target::Sqlite(_)) {
        bail!("the offline copy keeps its data in SQLite: use --database-url sqlite://PATH");
    }
    let pool = open(url, 4)?;
    let Kept {
        server,
        upstream,
        engineer,
    } = connection(&args.upstream, &pool)?;
    let password = match (&args.password_file, &config::tuning().laptop_password) {
        (Some(path), _) => Some(read_password(path)?),
        (None, Some(p)) => {
            if p.chars().count() < 8 {
                bail!("the laptop copy's password must have at least 8 characters");
            }
            Some(p.clone())
        }
        (None, None) => None,
    };
    // Before binding: a copy that may not listen there never listens, even for a moment.
    if password.is_none() {
        let beyond = std::net::ToSocketAddrs::to_socket_addrs(args.bind.as_str())
            .with_context(|| format!("the address to listen on, {}", args.bind))?
            .any(web::laptop::Guard::needs_password);
        if beyond {
            bail!(
                "the laptop copy listens beyond loopback ({}) only with a password for its \
                 pages (OFFSYNC_OFFLINE_PASSWORD or --password-file)",
                args.bind
            );
        }
    }
    let listener =
        TcpListener::bind(&args.bind).with_context(|| format!("binding {}", args.bind))?;
    let address = listener.local_addr()?;
    let settings = web::WebSettings {
        limits: Limits::default(),
        // Sessions only carry CSRF tokens here; a new key per start is enough.
        session_key: actix_web::cookie::Key::generate(),
        secure_cookies: false,
        workers: 2,
        sign_in: Default::default(),
        sessions: Default::default(),
        proxies: Default::default(),
        uploads: web::gate::UploadLimits::one_writer(),
    };
    let page = format!("http://{address}/");
    match &upstream {
        Some(u) => eprintln!(
            "offsync offline copy of {} on {page} (data in {})",
            u.base,
            redact(url)
        ),
        None => eprintln!(
            "offsync offline copy on {page}: open it to connect this laptop to the main site \
             (data in {})",
            redact(url)
        ),
    }
    if !args.no_open {
        open_in_browser(&page);
    }
    let app = web::offline::OfflineApp::new(upstream, server)
        .with_password(password)
        .with_engineer(engineer);
    if args.sync_every_minutes > 0 {
        app.sync_in_background(
            pool.clone(),
            Duration::from_secs(args.sync_every_minutes.saturating_mul(60)),
        );
    }
    actix_web::rt::System::new()
        .block_on(async move { web::serve(listener, pool, settings, Some(app))?.await })?;
    Ok(())
}

/// A progress bar on a terminal (indicatif draws nothing when stderr is not one).
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn step(&self, step: Step, detail: &str) {
        let what = match step {
            Step::Preparing => "preparing",
            Step::Uploading => "uploading",
            Step::Downloading => "downloading",
            Step::Completing => "completing",
        };
        self.0.set_message(format!("{what} {detail}"));
    }

    fn downloaded(&self, rows: u64) {
        self.0.set_position(rows);
    }

    fn expect(&self, rows: u64) {
        self.0.set_length(rows);
        self.0.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} {pos}/{len} rows, {per_sec}, {eta} left [{elapsed}]",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
    }
}

fn sync_once(url: &str, args: UpstreamArgs) -> anyhow::Result<()> {
    if !matches!(Target::parse(url)?, Target::Sqlite(_)) {
        bail!("the offline copy keeps its data in SQLite: use --database-url sqlite://PATH");
    }
    let pool = open(url, 2)?;
    let upstream = upstream(&args, &pool)?;
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} rows [{elapsed}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let outcome = offline_sync::sync(&pool, &upstream, &Bar(bar.clone()));
    bar.finish_and_clear();
    let summary = outcome.context("sync did not complete")?;
    println!("{summary}");
    Ok(())
}

fn default_key_file(url: &str) -> anyhow::Result<PathBuf> {
    Ok(match Target::parse(url)? {
        Target::Sqlite(path) => PathBuf::from(format!("{path}.session-key")),
        Target::Postgres(_) => PathBuf::from("offsync-session.key"),
    })
}

/// The cookie signing key from `path`, made (and kept there, readable by the owner only)
/// when the file does not exist.
fn web_key(path: &Path) -> anyhow::Result<actix_web::cookie::Key> {
    use actix_web::cookie::Key;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim())
                .with_context(|| format!("{} does not hold a hex key", path.display()))?;
            if bytes.len() < 64 {
                bail!("{} holds a key shorter than 64 bytes", path.display());
            }
            Ok(Key::from(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Key::generate();
            write_private(path, &hex::encode(key.master()))
                .with_context(|| format!("writing the session key to {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            super::redact("postgres://root:secret@127.0.0.1:5432/db"),
            "postgres://root:***@127.0.0.1:5432/db"
        );
        assert_eq!(super::redact("sqlite://offsync.db"), "sqlite://offsync.db");
    }
}
