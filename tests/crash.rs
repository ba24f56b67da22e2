//! Crash safety: `offsync serve` as a real process, killed with SIGKILL in the middle of
//! applying a large upload, of a download, and of a bulk conflict resolution; restarted on
//! the same database, which must hold all of the interrupted work or none of it, with the
//! session not completed and the client's retry converging. On SQLite and PostgreSQL.

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

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use helpers::*;
use offsync::db::repo::accounts::count;
use offsync::db::{self, Sql};
use serve::Serve;

/// Readings in the interrupted upload: enough that applying them takes a while.
const READINGS: usize = 20_000;

/// A database, its session key, and a user with a device token.
struct Setup {
    db: TestDb,
    /// The test's own connections, to set up and to inspect what the server left.
    pool: db::Pool,
    key: tempfile::TempDir,
    token: String,
}

fn setup(b: Backend) -> Option<Setup> {
    let db = TestDb::new(b)?;
    let pool = db::connect(&db.url, 2).expect("the test database");
    let mut conn = pool.get().expect("a connection");
    offsync::accounts::add_user(&mut conn, "alice", "password", false).expect("a user");
    let (_, token) = offsync::accounts::add_device(&mut conn, "alice", "laptop").expect("a device");
    drop(conn);
    Some(Setup {
        db,
        pool,
        key: tempfile::tempdir().expect("a directory"),
        token,
    })
}

impl Setup {
    fn serve(&self) -> Serve {
        Serve::start(&self.db.url, &self.key.path().join("key"))
    }

    fn device(&self, server: &Serve) -> Device {
        Device {
            base: server.base.clone(),
            token: self.token.clone(),
            http: client(),
            replica: HashMap::new(),
        }
    }

    fn conn(&self) -> db::PooledConn {
        self.pool.get().expect("a connection")
    }

    fn count(&self, query: &str) -> i64 {
        count(&mut self.conn(), Sql::new(query)).expect(query)
    }

    fn import(&self, doc: &str) {
        offsync::sync::import::import(
            &mut self.conn(),
            std::io::Cursor::new(doc.as_bytes().to_vec()),
            u64::MAX,
        )
        .expect("import");
    }
}

/// A site and an asset, as online data; returns the asset's id.
fn seed_asset(setup: &Setup) -> String {
    let (site, asset) = (uid(), uid());
    setup.import(&doc(&[
        create(
            "sites",
            &site,
            &[("code", Some("CRASH")), ("name", Some("Crash site"))],
        ),
        create(
            "assets",
            &asset,
            &[
                ("site_id", Some(&site)),
                ("tag", Some("CRASH-1")),
                ("status", Some("ok")),
            ],
        ),
    ]));
    asset
}

/// A week of work on a laptop: an inspection of `asset` with `n` readings, all new.
fn week_of_work(asset: &str, n: usize) -> Vec<String> {
    let inspection = uid();
    let mut items = vec![create(
        "inspections",
        &inspection,
        &inspection_fields(asset),
    )];
    items.extend((0..n).map(|_| create("readings", &uid(), &reading_fields(&inspection))));
    items
}

/// An upload that must not get an answer: the server dies while applying it.
fn upload_in_background(
    d: &Device,
    session: &str,
    file: Vec<u8>,
) -> std::thread::JoinHandle<Result<u16, reqwest::Error>> {
    let url = format!("{}/api/sync/sessions/{session}/upload", d.base);
    let token = d.token.clone();
    std::thread::spawn(move || {
        let part = reqwest::blocking::multipart::Part::bytes(file).file_name("changes.xml.gz");
        client()
            .post(url)
            .bearer_auth(token)
            .multipart(reqwest::blocking::multipart::Form::new().part("changes", part))
            .send()
            .map(|r| r.status().as_u16())
    })
}

/// Kills `server` with SIGKILL a random 0 to `max_ms` ms after it logs `line`, while
/// `request` waits for its answer; fails the test if the answer came first, since the test
/// would then prove nothing.
fn kill_during<T: std::fmt::Debug, E: std::fmt::Debug>(
    mut server: Serve,
    line: &str,
    max_ms: u64,
    request: std::thread::JoinHandle<Result<T, E>>,
) {
    server.wait_for(line);
    jitter(max_ms);
    server.kill();
    let answer = request.join().expect("the request's thread");
    assert!(
        answer.is_err(),
        "answered before the kill (after {line:?}); the test proves nothing: {answer:?}"
    );
}

/// A pause of 0 to `max_ms` milliseconds, different on every run, so that repeated runs
/// land the kill at different points of the work.
fn jitter(max_ms: u64) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    std::thread::sleep(Duration::from_millis(nanos % (max_ms + 1)));
}

on_both!(
    a_kill_while_applying_an_upload_leaves_all_or_nothing_and_the_retry_converges,
    a_kill_during_a_download_leaves_the_session_open_and_the_retry_converges,
    a_kill_during_a_bulk_resolution_leaves_every_conflict_whole
);

fn a_kill_while_applying_an_upload_leaves_all_or_nothing_and_the_retry_converges(b: Backend) {
    let Some(setup) = setup(b) else { return };
    let asset = seed_asset(&setup);
    let server = setup.serve();
    let mut d = setup.device(&server);
    d.sync(&[]);
    let last_sync = d.state().0;
    let file = gzip(doc(&week_of_work(&asset, READINGS)).as_bytes());

    let s = d.open();
    let upload = upload_in_background(&d, &s.id, file.clone());
    kill_during(server, "applying upload", 300, upload);

    // Nothing of it is there (a transaction is all or nothing; the kill came before its
    // answer, so before its commit could be acknowledged), and the session did not complete.
    let readings = setup.count("SELECT COUNT(*) AS n FROM readings");
    eprintln!("after the kill: {readings} of {READINGS} readings");
    assert!(
        readings == 0 || readings == READINGS as i64,
        "a half-applied upload: {readings} of {READINGS} readings"
    );
    assert_eq!(
        setup.count("SELECT COUNT(*) AS n FROM sync_sessions WHERE status = 'complete'"),
        1,
        "only the first sync is complete"
    );
    let server = setup.serve();
    d.base = server.base.clone();
    assert_eq!(
        d.state().0,
        last_sync,
        "the next sync starts from the same date"
    );

    // The client's retry: a new session, the same file, download, complete.
    let s = d.open();
    assert_eq!(s.since, last_sync);
    let a = d.upload_bytes(&s.id, file);
    assert_eq!(a.status, 200, "{}", a.body);
    let down = d.download(&s.id);
    d.complete(&s.id);
    assert_eq!(
        setup.count("SELECT COUNT(*) AS n FROM readings"),
        READINGS as i64
    );
    assert!(
        down.items.len() >= READINGS,
        "the retry's download holds the upload's rows as the server stored them"
    );
    assert_ne!(d.state().0, last_sync);
}

/// Letters that do not compress much: a download of rows holding them is larger than every
/// buffer between the server and the client, so a kill lands while it is being written.
fn noise(seed: usize, len: usize) -> String {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

fn a_kill_during_a_download_leaves_the_session_open_and_the_retry_converges(b: Backend) {
    let Some(setup) = setup(b) else { return };
    let asset = seed_asset(&setup);
    let mut items = week_of_work(&asset, 0);
    let inspection = attr(&items[0], "id").expect("the inspection's id");
    items.extend((0..READINGS).map(|i| {
        let unit = noise(i, 1000);
        let mut fields = reading_fields(&inspection);
        fields[3] = ("unit", Some(unit.as_str()));
        create("readings", &uid(), &fields)
    }));
    setup.import(&doc(&items));
    let total = (READINGS + 3) as i64; // with the site, the asset and the inspection
    let server = setup.serve();
    let d = setup.device(&server);
    let s = d.open();

    // Read the first bytes of the download, then kill the server with the rest unsent.
    let mut response = client()
        .get(format!("{}/api/sync/sessions/{}/changes", d.base, s.id))
        .bearer_auth(&d.token)
        .send()
        .expect("the download starts");
    assert_eq!(response.status().as_u16(), 200);
    let mut first = vec![0u8; 4096];
    response.read_exact(&mut first).expect("the first bytes");
    jitter(100);
    server.kill();
    let mut rest = Vec::new();
    let cut = response.read_to_end(&mut rest);
    first.extend_from_slice(&rest);
    // The rows in what arrived, if it is a whole changeset.
    let whole = || -> Option<i64> {
        let input = offsync::sync::codec::decompressing(std::io::Cursor::new(first)).ok()?;
        let mut reader = offsync::sync::codec::ChangesetReader::new(input, u64::MAX);
        reader.header().ok()?;
        let mut n = 0;
        while reader.next_item().ok()?.is_some() {
            n += 1;
        }
        Some(n)
    };
    let truncated = cut.is_err() || whole().is_none_or(|n| n < total);
    assert!(truncated, "the kill came after the whole download was sent");

    let server = setup.serve();
    let mut d = setup.device(&server);
    assert_eq!(
        d.state().0,
        None,
        "an interrupted download completes nothing"
    );
    let s = d.open();
    assert_eq!(
        s.since, None,
        "the retry starts from the same date (the beginning)"
    );
    let down = d.download(&s.id);
    assert_eq!(
        down.items.len() as i64,
        total,
        "the retry downloads every row"
    );
    d.complete(&s.id);
    assert!(d.state().0.is_some());
}

fn a_kill_during_a_bulk_resolution_leaves_every_conflict_whole(b: Backend) {
    // The most one bulk post takes.
    const CONFLICTS: usize = 500;
    let Some(setup) = setup(b) else { return };
    let asset = seed_asset(&setup);
    let mut items = week_of_work(&asset, 0);
    let inspection = attr(&items[0], "id").expect("the inspection's id");
    let readings: Vec<String> = (0..CONFLICTS).map(|_| uid()).collect();
    items.extend(
        readings
            .iter()
            .map(|id| create("readings", id, &reading_fields(&inspection))),
    );
    setup.import(&doc(&items));

    let server = setup.serve();
    let mut d = setup.device(&server);
    d.sync(&[]);
    // Every reading changed online and on the laptop: a true conflict each.
    setup.import(&doc(&readings
        .iter()
        .map(|id| create("readings", id, &[("value", Some("1.5"))]))
        .collect::<Vec<_>>()));
    let edits: Vec<String> = readings
        .iter()
        .map(|id| {
            let base = d.base("readings", id);
            record(
                "readings",
                id,
                Some(&base),
                &[("value", Some("2.5"), Some(Some("4.2")))],
            )
        })
        .collect();
    let (_, _, conflicts, flag) = d.sync(&edits).0.expect("an upload result");
    assert_eq!((conflicts, flag), (CONFLICTS as u64, true));

    let ids: Vec<String> = {
        let scope = offsync::db::repo::conflicts::Scope {
            user_id: None,
            table: None,
            device_id: None,
        };
        offsync::db::repo::conflicts::list(
            &mut setup.conn(),
            &scope,
            offsync::db::repo::conflicts::ConflictStatus::Open,
            CONFLICTS as i64,
            0,
        )
        .expect("the conflicts")
        .into_iter()
        .map(|c| c.id)
        .collect()
    };
    assert_eq!(ids.len(), CONFLICTS);
    let (browser, form) = keep_offline_form(&server, &ids);
    let posting = std::thread::spawn(move || {
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        browser
            .try_post("/conflicts/bulk", &pairs)
            .map(|(status, ..)| status)
    });
    kill_during(server, "resolving in bulk", 100, posting);

    // Each conflict is whole: resolved with the laptop's value in its row, or open with
    // the server's; and the person's flag says whether any is open.
    let resolved = setup.count("SELECT COUNT(*) AS n FROM conflicts WHERE status = 'resolved'");
    eprintln!("the kill came after {resolved} of {CONFLICTS} resolutions");
    let taken = setup.count("SELECT COUNT(*) AS n FROM readings WHERE value = '2.5'");
    let kept = setup.count("SELECT COUNT(*) AS n FROM readings WHERE value = '1.5'");
    assert_eq!(
        resolved, taken,
        "every resolved conflict's row holds the chosen value"
    );
    assert_eq!(
        kept,
        CONFLICTS as i64 - resolved,
        "every open conflict's row is untouched"
    );
    let flagged =
        setup.count("SELECT COUNT(*) AS n FROM users WHERE name = 'alice' AND is_conflict");
    assert_eq!(flagged, i64::from(resolved < CONFLICTS as i64));

    // The retry resolves the rest and clears the flag.
    let server = setup.serve();
    let (browser, form) = keep_offline_form(&server, &ids);
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, _) = browser.post("/conflicts/bulk", &pairs);
    assert_eq!(status, 303);
    assert_eq!(
        setup.count("SELECT COUNT(*) AS n FROM readings WHERE value = '2.5'"),
        CONFLICTS as i64
    );
    assert_eq!(
        setup.count("SELECT COUNT(*) AS n FROM users WHERE name = 'alice' AND is_conflict"),
        0
    );
}

/// Alice signed in on `server`, and the bulk form that keeps the offline side of `ids`.
fn keep_offline_form(server: &Serve, ids: &[String]) -> (Browser, Vec<(&'static str, String)>) {
    let browser = Browser::at(&server.base);
    assert_eq!(browser.sign_in("alice", "password").0, 303);
    let (_, page) = browser.get("/conflicts");
    let mut form = vec![("csrf", browser.csrf(&page)), ("all", "offline".to_owned())];
    form.extend(ids.iter().map(|id| ("ids", id.clone())));
    (browser, form)
}
