//! Database faults. PostgreSQL going away while requests run (a proxy in front of the test
//! cluster cuts every connection and refuses new ones, as a stopped server would, without
//! stopping the cluster other tests share): clear 503s with `<error>` bodies, no hung
//! worker, full service once it is back, without restarting offsync. SQLite on a read-only
//! or full file system, or locked by another program: clear errors naming the fault, no
//! panic, nothing half-written.

#[allow(
    dead_code,
    reason = "shares the integration tests' helpers; uses a few"
)]
#[path = "it/helpers.rs"]
mod helpers;
#[allow(
    dead_code,
    reason = "shared by the process-level tests; each uses a part"
)]
#[path = "common/serve.rs"]
mod serve;

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::Connection;
use diesel::connection::SimpleConnection;
use helpers::*;

/// A TCP proxy to PostgreSQL that can be cut: every open connection is shut down and new
/// ones are closed on arrival until it is restored.
struct Proxy {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: (String, u16)) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect((upstream.0.as_str(), upstream.1)) else {
                    continue;
                };
                let pipes = (client.try_clone(), server.try_clone());
                let (Ok(client2), Ok(server2)) = pipes else {
                    continue;
                };
                if let Ok(mut open) = o.lock() {
                    open.extend(client.try_clone());
                    open.extend(server.try_clone());
                }
                std::thread::spawn(move || pipe(client, server));
                std::thread::spawn(move || pipe(server2, client2));
            }
        });
        Proxy { port, down, open }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.open.lock().expect("the proxy's list").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
}

/// The host and port of `OFFSYNC_TEST_PG`.
fn pg_address(url: &str) -> (String, u16) {
    let after_at = url.rsplit_once('@').map_or(url, |(_, h)| h);
    let host_port = after_at.split('/').next().unwrap_or(after_at);
    match host_port.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().expect("a port number")),
        None => (host_port.to_owned(), 5432),
    }
}

#[test]
fn postgres_going_away_gives_503_and_service_returns_without_a_restart() {
    let Some(mut db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let proxy = Proxy::start(pg_address(&db.url));
    // offsync reaches this database only through the proxy.
    let (head, name) = db.url.rsplit_once('/').expect("a database URL");
    let (creds, _) = head
        .rsplit_once('@')
        .expect("credentials in OFFSYNC_TEST_PG");
    db.url = format!("{creds}@127.0.0.1:{}/{name}", proxy.port);
    let app = TestApp::start_on(db);
    let (_, asset) = app.seed_asset();
    app.add_user("bob", "password", false);
    let mut d = app.device("alice");
    d.sync(&[]);
    let browser = Browser::signed_in(&app, "bob");
    assert_eq!(browser.get("/sites").0, 200);

    // Requests keep coming from another client the whole time: each answer is 200 or 503,
    // and none takes longer than the pool's wait plus a margin (no hung worker).
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let poller = {
        let (stop, seen) = (stop.clone(), seen.clone());
        let state = format!("{}/api/sync/state", d.base);
        let token = d.token.clone();
        std::thread::spawn(move || {
            let http = client();
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                let status = http
                    .get(&state)
                    .bearer_auth(&token)
                    .send()
                    .map(|r| r.status().as_u16());
                seen.lock()
                    .expect("the list")
                    .push((status.map_err(|e| e.to_string()), t.elapsed()));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    proxy.cut();
    let open = d.open_raw();
    open.assert_unavailable("the database is unavailable");
    let (status, page) = browser.get("/sites");
    assert_eq!(status, 503);
    assert!(page.contains("database is unavailable"), "{page}");
    assert!(
        !page.contains("diesel") && !page.contains("SELECT"),
        "no internals: {page}"
    );
    let health = client()
        .get(format!("{}/healthz", app.base))
        .send()
        .expect("healthz answers");
    assert_eq!(health.status().as_u16(), 503);
    // The outage lasts until the poller has met it too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen
        .lock()
        .expect("the list")
        .iter()
        .any(|(s, _)| matches!(s, Ok(503)))
    {
        assert!(Instant::now() < deadline, "the poller never saw the outage");
        std::thread::sleep(Duration::from_millis(100));
    }

    proxy.restore();
    // Back without a restart: stale pooled connections are tested on checkout and replaced.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let a = d.open_raw();
        if a.status == 201 {
            break;
        }
        assert_eq!(a.status, 503, "{}", a.body);
        assert!(Instant::now() < deadline, "service did not come back");
        std::thread::sleep(Duration::from_millis(200));
    }
    let base = d.base("assets", &asset);
    let (applied, ..) = d
        .sync(&[edit("assets", &asset, &base, &[("notes", Some("after"))])])
        .0
        .expect("an upload result");
    assert_eq!(applied, 1);
    assert_eq!(browser.get("/sites").0, 200);
    assert_eq!(
        app.row("assets", &asset).expect("the asset").fields["notes"].as_deref(),
        Some("after")
    );

    stop.store(true, Ordering::SeqCst);
    poller.join().expect("the poller");
    let seen = seen.lock().expect("the list");
    assert!(
        seen.len() > 1,
        "the poller ran before and during the outage"
    );
    for (status, took) in seen.iter() {
        assert!(
            matches!(status, Ok(200 | 503)),
            "an answer other than 200 or 503: {status:?}"
        );
        assert!(
            *took < Duration::from_secs(15),
            "a request hung for {took:?}"
        );
    }
    assert!(
        seen.iter().any(|(s, _)| matches!(s, Ok(503))),
        "the outage was seen"
    );
}

/// A small file system of its own (tmpfs; needs root), so that the test can fill it and
/// make it read-only. On a laptop without root the test prints a notice and passes;
/// under CI=true it must run.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("a directory");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            missing("a tmpfs cannot be mounted here (not root?)");
            return None;
        }
        Some(SmallDisk { dir })
    }

    /// Remounts with `option`; retried for a while, since a file system with a file open
    /// for writing cannot become read-only, and a stopped server's pool closes its
    /// connections as its threads wind down.
    fn remount(&self, option: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = std::process::Command::new("mount")
                .args(["-o", &format!("remount,{option}")])
                .arg(self.dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "remount {option}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn sqlite_on_a_full_or_read_only_disk_gives_clear_503s_and_keeps_its_data() {
    let Some(disk) = SmallDisk::mount("3m") else {
        return;
    };
    let mut db = TestDb::new(Backend::Sqlite).expect("SQLite");
    db.url = format!("sqlite://{}", disk.dir.path().join("offsync.db").display());
    let url = db.url.clone();
    let app = TestApp::start_on(db);
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);

    // Fill the disk with something else, then upload more than fits.
    let ballast = disk.dir.path().join("ballast");
    let _ = std::fs::write(&ballast, vec![7u8; 3 << 20]);
    let inspection = uid();
    let mut items = vec![
        edit(
            "assets",
            &asset,
            &base,
            &[("notes", Some("once there was space"))],
        ),
        create("inspections", &inspection, &inspection_fields(&asset)),
    ];
    items.extend((0..2000).map(|_| create("readings", &uid(), &reading_fields(&inspection))));
    let s = d.open_raw();
    if s.status == 201 {
        let sid = s.attr("id").expect("a session id");
        let a = d.upload_raw(&sid, &doc(&items));
        a.assert_unavailable("disk is full");
    } else {
        // Even opening a session writes; it must fail as clearly.
        s.assert_unavailable("disk is full");
    }
    std::fs::remove_file(&ballast).expect("the ballast goes");
    assert_eq!(
        app.row("assets", &asset).expect("the asset").fields["notes"].as_deref(),
        Some("n0"),
        "nothing of the failed upload stayed"
    );
    let s = d.open();
    assert_eq!(
        d.upload(&s.id, &items).0,
        2002,
        "with space again, the same upload applies"
    );
    d.complete(&s.id);

    // A read-only file system (remounting needs no file open for writing, so the server is
    // stopped first): offsync refuses to start, saying why, and nothing is lost.
    drop(app);
    disk.remount("ro");
    let refused = offsync::db::connect(&url, 2).map(|_| ());
    let message = refused
        .expect_err("a read-only database must not open")
        .to_string();
    assert!(
        message.contains("cannot write to the database"),
        "{message}"
    );
    assert!(message.contains("Read-only file system"), "{message}");
    disk.remount("rw");
    let mut again = TestDb::new(Backend::Sqlite).expect("SQLite");
    again.url = url.clone();
    let app = TestApp::start_on(again);
    let mut d = d.with_token(&d.token);
    d.base = app.base.clone();
    let s = d.open();
    d.complete(&s.id);
    assert_eq!(
        app.row("assets", &asset).expect("the asset").fields["notes"].as_deref(),
        Some("once there was space"),
        "the upload applied before the remount is all there"
    );
}

#[test]
fn a_locked_sqlite_database_answers_writers_busy_and_readers_go_on() {
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    let token = {
        let pool = offsync::db::connect(&db.url, 1).expect("the test database");
        let mut conn = pool.get().expect("a connection");
        offsync::accounts::add_user(&mut conn, "alice", "password", false).expect("a user");
        offsync::accounts::add_device(&mut conn, "alice", "laptop")
            .expect("a device")
            .1
    };
    let key = tempfile::tempdir().expect("a directory");
    let server = serve::Serve::start_with_env(
        &db.url,
        &key.path().join("key"),
        &[],
        &[("OFFSYNC_SQLITE_BUSY_TIMEOUT_MS", "300")],
    );
    let mut d = Device {
        base: server.base.clone(),
        token,
        http: client(),
        replica: std::collections::HashMap::new(),
    };
    d.sync(&[]);
    let browser = Browser::at(&server.base);
    assert_eq!(browser.sign_in("alice", "password").0, 303);

    // Another program takes SQLite's write lock and keeps it.
    let path = db.url.strip_prefix("sqlite://").expect("a SQLite URL");
    let mut other = diesel::SqliteConnection::establish(path).expect("a second connection");
    other
        .batch_execute("BEGIN IMMEDIATE")
        .expect("the write lock");
    let t = Instant::now();
    let open = d.open_raw();
    open.assert_unavailable("the database is busy");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "waited the busy timeout, not forever"
    );
    // Readers are not blocked by a writer (WAL).
    assert_eq!(d.state_raw().status, 200);
    assert_eq!(browser.get("/sites").0, 200);

    other.batch_execute("COMMIT").expect("the lock released");
    let s = d.open();
    d.complete(&s.id);
}
