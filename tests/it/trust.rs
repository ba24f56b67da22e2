//! Trust in the web layer (issue 12): findings probed from outside, each with the request
//! that showed it and the answer it must get now.

use crate::helpers::*;
use crate::on_both;

on_both!(
    behind_a_proxy_the_address_is_the_one_it_saw,
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

/// Behind one appending proxy, what the client wrote at the left of `X-Forwarded-For` (or
/// in a `Forwarded` it sent) is not its address: 21 wrong passwords from one address are
/// limited at the address's limit however the client varies the header.
fn behind_a_proxy_the_address_is_the_one_it_saw(b: Backend) {
    let Some(app) = TestApp::spawn_with_knobs(
        b,
        Knobs {
            sign_in: offsync::accounts::SignInLimits {
                per_account: 100,
                per_address: 5,
                window: std::time::Duration::from_secs(60),
            },
            proxies: offsync::web::auth::Proxies {
                count: 1,
                forwarded_header: false,
            },
            ..Default::default()
        },
    ) else {
        return;
    };
    let attempt = |n: usize, xff: &str| {
        let br = Browser::new(&app);
        let (_, login) = br.get("/login");
        let csrf = br.csrf(&login);
        br.http
            .post(format!("{}/login", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", &app.base)
            .header("x-forwarded-for", xff)
            .header("forwarded", format!("for=198.51.100.{n}"))
            .body(
                serde_urlencoded::to_string([
                    ("csrf", csrf.as_str()),
                    ("username", &format!("nobody{n}")),
                    ("password", "guess"),
                ])
                .expect("a form"),
            )
            .send()
            .expect("an answer")
            .status()
            .as_u16()
    };
    let statuses: Vec<u16> = (0..7)
        .map(|n| attempt(n, &format!("203.0.113.{n}, 192.0.2.7")))
        .collect();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    // Another address, as the proxy saw it, is not limited by the first one's failures.
    assert_eq!(attempt(99, "203.0.113.1, 192.0.2.8"), 401);
}
