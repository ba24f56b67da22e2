//! Trust in the web layer (issue 12): findings probed from outside, each with the request
//! that showed it and the answer it must get now.

use crate::helpers::*;
use crate::on_both;

on_both!(
    a_huge_page_number_is_the_last_page_not_an_error,
    signed_in_pages_are_not_stored_and_head_is_served,
    the_bearer_scheme_is_case_insensitive,
    the_csrf_token_is_new_after_sign_in,
);

fn a_huge_page_number_is_the_last_page_not_an_error(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("alice", "password", false);
    let br = Browser::signed_in(&app, "alice");
    for path in [
        "/sites?page=368934881474191033",
        "/assets?page=9223372036854775807",
        "/conflicts?page=368934881474191033",
        "/resolutions?page=368934881474191033",
    ] {
        let (status, page) = br.get(path);
        assert_eq!(status, 200, "{path}: {page}");
    }
}

fn signed_in_pages_are_not_stored_and_head_is_served(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("alice", "password", false);
    let br = Browser::signed_in(&app, "alice");
    for path in ["/sites", "/devices", "/conflicts"] {
        let r = br
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .expect("an answer");
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{path}"
        );
        let head = br
            .http
            .head(format!("{}{path}", app.base))
            .send()
            .expect("an answer");
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert!(head.bytes().expect("no body").is_empty());
    }
    let css = client()
        .get(format!("{}/static/offsync.css", app.base))
        .send()
        .expect("the stylesheet");
    assert_eq!(
        css.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("public, max-age=3600"),
        "static files may be kept"
    );
    let head = client()
        .head(format!("{}/healthz", app.base))
        .send()
        .expect("an answer");
    assert_eq!(head.status(), 200);
}

fn the_bearer_scheme_is_case_insensitive(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let device = app.device("alice");
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = client()
            .get(format!("{}/api/sync/state", app.base))
            .header("authorization", format!("{scheme} {}", device.token))
            .send()
            .expect("an answer");
        assert_eq!(r.status(), 200, "{scheme}");
    }
    let r = client()
        .get(format!("{}/api/sync/state", app.base))
        .header("authorization", format!("Basic {}", device.token))
        .send()
        .expect("an answer");
    assert_eq!(r.status(), 401);
}

fn the_csrf_token_is_new_after_sign_in(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("alice", "password", false);
    let br = Browser::new(&app);
    let (_, login) = br.get("/login");
    let before = br.csrf(&login);
    let (status, _, _) = br.post(
        "/login",
        &[
            ("csrf", &before),
            ("username", "alice"),
            ("password", "password"),
        ],
    );
    assert_eq!(status, 303);
    let (_, sites) = br.get("/sites");
    let after = br.csrf(&sites);
    assert_ne!(
        before, after,
        "the anonymous token must not survive sign-in"
    );
    // The old token no longer posts.
    let (status, _, _) = br.post("/logout", &[("csrf", &before)]);
    assert_eq!(status, 403);
    let (status, _, _) = br.post("/logout", &[("csrf", &after)]);
    assert_eq!(status, 303);
}
