//! Sessions that can be ended, and users that can be disabled (issue 12): the session lives
//! on the server, so signing out, a new password, disabling and the timeouts end it for
//! every copy of the cookie.

use std::time::Duration;

use crate::helpers::*;
use crate::on_both;

on_both!(
    sign_out_everywhere_ends_every_browsers_session,
    idle_and_absolute_timeouts_end_a_session,
    a_disabled_user_can_neither_sign_in_nor_sync,
    an_administrator_sets_a_password_and_the_old_sessions_end,
    user_names_are_one_account_whatever_their_case,
);

/// The id in the first action of `name`'s row on the users page.
fn user_id_on(page: &str, name: &str) -> String {
    let row = page
        .find(&format!("<td>{name}"))
        .unwrap_or_else(|| panic!("{name}'s row: {page}"));
    let rest = &page[row..];
    let at = rest.find("action=\"/users/").expect("an action") + "action=\"/users/".len();
    rest[at..].split('/').next().expect("an id").to_owned()
}

/// Whether this browser is still signed in (a page, not the sign-in form).
fn still_in(br: &Browser) -> bool {
    let (status, _) = br.get("/sites");
    status == 200
}

fn sign_out_everywhere_ends_every_browsers_session(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("alice", "password", false);
    app.add_user("bob", "password", false);
    let (one, two) = (
        Browser::signed_in(&app, "alice"),
        Browser::signed_in(&app, "alice"),
    );
    let bob = Browser::signed_in(&app, "bob");
    assert!(still_in(&one) && still_in(&two));
    let (_, page) = one.get("/sites");
    let (status, _, to) = one.post("/logout/everywhere", &[("csrf", &one.csrf(&page))]);
    assert_eq!((status, to.as_deref()), (303, Some("/login")));
    assert!(!still_in(&one), "this browser");
    assert!(!still_in(&two), "the other browser");
    assert!(still_in(&bob), "another user's session stands");
}

fn idle_and_absolute_timeouts_end_a_session(b: Backend) {
    let Some(app) = TestApp::spawn_with_knobs(
        b,
        Knobs {
            sessions: offsync::accounts::SessionTimeouts {
                idle: Duration::from_millis(1500),
                absolute: Duration::from_secs(4),
            },
            ..Default::default()
        },
    ) else {
        return;
    };
    app.add_user("alice", "password", false);
    // Idle: a pause longer than the idle timeout ends it.
    let idle = Browser::signed_in(&app, "alice");
    assert!(still_in(&idle));
    std::thread::sleep(Duration::from_millis(1800));
    assert!(!still_in(&idle), "idle past 1.5 s");
    // Busy: requests keep it alive, until the absolute timeout.
    let busy = Browser::signed_in(&app, "alice");
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(3000) {
        assert!(still_in(&busy), "busy at {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!still_in(&busy), "past the absolute 4 s");
}

fn a_disabled_user_can_neither_sign_in_nor_sync(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("alice", "password", false);
    let br = Browser::signed_in(&app, "alice");
    let mut device = app.device("alice");
    device.sync(&[]);
    offsync::accounts::set_disabled(&mut app.conn(), "alice", true).expect("disabled");
    assert!(!still_in(&br), "signed out at once");
    assert_eq!(device.open_raw().status, 401, "the device stops at once");
    let (status, page, _) = Browser::new(&app).sign_in("alice", "password");
    assert_eq!(status, 403);
    assert!(page.contains("This account is disabled"), "{page}");
    offsync::accounts::set_disabled(&mut app.conn(), "alice", false).expect("enabled");
    assert_eq!(Browser::new(&app).sign_in("alice", "password").0, 303);
    assert_eq!(device.open_raw().status, 201, "the device syncs again");
}

fn an_administrator_sets_a_password_and_the_old_sessions_end(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("root", "password", true);
    app.add_user("alice", "password", false);
    let alice = Browser::signed_in(&app, "alice");
    // Not for everyone.
    let (status, _) = alice.get("/users");
    assert_eq!(status, 403);
    let admin = Browser::signed_in(&app, "root");
    let (status, page) = admin.get("/users");
    assert_eq!(status, 200);
    let id = user_id_on(&page, "alice");
    let (status, page, _) = admin.post(
        &format!("/users/{id}/password"),
        &[("csrf", &admin.csrf(&page)), ("password", "a new secret")],
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("alice has a new password"), "{page}");
    assert!(!still_in(&alice), "alice's old session ended");
    assert_eq!(Browser::new(&app).sign_in("alice", "password").0, 401);
    assert_eq!(Browser::new(&app).sign_in("alice", "a new secret").0, 303);
    // Disabling from the page, and not oneself.
    let (_, page) = admin.get("/users");
    let (status, page, _) = admin.post(
        &format!("/users/{id}/disable"),
        &[("csrf", &admin.csrf(&page))],
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("alice is disabled"), "{page}");
    assert_eq!(Browser::new(&app).sign_in("alice", "a new secret").0, 403);
    let root_id = user_id_on(&page, "root");
    let (status, page, _) = admin.post(
        &format!("/users/{root_id}/disable"),
        &[("csrf", &admin.csrf(&page))],
    );
    assert_eq!(status, 400);
    assert!(page.contains("cannot disable yourself"), "{page}");
}

fn user_names_are_one_account_whatever_their_case(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("Alice", "password", false);
    let again = offsync::accounts::add_user(&mut app.conn(), "alice", "password", false);
    assert!(
        matches!(again, Err(offsync::accounts::AccountError::UserExists(_))),
        "{again:?}"
    );
    assert_eq!(Browser::new(&app).sign_in("ALICE", "password").0, 303);
}
