//! Devices and sync history pages.

use crate::helpers::*;
use crate::on_both;

on_both!(
    a_device_is_registered_renamed_and_revoked,
    devices_and_histories_are_private,
    the_fleet_page_puts_devices_that_have_not_synced_first,
    metrics_count_syncs_rows_and_conflicts
);

fn a_device_is_registered_renamed_and_revoked(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("jo", "password", false);
    let br = Browser::signed_in(&app, "jo");
    let (_, page) = br.get("/devices");
    assert!(page.contains("No devices yet"));
    let (status, empty, _) = br.post("/devices", &[("csrf", &br.csrf(&page)), ("label", "  ")]);
    assert_eq!(status, 422);
    assert!(empty.contains("a device name must be"));
    let (status, shown, _) = br.post(
        "/devices",
        &[("csrf", &br.csrf(&page)), ("label", "Jo's <ThinkPad>")],
    );
    assert_eq!(status, 201);
    let token = attr_after(&shown, "class=\"token-value\"", "value").expect("the token is shown");
    assert!(shown.contains("shown only once"));
    let (_, later) = br.get("/devices");
    assert!(!later.contains(&token), "the token is never shown again");
    // The token works for syncing.
    let mut d = app.device("someone-else").with_token(&token);
    let (_, _) = d.sync(&[]);
    let id = later
        .split("href=\"/devices/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let (status, history) = br.get(&format!("/devices/{id}"));
    assert_eq!(status, 200);
    assert!(history.contains("complete"), "the sync is in its history");
    assert!(
        history.contains("Jo&#39;s &#60;ThinkPad&#62;")
            || history.contains("Jo&#x27;s &lt;ThinkPad&gt;")
            || history.contains("&#60;ThinkPad&#62;"),
        "{history}"
    );
    let (status, _, _) = br.post(
        &format!("/devices/{id}/rename"),
        &[("csrf", &br.csrf(&history)), ("label", "Field laptop 2")],
    );
    assert_eq!(status, 303);
    assert!(
        br.get(&format!("/devices/{id}"))
            .1
            .contains("Field laptop 2")
    );
    let (status, _, _) = br.post(
        &format!("/devices/{id}/revoke"),
        &[("csrf", &br.csrf(&history))],
    );
    assert_eq!(status, 303);
    d.open_raw().assert_error(401, None, None, None);
    assert!(br.get("/devices").1.contains("revoked"));
}

fn devices_and_histories_are_private(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let mut theirs = app.device("carol");
    theirs.sync(&[]);
    app.add_user("mallory", "password", false);
    app.add_user("root", "password", true);
    let carol = Browser::signed_in(&app, "carol");
    let (_, list) = carol.get("/devices");
    let id = list
        .split("href=\"/devices/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_owned();
    let mallory = Browser::signed_in(&app, "mallory");
    let (_, own) = mallory.get("/devices");
    assert!(!own.contains(&id), "another person's device is not listed");
    assert_eq!(
        mallory.get(&format!("/devices/{id}")).0,
        404,
        "nor shown by guessing its id"
    );
    let csrf = mallory.csrf(&own);
    assert_eq!(
        mallory
            .post(&format!("/devices/{id}/revoke"), &[("csrf", &csrf)])
            .0,
        404
    );
    assert_eq!(
        mallory
            .post(
                &format!("/devices/{id}/rename"),
                &[("csrf", &csrf), ("label", "mine")]
            )
            .0,
        404
    );
    assert_eq!(theirs.state_raw().status, 200, "the device still works");
    let admin = Browser::signed_in(&app, "root");
    let (_, all) = admin.get("/devices");
    assert!(
        all.contains(&id) && all.contains("carol"),
        "an administrator sees everyone's, with the owner"
    );
    assert_eq!(admin.get(&format!("/devices/{id}")).0, 200);
}

/// The row of the fleet table whose owner cell is `owner`.
fn fleet_row<'a>(page: &'a str, owner: &str) -> (usize, &'a str) {
    let cell = format!("<td>{owner}</td>");
    let at = page
        .find(&cell)
        .unwrap_or_else(|| panic!("{owner} on the fleet page"));
    let start = page[..at].rfind("<tr").expect("its row");
    let end = at + page[at..].find("</tr>").expect("its row's end");
    (start, &page[start..end])
}

fn the_fleet_page_puts_devices_that_have_not_synced_first(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("root", "password", true);
    // Carol syncs from a laptop, which names its offsync version.
    let carol = crate::laptop::Laptop::new(&app, "carol");
    carol.sync();
    // Bob's only upload was refused; Dave never synced.
    let bob = app.device("bob");
    let s = bob.open();
    let refused = bob.upload_raw(
        &s.id,
        "<changeset version=\"1\"><record table=\"nope\" id=\"x\"/></changeset>",
    );
    assert_eq!(refused.status, 422, "{}", refused.body);
    app.device("dave");

    let admin = Browser::signed_in(&app, "root");
    let (status, page) = admin.get("/fleet");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("2 not synced in 7 days"), "{page}");
    let (carol_at, carol_row) = fleet_row(&page, "carol");
    let (bob_at, bob_row) = fleet_row(&page, "bob");
    let (dave_at, dave_row) = fleet_row(&page, "dave");
    assert!(bob_at < carol_at && dave_at < carol_at, "not synced first");
    assert!(carol_row.contains(env!("CARGO_PKG_VERSION")), "{carol_row}");
    assert!(!carol_row.contains("stale"), "{carol_row}");
    assert!(bob_row.contains("class=\"stale\"") && bob_row.contains("never"));
    assert!(
        bob_row.contains("failed") && bob_row.contains("nope"),
        "the reason: {bob_row}"
    );
    assert!(dave_row.contains("never"), "{dave_row}");
    // Sorted by a column, the stale ones still lead.
    let (_, by_owner) = admin.get("/fleet?sort=owner&days=30");
    assert!(fleet_row(&by_owner, "bob").0 < fleet_row(&by_owner, "dave").0);
    assert!(fleet_row(&by_owner, "dave").0 < fleet_row(&by_owner, "carol").0);
    assert!(by_owner.contains("aria-sort=\"ascending\""));

    app.add_user("mallory", "password", false);
    let (status, _) = Browser::signed_in(&app, "mallory").get("/fleet");
    assert_eq!(status, 403, "for administrators only");
}

/// The value of a metric line that starts with `prefix` (its name and labels).
fn metric(page: &str, prefix: &str) -> f64 {
    page.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{prefix} in {page}"))
}

fn metrics_count_syncs_rows_and_conflicts(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let get = || {
        let r = client()
            .get(format!("{}/metrics", app.base))
            .send()
            .expect("the metrics");
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/plain")),
            "Prometheus text"
        );
        r.text().expect("a body")
    };
    let mut d = app.device("alice");
    d.sync(&[]);
    let before = get();
    let completed = metric(&before, "offsync_syncs_total{outcome=\"completed\"}");
    let uploads = if before.contains("offsync_upload_rows_count") {
        metric(&before, "offsync_upload_rows_count")
    } else {
        0.0
    };
    app.online_edit("assets", &asset, "notes", Some("online"));
    let base = d.base("assets", &asset);
    d.sync(&[edit("assets", &asset, &base, &[("notes", Some("offline"))])]);
    let after = get();
    // The process's metrics are shared by the tests running beside this one: at least.
    assert!(metric(&after, "offsync_syncs_total{outcome=\"completed\"}") >= completed + 1.0);
    assert!(metric(&after, "offsync_upload_rows_count") >= uploads + 1.0);
    assert!(metric(&after, "offsync_open_conflicts") >= 1.0, "{after}");
    for name in [
        "offsync_upload_seconds_bucket",
        "offsync_download_rows_bucket",
        "offsync_download_seconds_sum",
        "offsync_pool_connections{state=\"in_use\"}",
        "offsync_pool_wait_seconds_count",
    ] {
        metric(&after, name);
    }
}
