//! The main site: lists, record pages, forms, versions, escaping.

use crate::helpers::*;
use crate::on_both;

on_both!(
    a_new_inspection_starts_now_by_its_engineer_in_their_time_zone,
    pages_need_a_signed_in_person,
    sites_are_listed_searched_and_paginated,
    a_record_page_shows_parents_and_children,
    creating_checks_every_field_and_says_where,
    editing_over_a_change_made_meanwhile_shows_both,
    deleting_asks_first_and_takes_the_children,
    every_form_needs_the_csrf_token,
    values_are_escaped_everywhere,
);

fn pages_need_a_signed_in_person(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, _) = app.seed_asset();
    let anonymous = Browser::new(&app);
    for path in [
        "/",
        "/sites",
        &format!("/sites/{site}"),
        "/sites/new",
        "/devices",
        "/conflicts",
        "/resolutions",
    ] {
        let (status, _) = anonymous.get(path);
        assert_eq!(status, 303, "{path} without signing in");
    }
    let (status, css) = anonymous.get("/static/offsync.css");
    assert_eq!(status, 200);
    assert!(css.contains(".diff"));
}

fn sites_are_listed_searched_and_paginated(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("office", "password", false);
    let mut items = Vec::new();
    for n in 0..30 {
        items.push(create(
            "sites",
            &uid(),
            &[
                ("code", Some(&format!("S{n:02}"))),
                ("name", Some(&format!("Pumping station {n}"))),
                ("address", None),
                ("access_notes", None),
            ],
        ));
    }
    items.push(create(
        "sites",
        &uid(),
        &[
            ("code", Some("WTW")),
            ("name", Some("Westfield Water Works")),
            ("address", None),
            ("access_notes", None),
        ],
    ));
    app.import(&doc(&items));
    let br = Browser::signed_in(&app, "office");
    let (status, first) = br.get("/sites");
    assert_eq!(status, 200);
    assert!(first.contains("31 sites"));
    assert!(
        first.contains("S00") && !first.contains("WTW"),
        "25 to a page, by code"
    );
    assert!(first.contains("Page 1 of 2"));
    let (_, second) = br.get("/sites?page=2");
    assert!(second.contains("WTW") && !second.contains(">S00<"));
    let (_, found) = br.get("/sites?q=westfield");
    assert!(
        found.contains("WTW") && found.contains("1 site"),
        "search is case-insensitive"
    );
    assert!(!found.contains("S01"));
    let (_, none) = br.get("/sites?q=%25");
    assert!(
        none.contains("Nothing matches"),
        "LIKE wildcards are searched for literally"
    );
}

fn a_record_page_shows_parents_and_children(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("office", "password", false);
    let (site, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let tag = app.row("assets", &asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    let br = Browser::signed_in(&app, "office");
    let (status, page) = br.get(&format!("/assets/{asset}"));
    assert_eq!(status, 200);
    assert!(page.contains(&tag));
    assert!(
        page.contains(&format!("href=\"/sites/{site}\"")),
        "the parent is linked"
    );
    assert!(
        page.contains(&format!("href=\"/inspections/{inspection}\"")),
        "children are listed"
    );
    assert!(
        page.contains(&format!("href=\"/readings/{reading}\"")),
        "and their children"
    );
    assert!(page.contains("pressure"));
    assert!(page.contains("by offsync import"), "who changed it last");
    let (status, page) = br.get(&format!("/readings/{reading}"));
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("href=\"/assets/{asset}\"")),
        "breadcrumbs go up to the asset"
    );
    assert_eq!(br.get(&format!("/assets/{}", uid())).0, 404);
    assert_eq!(br.get("/pumps").0, 404);
}

fn creating_checks_every_field_and_says_where(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("office", "password", false);
    let (site, asset) = app.seed_asset();
    let code = app.row("sites", &site).unwrap().fields["code"]
        .clone()
        .unwrap();
    let tag = app.row("assets", &asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    let br = Browser::signed_in(&app, "office");
    let (status, form) = br.get(&format!("/assets/new?parent={site}"));
    assert_eq!(status, 200);
    assert_eq!(
        shown_value(&form, "site_id"),
        code,
        "the parent is chosen, by its code"
    );
    let csrf = br.csrf(&form);
    // A taken tag, a missing site and an empty status: each named beside its field.
    let (status, page, _) = br.post(
        "/assets/new",
        &[
            ("csrf", &csrf),
            ("site_id", "NOPE"),
            ("tag", &tag),
            ("status", ""),
            ("description", "x"),
        ],
    );
    assert_eq!(status, 422);
    assert!(
        page.contains("there is no site &#34;NOPE&#34;")
            || page.contains("there is no site &quot;NOPE&quot;"),
        "{page}"
    );
    assert!(page.contains("Status is required"));
    let (status, page, _) = br.post(
        "/assets/new",
        &[
            ("csrf", &csrf),
            ("site_id", &code),
            ("tag", &tag),
            ("status", "ok"),
        ],
    );
    assert_eq!(status, 422);
    assert!(page.contains("another asset already has tag"));
    assert!(
        page.contains("id=\"e-tag\""),
        "the message is beside the field"
    );
    let new_tag = app.uniq("NEW");
    let (status, _, location) = br.post(
        "/assets/new",
        &[
            ("csrf", &csrf),
            ("site_id", &code),
            ("tag", &new_tag),
            ("status", "degraded"),
            ("notes", ""),
        ],
    );
    assert_eq!(status, 303);
    let id = location.unwrap().trim_start_matches("/assets/").to_owned();
    let row = app.row("assets", &id).expect("created");
    assert_eq!(row.fields["status"].as_deref(), Some("degraded"));
    assert_eq!(row.fields["notes"], None, "an empty optional field is NULL");
    assert_eq!(row.fields["site_id"].as_deref(), Some(site.as_str()));
    // A laptop gets it at its next sync.
    let mut d = app.device("engineer");
    let (_, dl) = d.sync(&[]);
    assert!(dl.record("assets", &id).is_some());
    // Timestamps and decimals are checked too.
    let (inspection, _) = app.seed_inspection(&asset);
    let (status, page, _) = br.post(
        "/readings/new",
        &[
            ("csrf", &csrf),
            ("inspection_id", &inspection),
            ("kind", "flow"),
            ("value", "a lot"),
        ],
    );
    assert_eq!(status, 422);
    assert!(page.contains("is not a plain decimal number"));
    let (status, page, _) = br.post(
        "/inspections/new",
        &[
            ("csrf", &csrf),
            ("asset_id", &tag),
            ("inspected_at", "yesterday"),
            ("result", "pass"),
        ],
    );
    assert_eq!(status, 422);
    assert!(page.contains("is not an RFC 3339 timestamp"));
}

fn editing_over_a_change_made_meanwhile_shows_both(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("office", "password", false);
    let (_, asset) = app.seed_asset();
    let br = Browser::signed_in(&app, "office");
    let (_, form) = br.get(&format!("/assets/{asset}/edit"));
    let csrf = br.csrf(&form);
    let version = form_version(&form);
    let field = |name: &str| shown_value(&form, name);
    let (site_code, tag) = (field("site_id"), field("tag"));
    // Someone else changes the notes meanwhile.
    app.online_edit("assets", &asset, "notes", Some("changed meanwhile"));
    let changed = app.row("assets", &asset).unwrap();
    let mine = [
        ("csrf", csrf.as_str()),
        ("version", version.as_str()),
        ("site_id", &site_code),
        ("tag", &tag),
        ("status", "broken"),
        ("notes", "mine"),
    ];
    let (status, page, _) = br.post(&format!("/assets/{asset}/edit"), &mine);
    assert_eq!(status, 409);
    assert_eq!(
        app.row("assets", &asset).unwrap(),
        changed,
        "nothing was overwritten"
    );
    assert!(
        page.contains("changed meanwhile"),
        "the server's value is shown"
    );
    assert!(page.contains("mine"), "and the person's own");
    let newer = form_version(&page);
    assert_eq!(newer, changed.updated.to_string());
    let again = [
        ("csrf", csrf.as_str()),
        ("version", newer.as_str()),
        ("site_id", &site_code),
        ("tag", &tag),
        ("status", "broken"),
        ("notes", "mine"),
    ];
    let (status, _, location) = br.post(&format!("/assets/{asset}/edit"), &again);
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some(format!("/assets/{asset}").as_str())
    );
    let row = app.row("assets", &asset).unwrap();
    assert_eq!(
        (
            row.fields["notes"].as_deref(),
            row.fields["status"].as_deref()
        ),
        (Some("mine"), Some("broken"))
    );
    assert!(row.updated > changed.updated);
    let (_, page) = br.get(&format!("/assets/{asset}"));
    assert!(page.contains("by office"));
}

fn deleting_asks_first_and_takes_the_children(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    // Only administrators delete assets (issue 12's roles).
    app.add_user("admin", "password", true);
    let (site, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let mut d = app.device("engineer");
    d.sync(&[]);
    let br = Browser::signed_in(&app, "admin");
    let (status, confirm) = br.get(&format!("/assets/{asset}/delete"));
    assert_eq!(status, 200);
    assert!(
        confirm.contains("1 inspections"),
        "it says what goes with it"
    );
    assert!(
        app.row("assets", &asset).is_some(),
        "asking deletes nothing"
    );
    let (status, _, location) = br.post(
        &format!("/assets/{asset}/delete"),
        &[
            ("csrf", &br.csrf(&confirm)),
            ("version", &form_version(&confirm)),
        ],
    );
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some(format!("/sites/{site}").as_str()),
        "back to the parent"
    );
    assert!(
        app.row("assets", &asset).is_none()
            && app.row("inspections", &inspection).is_none()
            && app.row("readings", &reading).is_none()
    );
    let (_, dl) = d.sync(&[]);
    assert!(
        dl.deleted("assets", &asset) && dl.deleted("readings", &reading),
        "laptops learn of it"
    );
}

fn every_form_needs_the_csrf_token(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("office", "password", false);
    let (site, asset) = app.seed_asset();
    let br = Browser::signed_in(&app, "office");
    let (_, edit) = br.get(&format!("/sites/{site}/edit"));
    let version = form_version(&edit);
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/sites/new".into(), vec![("code", "X"), ("name", "X")]),
        (
            format!("/sites/{site}/edit"),
            vec![("version", &version), ("code", "X"), ("name", "X")],
        ),
        (format!("/assets/{asset}/delete"), vec![("version", "0")]),
        ("/devices".into(), vec![("label", "sneaky")]),
        ("/conflicts/bulk".into(), vec![("all", "server")]),
        ("/logout".into(), vec![]),
    ];
    for (path, pairs) in posts {
        let (status, _, _) = br.post(&path, &pairs);
        assert_eq!(status, 403, "{path} without a token");
        let mut forged = pairs.clone();
        forged.push(("csrf", "0000"));
        let (status, _, _) = br.post(&path, &forged);
        assert_eq!(status, 403, "{path} with a forged token");
    }
    assert!(app.row("assets", &asset).is_some());
    assert_eq!(br.get("/sites").0, 200, "still signed in");
}

fn values_are_escaped_everywhere(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("office", "password", false);
    let site = uid();
    let evil = "<script>alert('x')</script>";
    app.import(&doc(&[create(
        "sites",
        &site,
        &[
            ("code", Some("EVIL")),
            ("name", Some(evil)),
            ("address", None),
            ("access_notes", Some(evil)),
        ],
    )]));
    let br = Browser::signed_in(&app, "office");
    for path in [
        "/sites".to_owned(),
        format!("/sites/{site}"),
        format!("/sites/{site}/edit"),
        "/sites?q=%3Cscript%3E".to_owned(),
    ] {
        let (status, page) = br.get(&path);
        assert_eq!(status, 200);
        assert!(!page.contains("<script>alert"), "{path} shows markup raw");
        assert!(
            page.contains("&#60;script&#62;") || page.contains("&lt;script&gt;"),
            "{path} shows it as text"
        );
    }
    let r = client().get(format!("{}/login", app.base)).send().unwrap();
    let csp = r
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(
        r.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
}

fn a_new_inspection_starts_now_by_its_engineer_in_their_time_zone(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("jo", "password", false);
    let (_, asset) = app.seed_asset();
    let tag = app.row("assets", &asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    let br = Browser::signed_in(&app, "jo");
    br.set_cookie("offsync-tz", "America/New_York");
    let (status, form) = br.get("/inspections/new");
    assert_eq!(status, 200);
    // Now, in New York, to the minute (allowing for a minute turning over meanwhile).
    let zone: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let shown = shown_value(&form, "inspected_at");
    let now = chrono::Utc::now().with_timezone(&zone);
    let before = (now - chrono::Duration::minutes(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    assert!(
        shown == now.format("%Y-%m-%dT%H:%M").to_string() || shown == before,
        "{shown} is now in New York"
    );
    assert!(
        form.contains("type=\"datetime-local\""),
        "a date-time picker"
    );
    assert!(form.contains("America/New_York"), "the form says its zone");
    assert_eq!(shown_value(&form, "inspector"), "jo", "by the engineer");
    // The asset is chosen by name from a list, not typed as an id.
    assert!(form.contains("<select id=\"f-asset_id\""), "{form}");
    assert!(
        form.contains(&format!("<option value=\"{tag}\">")),
        "the asset by its tag"
    );

    let csrf = br.csrf(&form);
    let (status, page, to) = br.post(
        "/inspections/new",
        &[
            ("csrf", &csrf),
            ("tz", "America/New_York"),
            ("asset_id", &tag),
            ("inspected_at", "2026-11-21T09:14"),
            ("inspector", "jo"),
            ("result", "pass"),
            ("summary", ""),
        ],
    );
    assert_eq!(status, 303, "{page}");
    let id = to
        .expect("to the new inspection")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let stored = app.row("inspections", &id).unwrap().fields["inspected_at"]
        .clone()
        .unwrap();
    assert_eq!(
        offsync::domain::time::parse(&stored),
        offsync::domain::time::parse("2026-11-21T14:14:00Z"),
        "kept as UTC: {stored}"
    );
    // Shown again in the person's zone, with UTC on hover.
    let (_, page) = br.get(&format!("/inspections/{id}"));
    assert!(page.contains("2026-11-21 09:14 EST"), "{page}");
    assert!(page.contains("title=\"2026-11-21 14:14:00 UTC\""), "{page}");
    let (_, edit) = br.get(&format!("/inspections/{id}/edit"));
    assert_eq!(shown_value(&edit, "inspected_at"), "2026-11-21T09:14");
    // The parent's choice names the asset, its own label the time and the inspector.
    let (_, reading) = br.get(&format!("/readings/new?parent={id}"));
    assert!(
        reading.contains(&format!("{tag} · 2026-11-21 14:14:00 UTC · jo")),
        "{reading}"
    );
}
