//! Roles (issue 12): administrators do everything; the office edits every field and
//! creates everything but deletes only what a laptop may; engineers on the main site may do
//! what a laptop may do. Each checked as a browser meets it: what the page offers, and what
//! a hand-made post gets.

use offsync::accounts::Role;

use crate::helpers::*;
use crate::on_both;

on_both!(
    the_office_edits_every_field_but_deletes_no_site_or_asset,
    an_engineer_online_may_do_what_a_laptop_may,
    an_administrator_deletes_a_site,
    a_deleted_site_comes_back_with_what_went_with_it,
);

/// Posts `fields` to a record's edit form, as the form is (its version and CSRF token).
fn save(br: &Browser, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let (status, form) = br.get(&format!("{path}/edit"));
    assert_eq!(status, 200, "{form}");
    let csrf = br.csrf(&form);
    let version = form_version(&form);
    let mut pairs = vec![("csrf", csrf.as_str()), ("version", version.as_str())];
    pairs.extend_from_slice(fields);
    let (status, page, _) = br.post(&format!("{path}/edit"), &pairs);
    (status, page)
}

/// Posts a delete as its confirmation page would, or (where that page is refused) as a
/// hand-made post with the record page's CSRF token.
fn delete(br: &Browser, path: &str) -> u16 {
    let (status, confirm) = br.get(&format!("{path}/delete"));
    let (_, page) = br.get(path);
    let csrf = br.csrf(&page);
    let version = match status {
        200 => form_version(&confirm),
        _ => "0".into(),
    };
    br.post(
        &format!("{path}/delete"),
        &[("csrf", &csrf), ("version", &version)],
    )
    .0
}

fn the_office_edits_every_field_but_deletes_no_site_or_asset(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user_as("olga", "password", Role::Office);
    let (site, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let br = Browser::signed_in(&app, "olga");
    let (status, _) = save(&br, &format!("/assets/{asset}"), &[("tag", "RENAMED-1")]);
    assert_eq!(status, 303);
    assert_eq!(
        app.row("assets", &asset).expect("the asset").fields["tag"].as_deref(),
        Some("RENAMED-1"),
        "the office edits a field a laptop may not"
    );
    let (_, page) = br.get(&format!("/sites/{site}"));
    assert!(
        !page.contains(&format!("/sites/{site}/delete")),
        "no Delete offered"
    );
    assert_eq!(br.get(&format!("/sites/{site}/delete")).0, 403);
    assert_eq!(delete(&br, &format!("/sites/{site}")), 403);
    assert_eq!(delete(&br, &format!("/assets/{asset}")), 403);
    assert!(app.row("sites", &site).is_some() && app.row("assets", &asset).is_some());
    assert_eq!(delete(&br, &format!("/inspections/{inspection}")), 303);
    assert!(app.row("inspections", &inspection).is_none());
}

fn an_engineer_online_may_do_what_a_laptop_may(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user_as("erin", "password", Role::Engineer);
    let (site, asset) = app.seed_asset();
    let br = Browser::signed_in(&app, "erin");
    let (_, form) = br.get(&format!("/assets/{asset}/edit"));
    assert!(
        form.contains("name=\"notes\""),
        "notes are a laptop's to edit"
    );
    assert!(
        !form.contains("name=\"tag\"") && form.contains("Changed by the office only."),
        "the tag is shown, not offered for editing: {form}"
    );
    let before = app.row("assets", &asset).expect("the asset");
    let (status, _) = save(
        &br,
        &format!("/assets/{asset}"),
        &[("tag", "HIJACKED"), ("notes", "seen on site")],
    );
    assert_eq!(status, 303);
    let after = app.row("assets", &asset).expect("the asset");
    assert_eq!(after.fields["notes"].as_deref(), Some("seen on site"));
    assert_eq!(
        after.fields["tag"], before.fields["tag"],
        "a hand-made post changes no tag"
    );
    // Creates what a laptop creates (filling it whole); not sites.
    let (_, list) = br.get("/sites");
    assert!(!list.contains("/sites/new"), "no New site offered");
    assert_eq!(br.get("/sites/new").0, 403);
    let (_, new_form) = br.get(&format!("/inspections/new?parent={asset}"));
    let csrf = br.csrf(&new_form);
    let tag = before.fields["tag"].clone().unwrap_or_default();
    let (status, page, _) = br.post(
        "/inspections/new",
        &[
            ("csrf", &csrf),
            ("asset_id", &tag),
            ("inspected_at", "2026-12-02T09:00:00Z"),
            ("inspector", "Erin"),
            ("result", "pass"),
            ("summary", "all good"),
        ],
    );
    assert_eq!(status, 303, "{page}");
    // Deletes nothing a laptop may not.
    assert_eq!(delete(&br, &format!("/assets/{asset}")), 403);
    assert_eq!(delete(&br, &format!("/sites/{site}")), 403);
}

fn an_administrator_deletes_a_site(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user_as("ada", "password", Role::Administrator);
    let (site, asset) = app.seed_asset();
    let br = Browser::signed_in(&app, "ada");
    let (_, page) = br.get(&format!("/sites/{site}"));
    assert!(
        page.contains(&format!("/sites/{site}/delete")),
        "Delete offered"
    );
    let (_, confirm) = br.get(&format!("/sites/{site}/delete"));
    let (status, _, _) = br.post(
        &format!("/sites/{site}/delete"),
        &[
            ("csrf", &br.csrf(&confirm)),
            ("version", &form_version(&confirm)),
        ],
    );
    assert_eq!(status, 303);
    assert!(app.row("sites", &site).is_none() && app.row("assets", &asset).is_none());
}

fn a_deleted_site_comes_back_with_what_went_with_it(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user_as("ada", "password", Role::Administrator);
    app.add_user_as("olga", "password", Role::Office);
    let (site, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let earlier = app.seed_readings(&inspection, 1).remove(0);
    let mut laptop = app.device("olga");
    laptop.sync(&[]);
    // One reading deleted on its own first: not part of the site's delete.
    app.online_delete("readings", &earlier);
    let br = Browser::signed_in(&app, "ada");
    let (_, confirm) = br.get(&format!("/sites/{site}/delete"));
    let (status, _, _) = br.post(
        &format!("/sites/{site}/delete"),
        &[
            ("csrf", &br.csrf(&confirm)),
            ("version", &form_version(&confirm)),
        ],
    );
    assert_eq!(status, 303);
    assert!(app.row("sites", &site).is_none() && app.row("readings", &reading).is_none());
    laptop.sync(&[]);

    assert_eq!(Browser::signed_in(&app, "olga").get("/deleted").0, 403);
    let (status, page) = br.get("/deleted");
    assert_eq!(status, 200);
    assert!(
        page.contains("1 record under it"),
        "the asset went with the site: {page}"
    );
    // The asset alone cannot come back while its site is deleted.
    let (status, page, _) = br.post(
        &format!("/deleted/assets/{asset}/restore"),
        &[("csrf", &br.csrf(&page))],
    );
    assert_eq!(status, 409);
    assert!(page.contains("restore that first"), "{page}");
    let (status, _, to) = br.post(
        &format!("/deleted/sites/{site}/restore"),
        &[("csrf", &br.csrf(&page))],
    );
    assert_eq!((status, to), (303, Some(format!("/sites/{site}"))));
    for (table, id) in [
        ("sites", &site),
        ("assets", &asset),
        ("inspections", &inspection),
        ("readings", &reading),
    ] {
        assert!(app.row(table, id).is_some(), "{table} {id} is back");
    }
    assert!(
        app.row("readings", &earlier).is_none(),
        "what was deleted on its own stays deleted"
    );
    // The laptop gets them back as new writes.
    let (_, download) = laptop.sync(&[]);
    for (table, id) in [("sites", &site), ("assets", &asset), ("readings", &reading)] {
        assert!(
            download.record(table, id).is_some(),
            "{table} {id} sent again"
        );
    }
    let (_, page) = br.get("/deleted");
    assert!(
        !page.contains(&format!("/deleted/sites/{site}/restore")),
        "{page}"
    );
}
