//! PROTOCOL.md §5: signing in and resolving conflicts through the HTML form.

use crate::helpers::*;
use crate::on_both;

on_both!(
    sign_in_refuses_a_wrong_password_without_saying_which_part,
    sign_in_is_rate_limited_per_account_and_per_address,
    a_form_over_the_size_limit_is_refused_clearly,
    forms_without_the_csrf_token_are_refused,
    resolving_field_by_field_saves_and_clears_the_flag,
    a_stale_form_does_not_overwrite_and_asks_again,
    a_delete_conflict_offers_the_row_choice,
    an_edit_of_a_deleted_row_can_be_restored,
    users_see_only_their_own_conflicts,
    an_edited_value_and_keep_all,
    bulk_resolution_keeps_one_side_for_the_selected,
    the_list_filters_by_table_and_device_and_history_records_choices,
    a_duplicate_shows_how_the_records_were_joined,
    the_banner_is_on_every_page_while_conflicts_wait,
);

/// A conflict on an asset's notes for `user`; returns the asset id.
pub fn make_conflict(app: &TestApp, user: &str, offline: &str) -> String {
    let (_, asset) = app.seed_asset();
    let mut d = app.device(user);
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("server notes"));
    let (r, _) = d.sync(&[edit(
        "assets",
        &asset,
        &base,
        &[("notes", Some(offline)), ("status", Some("broken"))],
    )]);
    assert_eq!(r.unwrap().2, 1);
    asset
}

fn sign_in_refuses_a_wrong_password_without_saying_which_part(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("alice", "password", false);
    let br = Browser::new(&app);
    let (wrong_pw, page_pw, _) = br.sign_in("alice", "nope");
    let (wrong_user, page_user, _) = br.sign_in("nobody", "password");
    assert_eq!((wrong_pw, wrong_user), (401, 401));
    let message = "That user name and password do not match";
    assert!(page_pw.contains(message) && page_user.contains(message));
    assert_eq!(br.get("/conflicts").0, 303, "still signed out");
    let (ok, _, _) = br.sign_in("alice", "password");
    assert_eq!(ok, 303);
    assert_eq!(br.get("/conflicts").0, 200);
}

fn sign_in_is_rate_limited_per_account_and_per_address(b: Backend) {
    let limits = offsync::accounts::SignInLimits {
        per_account: 3,
        per_address: 5,
        window: std::time::Duration::from_secs(5),
        ..Default::default()
    };
    let Some(app) = TestApp::spawn_with_sign_in(b, limits) else {
        return;
    };
    for name in ["alice", "bob", "carol"] {
        app.add_user(name, "password", false);
    }
    let br = Browser::new(&app);
    for _ in 0..3 {
        assert_eq!(br.sign_in("alice", "guess").0, 401);
    }
    // The account is locked now, even with the right password, and says for how long.
    let (status, page, _) = br.sign_in("alice", "password");
    assert_eq!(status, 429);
    assert!(
        page.contains("Too many failed sign-ins for this account"),
        "{page}"
    );
    assert!(page.contains("minute"), "{page}");
    // Another account from the same address still signs in: the per-account limit is
    // the account's alone. Two more failures reach the address's limit.
    assert_eq!(br.sign_in("bob", "guess").0, 401);
    assert_eq!(br.sign_in("bob", "guess").0, 401);
    let (status, page, _) = Browser::new(&app).sign_in("carol", "password");
    assert_eq!(status, 429, "five failures from this address: {page}");
    assert!(page.contains("from this address"), "{page}");
    // After the window, both limits lift; a success forgets the account's failures.
    std::thread::sleep(std::time::Duration::from_millis(5100));
    let (status, _, _) = br.sign_in("alice", "password");
    assert_eq!(status, 303);
}

fn a_form_over_the_size_limit_is_refused_clearly(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("alice", "password", false);
    let br = Browser::new(&app);
    let (_, page) = br.get("/login");
    let csrf = br.csrf(&page);
    let huge = "x".repeat(300 << 10);
    let (status, page, _) = br.post(
        "/login",
        &[
            ("csrf", &csrf),
            ("username", &huge),
            ("password", "password"),
        ],
    );
    assert_eq!(status, 400);
    assert!(page.contains("The form could not be read"), "{page}");
    assert!(
        !page.contains("panicked") && !page.contains("src/"),
        "{page}"
    );
}

fn forms_without_the_csrf_token_are_refused(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("alice", "password", false);
    let br = Browser::new(&app);
    br.get("/login");
    let (status, _, _) = br.post("/login", &[("username", "alice"), ("password", "password")]);
    assert_eq!(status, 403);
    let (status, _, _) = br.post(
        "/login",
        &[
            ("csrf", "forged"),
            ("username", "alice"),
            ("password", "password"),
        ],
    );
    assert_eq!(status, 403);
    let asset = make_conflict(&app, "carol", "offline notes");
    let br = Browser::signed_in(&app, "carol");
    let id = br.conflict_ids().pop().unwrap();
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    let version = form_version(&page);
    let (status, _, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("version", &version),
            ("choice.notes", "offline"),
            ("choice.status", "offline"),
        ],
    );
    assert_eq!(status, 403);
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("server notes")
    );
}

fn resolving_field_by_field_saves_and_clears_the_flag(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let asset = make_conflict(&app, "carol", "offline <notes>");
    let other = make_conflict(&app, "carol", "second");
    let br = Browser::signed_in(&app, "carol");
    let ids = br.conflict_ids();
    assert_eq!(ids.len(), 2);
    let (_, list) = br.get("/conflicts");
    assert!(
        list.contains("2 conflicts wait for you"),
        "the banner counts them"
    );
    let before = app.row("assets", &asset).unwrap();
    let id = ids
        .iter()
        .find(|id| br.get(&format!("/conflicts/{id}")).1.contains(&asset))
        .unwrap();
    let (status, page) = br.get(&format!("/conflicts/{id}"));
    assert_eq!(status, 200);
    assert!(!page.contains("offline <notes>"), "values are escaped");
    assert!(
        page.contains("offline &#60;notes&#62;") || page.contains("offline &lt;notes&gt;"),
        "and shown"
    );
    assert!(page.contains("server notes"));
    for v in ["server", "offline"] {
        assert!(page.contains(&format!("name=\"choice.notes\" value=\"{v}\"")));
    }
    let csrf = br.csrf(&page);
    let (status, _, loc) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &csrf),
            ("version", &form_version(&page)),
            ("choice.notes", "offline"),
            ("choice.status", "server"),
        ],
    );
    assert_eq!(status, 303);
    assert_eq!(loc.as_deref(), Some("/conflicts"));
    let after = app.row("assets", &asset).unwrap();
    assert_eq!(after.fields["notes"].as_deref(), Some("offline <notes>"));
    assert_eq!(after.fields["status"].as_deref(), Some("ok"));
    assert!(
        after.updated > before.updated,
        "a resolution is a new version"
    );
    let d = app.device("carol");
    assert_eq!(
        d.state(),
        (None, true, 1),
        "one conflict left: the flag stays"
    );
    let last = br.conflict_ids().pop().unwrap();
    let (_, page) = br.get(&format!("/conflicts/{last}"));
    let (status, _, _) = br.post(
        &format!("/conflicts/{last}"),
        &[
            ("csrf", &csrf),
            ("version", &form_version(&page)),
            ("choice.notes", "server"),
            ("choice.status", "server"),
        ],
    );
    assert_eq!(status, 303);
    let other_row = app.row("assets", &other).unwrap();
    assert_eq!(other_row.fields["notes"].as_deref(), Some("server notes"));
    assert_eq!(
        d.state(),
        (None, false, 0),
        "the last resolution resets the flag"
    );
    let (_, list) = br.get("/conflicts");
    assert!(!list.contains("wait for you"), "no banner");
    // A resolved conflict cannot be resolved twice.
    let (status, _, _) = br.post(
        &format!("/conflicts/{last}"),
        &[
            ("csrf", &csrf),
            ("version", &form_version(&page)),
            ("choice.notes", "offline"),
            ("choice.status", "offline"),
        ],
    );
    assert_eq!(status, 409);
}

fn a_stale_form_does_not_overwrite_and_asks_again(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let asset = make_conflict(&app, "carol", "offline");
    let br = Browser::signed_in(&app, "carol");
    let id = br.conflict_ids().pop().unwrap();
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    app.online_edit("assets", &asset, "notes", Some("newer server"));
    let changed = app.row("assets", &asset).unwrap();
    let csrf = br.csrf(&page);
    let (status, again, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &csrf),
            ("version", &form_version(&page)),
            ("choice.notes", "offline"),
            ("choice.status", "offline"),
        ],
    );
    assert_eq!(status, 409);
    assert!(
        again.contains("newer server"),
        "the new server values are shown"
    );
    assert_eq!(
        app.row("assets", &asset).unwrap(),
        changed,
        "nothing was overwritten"
    );
    let (status, _, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &csrf),
            ("version", &form_version(&again)),
            ("choice.notes", "offline"),
            ("choice.status", "offline"),
        ],
    );
    assert_eq!(status, 303);
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("offline")
    );
}

fn a_delete_conflict_offers_the_row_choice(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let mut d = app.device("carol");
    d.sync(&[]);
    let base = d.base("inspections", &inspection);
    app.online_edit("inspections", &inspection, "summary", Some("changed"));
    d.sync(&[delete("inspections", &inspection, &base)]);
    let br = Browser::signed_in(&app, "carol");
    let id = br.conflict_ids().pop().unwrap();
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    assert!(
        page.contains("name=\"choice.row\" value=\"server\"")
            && page.contains("name=\"choice.row\" value=\"offline\"")
    );
    let (status, _, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &br.csrf(&page)),
            ("version", &form_version(&page)),
            ("choice.row", "offline"),
        ],
    );
    assert_eq!(status, 303);
    assert!(
        app.row("inspections", &inspection).is_none(),
        "the offline delete was carried out"
    );
    assert!(app.row("readings", &reading).is_none());
}

fn an_edit_of_a_deleted_row_can_be_restored(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let mut d = app.device("carol");
    let mut office = app.device("office");
    d.sync(&[]);
    office.sync(&[]);
    let base = d.base("inspections", &inspection);
    office.sync(&[delete(
        "inspections",
        &inspection,
        &office.base("inspections", &inspection),
    )]);
    d.sync(&[edit(
        "inspections",
        &inspection,
        &base,
        &[("summary", Some("keep me"))],
    )]);
    let br = Browser::signed_in(&app, "carol");
    let id = br.conflict_ids().pop().unwrap();
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    let (status, _, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &br.csrf(&page)),
            ("version", &form_version(&page)),
            ("choice.row", "offline"),
        ],
    );
    assert_eq!(status, 303);
    let row = app.row("inspections", &inspection).expect("restored");
    assert_eq!(row.fields["summary"].as_deref(), Some("keep me"));
    assert_eq!(
        row.fields["inspector"].as_deref(),
        Some("Jo"),
        "the rest comes from the deleted row"
    );
    let (_, dl) = office.sync(&[]);
    assert!(
        dl.record("inspections", &inspection).is_some(),
        "other devices get the restored row"
    );
}

fn users_see_only_their_own_conflicts(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let asset = make_conflict(&app, "carol", "offline");
    app.add_user("mallory", "password", false);
    app.add_user("root", "password", true);
    let carol = Browser::signed_in(&app, "carol");
    let id = carol.conflict_ids().pop().unwrap();
    let mallory = Browser::signed_in(&app, "mallory");
    assert!(mallory.conflict_ids().is_empty());
    assert_eq!(mallory.get(&format!("/conflicts/{id}")).0, 404);
    let (_, page) = mallory.get("/conflicts");
    let (status, _, _) = mallory.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &mallory.csrf(&page)),
            ("choice.notes", "offline"),
            ("choice.status", "offline"),
        ],
    );
    assert_eq!(status, 404);
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("server notes")
    );
    let admin = Browser::signed_in(&app, "root");
    assert_eq!(
        admin.conflict_ids(),
        vec![id.clone()],
        "an administrator sees everyone's"
    );
    let (_, page) = admin.get(&format!("/conflicts/{id}"));
    let (status, _, _) = admin.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &admin.csrf(&page)),
            ("version", &form_version(&page)),
            ("choice.notes", "offline"),
            ("choice.status", "offline"),
        ],
    );
    assert_eq!(status, 303);
    assert!(!app.device("carol").state().1, "the owner's flag is reset");
}

fn an_edited_value_and_keep_all(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let first = make_conflict(&app, "carol", "offline");
    let second = make_conflict(&app, "carol", "offline 2");
    let br = Browser::signed_in(&app, "carol");
    let ids = br.conflict_ids();
    let page_of = |asset: &str| {
        ids.iter()
            .map(|id| (id.clone(), br.get(&format!("/conflicts/{id}")).1))
            .find(|(_, p)| p.contains(asset))
            .unwrap()
    };
    let (id, page) = page_of(&first);
    let (status, again, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &br.csrf(&page)),
            ("version", &form_version(&page)),
            ("choice.notes", "edited"),
            ("edited.notes", "both, merged"),
            ("choice.status", "edited"),
            ("edited.status", "fine"),
        ],
    );
    assert_eq!(
        status, 422,
        "an edited value outside the allowed set is refused"
    );
    assert!(again.contains("status must be one of"), "and says why");
    let (status, _, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &br.csrf(&page)),
            ("version", &form_version(&page)),
            ("choice.notes", "edited"),
            ("edited.notes", "both, merged"),
            ("choice.status", "offline"),
        ],
    );
    assert_eq!(status, 303);
    let row = app.row("assets", &first).unwrap();
    assert_eq!(row.fields["notes"].as_deref(), Some("both, merged"));
    assert_eq!(row.fields["status"].as_deref(), Some("broken"));
    let (id, page) = page_of(&second);
    let (status, _, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &br.csrf(&page)),
            ("version", &form_version(&page)),
            ("all", "offline"),
        ],
    );
    assert_eq!(status, 303);
    let row = app.row("assets", &second).unwrap();
    assert_eq!(
        (
            row.fields["notes"].as_deref(),
            row.fields["status"].as_deref()
        ),
        (Some("offline 2"), Some("broken"))
    );
}

fn bulk_resolution_keeps_one_side_for_the_selected(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let assets: Vec<String> = (0..3)
        .map(|n| make_conflict(&app, "carol", &format!("offline {n}")))
        .collect();
    let br = Browser::signed_in(&app, "carol");
    let (_, list) = br.get("/conflicts");
    let ids = br.conflict_ids();
    assert_eq!(ids.len(), 3);
    let keep: Vec<&String> = ids.iter().take(2).collect();
    let mut pairs = vec![("csrf", br.csrf(&list)), ("all", "offline".to_owned())];
    pairs.extend(keep.iter().map(|id| ("ids", (*id).clone())));
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body, location) = br.post("/conflicts/bulk", &refs);
    assert_eq!(status, 303, "{body}");
    assert_eq!(location.as_deref(), Some("/conflicts?resolved=2&skipped=0"));
    let (_, after) = br.get(location.as_deref().unwrap());
    assert!(after.contains("2 resolved."));
    assert_eq!(br.conflict_ids().len(), 1);
    let offline: Vec<_> = assets
        .iter()
        .filter(|a| {
            app.row("assets", a).unwrap().fields["notes"]
                .as_deref()
                .is_some_and(|n| n.starts_with("offline"))
        })
        .collect();
    assert_eq!(offline.len(), 2, "the selected took their offline values");
    assert_eq!(app.device("carol").state(), (None, true, 1));
    // Someone else's conflict cannot be slipped into a bulk post.
    let other = make_conflict(&app, "dave", "theirs");
    let dave = Browser::signed_in(&app, "dave");
    let theirs = dave.conflict_ids().pop().unwrap();
    let (status, _, _) = br.post(
        "/conflicts/bulk",
        &[
            ("csrf", &br.csrf(&list)),
            ("all", "offline"),
            ("ids", &theirs),
        ],
    );
    assert_eq!(status, 404);
    assert_eq!(
        app.row("assets", &other).unwrap().fields["notes"].as_deref(),
        Some("server notes")
    );
}

fn the_list_filters_by_table_and_device_and_history_records_choices(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let asset = make_conflict(&app, "carol", "offline");
    let (_, other_asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&other_asset);
    let mut d = app.device("carol");
    d.sync(&[]);
    let base = d.base("inspections", &inspection);
    app.online_edit("inspections", &inspection, "summary", Some("server"));
    d.sync(&[edit(
        "inspections",
        &inspection,
        &base,
        &[("summary", Some("laptop"))],
    )]);
    let br = Browser::signed_in(&app, "carol");
    assert_eq!(br.conflict_ids().len(), 2);
    let (_, only_inspections) = br.get("/conflicts?table=inspections");
    assert!(only_inspections.contains("1 open conflict"));
    let other_tag = app.row("assets", &other_asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    assert!(
        only_inspections.contains(&format!("asset {other_tag}")),
        "with its parent for context"
    );
    let (_, list) = br.get("/conflicts");
    let devices: Vec<String> = list
        .match_indices("<option value=\"")
        .map(|(i, m)| list[i + m.len()..].split('"').next().unwrap().to_owned())
        .filter(|v| !v.is_empty() && uuid::Uuid::parse_str(v).is_ok())
        .collect();
    assert_eq!(devices.len(), 2, "the person's two devices are offered");
    let counts: Vec<bool> = devices
        .iter()
        .map(|dv| {
            br.get(&format!("/conflicts?device={dv}"))
                .1
                .contains("1 open conflict")
        })
        .collect();
    assert_eq!(
        counts,
        vec![true, true],
        "each device's filter shows its one conflict"
    );
    // Resolve one and find it in the history with the choice and who made it.
    let id = br
        .conflict_ids()
        .into_iter()
        .find(|id| br.get(&format!("/conflicts/{id}")).1.contains(&asset))
        .unwrap();
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &br.csrf(&page)),
            ("version", &form_version(&page)),
            ("choice.notes", "offline"),
            ("choice.status", "server"),
        ],
    );
    let (status, history) = br.get("/resolutions");
    assert_eq!(status, 200);
    assert!(history.contains("notes: offline") && history.contains("status: server"));
    assert!(history.contains("carol"));
    let (_, resolved) = br.get(&format!("/conflicts/{id}"));
    assert!(resolved.contains("has been resolved"));
}

fn a_duplicate_shows_how_the_records_were_joined(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, asset) = app.seed_asset();
    let tag = app.row("assets", &asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    let mut d = app.device("carol");
    let copy = uid();
    d.sync(&[create(
        "assets",
        &copy,
        &[
            ("site_id", Some(&site)),
            ("tag", Some(&tag)),
            ("status", Some("broken")),
            ("notes", Some("n0")),
        ],
    )]);
    let br = Browser::signed_in(&app, "carol");
    let id = br.conflict_ids().pop().unwrap();
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    assert!(page.contains(&copy), "the laptop's id is shown");
    assert!(page.contains("joined"));
    assert!(page.contains("name=\"choice.status\" value=\"offline\""));
    let (status, _, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &br.csrf(&page)),
            ("version", &form_version(&page)),
            ("choice.status", "offline"),
            ("choice.description", "server"),
        ],
    );
    assert_eq!(status, 303);
    let row = app.row("assets", &asset).unwrap();
    assert_eq!(
        (
            row.fields["status"].as_deref(),
            row.fields["description"].as_deref()
        ),
        (Some("broken"), Some("Pump"))
    );
}

fn the_banner_is_on_every_page_while_conflicts_wait(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let asset = make_conflict(&app, "carol", "offline");
    let br = Browser::signed_in(&app, "carol");
    for path in [
        "/sites",
        "/devices",
        "/resolutions",
        &format!("/assets/{asset}"),
    ] {
        let (_, page) = br.get(path);
        assert!(
            page.contains("1 conflict waits for you"),
            "{path} has no banner"
        );
        assert!(page.contains("href=\"/conflicts\""));
    }
    let id = br.conflict_ids().pop().unwrap();
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &br.csrf(&page)),
            ("version", &form_version(&page)),
            ("all", "server"),
        ],
    );
    let (_, page) = br.get("/sites");
    assert!(!page.contains("waits for you"), "gone after the last one");
}
