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
    _db: TestDb,
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
        _db: db,
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
    let site = uid();
    let assets: Vec<String> = (0..ASSETS).map(|_| uid()).collect();
    let mut items = vec![create(
        "sites",
        &site,
        &[("code", Some("MULTI")), ("name", Some("Multi"))],
    )];
    items.extend(assets.iter().enumerate().map(|(i, id)| {
        create(
            "assets",
            id,
            &[
                ("site_id", Some(site.as_str())),
                ("tag", Some(&format!("M-{i}"))),
                ("status", Some("ok")),
                ("notes", Some("start")),
            ],
        )
    }));
    offsync::sync::import::import(
        &mut p.conn(),
        std::io::Cursor::new(doc(&items).into_bytes()),
        u64::MAX,
    )
    .expect("import");

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
