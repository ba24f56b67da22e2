//! PROTOCOL.md §3: sessions, since, state, authentication.

use crate::helpers::*;
use crate::on_both;

on_both!(
    first_sync_downloads_everything,
    since_advances_only_when_a_session_completes,
    an_interrupted_session_changes_nothing,
    state_reports_last_sync_and_conflicts,
    tokens_are_checked,
    sessions_belong_to_their_device,
    a_failed_or_finished_session_refuses_more_steps,
    open_keeps_the_device_clock_offset,
    download_only_sync_is_valid,
    malformed_requests_get_error_bodies,
);

fn first_sync_downloads_everything(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let mut d = app.device("alice");
    assert_eq!(
        d.state().0,
        None,
        "no lastSync before the first completed session"
    );
    let s = d.open();
    assert_eq!(s.since, None, "a first session has no since");
    let dl = d.download(&s.id);
    assert_eq!(dl.since, None);
    for (table, id) in [
        ("sites", &site),
        ("assets", &asset),
        ("inspections", &inspection),
        ("readings", &reading),
    ] {
        let r = dl
            .record(table, id)
            .unwrap_or_else(|| panic!("{table} {id} missing"));
        let def = &offsync::domain::TABLES[r.table];
        assert_eq!(
            r.fields.len(),
            def.fields.len(),
            "every field of {table} is sent"
        );
        let server = app.row(table, id).unwrap();
        assert_eq!(
            r.updated,
            Some(server.updated),
            "updated is the server's last_updated"
        );
    }
    assert_eq!(
        dl.value("inspections", &inspection, "inspected_at"),
        Some(Some("2026-11-21T09:00:00.000000Z".into()))
    );
    assert_eq!(
        dl.value("sites", &site, "address"),
        Some(None),
        "NULL travels as NULL"
    );
    d.complete(&s.id);
    assert_eq!(d.state().0.as_deref(), Some(s.started.as_str()));
}

fn since_advances_only_when_a_session_completes(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    let s1 = d.open();
    d.download(&s1.id);
    d.complete(&s1.id);
    let s2 = d.open();
    assert_eq!(s2.since.as_deref(), Some(s1.started.as_str()));
    assert!(s2.started > s1.started);
    let dl = d.download(&s2.id);
    assert_eq!(
        dl.since.map(time::format).as_deref(),
        Some(s1.started.as_str()),
        "the download's root carries since"
    );
    assert!(
        dl.record("assets", &asset).is_none(),
        "an unchanged row is not sent again"
    );
    app.online_edit("assets", &asset, "notes", Some("changed online"));
    d.complete(&s2.id);
    let s3 = d.open();
    assert_eq!(s3.since.as_deref(), Some(s2.started.as_str()));
    let dl = d.download(&s3.id);
    assert_eq!(
        dl.value("assets", &asset, "notes"),
        Some(Some("changed online".into())),
        "a row changed during the previous session is in the next download"
    );
}

fn an_interrupted_session_changes_nothing(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    let (_, _) = d.sync(&[]);
    let last = d.state().0;
    // Dropped after downloading: never completed.
    let s2 = d.open();
    app.online_edit("assets", &asset, "notes", Some("while away"));
    d.download(&s2.id);
    let s3 = d.open();
    assert_eq!(
        s3.since, s2.since,
        "the next session starts from the same since"
    );
    assert_eq!(d.state().0, last, "lastSync did not move");
    for a in [
        d.download_raw(&s2.id),
        d.complete_raw(&s2.id),
        d.upload_raw(&s2.id, &doc(&[])),
    ] {
        a.assert_error(409, None, None, None);
    }
    let dl = d.download(&s3.id);
    assert_eq!(
        dl.value("assets", &asset, "notes"),
        Some(Some("while away".into()))
    );
    d.complete(&s3.id);
}

fn state_reports_last_sync_and_conflicts(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("server"));
    let (r, _) = d.sync(&[edit("assets", &asset, &base, &[("notes", Some("offline"))])]);
    assert_eq!(r, Some((0, 0, 1, true)));
    let (last, flag, n) = d.state();
    assert!(last.is_some());
    assert!(flag);
    assert_eq!(n, 1);
    // Another device of the same user sees the same user-level flag.
    let other = app.device("alice");
    assert!(other.state().1);
    assert!(!app.device("bob").state().1, "the flag is per user");
}

fn tokens_are_checked(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let d = app.device("alice");
    let s = d.open();
    let stranger = d.with_token("osd_not_a_real_token");
    stranger.open_raw().assert_error(401, None, None, None);
    stranger.state_raw().assert_error(401, None, None, None);
    stranger
        .download_raw(&s.id)
        .assert_error(401, None, None, None);
    stranger
        .complete_raw(&s.id)
        .assert_error(401, None, None, None);
    stranger
        .upload_raw(&s.id, &doc(&[]))
        .assert_error(401, None, None, None);
    let anonymous = client()
        .get(format!("{}/api/sync/state", app.base))
        .send()
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

fn sessions_belong_to_their_device(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let mine = app.device("alice");
    let s = mine.open();
    for other in [app.device("alice"), app.device("bob")] {
        other
            .download_raw(&s.id)
            .assert_error(404, None, None, None);
        other
            .complete_raw(&s.id)
            .assert_error(404, None, None, None);
        other
            .upload_raw(&s.id, &doc(&[]))
            .assert_error(404, None, None, None);
    }
    mine.download_raw("no-such-session")
        .assert_error(404, None, None, None);
    mine.complete(&s.id);
}

fn a_failed_or_finished_session_refuses_more_steps(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let mut d = app.device("alice");
    let s = d.open();
    d.upload_raw(
        &s.id,
        "<changeset version=\"1\"><record table=\"nope\" id=\"x\"/></changeset>",
    )
    .assert_error(422, Some("nope"), Some("x"), None);
    d.download_raw(&s.id).assert_error(409, None, None, None);
    d.complete_raw(&s.id).assert_error(409, None, None, None);
    d.upload_raw(&s.id, &doc(&[]))
        .assert_error(409, None, None, None);
    let s2 = d.open();
    assert_eq!(s2.since, None);
    d.download(&s2.id);
    d.complete(&s2.id);
    d.complete_raw(&s2.id).assert_error(409, None, None, None);
    d.download_raw(&s2.id).assert_error(409, None, None, None);
}

fn open_keeps_the_device_clock_offset(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let d = app.device("alice");
    let a = answer_of(
        d.http
            .post(format!(
                "{}/api/sync/sessions?clock=2020-01-01T00:00:00Z",
                app.base
            ))
            .bearer_auth(&d.token)
            .send()
            .unwrap(),
    );
    assert_eq!(a.0, 201, "{}", a.1);
    let sid = attr(&a.1, "id").unwrap();
    let offset = offsync::db::repo::sessions::clock_offset(&mut app.conn(), &sid)
        .unwrap()
        .expect("the offset is kept with the session");
    let expected =
        time::parse("2020-01-01T00:00:00Z").unwrap() - chrono::Utc::now().timestamp_micros();
    assert!(
        (offset - expected).abs() < 60_000_000,
        "offset {offset} µs, expected about {expected}"
    );
    // The same as a form field, and a session without one keeps none.
    let open_with_form = |body: &'static str| {
        answer_of(
            d.http
                .post(format!("{}/api/sync/sessions", app.base))
                .bearer_auth(&d.token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .unwrap(),
        )
    };
    let form = open_with_form("clock=2030-01-01T00%3A00%3A00%2B00%3A00");
    assert_eq!(form.0, 201, "{}", form.1);
    let later =
        offsync::db::repo::sessions::clock_offset(&mut app.conn(), &attr(&form.1, "id").unwrap())
            .unwrap();
    assert!(
        later.is_some_and(|o| o > 0),
        "a clock ahead gives a positive offset"
    );
    let plain = d.open();
    assert_eq!(
        offsync::db::repo::sessions::clock_offset(&mut app.conn(), &plain.id).unwrap(),
        None
    );
    let bad = open_with_form("clock=yesterday");
    assert_eq!(bad.0, 400, "an unreadable clock is refused: {}", bad.1);
    assert!(bad.1.contains("clock"));
}

fn answer_of(r: reqwest::blocking::Response) -> (u16, String) {
    let s = r.status().as_u16();
    (s, r.text().unwrap_or_default())
}

fn download_only_sync_is_valid(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let mut d = app.device("alice");
    let s = d.open();
    d.download(&s.id);
    d.complete(&s.id);
    let s = d.open();
    d.complete(&s.id);
    assert_eq!(
        d.state().0.as_deref(),
        Some(s.started.as_str()),
        "complete without a download is a valid sync"
    );
}

fn malformed_requests_get_error_bodies(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let mut d = app.device("alice");
    let s = d.open();
    let send = |r: reqwest::blocking::RequestBuilder| {
        answer_of(r.bearer_auth(&d.token).send().expect("an answer"))
    };
    let upload = format!("{}/api/sync/sessions/{}/upload", app.base, s.id);
    let cases = [
        send(
            d.http
                .post(format!("{}/api/sync/sessions?clock=a&clock=b", app.base)),
        ),
        send(
            d.http
                .post(&upload)
                .header("content-type", "text/plain")
                .body("hello"),
        ),
        send(
            d.http
                .post(&upload)
                .header("content-type", "multipart/form-data")
                .body("hello"),
        ),
        send(
            d.http
                .post(&upload)
                .multipart(reqwest::blocking::multipart::Form::new().text("other", "x")),
        ),
        send(d.http.get(format!("{}/api/nothing/here", app.base))),
    ];
    for (status, body) in cases {
        assert!(status == 400 || status == 404, "{status}: {body}");
        assert!(
            body.starts_with("<error code=\""),
            "not an <error> body: {body}"
        );
    }
    // None of it hurt the session.
    d.download(&s.id);
    d.complete(&s.id);
}
