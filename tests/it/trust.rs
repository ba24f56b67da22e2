//! Trust in the web layer (issue 12): findings probed from outside, each with the request
//! that showed it and the answer it must get now.

use crate::helpers::*;
use crate::on_both;

on_both!(
    a_burst_of_parallel_wrong_passwords_gets_no_more_tries_than_the_limit,
    a_stranger_cannot_lock_a_named_person_out,
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
                ..Default::default()
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

/// A server behind one proxy (so that a test can speak from any address) with these
/// sign-in limits, and users alice and bob.
fn behind_one_proxy(b: Backend, limits: offsync::accounts::SignInLimits) -> Option<TestApp> {
    let app = TestApp::spawn_with_knobs(
        b,
        Knobs {
            sign_in: limits,
            proxies: offsync::web::auth::Proxies {
                count: 1,
                forwarded_header: false,
            },
            ..Default::default()
        },
    )?;
    app.add_user("alice", "password", false);
    app.add_user("bob", "password", false);
    Some(app)
}

/// A sign-in form ready to post from `address`: the browser and its CSRF token.
fn sign_in_form(app: &TestApp) -> (Browser, String) {
    let br = Browser::new(app);
    let (_, login) = br.get("/login");
    let csrf = br.csrf(&login);
    (br, csrf)
}

fn post_sign_in(
    base: &str,
    (br, csrf): &(Browser, String),
    address: &str,
    user: &str,
    password: &str,
) -> u16 {
    br.http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", base)
        .header("x-forwarded-for", address)
        .body(
            serde_urlencoded::to_string([
                ("csrf", csrf.as_str()),
                ("username", user),
                ("password", password),
            ])
            .expect("a form"),
        )
        .send()
        .expect("an answer")
        .status()
        .as_u16()
}

/// 24 wrong passwords for one account from one address, all at once: 5 are checked (the
/// limit), the rest are refused unchecked; none slips through between a check and a count.
fn a_burst_of_parallel_wrong_passwords_gets_no_more_tries_than_the_limit(b: Backend) {
    let Some(app) = behind_one_proxy(
        b,
        offsync::accounts::SignInLimits {
            per_account: 5,
            per_address: 100,
            window: std::time::Duration::from_secs(60),
            ..Default::default()
        },
    ) else {
        return;
    };
    let forms: Vec<(Browser, String)> = (0..24).map(|_| sign_in_form(&app)).collect();
    let start = std::sync::Barrier::new(forms.len());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let running: Vec<_> = forms
            .iter()
            .map(|form| {
                let (base, start) = (app.base.as_str(), &start);
                scope.spawn(move || {
                    start.wait();
                    post_sign_in(base, form, "192.0.2.10", "alice", "guess")
                })
            })
            .collect();
        running
            .into_iter()
            .map(|t| t.join().expect("a sign-in thread"))
            .collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, throttled), (5, 19), "{statuses:?}");
}

/// Five wrong passwords for alice from one address lock alice out from that address only;
/// from elsewhere she signs in. Past the account's ceiling (from many addresses), she waits
/// everywhere.
fn a_stranger_cannot_lock_a_named_person_out(b: Backend) {
    let Some(app) = behind_one_proxy(
        b,
        offsync::accounts::SignInLimits {
            per_account: 3,
            per_address: 100,
            per_account_ceiling: 7,
            window: std::time::Duration::from_secs(60),
        },
    ) else {
        return;
    };
    let stranger = "203.0.113.66";
    for _ in 0..3 {
        assert_eq!(
            post_sign_in(&app.base, &sign_in_form(&app), stranger, "alice", "guess"),
            401
        );
    }
    assert_eq!(
        post_sign_in(
            &app.base,
            &sign_in_form(&app),
            stranger,
            "alice",
            "password"
        ),
        429,
        "locked from the stranger's address"
    );
    assert_eq!(
        post_sign_in(
            &app.base,
            &sign_in_form(&app),
            "192.0.2.20",
            "alice",
            "password"
        ),
        303,
        "alice at her own desk is not locked out"
    );
    // Spread over addresses, guesses meet the account's ceiling (7) however they spread.
    for n in 0..7 {
        let address = format!("198.51.100.{n}");
        assert_eq!(
            post_sign_in(&app.base, &sign_in_form(&app), &address, "bob", "guess"),
            401
        );
    }
    assert_eq!(
        post_sign_in(
            &app.base,
            &sign_in_form(&app),
            "192.0.2.21",
            "bob",
            "password"
        ),
        429,
        "past the ceiling"
    );
}
