//! The offline copy's pages over HTTP: only what offline may do, the header, "Sync now".

use std::time::{Duration, Instant};

use crate::helpers::*;

/// A main server with data, and a laptop's offline copy that has synced once.
fn setup() -> (TestApp, TestApp, String, String, String) {
    let main = TestApp::spawn(Backend::Sqlite).unwrap();
    let (site, asset) = main.seed_asset();
    let (inspection, _) = main.seed_inspection(&asset);
    let token = main.device("jo").token;
    let laptop = TestApp::spawn_offline(&main.base, &token);
    let br = Browser::new(&laptop);
    let (_, page) = br.get("/sites");
    sync_now(&br, &page);
    (main, laptop, site, asset, inspection)
}

/// Presses "Sync now" and waits until the header reports the outcome.
fn sync_now(br: &Browser, page: &str) -> String {
    let (status, _, _) = br.post("/sync", &[("csrf", &br.csrf(page))]);
    assert_eq!(status, 303);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = br.get("/sites");
        let finished = page.contains("sync complete")
            || page.contains("sync failed")
            || page.contains("no longer accepts this laptop");
        if finished && !page.contains("Syncing") {
            return page;
        }
        assert!(Instant::now() < deadline, "the sync did not finish: {page}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_laptop_offers_only_what_offline_may_do() {
    let (_main, laptop, site, asset, inspection) = setup();
    let br = Browser::new(&laptop);
    let (status, sites) = br.get("/sites");
    assert_eq!(status, 200, "no sign-in on the laptop");
    assert!(sites.contains("Offline copy") && sites.contains("Sync now"));
    assert!(
        !sites.contains("New site"),
        "sites are made on the main site"
    );
    let (_, site_page) = br.get(&format!("/sites/{site}"));
    assert!(site_page.contains("New asset"));
    assert!(
        !site_page.contains(&format!("/sites/{site}/delete")),
        "no deleting sites offline"
    );
    assert_eq!(br.get("/sites/new").0, 403);
    assert_eq!(
        br.get(&format!("/assets/{asset}/delete")).0,
        403,
        "assets are not deleted offline"
    );
    let (status, _, _) = br.post(
        &format!("/assets/{asset}/delete"),
        &[("csrf", &br.csrf(&sites)), ("version", "0")],
    );
    assert_eq!(status, 403);
    let (_, form) = br.get(&format!("/assets/{asset}/edit"));
    assert!(
        form.contains("id=\"f-tag\"") && form.contains("disabled"),
        "the tag is shown read-only"
    );
    assert!(!form.contains("name=\"tag\""), "and not posted");
    assert!(form.contains("name=\"notes\""));
    assert_eq!(br.get(&format!("/inspections/{inspection}")).0, 200);
    for path in ["/login", "/devices", "/resolutions", "/api/sync/state"] {
        assert_eq!(
            br.get(path).0,
            404,
            "{path} is not part of the laptop's copy"
        );
    }
}

#[test]
fn offline_edits_wait_and_sync_now_sends_them() {
    let (main, laptop, _site, asset, inspection) = setup();
    let br = Browser::new(&laptop);
    let (_, form) = br.get(&format!("/assets/{asset}/edit"));
    let csrf = br.csrf(&form);
    let (status, _, _) = br.post(
        &format!("/assets/{asset}/edit"),
        &[
            ("csrf", &csrf),
            ("version", &form_version(&form)),
            ("notes", "checked offline"),
            ("status", "degraded"),
            ("description", "Pump"),
        ],
    );
    assert_eq!(status, 303);
    let tag = main.row("assets", &asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    let (status, _, location) = br.post(
        "/inspections/new",
        &[
            ("csrf", &csrf),
            ("asset_id", &tag),
            ("inspected_at", "2026-11-23T08:00:00Z"),
            ("inspector", "Jo"),
            ("result", "fail"),
            ("summary", "made offline"),
        ],
    );
    assert_eq!(status, 303);
    let new = location
        .unwrap()
        .trim_start_matches("/inspections/")
        .to_owned();
    let (_, page) = br.get(&format!("/inspections/{new}"));
    assert!(page.contains("not yet synced"));
    let (_, confirm) = br.get(&format!("/inspections/{inspection}/delete"));
    let (status, _, _) = br.post(
        &format!("/inspections/{inspection}/delete"),
        &[("csrf", &csrf), ("version", &form_version(&confirm))],
    );
    assert_eq!(status, 303);
    let (_, sites) = br.get("/sites");
    assert!(
        sites.contains("3 changes waiting"),
        "the header counts them"
    );
    assert_eq!(
        main.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("n0"),
        "nothing left the laptop yet"
    );
    let after = sync_now(&br, &sites);
    assert!(
        after.contains("sync complete: uploaded 3, downloaded"),
        "{after}"
    );
    assert!(after.contains("0 changes waiting"));
    assert_eq!(
        main.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("checked offline")
    );
    assert_eq!(
        main.row("inspections", &new).unwrap().fields["summary"].as_deref(),
        Some("made offline")
    );
    assert!(main.row("inspections", &inspection).is_none());
}

#[test]
fn a_conflict_stays_visible_on_the_laptop_with_a_way_to_the_main_site() {
    let (main, laptop, _site, asset, _) = setup();
    let br = Browser::new(&laptop);
    let (_, form) = br.get(&format!("/assets/{asset}/edit"));
    br.post(
        &format!("/assets/{asset}/edit"),
        &[
            ("csrf", &br.csrf(&form)),
            ("version", &form_version(&form)),
            ("notes", "laptop notes"),
            ("status", "ok"),
        ],
    );
    main.online_edit("assets", &asset, "notes", Some("office notes"));
    let after = sync_now(&br, &form);
    assert!(after.contains("conflicts 1"), "{after}");
    assert!(after.contains("1 not taken by the server"));
    let (_, list) = br.get("/conflicts");
    assert!(list.contains("laptop notes") && list.contains("office notes"));
    assert!(
        list.contains(&format!("href=\"{}/conflicts\"", main.base)),
        "a link to resolve it on the main site"
    );
    let (_, record) = br.get(&format!("/assets/{asset}"));
    assert!(record.contains("The server kept its own value of Notes"));
    assert!(
        record.contains("laptop notes"),
        "the laptop's value stays visible"
    );
}

#[test]
fn sync_now_reports_a_failure_clearly() {
    let main = TestApp::spawn(Backend::Sqlite).unwrap();
    let laptop = TestApp::spawn_offline(&main.base, "osd_revoked_or_wrong");
    let br = Browser::new(&laptop);
    let (_, page) = br.get("/sites");
    let after = sync_now(&br, &page);
    // A token the server does not take (401) is said as what to do about it.
    assert!(
        after.contains("no longer accepts this laptop") && after.contains("Connect again"),
        "{after}"
    );
    let (status, _, _) = br.post("/sync", &[("csrf", "forged")]);
    assert_eq!(status, 403);
}

#[test]
fn the_laptops_form_sends_only_what_was_touched_and_sync_now_takes_it_up() {
    let (main, laptop, _, asset, _) = setup();
    main.import(&doc(&[create(
        "assets",
        &asset,
        &[
            ("description", Some("")),
            ("notes", Some("  first line\nsecond line  ")),
        ],
    )]));
    let br = Browser::new(&laptop);
    let (_, page) = br.get("/sites");
    sync_now(&br, &page);
    // The engineer changes the status only; the browser sends every field, CR LF and all.
    let path = format!("/assets/{asset}/edit");
    let (_, form) = br.get(&path);
    let mut pairs = form_as_sent(&form);
    set_field(&mut pairs, "status", "broken");
    assert_eq!(post_form(&br, &path, &pairs).0, 303);
    // Meanwhile the office rewrites the notes.
    main.online_edit("assets", &asset, "notes", Some("office notes"));
    let (_, page) = br.get("/sites");
    let after = sync_now(&br, &page);
    assert!(
        after.contains("conflicts 0"),
        "no conflict on untouched notes: {after}"
    );
    let row = main.row("assets", &asset).unwrap();
    assert_eq!(row.fields["status"].as_deref(), Some("broken"));
    assert_eq!(row.fields["notes"].as_deref(), Some("office notes"));
    assert_eq!(row.fields["description"].as_deref(), Some(""));
}

#[test]
fn the_laptop_shows_what_the_server_did_with_its_changes_offline() {
    let main = TestApp::spawn(Backend::Sqlite).unwrap();
    let (_, asset) = main.seed_asset();
    let (inspection, _) = main.seed_inspection(&asset);
    let (_, reading) = main.seed_inspection(&asset);
    let token = main.device("jo").token;
    let laptop = TestApp::spawn_offline(&main.base, &token);
    let br = Browser::new(&laptop);
    let (_, page) = br.get("/sites");
    sync_now(&br, &page);

    // Offline, the engineer edits one inspection and deletes another's reading; meanwhile
    // the office deletes that inspection and changes that reading.
    let (_, form) = br.get(&format!("/inspections/{inspection}/edit"));
    let mut pairs = form_as_sent(&form);
    set_field(&mut pairs, "summary", "written on the laptop");
    let (status, _) = post_form(&br, &format!("/inspections/{inspection}/edit"), &pairs);
    assert_eq!(status, 303);
    let (_, confirm) = br.get(&format!("/readings/{reading}/delete"));
    let csrf = br.csrf(&confirm);
    let (status, _, _) = br.post(
        &format!("/readings/{reading}/delete"),
        &[("csrf", &csrf), ("version", &form_version(&confirm))],
    );
    assert_eq!(status, 303);
    main.online_edit("readings", &reading, "value", Some("9.9"));
    main.online_delete("inspections", &inspection);
    let (_, page) = br.get("/sites");
    sync_now(&br, &page);

    // The server recorded both as conflicts; the laptop lists them with both values and
    // where to resolve them, readable without the network.
    drop(main);
    let (status, page) = br.get("/conflicts");
    assert_eq!(status, 200);
    assert!(
        page.contains("This inspection was deleted on the main site")
            && page.contains("your edit waits"),
        "{page}"
    );
    assert!(
        page.contains("written on the laptop"),
        "the engineer's value: {page}"
    );
    assert!(page.contains("Your delete was not taken"), "{page}");
    assert!(page.contains("/conflicts/"), "a link to resolve it: {page}");
    // The reading came back; its page says why.
    let (status, record) = br.get(&format!("/readings/{reading}"));
    assert_eq!(status, 200, "the office's change brought the reading back");
    assert!(record.contains("Your delete was not taken"), "{record}");
    assert!(record.contains("See both versions"), "{record}");
}
