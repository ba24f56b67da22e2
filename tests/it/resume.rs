//! A first download cut at 80% goes on from its last checkpoint instead of starting again
//! (docs/protocol.md §8), and what the laptop applies is the whole download.

use crate::helpers::*;
use crate::laptop::{Laptop, Proxy};
use crate::on_both;

on_both!(
    a_first_download_cut_at_80_percent_resumes_where_it_stopped,
    a_resumed_first_download_sends_exactly_the_rest,
    a_resumed_later_download_sends_exactly_the_rest,
    rows_written_before_the_cursor_got_places_are_walked_once_each,
);

const ASSETS: usize = 4000;

/// A resumable download of session `sid` (from the start, or after a checkpoint's token),
/// as text.
fn resumable(app: &TestApp, device: &Device, sid: &str, after: Option<&str>) -> String {
    let mut url = format!("{}/api/sync/sessions/{sid}/changes?resumable=1", app.base);
    if let Some(token) = after {
        url.push_str(&format!("&after={token}"));
    }
    let r = device
        .http
        .get(&url)
        .bearer_auth(&device.token)
        .send()
        .expect("a download");
    assert_eq!(r.status(), 200);
    ungzip(&r.bytes().expect("its body"))
}

/// Where a download's checkpoints in the rows stand in its text.
fn row_checkpoints(text: &str) -> Vec<usize> {
    text.match_indices("<checkpoint after=\"r.")
        .map(|(at, _)| at)
        .collect()
}

/// A site with `ASSETS` assets, imported as online data.
fn many_assets(app: &TestApp) {
    let site = uid();
    let mut items = vec![create(
        "sites",
        &site,
        &[("code", Some("BIG")), ("name", Some("Big site"))],
    )];
    items.extend((0..ASSETS).map(|i| {
        create(
            "assets",
            &uid(),
            &[
                ("site_id", Some(site.as_str())),
                ("tag", Some(&format!("B-{i:05}"))),
                ("status", Some("ok")),
                (
                    "notes",
                    Some("a note long enough to give the download some bulk"),
                ),
            ],
        )
    }));
    app.import(&doc(&items));
}

fn a_first_download_cut_at_80_percent_resumes_where_it_stopped(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    many_assets(&app);
    // How long the whole download is, as another device gets it.
    let mut probe = app.device("probe");
    let s = probe.open();
    let whole = probe
        .http
        .get(format!(
            "{}/api/sync/sessions/{}/changes?resumable=1",
            app.base, s.id
        ))
        .bearer_auth(&probe.token)
        .send()
        .and_then(|r| r.bytes())
        .expect("the whole download");
    let text = ungzip(&whole);
    assert!(
        text.contains(&format!("rows=\"{}\"", ASSETS + 1)),
        "the count up front"
    );
    assert!(text.matches("<checkpoint after=").count() >= ASSETS / 1000);
    probe.download(&s.id);

    // The laptop's line drops every fresh download at 80%; resumed ones get through.
    let proxy = Proxy::start(&app.base);
    proxy.cut("changes?resumable=1 HTTP", whole.len() * 8 / 10);
    let laptop = Laptop::via(&app, "alice", &proxy.base);
    let summary = laptop.sync();
    assert_eq!(summary.downloaded, ASSETS as u64 + 1, "{summary}");
    let mut conn = laptop.pool.get().expect("the laptop's database");
    let on_laptop = offsync::db::repo::accounts::count(
        &mut conn,
        offsync::db::Sql::new("SELECT COUNT(*) AS n FROM assets"),
    )
    .expect("a count");
    assert_eq!(on_laptop, ASSETS as i64);
    // One fresh download (cut), then the rest after its last checkpoint: not everything
    // again.
    let downloads: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.contains("/changes"))
        .collect();
    assert_eq!(
        downloads
            .iter()
            .filter(|r| r.contains("changes?resumable=1 HTTP"))
            .count(),
        1,
        "{downloads:?}"
    );
    let resumed = downloads
        .iter()
        .find(|r| r.contains("&after=r."))
        .unwrap_or_else(|| panic!("a resumed download: {downloads:?}"));
    assert!(
        !resumed.contains("after=r.0 "),
        "after some rows: {resumed}"
    );
}

/// Resumed from a checkpoint in the middle, the rest is every row after it once, even when
/// the database was compacted in between (SQLite documents that VACUUM may renumber the
/// rowids a first download walks by) and a row already sent was edited since.
fn a_resumed_first_download_sends_exactly_the_rest(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    many_assets(&app);
    let mut device = app.device("probe");
    let assets = offsync::domain::table_by_name("assets");
    // Gaps at the table's start, which VACUUM closes by renumbering every later row.
    let first = device.open();
    let gone: Vec<String> = device
        .download(&first.id)
        .items
        .iter()
        .filter_map(|i| match i {
            offsync::sync::codec::Item::Record(r) if assets == Some(r.table) => Some(r.id.clone()),
            _ => None,
        })
        .take(50)
        .collect();
    for id in &gone {
        app.online_delete("assets", id);
    }
    let s = device.open();
    let get = |after: Option<&str>| resumable(&app, &device, &s.id, after);
    let whole = get(None);
    let all = record_ids(&whole);
    assert_eq!(all.len(), ASSETS + 1 - gone.len());
    // The second of the assets' checkpoints: well inside the table.
    let marks = row_checkpoints(&whole);
    assert!(marks.len() >= 3, "checkpoints: {}", marks.len());
    let at = marks[2];
    let token = attr(&whole[at..], "after").expect("a checkpoint's token");
    let sent = record_ids(&whole[..at]);

    let first_sent = sent.last().expect("rows before the checkpoint").clone();
    app.online_edit(
        "assets",
        &first_sent,
        "notes",
        Some("edited after it was sent"),
    );
    if b == Backend::Sqlite {
        diesel::connection::SimpleConnection::batch_execute(&mut *app.conn(), "VACUUM")
            .expect("VACUUM");
    }
    let rest = record_ids(&get(Some(&token)));
    let mut together = sent.clone();
    together.extend(rest.iter().cloned());
    assert_eq!(
        together, all,
        "the rows before the checkpoint, then the rest, once each"
    );
}

/// A later download (a window with a start) cut and resumed: on SQLite it walks the rows of
/// one change id in rowid order (all 4,000 assets were changed by one import), so the
/// checkpoint lies inside one change id. Between the parts the last row sent is changed
/// again, a row sent earlier is deleted, and on SQLite the file is VACUUMed (which keeps
/// rowids today; the position reads its rowid from the id again in case one does not).
fn a_resumed_later_download_sends_exactly_the_rest(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    many_assets(&app);
    let mut device = app.device("probe");
    let assets = offsync::domain::table_by_name("assets");
    let (_, first) = device.sync(&[]);
    let ids: Vec<String> = first
        .items
        .iter()
        .filter_map(|i| match i {
            offsync::sync::codec::Item::Record(r) if assets == Some(r.table) => Some(r.id.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), ASSETS);
    // Every asset changed by one transaction: one change id.
    let edits: Vec<String> = ids
        .iter()
        .map(|id| create("assets", id, &[("notes", Some("changed by the office"))]))
        .collect();
    app.import(&doc(&edits));
    let s = device.open();
    let get = |after: Option<&str>| resumable(&app, &device, &s.id, after);
    let whole = get(None);
    let all = record_ids(&whole);
    assert_eq!(all.len(), ASSETS, "the changed assets, once each");
    let marks = row_checkpoints(&whole);
    assert!(marks.len() >= 3, "checkpoints: {}", marks.len());
    let at = marks[1];
    let token = attr(&whole[at..], "after").expect("a checkpoint's token");
    let sent = record_ids(&whole[..at]);
    assert!(
        !sent.is_empty() && sent.len() < ASSETS,
        "the checkpoint is inside the assets: {}",
        sent.len()
    );

    let last_sent = sent.last().expect("rows before the checkpoint").clone();
    app.online_edit(
        "assets",
        &last_sent,
        "notes",
        Some("edited after it was sent"),
    );
    app.online_delete("assets", &sent[0]);
    if b == Backend::Sqlite {
        diesel::connection::SimpleConnection::batch_execute(&mut *app.conn(), "VACUUM")
            .expect("VACUUM");
    }
    let rest = record_ids(&get(Some(&token)));
    let mut together = sent.clone();
    together.extend(rest.iter().cloned());
    assert_eq!(
        together, all,
        "the rows before the checkpoint, then the rest, once each"
    );
    // A token of the earlier form (`r.TABLE.CHANGE.ID`, no place among the change id's
    // rows), as a laptop may hold across an upgrade: that change id comes again whole.
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 5, "{token}");
    let legacy = format!("r.{}.{}.{}", parts[1], parts[2], parts[4]);
    let again = record_ids(&get(Some(&legacy)));
    let expected: Vec<String> = all
        .iter()
        .filter(|id| **id != last_sent && **id != sent[0])
        .cloned()
        .collect();
    assert_eq!(
        again, expected,
        "the whole change id, less what left the window"
    );
}

/// A database written before the cursor ordered a change id's rows by their place (SQLite:
/// rowid; PostgreSQL: `seq`, which such rows have as 0): after the upgrade a resumable
/// download, checkpointed inside those rows, sends each row once, and rows written after
/// it come in their turn.
fn rows_written_before_the_cursor_got_places_are_walked_once_each(b: Backend) {
    let Some(db) = TestDb::new(b) else { return };
    let site = uid();
    let assets: Vec<String> = (0..1500).map(|_| uid()).collect();
    let mut rows = format!(
        "INSERT INTO sites (id, code, name, last_updated, change_id) VALUES ('{site}', 'OLD', 'Old site', 1, 5);"
    );
    for (n, chunk) in assets.chunks(500).enumerate() {
        rows.push_str(
            "INSERT INTO assets (id, site_id, tag, status, last_updated, change_id) VALUES ",
        );
        let values: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| format!("('{id}', '{site}', 'OLD-{n}-{i}', 'ok', 2, 5)"))
            .collect();
        rows.push_str(&values.join(", "));
        rows.push(';');
    }
    // Every migration before the one that gave the cursor its places.
    db.as_released(9, 8, &rows);
    let app = TestApp::start_on(db);
    // Rows written after the upgrade, some of them old rows written again.
    for id in assets.iter().step_by(300) {
        app.online_edit("assets", id, "notes", Some("after the upgrade"));
    }
    let device = app.device("probe");
    let s = device.open();
    let get = |after: Option<&str>| resumable(&app, &device, &s.id, after);
    let whole = get(None);
    let all = record_ids(&whole);
    let mut expected: Vec<String> = assets.clone();
    expected.push(site.clone());
    expected.sort();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every row once");
    let marks = row_checkpoints(&whole);
    let inside = marks
        .into_iter()
        .find(|at| {
            let n = record_ids(&whole[..*at]).len();
            n > 1 && n < all.len()
        })
        .expect("a checkpoint inside the assets");
    let token = attr(&whole[inside..], "after").expect("a checkpoint's token");
    let mut together = record_ids(&whole[..inside]);
    together.extend(record_ids(&get(Some(&token))));
    assert_eq!(
        together, all,
        "the rows before the checkpoint, then the rest"
    );
}
