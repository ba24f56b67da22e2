//! Several `offsync serve` processes on one PostgreSQL database: a browser session made on
//! one works on the other; one device's sessions sent to both at once still leave one
//! open session; uploads touching the same rows from many devices through both instances
//! lose nothing (checked value by value against what was sent). Also, on real processes:
//! the request id and the per-sync line in the logs, and the session cookie's flags.

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
use std::sync::{Arc, Barrier};

use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Text};
use helpers::*;
use offsync::db::{self, Sql};
use serve::Serve;

struct Pair {
    db: TestDb,
    /// The test's own connections.
    pool: db::Pool,
    _key: tempfile::TempDir,
    a: Serve,
    b: Serve,
}

/// Two instances on one fresh PostgreSQL database, sharing the session key as an operator
/// would configure them.
fn pair() -> Option<Pair> {
    let db = TestDb::new(Backend::Postgres)?;
    // Migrated once before both start, as a deployment would.
    let pool = db::connect(&db.url, 2).expect("the test database");
    let key = tempfile::tempdir().expect("a directory");
    let key_file = key.path().join("key");
    let a = Serve::start(&db.url, &key_file);
    let b = Serve::start(&db.url, &key_file);
    Some(Pair {
        db,
        pool,
        _key: key,
        a,
        b,
    })
}

impl Pair {
    fn conn(&self) -> db::PooledConn {
        self.pool.get().expect("a connection")
    }

    fn device(&self, user: &str, server: &Serve) -> Device {
        new_device(&mut self.conn(), &server.base, user, &uid())
    }

    /// A site (`code`) with `n` assets, notes "start", imported as online data; their ids.
    fn import_site(&self, code: &str, n: usize) -> (String, Vec<String>) {
        let site = uid();
        let assets: Vec<String> = (0..n).map(|_| uid()).collect();
        let mut items = vec![create(
            "sites",
            &site,
            &[("code", Some(code)), ("name", Some(code))],
        )];
        items.extend(assets.iter().enumerate().map(|(i, id)| {
            create(
                "assets",
                id,
                &[
                    ("site_id", Some(site.as_str())),
                    ("tag", Some(&format!("{code}-{i}"))),
                    ("status", Some("ok")),
                    ("notes", Some("start")),
                ],
            )
        }));
        offsync::sync::import::import(
            &mut self.conn(),
            std::io::Cursor::new(doc(&items).into_bytes()),
            u64::MAX,
        )
        .expect("import");
        (site, assets)
    }
}

#[test]
fn a_browser_session_made_on_one_instance_works_on_the_other() {
    let Some(p) = pair() else { return };
    offsync::accounts::add_user(&mut p.conn(), "alice", "password", false).expect("a user");
    let browser = Browser::at(&p.a.base);
    assert_eq!(browser.sign_in("alice", "password").0, 303);
    // The same cookie jar, the other instance.
    let there = browser
        .http
        .get(format!("{}/sites", p.b.base))
        .send()
        .expect("instance B answers");
    assert_eq!(there.status().as_u16(), 200, "signed in on B too");
    assert!(there.text().expect("a page").contains("alice"));
}

#[test]
fn one_devices_sessions_opened_on_both_instances_at_once_leave_one_open() {
    let Some(p) = pair() else { return };
    for round in 0..10 {
        let da = p.device("alice", &p.a);
        let mut db = da.with_token(&da.token);
        db.base = p.b.base.clone();
        let barrier = Arc::new(Barrier::new(2));
        let open = |d: Device, barrier: Arc<Barrier>| {
            std::thread::spawn(move || {
                barrier.wait();
                d.open_raw()
            })
        };
        let (x, y) = (open(da, barrier.clone()), open(db, barrier));
        let (x, y) = (x.join().expect("open on A"), y.join().expect("open on B"));
        assert_eq!(
            (x.status, y.status),
            (201, 201),
            "round {round}: {} / {}",
            x.body,
            y.body
        );
        let open_now = offsync::db::repo::accounts::count(&mut p.conn(), {
            let mut sql = Sql::new(
                "SELECT COUNT(*) AS n FROM sync_sessions WHERE status = 'open' AND id IN (",
            );
            sql.param(x.attr("id").expect("an id"))
                .push(", ")
                .param(y.attr("id").expect("an id"))
                .push(")");
            sql
        })
        .expect("a count");
        assert_eq!(
            open_now, 1,
            "round {round}: exactly one of the two stays open"
        );
    }
}

#[derive(QueryableByName)]
struct OfflineValue {
    #[diesel(sql_type = Text)]
    row_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    offline_value: Option<String>,
}

#[test]
fn concurrent_uploads_through_both_instances_lose_no_change() {
    const DEVICES: usize = 8;
    const ASSETS: usize = 40;
    let Some(p) = pair() else { return };
    // The shared rows, imported as online data.
    let (_, assets) = p.import_site("MULTI", ASSETS);

    // Every device (each of its own person) edits every asset's notes from the same base,
    // half through A and half through B, all at once.
    let mut devices: Vec<(String, Device)> = (0..DEVICES)
        .map(|i| {
            let user = format!("user{i}");
            let server = if i % 2 == 0 { &p.a } else { &p.b };
            (user.clone(), p.device(&user, server))
        })
        .collect();
    for (_, d) in &mut devices {
        d.sync(&[]);
    }
    let barrier = Arc::new(Barrier::new(DEVICES));
    let threads: Vec<_> = devices
        .into_iter()
        .map(|(user, mut d)| {
            let edits: Vec<String> = assets
                .iter()
                .map(|id| {
                    let base = d.base("assets", id);
                    record(
                        "assets",
                        id,
                        Some(&base),
                        &[(
                            "notes",
                            Some(&format!("{user} was here")),
                            Some(Some("start")),
                        )],
                    )
                })
                .collect();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let (counts, _) = d.sync(&edits);
                (user, counts.expect("an upload result"))
            })
        })
        .collect();
    let results: Vec<(String, (u64, u64, u64, bool))> = threads
        .into_iter()
        .map(|t| t.join().expect("a device's sync"))
        .collect();

    // Row by row: each device's value is either the row's value or in that person's
    // conflict for the row; and the counts agree.
    let mut conn = p.conn();
    let table = offsync::domain::table_by_name("assets").expect("assets");
    let notes_at = offsync::domain::TABLES[table]
        .field_index("notes")
        .expect("a notes field");
    let mut final_notes = HashMap::new();
    for id in &assets {
        let row = offsync::db::repo::rows::get(&mut conn, table, id)
            .expect("a lookup")
            .expect("the asset");
        let notes = row.values[notes_at].clone();
        final_notes.insert(id.clone(), notes);
    }
    let mut applied_total = 0;
    for (user, (applied, _, conflicts, _)) in &results {
        let mut sql = Sql::new(
            "SELECT c.row_id, f.offline_value FROM conflicts c JOIN conflict_fields f \
             ON f.conflict_id = c.id JOIN users u ON u.id = c.user_id \
             WHERE f.field = 'notes' AND u.name = ",
        );
        sql.param(user.as_str());
        let recorded: HashMap<String, Option<String>> = sql
            .load::<OfflineValue>(&mut conn)
            .expect("the conflicts")
            .into_iter()
            .map(|c| (c.row_id, c.offline_value))
            .collect();
        let sent = format!("{user} was here");
        for id in &assets {
            let kept = final_notes[id].as_deref() == Some(sent.as_str());
            let in_conflict = recorded.get(id).and_then(|v| v.as_deref()) == Some(sent.as_str());
            assert!(
                kept || in_conflict,
                "{user}'s notes for asset {id} were lost: the row says {:?}",
                final_notes[id]
            );
        }
        assert_eq!(
            *applied + *conflicts,
            ASSETS as u64,
            "{user}: every edit accounted for"
        );
        assert_eq!(recorded.len() as u64, *conflicts);
        applied_total += applied;
    }
    // Exactly one edit per row could apply: the first; the rest met a changed row.
    assert_eq!(applied_total, ASSETS as u64);
}

#[test]
fn every_log_line_of_a_request_carries_its_id_and_a_sync_is_one_line() {
    let Some(mut p) = pair() else { return };
    let mut d = p.device("alice", &p.a);
    let answer = d
        .http
        .get(format!("{}/api/sync/state", p.a.base))
        .bearer_auth(&d.token)
        .header("x-request-id", "trace-me-42")
        .send()
        .expect("state");
    assert_eq!(
        answer
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("trace-me-42")
    );
    p.a.wait_for("trace-me-42");
    let fresh = client()
        .get(format!("{}/healthz", p.a.base))
        .send()
        .expect("healthz");
    let id = fresh
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a generated request id")
        .to_owned();
    assert_eq!(id.len(), 16);
    p.a.wait_for(&id);

    d.sync(&[]);
    p.a.wait_for("sync completed");
    let line =
        p.a.log()
            .iter()
            .find(|l| l.contains("sync completed"))
            .expect("the sync line")
            .clone();
    for part in [
        "request",
        "device=",
        "applied=",
        "conflicts=",
        "downloaded=",
        "seconds=",
    ] {
        assert!(line.contains(part), "{part} in {line}");
    }
}

#[test]
fn the_session_cookie_is_http_only_same_site_and_secure_when_asked() {
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    let key = tempfile::tempdir().expect("a directory");
    let cookie = |server: &Serve| -> String {
        let r = client()
            .get(format!("{}/login", server.base))
            .send()
            .expect("the sign-in page");
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("offsync="))
            .expect("the session cookie")
            .to_owned()
    };
    let plain = Serve::start(&db.url, &key.path().join("key"));
    let c = cookie(&plain);
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
    assert!(!c.contains("Secure"), "not Secure unless asked: {c}");
    drop(plain);
    let behind_tls = Serve::start_with(&db.url, &key.path().join("key"), &["--secure-cookies"]);
    let c = cookie(&behind_tls);
    assert!(
        c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"),
        "{c}"
    );
}

#[test]
fn logs_can_be_one_json_object_per_line_with_the_request_id() {
    let db = TestDb::new(Backend::Sqlite).expect("SQLite");
    let key = tempfile::tempdir().expect("a directory");
    let mut server = Serve::start_with_env(
        &db.url,
        &key.path().join("key"),
        &[],
        &[("OFFSYNC_LOG_FORMAT", "json")],
    );
    let answer = client()
        .get(format!("{}/healthz", server.base))
        .header("x-request-id", "json-line-7")
        .send()
        .expect("healthz");
    assert_eq!(answer.status().as_u16(), 200);
    server.wait_for("json-line-7");
    let line = server
        .log()
        .iter()
        .find(|l| l.contains("json-line-7"))
        .expect("the request's line");
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON object per line");
    assert_eq!(v["span"]["id"], "json-line-7", "{line}");
    assert_eq!(v["fields"]["status"], 200, "{line}");
    assert_eq!(v["fields"]["path"], "/healthz", "{line}");
}

/// Writers commit out of order on both instances (uploads of new rows through A and B,
/// and transactions of the test's own that take their stamps and then stay open for a
/// while) while a watching device syncs in a loop, alternately through A and B: every row
/// written is in one of its downloads.
#[test]
fn commits_out_of_order_across_instances_miss_no_row() {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    let Some(p) = pair() else { return };
    let (site, _) = p.import_site("OOO", 0);
    let written = Arc::new(Mutex::new(Vec::new()));
    let assets = offsync::domain::table_by_name("assets").expect("assets");
    let mut writers = Vec::new();
    for w in 0..2u64 {
        let pool = p.pool.clone();
        let (site, written) = (site.clone(), written.clone());
        writers.push(std::thread::spawn(move || {
            for i in 0..10u64 {
                let id = uid();
                let mut conn = pool.get().expect("a connection");
                let hold = Duration::from_millis((w * 17 + i * 11) % 60);
                offsync::db::write_txn::<_, offsync::db::DbError>(&mut conn, |c, now| {
                    let values = vec![
                        Some(site.clone()),
                        Some(format!("H{w}-{id}")),
                        None,
                        Some("ok".into()),
                        None,
                    ];
                    offsync::db::repo::rows::insert(
                        c,
                        assets,
                        &[(id.clone(), values, offsync::domain::time::after(now))],
                        "held writer",
                    )?;
                    std::thread::sleep(hold);
                    Ok(())
                })
                .expect("a held write");
                written.lock().expect("the list").push(id);
            }
        }));
    }
    for (n, server) in [&p.a, &p.b].into_iter().enumerate() {
        let mut d = p.device(&format!("uploader{n}"), server);
        let (site, written) = (site.clone(), written.clone());
        writers.push(std::thread::spawn(move || {
            d.sync(&[]);
            for round in 0..6 {
                let ids: Vec<String> = (0..5).map(|_| uid()).collect();
                let items: Vec<String> = ids
                    .iter()
                    .map(|id| {
                        create(
                            "assets",
                            id,
                            &[
                                ("site_id", Some(site.as_str())),
                                ("tag", Some(&format!("U{n}-{round}-{id}"))),
                                ("status", Some("ok")),
                            ],
                        )
                    })
                    .collect();
                d.sync(&items).0.expect("an upload result");
                written.lock().expect("the list").extend(ids);
            }
        }));
    }
    let mut watcher = p.device("watcher", &p.a);
    let bases = [p.a.base.clone(), p.b.base.clone()];
    let mut seen = std::collections::HashSet::new();
    let done = AtomicBool::new(false);
    let mut round = 0;
    loop {
        watcher.base = bases[round % 2].clone();
        round += 1;
        let (_, dl) = watcher.sync(&[]);
        seen.extend(dl.items.iter().map(|i| i.id().to_owned()));
        if done.load(Ordering::Relaxed) {
            break;
        }
        if writers.iter().all(|w| w.is_finished()) {
            // One more sync after the last commit.
            done.store(true, Ordering::Relaxed);
        }
    }
    for w in writers {
        w.join().expect("a writer");
    }
    let written = written.lock().expect("the list");
    assert_eq!(written.len(), 2 * 10 + 2 * 6 * 5);
    assert!(
        round > 3,
        "the watcher synced while the writers wrote ({round})"
    );
    let missed: Vec<&String> = written.iter().filter(|id| !seen.contains(*id)).collect();
    assert!(missed.is_empty(), "rows no download carried: {missed:?}");
}

/// An upload that deadlocks with another transaction is rolled back by PostgreSQL and
/// applied again whole: the test holds the lock of a row the upload's second batch needs,
/// waits until the upload waits for it, then asks for a row its first batch holds.
#[test]
fn an_upload_caught_in_a_deadlock_is_applied_again() {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    use std::time::{Duration, Instant};

    let Some(mut p) = pair() else { return };
    // More assets than one batch (500), so that the upload locks them in two turns.
    let (_, assets) = p.import_site("DEAD", 600);
    let mut d = p.device("alice", &p.a);
    d.sync(&[]);
    let edits: Vec<String> = assets
        .iter()
        .map(|id| {
            edit(
                "assets",
                id,
                &d.base("assets", id),
                &[("notes", Some("after"))],
            )
        })
        .collect();
    let (first, second) = (assets[0].clone(), assets[550].clone());

    let mut holder = diesel::PgConnection::establish(&p.db.url).expect("the test's connection");
    // This side waits long before it looks for a deadlock: the upload finds it first.
    holder
        .batch_execute("SET deadlock_timeout = '30s'; BEGIN")
        .expect("a transaction");
    holder
        .batch_execute(&format!(
            "SELECT id FROM assets WHERE id = '{second}' FOR UPDATE"
        ))
        .expect("the second batch's row");
    let s = d.open();
    let uploader = {
        let d = d.with_token(&d.token);
        let sid = s.id.clone();
        std::thread::spawn(move || d.upload(&sid, &edits))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        #[derive(QueryableByName)]
        struct Waiting {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let waiting = Sql::new(
            "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
             AND query LIKE '%FOR UPDATE%'",
        )
        .first::<Waiting>(&mut p.conn())
        .expect("pg_stat_activity")
        .map_or(0, |w| w.n);
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the upload never waited for the row"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The cycle: the upload holds `first` and waits for `second`; this asks for `first`.
    holder
        .batch_execute(&format!(
            "SELECT id FROM assets WHERE id = '{first}' FOR UPDATE"
        ))
        .expect("the row the upload held, once PostgreSQL broke the deadlock");
    std::thread::sleep(Duration::from_millis(200));
    holder.batch_execute("COMMIT").expect("commit");

    let (applied, unchanged, conflicts, _) = uploader.join().expect("the upload");
    assert_eq!((applied, unchanged, conflicts), (600, 0, 0));
    d.download(&s.id);
    d.complete(&s.id);
    p.a.wait_for("upload lost a race");
    assert!(
        p.a.log().iter().any(|l| l.contains("deadlock detected")),
        "the retry was for the deadlock"
    );
    let metrics = client()
        .get(format!("{}/metrics", p.a.base))
        .send()
        .and_then(|r| r.text())
        .expect("the metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("offsync_upload_retries_total") && !l.ends_with(" 0")),
        "{metrics}"
    );
    let table = offsync::domain::table_by_name("assets").expect("assets");
    let notes = offsync::domain::TABLES[table]
        .field_index("notes")
        .expect("notes");
    for id in [&first, &second] {
        let row = offsync::db::repo::rows::get(&mut p.conn(), table, id)
            .expect("a lookup")
            .expect("the asset");
        assert_eq!(row.values[notes].as_deref(), Some("after"));
    }
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    yes: bool,
}

fn flag(pool: &db::Pool, sql: &str) -> bool {
    Sql::new(sql)
        .first::<Flag>(&mut pool.get().expect("a connection"))
        .expect("the query")
        .is_some_and(|f| f.yes)
}

/// The default build speaks TLS (Debian's cluster has `ssl = on`), and a URL without a
/// host reaches the distribution's Unix socket, under either scheme name.
#[test]
fn postgres_over_tls_and_through_the_unix_socket() {
    let Some(test_db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let tls = db::connect(&format!("{}?sslmode=require", test_db.url), 1)
        .expect("a TLS connection (sslmode=require)");
    assert!(flag(
        &tls,
        "SELECT ssl AS yes FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    ));
    let (rest, name) = test_db.url.rsplit_once('/').expect("a database name");
    if !(rest.ends_with("@127.0.0.1:5432") || rest.contains("@localhost")) {
        missing("a PostgreSQL on this machine (for its Unix socket)");
        return;
    }
    // verify-full against the certificate Debian made for the cluster (for "localhost"):
    // accepted for the name it was made for, refused with one line for another.
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    if std::path::Path::new(snakeoil).exists() {
        let verified = |host: &str| {
            db::connect(
                &format!(
                    "postgres://root:root@{host}:5432/{name}?hostaddr=127.0.0.1&sslmode=verify-full\
                     &sslrootcert={snakeoil}"
                ),
                1,
            )
        };
        match verified("localhost") {
            Ok(pool) => assert!(flag(
                &pool,
                "SELECT ssl AS yes FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            )),
            // The certificate names another host on this machine: nothing to verify against.
            Err(e) if e.to_string().contains("does not match host name") => {
                missing(&format!("a cluster certificate for localhost ({e})"))
            }
            Err(e) => panic!("verify-full: {e}"),
        }
        let Err(refused) = verified("127.0.0.1") else {
            panic!("verify-full accepted a certificate made for another name");
        };
        assert!(
            refused.to_string().contains("does not match host name"),
            "{refused}"
        );
    } else {
        missing("Debian's snakeoil certificate (for sslmode=verify-full)");
    }
    for scheme in ["postgres", "postgresql"] {
        // Peer authentication: the role of the user running the tests (root in CI).
        let socket = db::connect(&format!("{scheme}:///{name}"), 1)
            .unwrap_or_else(|e| panic!("{scheme}:///{name} through the socket: {e}"));
        assert!(flag(&socket, "SELECT inet_server_addr() IS NULL AS yes"));
    }
}

/// A wrong setting stops `offsync serve` at once with one line naming the problem, not
/// with retries.
#[test]
fn a_wrong_postgres_setting_is_one_clear_line_at_once() {
    use std::time::{Duration, Instant};
    let Some(test_db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let wrong_password = test_db.url.replacen("root:root@", "root:wrong@", 1);
    let unknown_host = test_db.url.replacen("127.0.0.1", "no-such-host.invalid", 1);
    for (url, expected) in [
        (
            format!("{}?sslmode=sometimes", test_db.url),
            "invalid sslmode value",
        ),
        (wrong_password, "password authentication failed"),
        (unknown_host, "no-such-host.invalid"),
    ] {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_offsync"))
            .args(["serve", "--bind", "127.0.0.1:0", "--database-url", &url])
            .env("OFFSYNC_LOG", "info")
            .output()
            .expect("offsync runs");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {url}: {stderr}");
        assert!(lines[0].starts_with("offsync: error:"), "{stderr}");
        assert!(lines[0].contains(expected), "{expected} in {stderr}");
        assert!(
            !lines[0].contains(":wrong@"),
            "no password in the message: {stderr}"
        );
        assert!(took < Duration::from_secs(15), "{url} took {took:?}");
    }
}

/// The ids of the records in a piece of a changeset.
/// A download cut part way on one instance goes on from its last checkpoint on the other:
/// together the two parts are every row once.
#[test]
fn a_download_cut_on_one_instance_is_resumed_on_the_other() {
    use std::io::Read;
    let Some(p) = pair() else { return };
    let (_, assets) = p.import_site("CUT", 3500);
    let d = p.device("alice", &p.a);
    let s = d.open();
    let url = |base: &str| format!("{base}/api/sync/sessions/{}/changes?resumable=1", s.id);
    let mut cut = Vec::new();
    d.http
        .get(url(&p.a.base))
        .bearer_auth(&d.token)
        .send()
        .expect("the download starts")
        .take(60 << 10)
        .read_to_end(&mut cut)
        .expect("the first bytes");
    let first = ungzip(&cut);
    let (before, token) = {
        let at = first
            .rfind("<checkpoint after=\"")
            .expect("a checkpoint in the first part");
        let token = attr(&first[at..], "after").expect("its token");
        (&first[..at], token)
    };
    assert!(token.starts_with("r."), "{token}");
    let rest = d
        .http
        .get(format!("{}&after={token}", url(&p.b.base)))
        .bearer_auth(&d.token)
        .send()
        .expect("the rest, from B");
    assert_eq!(rest.status().as_u16(), 200);
    let rest = ungzip(&rest.bytes().expect("the rest"));
    assert!(
        rest.trim_end().ends_with("</changeset>"),
        "the rest is whole"
    );
    let mut ids = record_ids(before);
    let sent_before = ids.len();
    assert!(
        sent_before > 0 && sent_before < assets.len(),
        "{sent_before}"
    );
    ids.extend(record_ids(&rest));
    let remaining = attr(&rest, "rows").and_then(|n| n.parse::<usize>().ok());
    assert_eq!(
        remaining,
        Some(assets.len() + 1 - sent_before),
        "the count of the rest"
    );
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "no row twice");
    assert_eq!(ids.len(), assets.len() + 1, "every row");
    // A token from nowhere is refused, and names the problem.
    let bad = d
        .http
        .get(format!("{}&after=r.1.5.x", url(&p.b.base)))
        .bearer_auth(&d.token)
        .send()
        .expect("an answer");
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.text().expect("a body").contains("is not a checkpoint"));
    d.complete(&s.id);
}

/// A sign-in name is the client's to write: a newline in it cannot start a forged log line,
/// an ANSI escape cannot reach the terminal, and 200 KiB of it is not a 200 KiB line.
#[test]
fn a_sign_in_name_cannot_forge_or_flood_a_log_line() {
    let dir = tempfile::tempdir().expect("a directory");
    let url = format!("sqlite://{}", dir.path().join("logs.db").display());
    let mut server = Serve::start(&url, &dir.path().join("key"));
    let http = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let forged = "mallory\n2026-12-02T09:00:00.000000Z  INFO offsync::web::auth: signed in user=admin\u{1b}[2J";
    let long = "x".repeat(200 * 1024);
    for name in [forged, long.as_str()] {
        let page = http
            .get(format!("{}/login", server.base))
            .send()
            .and_then(|r| r.text())
            .expect("the sign-in page");
        let csrf = attr_after(&page, "name=\"csrf\"", "value").expect("a CSRF field");
        let answer = http
            .post(format!("{}/login", server.base))
            .header("origin", &server.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([
                    ("username", name),
                    ("password", "wrong"),
                    ("csrf", &csrf),
                ])
                .expect("a form"),
            )
            .send()
            .expect("an answer");
        assert_eq!(answer.status(), 401);
        server.wait_for("sign-in refused");
    }
    let refused: Vec<&String> = server
        .log()
        .iter()
        .filter(|l| l.contains("sign-in refused"))
        .collect();
    assert_eq!(refused.len(), 2, "{:?}", server.log());
    for line in server.log() {
        assert!(
            !line.contains('\u{1b}'),
            "an escape reached the log: {line:?}"
        );
        assert!(
            !line.trim_start().starts_with("2026-12-02T09:00:00"),
            "a forged line: {line:?}"
        );
        assert!(line.len() < 1000, "a line of {} bytes", line.len());
    }
    assert!(refused[0].contains("mallory\\u{a}2026"), "{}", refused[0]);
}

/// On a real server: a copy of the session cookie taken before sign-out is worthless after
/// it, and `offsync user disable` ends a user's sessions and stops their device at once.
#[test]
fn a_copied_cookie_dies_with_sign_out_and_disable_stops_a_user_at_once() {
    let dir = tempfile::tempdir().expect("a directory");
    let url = format!("sqlite://{}", dir.path().join("sessions.db").display());
    let offsync = |args: &[&str]| offsync_cli(&url, args);
    offsync(&["user", "add", "alice", "--password", "password"]);
    let token = offsync(&[
        "device",
        "add",
        "--user",
        "alice",
        "--name",
        "Alice's laptop",
    ]);
    let server = Serve::start(&url, &dir.path().join("key"));
    let sign_in = || {
        let http = reqwest::blocking::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a client");
        let page = http
            .get(format!("{}/login", server.base))
            .send()
            .and_then(|r| r.text())
            .expect("the sign-in page");
        let csrf = attr_after(&page, "name=\"csrf\"", "value").expect("a CSRF field");
        let answer = http
            .post(format!("{}/login", server.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &server.base)
            .body(
                serde_urlencoded::to_string([
                    ("username", "alice"),
                    ("password", "password"),
                    ("csrf", &csrf),
                ])
                .expect("a form"),
            )
            .send()
            .expect("an answer");
        assert_eq!(answer.status(), 303);
        let cookie = answer
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("offsync="))
            .and_then(|c| c.split(';').next())
            .expect("the session cookie")
            .to_owned();
        (http, cookie)
    };
    let with_cookie = |cookie: &str| {
        client()
            .get(format!("{}/sites", server.base))
            .header("cookie", cookie)
            .send()
            .expect("an answer")
            .status()
            .as_u16()
    };
    let (http, copied) = sign_in();
    assert_eq!(with_cookie(&copied), 200, "the copy works while signed in");
    let page = http
        .get(format!("{}/sites", server.base))
        .send()
        .and_then(|r| r.text())
        .expect("a page");
    let csrf = attr_after(&page, "name=\"csrf\"", "value").expect("a CSRF field");
    let out = http
        .post(format!("{}/logout", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", &server.base)
        .body(format!("csrf={csrf}"))
        .send()
        .expect("an answer");
    assert_eq!(out.status(), 303);
    assert_eq!(
        with_cookie(&copied),
        303,
        "the copy is worthless after sign-out"
    );

    let (_, second) = sign_in();
    let state = |token: &str| {
        client()
            .get(format!("{}/api/sync/state", server.base))
            .bearer_auth(token)
            .send()
            .expect("an answer")
            .status()
            .as_u16()
    };
    assert_eq!((with_cookie(&second), state(&token)), (200, 200));
    offsync(&["user", "disable", "alice"]);
    assert_eq!(with_cookie(&second), 303, "signed out at once");
    assert_eq!(state(&token), 401, "the device stops at once");
    offsync(&["user", "enable", "alice"]);
    assert_eq!(state(&token), 200);
    let (_, before) = sign_in();
    offsync(&["user", "passwd", "alice", "--password", "another one"]);
    assert_eq!(
        with_cookie(&before),
        303,
        "a new password ends the sessions"
    );
}

/// An upload whose body stops arriving is refused after the idle limit (here 1 s), and
/// parts beside `changes` have a size limit of their own.
#[test]
fn a_stalled_upload_body_times_out_and_extra_parts_are_bounded() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("a directory");
    let url = format!("sqlite://{}", dir.path().join("limits.db").display());
    let cli = |args: &[&str]| offsync_cli(&url, args);
    cli(&["user", "add", "alice", "--password", "password"]);
    let token = cli(&["device", "add", "--user", "alice", "--name", "laptop"]);
    let server = Serve::start_with_env(
        &url,
        &dir.path().join("key"),
        &[],
        &[("OFFSYNC_BODY_IDLE_SECONDS", "1")],
    );
    let opened = client()
        .post(format!("{}/api/sync/sessions", server.base))
        .bearer_auth(&token)
        .send()
        .and_then(|r| r.text())
        .expect("a session");
    let sid = attr(&opened, "id").expect("the session's id");
    let address = server.base.trim_start_matches("http://").to_owned();

    let mut tcp = std::net::TcpStream::connect(&address).expect("a connection");
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("a timeout");
    let head = format!(
        "POST /api/sync/sessions/{sid}/upload HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=XX\r\n\
         Content-Length: 100000\r\n\r\n--XX\r\nContent-Disposition: form-data; name=\"changes\"; \
         filename=\"c.xml\"\r\nContent-Type: application/xml\r\n\r\n<changeset version=\"1\">"
    );
    tcp.write_all(head.as_bytes())
        .expect("the start of the body");
    let started = std::time::Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = tcp
        .read(&mut answer)
        .expect("an answer before the read timeout");
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("stalled"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(8));

    let extra = reqwest::blocking::multipart::Part::bytes(vec![b'x'; 100 << 10]);
    let changes = reqwest::blocking::multipart::Part::bytes(
        b"<changeset version=\"1\"></changeset>".to_vec(),
    )
    .file_name("c.xml");
    let form = reqwest::blocking::multipart::Form::new()
        .part("note", extra)
        .part("changes", changes);
    let r = client()
        .post(format!("{}/api/sync/sessions/{sid}/upload", server.base))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .expect("an answer");
    assert_eq!(r.status(), 413);
    assert!(r.text().expect("a body").contains("other than"));
}
