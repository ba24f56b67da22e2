//! Connecting a laptop (issue 13): the main server's enrolment request
//! (docs/protocol.md §9), and "Connect this laptop" / "Disconnect" on a real
//! `offsync offline`.

use std::time::{Duration, Instant};

use offsync::db::write_txn;

use crate::helpers::*;
use crate::laptop_guard::Copy;
use crate::on_both;

on_both!(
    a_laptop_enrols_with_its_engineers_account,
    enrolment_is_limited_like_the_sign_in_page,
);

/// The enrolment's answer.
struct Reply {
    status: u16,
    body: String,
    retry_after: Option<String>,
}

impl Reply {
    fn attr(&self, name: &str) -> Option<String> {
        attr(&self.body, name)
    }

    /// An `<error>` with this status and code, and a sentence.
    fn refused(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.attr("code").as_deref(), Some(code), "{}", self.body);
        assert!(self.body.len() > 40, "a sentence: {}", self.body);
    }
}

fn enrol(app: &TestApp, user: &str, password: &str, label: &str) -> Reply {
    let r = client()
        .post(format!("{}/api/devices", app.base))
        .form(&[("username", user), ("password", password), ("label", label)])
        .send()
        .expect("an answer");
    Reply {
        status: r.status().as_u16(),
        retry_after: r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: r.text().expect("a body"),
    }
}

fn state_with(app: &TestApp, token: &str) -> u16 {
    client()
        .get(format!("{}/api/sync/state", app.base))
        .bearer_auth(token)
        .send()
        .expect("an answer")
        .status()
        .as_u16()
}

fn a_laptop_enrols_with_its_engineers_account(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("jo", "correct horse", false);

    let wrong = enrol(&app, "jo", "wrong horse", "Jo's laptop");
    wrong.refused(401, "unauthorized");
    let nameless = enrol(&app, "jo", "correct horse", "   ");
    nameless.refused(422, "invalid-value");
    let r = client()
        .post(format!("{}/api/devices", app.base))
        .form(&[("username", "jo"), ("password", "correct horse")])
        .send()
        .expect("an answer");
    assert_eq!(r.status(), 400);
    assert_eq!(
        attr(&r.text().unwrap(), "code").as_deref(),
        Some("malformed")
    );

    let ok = enrol(&app, "jo", "correct horse", "Jo's laptop <7>");
    assert_eq!(ok.status, 201, "{}", ok.body);
    let token = ok.attr("token").expect("a token");
    let id = ok.attr("id").expect("a device id");
    assert_eq!(ok.attr("label").as_deref(), Some("Jo's laptop <7>"));
    assert_eq!(state_with(&app, &token), 200, "the token syncs");

    // It is one of Jo's devices like any other: listed, and revoked from the main site.
    let mut conn = app.conn();
    let jo = offsync::db::repo::accounts::user_by_name(&mut conn, "jo")
        .unwrap()
        .expect("jo");
    let listed = offsync::db::repo::accounts::list_devices(&mut conn, Some(&jo.id)).unwrap();
    assert!(
        listed
            .iter()
            .any(|d| d.id == id && d.label == "Jo's laptop <7>"),
        "on the Devices page"
    );
    write_txn(&mut conn, |c, now| {
        offsync::db::repo::accounts::revoke_device(c, &id, now)
    })
    .unwrap();
    assert_eq!(state_with(&app, &token), 401, "a revoked laptop stops");

    // A disabled account connects no laptop, even with the right password.
    let second = enrol(&app, "jo", "correct horse", "Jo's other laptop");
    let second_token = second.attr("token").expect("a token");
    offsync::accounts::set_disabled(&mut conn, "jo", true).unwrap();
    enrol(&app, "jo", "correct horse", "Jo's third laptop").refused(403, "account-disabled");
    assert_eq!(state_with(&app, &second_token), 401);
}

fn enrolment_is_limited_like_the_sign_in_page(b: Backend) {
    let limits = offsync::accounts::SignInLimits {
        per_account: 3,
        ..Default::default()
    };
    let Some(app) = TestApp::spawn_with_sign_in(b, limits) else {
        return;
    };
    app.add_user("jo", "correct horse", false);
    for _ in 0..3 {
        enrol(&app, "jo", "guess", "laptop").refused(401, "unauthorized");
    }
    let throttled = enrol(&app, "jo", "correct horse", "laptop");
    throttled.refused(429, "too-many-attempts");
    let seconds: u64 = throttled
        .retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After in seconds");
    assert!(seconds > 0);
    // The same count as the sign-in page's: it is throttled there too.
    let br = Browser::new(&app);
    let (status, page, _) = br.sign_in("jo", "correct horse");
    assert_eq!(status, 429, "{page}");
}

/// The copy's bar (or any page) until it says `what`.
fn wait_for(br: &Browser, path: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = br.get(path);
        if page.contains(what) {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never said {what:?}: {page}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Until the copy has synced and no sync runs (its "Sync now" button is back).
fn wait_synced(br: &Browser) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, bar) = br.get("/sync/bar");
        if bar.contains("Synced") && bar.contains("id=\"sync-now\"") {
            return bar;
        }
        assert!(Instant::now() < deadline, "never synced: {bar}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_engineer_connects_a_laptop_by_signing_in_and_disconnects_it_once_synced() {
    let Some(app) = TestApp::spawn(Backend::Sqlite) else {
        return;
    };
    app.add_user("jo", "correct horse", false);
    let (_, asset) = app.seed_asset();
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("laptop.db");
    let copy = Copy::start(&db, &["--upstream", &app.base], &[]).expect("the copy starts");
    let br = Browser::at(&copy.url(""));

    // Never connected: the copy opens on "Connect this laptop", the main site filled in.
    let (status, _, to) = br.post("/sync", &[]);
    assert_eq!(status, 403, "no token, no post");
    assert!(to.is_none());
    let (status, _) = br.get("/");
    assert_eq!(status, 303);
    let (status, page) = br.get("/connect");
    assert_eq!(status, 200);
    assert!(page.contains("Connect this laptop"), "{page}");
    assert_eq!(shown_value(&page, "server"), app.base);
    assert!(
        !shown_value(&page, "label").is_empty(),
        "the computer's name"
    );
    let csrf = br.csrf(&page);
    let connect = |password: &str| {
        br.post(
            "/connect",
            &[
                ("csrf", &csrf),
                ("server", &app.base),
                ("username", "jo"),
                ("password", password),
                ("label", "Field laptop 7"),
            ],
        )
    };
    let (status, page, _) = connect("wrong horse");
    assert_eq!(status, 401);
    assert!(page.contains("do not match"), "{page}");
    assert_eq!(br.get("/").0, 303, "still not connected");

    let (status, _, to) = connect("correct horse");
    assert_eq!(status, 303);
    assert_eq!(to.as_deref(), Some("/"));
    // It syncs at once: the main site's records are here.
    wait_synced(&br);
    assert_eq!(br.get(&format!("/assets/{asset}")).0, 200);
    let mut conn = app.conn();
    let jo = offsync::db::repo::accounts::user_by_name(&mut conn, "jo")
        .unwrap()
        .expect("jo");
    let devices = offsync::db::repo::accounts::list_devices(&mut conn, Some(&jo.id)).unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].label, "Field laptop 7");

    // Kept for the next start: no flags, connected. (No background syncs this time, so
    // that a change of its own waits until "Sync now".)
    copy.stop();
    let copy = Copy::start(&db, &["--sync-every-minutes", "0"], &[]).expect("it starts again");
    let br = Browser::at(&copy.url(""));
    let (status, _, _) = br.post("/sync", &[]);
    assert_eq!(status, 403);
    let (_, page) = br.get("/sites");
    let csrf = br.csrf(&page);
    br.post("/sync", &[("csrf", &csrf)]);
    std::thread::sleep(Duration::from_millis(200));
    wait_synced(&br);
    assert_eq!(br.get(&format!("/assets/{asset}")).0, 200);

    // Not disconnected while a change of its own waits.
    let (_, form) = br.get(&format!("/assets/{asset}/edit"));
    let mut pairs = form_as_sent(&form);
    set_field(&mut pairs, "notes", "Noted on the laptop");
    let (status, _) = post_form(&br, &format!("/assets/{asset}/edit"), &pairs);
    assert_eq!(status, 303);
    let (_, page) = br.get("/connect");
    assert!(page.contains("1 change is not synced yet"), "{page}");
    let csrf = br.csrf(&page);
    let (status, page, _) = br.post("/disconnect", &[("csrf", &csrf)]);
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("was not disconnected"), "{page}");
    assert_eq!(
        br.get(&format!("/assets/{asset}")).0,
        200,
        "nothing forgotten"
    );

    // Once synced, disconnect forgets the server, the token and the data.
    br.post("/sync", &[("csrf", &csrf)]);
    wait_for(&br, "/sync/bar", "0 changes waiting");
    wait_synced(&br);
    let server = app.row("assets", &asset).expect("the asset");
    assert_eq!(
        server.fields.get("notes").cloned().flatten().as_deref(),
        Some("Noted on the laptop")
    );
    let (_, page) = br.get("/connect");
    let csrf = br.csrf(&page);
    let (status, _, to) = br.post("/disconnect", &[("csrf", &csrf)]);
    assert_eq!(status, 303);
    assert_eq!(to.as_deref(), Some("/connect"));
    assert_eq!(br.get(&format!("/assets/{asset}")).0, 404, "data forgotten");
    assert_eq!(br.get("/").0, 303);
    copy.stop();
    let copy = Copy::start(&db, &[], &[]).expect("the copy starts again");
    let (_, page) = Browser::at(&copy.url("")).get("/connect");
    assert!(
        page.contains("Connect this laptop"),
        "token forgotten: {page}"
    );
}

#[test]
fn a_revoked_laptop_is_told_to_connect_again() {
    let Some(app) = TestApp::spawn(Backend::Sqlite) else {
        return;
    };
    app.add_user("jo", "correct horse", false);
    app.seed_asset();
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("laptop.db");
    let copy = Copy::start(&db, &["--upstream", &app.base], &[]).expect("the copy starts");
    let br = Browser::at(&copy.url(""));
    let (_, page) = br.get("/connect");
    let csrf = br.csrf(&page);
    let (status, _, _) = br.post(
        "/connect",
        &[
            ("csrf", &csrf),
            ("server", &app.base),
            ("username", "jo"),
            ("password", "correct horse"),
            ("label", "Field laptop 8"),
        ],
    );
    assert_eq!(status, 303);
    wait_for(&br, "/sync/bar", "Synced");

    let mut conn = app.conn();
    let jo = offsync::db::repo::accounts::user_by_name(&mut conn, "jo")
        .unwrap()
        .expect("jo");
    let device = offsync::db::repo::accounts::list_devices(&mut conn, Some(&jo.id))
        .unwrap()
        .remove(0);
    write_txn(&mut conn, |c, now| {
        offsync::db::repo::accounts::revoke_device(c, &device.id, now)
    })
    .unwrap();
    let (_, page) = br.get("/sites");
    let csrf = br.csrf(&page);
    br.post("/sync", &[("csrf", &csrf), ("back", "/sites")]);
    let bar = wait_for(&br, "/sync/bar", "no longer accepts this laptop");
    assert!(bar.contains("Connect again"), "{bar}");
}
