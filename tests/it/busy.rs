//! A server busy with uploads tells the next ones when to come back (503 with
//! `Retry-After`) instead of letting them hold a connection in a queue, and the laptop
//! waits as told and then syncs.

use std::sync::mpsc;
use std::time::Duration;

use offsync::db::repo::rows;
use offsync::domain::{TABLES, table_by_name};
use offsync::web::gate::UploadLimits;

use crate::helpers::*;
use crate::laptop::Laptop;
use crate::on_both;

on_both!(a_busy_server_tells_uploads_when_to_come_back_and_the_laptop_waits);

/// Holds a write of `asset` open until told to stop: on PostgreSQL its row lock, on SQLite
/// the write lock. An upload that needs it waits, keeping its turn.
fn hold_a_write(app: &TestApp, asset: &str) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (release, released) = mpsc::channel::<()>();
    let (held, holding) = mpsc::channel::<()>();
    let pool = app.pool.clone();
    let asset = asset.to_owned();
    let thread = std::thread::spawn(move || {
        let table = table_by_name("assets").expect("assets");
        let description = TABLES[table]
            .field_index("description")
            .expect("a description");
        let mut conn = pool.get().expect("a connection");
        offsync::db::write_txn::<_, offsync::db::DbError>(&mut conn, |c, now| {
            rows::update(
                c,
                table,
                &asset,
                &[(description, Some("held".into()))],
                offsync::domain::time::after(now),
                "the test",
            )?;
            held.send(()).expect("the test waits");
            let _ = released.recv();
            Ok(())
        })
        .expect("the held write");
    });
    holding.recv().expect("the write is held");
    (release, thread)
}

fn a_busy_server_tells_uploads_when_to_come_back_and_the_laptop_waits(b: Backend) {
    let Some(app) = TestApp::spawn_with_uploads(
        b,
        UploadLimits {
            at_once: 1,
            wait: Duration::from_millis(100),
        },
    ) else {
        return;
    };
    let (_, asset) = app.seed_asset();
    let mut first = app.device("alice");
    let second = app.device("bob");
    first.sync(&[]);
    let base = first.base("assets", &asset);
    let laptop = Laptop::new(&app, "carol");
    laptop.sync();
    laptop.edit("assets", &asset, &[("status", "degraded")]);
    let s1 = first.open();
    let s2 = second.open();

    let (release, holder) = hold_a_write(&app, &asset);
    // The only turn: this upload takes it and waits for the held row.
    let busy = {
        let d = first.with_token(&first.token);
        let edit = record(
            "assets",
            &asset,
            Some(&base),
            &[("notes", Some("first"), Some(Some("n0")))],
        );
        std::thread::spawn(move || d.upload(&s1.id, &[edit]))
    };
    std::thread::sleep(Duration::from_millis(500));
    let part = reqwest::blocking::multipart::Part::bytes(gzip(doc(&[]).as_bytes()))
        .file_name("changes.xml.gz");
    let turned_away = second
        .http
        .post(format!("{}/api/sync/sessions/{}/upload", app.base, s2.id))
        .bearer_auth(&second.token)
        .multipart(reqwest::blocking::multipart::Form::new().part("changes", part))
        .send()
        .expect("an answer");
    assert_eq!(turned_away.status().as_u16(), 503);
    let retry_after: u64 = turned_away
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body = turned_away.text().expect("a body");
    assert!(
        body.contains("code=\"unavailable\"") && body.contains("uploads are being applied"),
        "{body}"
    );

    if b == Backend::Postgres {
        // The laptop's sync meets the same: it waits as told, and syncs once the turn is free.
        // (On SQLite the held write lock stops its session from opening at all.)
        let syncing = std::thread::spawn(move || {
            let summary = laptop.sync();
            (laptop, summary)
        });
        std::thread::sleep(Duration::from_millis(1500));
        release.send(()).expect("the holder listens");
        holder.join().expect("the holder");
        let (laptop, summary) = syncing.join().expect("the laptop's sync");
        assert_eq!(summary.uploaded, 1, "{summary}");
        assert_eq!(
            laptop.value("assets", &asset, "status"),
            Some(Some("degraded".into()))
        );
    } else {
        release.send(()).expect("the holder listens");
        holder.join().expect("the holder");
    }
    assert_eq!(busy.join().expect("the first upload").0, 1);
    let row = app.row("assets", &asset).expect("the asset");
    assert_eq!(row.fields["notes"].as_deref(), Some("first"));
    assert_eq!(row.fields["description"].as_deref(), Some("held"));
    let metrics = client()
        .get(format!("{}/metrics", app.base))
        .send()
        .and_then(|r| r.text())
        .expect("the metrics");
    let turned: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("offsync_uploads_turned_away_total "))
        .and_then(|v| v.parse().ok())
        .expect("the turned-away counter");
    assert!(turned >= 1.0, "{metrics}");
}
