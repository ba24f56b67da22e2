//! Devices and sync history pages.

use crate::helpers::*;
use crate::on_both;

on_both!(
    a_device_is_registered_renamed_and_revoked,
    devices_and_histories_are_private
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
