//! Issue 10's failures, each as the people meet it: the main site's pages, the device API,
//! and real laptops (their own SQLite databases, the real sync client). Each failed before
//! the rules of the data got one home, and passes now.

use offsync::domain::{TABLES, table_by_name};
use offsync::offline::store;

use crate::helpers::*;
use crate::laptop::Laptop;
use crate::on_both;

on_both!(
    a_save_writes_only_the_fields_it_touched,
    a_laptop_edit_uploads_only_the_fields_it_touched,
    a_save_over_another_change_merges_fields_nobody_shares,
    a_reading_under_an_inspection_the_office_deleted_is_a_conflict_not_a_wedge,
    a_held_create_left_out_is_removed_from_the_laptop,
    an_untrimmed_value_offline_may_not_edit_never_wedges_later_edits,
    a_stale_delete_brings_the_row_back_with_its_children,
    conflicts_whose_row_changed_since_can_be_closed,
    a_stale_delete_of_a_row_deleted_since_can_be_closed,
    the_server_side_names_who_made_its_value,
    characters_xml_cannot_carry_are_refused_where_they_enter,
    a_delete_and_edits_of_its_subtree_in_one_upload_mean_what_was_done,
    a_retried_upload_that_joined_two_creates_is_accepted,
    a_delete_without_base_is_refused,
    the_rules_agree_on_every_path,
    a_refused_change_is_held_and_the_rest_syncs,
    every_refusal_that_names_a_row_has_a_way_out,
    an_unreadable_change_log_entry_stops_the_sync_loudly,
    one_sync_at_a_time_per_laptop,
);

/// An asset whose description is "" and whose notes span lines with spaces around.
fn seed_awkward_asset(app: &TestApp) -> String {
    let (_, asset) = app.seed_asset();
    app.import(&doc(&[create(
        "assets",
        &asset,
        &[
            ("description", Some("")),
            ("notes", Some("  first line\nsecond line  ")),
        ],
    )]));
    asset
}

fn a_save_writes_only_the_fields_it_touched(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("office", "password", false);
    let asset = seed_awkward_asset(&app);
    let br = Browser::signed_in(&app, "office");
    let path = format!("/assets/{asset}/edit");
    let (_, page) = br.get(&path);
    let mut pairs = form_as_sent(&page);
    assert!(
        pairs.iter().any(|(k, _)| k == "was.notes"),
        "the form remembers what it showed"
    );
    set_field(&mut pairs, "status", "broken");
    let (status, _) = post_form(&br, &path, &pairs);
    assert_eq!(status, 303);
    let row = app.row("assets", &asset).unwrap();
    assert_eq!(row.fields["status"].as_deref(), Some("broken"));
    assert_eq!(
        row.fields["description"].as_deref(),
        Some(""),
        "\"\" stays \"\", not NULL"
    );
    assert_eq!(
        row.fields["notes"].as_deref(),
        Some("  first line\nsecond line  "),
        "untouched notes keep their spaces and line breaks"
    );
    // Clearing a field is a change: an empty nullable field is NULL.
    let (_, page) = br.get(&path);
    let mut pairs = form_as_sent(&page);
    set_field(&mut pairs, "notes", "");
    assert_eq!(post_form(&br, &path, &pairs).0, 303);
    assert_eq!(app.row("assets", &asset).unwrap().fields["notes"], None);
}

fn a_laptop_edit_uploads_only_the_fields_it_touched(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let asset = seed_awkward_asset(&app);
    let laptop = Laptop::new(&app, "jo");
    laptop.sync();
    // The laptop's form sends every field back, textareas with CR LF.
    laptop.edit(
        "assets",
        &asset,
        &[
            ("status", "degraded"),
            ("description", ""),
            ("notes", "  first line\r\nsecond line  "),
        ],
    );
    // Meanwhile the office edits the notes.
    app.online_edit("assets", &asset, "notes", Some("office notes"));
    let s = laptop.sync();
    assert_eq!(
        s.conflicts, 0,
        "no conflict on a field the engineer never touched"
    );
    let row = app.row("assets", &asset).unwrap();
    assert_eq!(row.fields["status"].as_deref(), Some("degraded"));
    assert_eq!(row.fields["notes"].as_deref(), Some("office notes"));
    assert_eq!(row.fields["description"].as_deref(), Some(""));
    assert_eq!(
        laptop.value("assets", &asset, "notes"),
        Some(Some("office notes".into()))
    );
}

fn a_save_over_another_change_merges_fields_nobody_shares(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    app.add_user("office", "password", false);
    let (_, asset) = app.seed_asset();
    let br = Browser::signed_in(&app, "office");
    let path = format!("/assets/{asset}/edit");
    let (_, page) = br.get(&path);
    let mut pairs = form_as_sent(&page);
    app.online_edit("assets", &asset, "notes", Some("changed meanwhile"));
    set_field(&mut pairs, "status", "broken");
    let (status, _) = post_form(&br, &path, &pairs);
    assert_eq!(
        status, 303,
        "the other change touched another field: both stand"
    );
    let row = app.row("assets", &asset).unwrap();
    assert_eq!(
        (
            row.fields["status"].as_deref(),
            row.fields["notes"].as_deref()
        ),
        (Some("broken"), Some("changed meanwhile"))
    );
    // Both change the notes: the form comes back, untouched fields at the server's values.
    let (_, page) = br.get(&path);
    let mut pairs = form_as_sent(&page);
    app.online_edit("assets", &asset, "notes", Some("theirs"));
    app.online_edit("assets", &asset, "description", Some("their description"));
    set_field(&mut pairs, "notes", "mine");
    let (status, page) = post_form(&br, &path, &pairs);
    assert_eq!(status, 409);
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("theirs")
    );
    assert!(
        page.contains("their description"),
        "an untouched field shows the server's value"
    );
    let again = form_as_sent(&page);
    let notes = again.iter().find(|(k, _)| k == "notes").unwrap();
    assert_eq!(notes.1, "mine", "a touched field keeps the person's value");
    let (status, _) = post_form(&br, &path, &again);
    assert_eq!(status, 303);
    let row = app.row("assets", &asset).unwrap();
    assert_eq!(
        (
            row.fields["notes"].as_deref(),
            row.fields["description"].as_deref()
        ),
        (Some("mine"), Some("their description")),
        "saving again writes the touched field only"
    );
}

/// Resolves the signed-in user's only conflict with `choice.row`.
fn resolve_row(br: &Browser, choice: &str) -> String {
    let id = br.conflict_ids().pop().expect("a conflict");
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    let (status, answer, _) = br.post(
        &format!("/conflicts/{id}"),
        &[
            ("csrf", &br.csrf(&page)),
            (
                "version",
                &attr_after(&page, "name=\"version\"", "value").unwrap_or_default(),
            ),
            ("choice.row", choice),
        ],
    );
    assert_eq!(status, 303, "{answer}");
    page
}

/// A laptop that adds a reading to an inspection the office deletes meanwhile; returns
/// the laptop, the asset, the inspection, its first reading and the added one.
fn reading_under_a_deleted_inspection(app: &TestApp) -> (Laptop, String, String, String, String) {
    let (_, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let laptop = Laptop::new(app, "jo");
    laptop.sync();
    app.online_delete("inspections", &inspection);
    let added = laptop.create(
        "readings",
        &[
            ("inspection_id", &inspection),
            ("kind", "flow"),
            ("value", "12.5"),
            ("unit", "l/s"),
        ],
    );
    (laptop, asset, inspection, reading, added)
}

fn a_reading_under_an_inspection_the_office_deleted_is_a_conflict_not_a_wedge(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (laptop, asset, inspection, reading, added) = reading_under_a_deleted_inspection(&app);
    laptop.edit("assets", &asset, &[("status", "broken")]);
    let s = laptop.sync();
    assert_eq!(
        s.conflicts, 1,
        "the reading waits in a conflict; the sync completes"
    );
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["status"].as_deref(),
        Some("broken"),
        "the engineer's other change is applied"
    );
    assert!(app.row("readings", &added).is_none());
    assert_eq!(laptop.sync().conflicts, 0, "and later syncs go through");
    // The engineer keeps the reading: its inspection comes back, and the reading with it.
    let br = Browser::signed_in(&app, "jo");
    let page = resolve_row(&br, "offline");
    assert!(
        page.contains("Keep it, restoring"),
        "the page says what each choice does"
    );
    assert!(
        app.row("inspections", &inspection).is_some(),
        "the parent is restored"
    );
    assert_eq!(
        app.row("readings", &added).unwrap().fields["value"].as_deref(),
        Some("12.5")
    );
    assert!(br.conflict_ids().is_empty());
    let d = app.device("jo");
    assert!(!d.state().1, "the flag is cleared");
    laptop.sync();
    assert!(laptop.exists("inspections", &inspection));
    assert!(laptop.exists("readings", &added));
    assert!(
        !laptop.exists("readings", &reading),
        "the office's delete of the rest stands"
    );
}

fn a_held_create_left_out_is_removed_from_the_laptop(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (laptop, _, inspection, _, added) = reading_under_a_deleted_inspection(&app);
    assert_eq!(laptop.sync().conflicts, 1);
    assert!(
        !laptop.exists("readings", &added),
        "it went from the laptop with its inspection; it waits in the conflict"
    );
    assert_eq!(laptop.sync().conflicts, 0);
    let br = Browser::signed_in(&app, "jo");
    assert_eq!(br.conflict_ids().len(), 1, "one open conflict per row");
    resolve_row(&br, "server");
    assert!(app.row("readings", &added).is_none());
    assert!(app.row("inspections", &inspection).is_none());
    laptop.sync();
    assert!(
        !laptop.exists("readings", &added),
        "the laptop drops what was left out"
    );
    assert_eq!(laptop.pending(), 0);
}

fn an_untrimmed_value_offline_may_not_edit_never_wedges_later_edits(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let laptop = Laptop::new(&app, "jo");
    laptop.sync();
    let inspection = laptop.create(
        "inspections",
        &[
            (
                "asset_id",
                &app.row("assets", &asset).unwrap().fields["tag"]
                    .clone()
                    .unwrap(),
            ),
            ("inspected_at", "2026-11-21T09:00:00Z"),
            ("inspector", " Jo Bloggs "),
            ("result", "pass"),
        ],
    );
    laptop.sync();
    assert_eq!(
        app.row("inspections", &inspection).unwrap().fields["inspector"].as_deref(),
        Some(" Jo Bloggs "),
        "prose is kept as typed"
    );
    // The laptop's form sends every field back; only the summary was touched.
    laptop.edit(
        "inspections",
        &inspection,
        &[
            ("inspector", " Jo Bloggs "),
            ("result", "fail"),
            ("summary", "seal worn"),
        ],
    );
    let s = laptop.sync();
    assert_eq!((s.uploaded, s.conflicts), (1, 0));
    let row = app.row("inspections", &inspection).unwrap();
    assert_eq!(row.fields["summary"].as_deref(), Some("seal worn"));
    assert_eq!(row.fields["inspector"].as_deref(), Some(" Jo Bloggs "));
}

fn a_stale_delete_brings_the_row_back_with_its_children(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, first) = app.seed_inspection(&asset);
    let second = app.seed_readings(&inspection, 1).remove(0);
    let laptop = Laptop::new(&app, "jo");
    laptop.sync();
    app.online_edit("inspections", &inspection, "summary", Some("office edit"));
    laptop.delete("inspections", &inspection);
    assert!(!laptop.exists("readings", &first));
    assert_eq!(laptop.sync().conflicts, 1, "the stale delete is a conflict");
    for (t, id) in [
        ("inspections", &inspection),
        ("readings", &first),
        ("readings", &second),
    ] {
        assert!(laptop.exists(t, id), "{t} {id} is back on the laptop");
    }
    // The conflict page shows what the office changed before anyone decides.
    let br = Browser::signed_in(&app, "jo");
    let page = resolve_row(&br, "server");
    assert!(
        page.contains("office edit"),
        "the server's version is shown: {page}"
    );
    assert_eq!(
        page.matches("changed since</strong>").count(),
        1,
        "the one field the office changed since the laptop saw it is marked: {page}"
    );
    laptop.sync();
    for (t, id) in [
        ("inspections", &inspection),
        ("readings", &first),
        ("readings", &second),
    ] {
        assert!(
            laptop.exists(t, id),
            "{t} {id} is still there after the resolution"
        );
    }
    assert_eq!(
        laptop.snapshot().len(),
        5,
        "site, asset, inspection, two readings"
    );
}

/// A field conflict on an asset's notes for `user`, through the device API.
fn field_conflict(app: &TestApp, user: &str) -> (String, Device) {
    let (_, asset) = app.seed_asset();
    let mut d = app.device(user);
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("office"));
    let s = d.open();
    let (_, _, conflicts, _) = d.upload(
        &s.id,
        &[record(
            "assets",
            &asset,
            Some(&base),
            &[("notes", Some("laptop"), Some(Some("n0")))],
        )],
    );
    assert_eq!(conflicts, 1);
    d.complete(&s.id);
    (asset, d)
}

fn conflicts_whose_row_changed_since_can_be_closed(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (asset, d) = field_conflict(&app, "jo");
    app.online_delete("assets", &asset);
    let br = Browser::signed_in(&app, "jo");
    let id = br.conflict_ids().pop().unwrap();
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    assert!(
        page.contains("the record was deleted by"),
        "the page says what happened: {page}"
    );
    assert!(
        page.contains("name=\"choice.row\""),
        "and asks what still makes sense"
    );
    // Restore it with the offline values.
    resolve_row(&br, "offline");
    let row = app.row("assets", &asset).expect("restored");
    assert_eq!(row.fields["notes"].as_deref(), Some("laptop"));
    assert!(!d.state().1, "the banner goes: no open conflict");

    // The same, keeping it deleted.
    let (asset, d) = field_conflict(&app, "kim");
    app.online_delete("assets", &asset);
    let br = Browser::signed_in(&app, "kim");
    resolve_row(&br, "server");
    assert!(app.row("assets", &asset).is_none());
    assert!(!d.state().1);
}

fn a_stale_delete_of_a_row_deleted_since_can_be_closed(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let mut d = app.device("jo");
    d.sync(&[]);
    let base = d.base("inspections", &inspection);
    app.online_edit("inspections", &inspection, "summary", Some("office"));
    let s = d.open();
    assert_eq!(
        d.upload(&s.id, &[delete("inspections", &inspection, &base)])
            .2,
        1
    );
    d.complete(&s.id);
    app.online_delete("inspections", &inspection);
    let br = Browser::signed_in(&app, "jo");
    let page = resolve_row(&br, "offline");
    assert!(page.contains("Keep it deleted"), "{page}");
    assert!(app.row("inspections", &inspection).is_none());
    assert!(br.conflict_ids().is_empty());
    assert!(!d.state().1);
}

fn the_server_side_names_who_made_its_value(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("jo");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("office"));
    let s = d.open();
    let (applied, _, conflicts, _) = d.upload(
        &s.id,
        &[record(
            "assets",
            &asset,
            Some(&base),
            &[
                ("status", Some("broken"), Some(Some("ok"))),
                ("notes", Some("laptop"), Some(Some("n0"))),
            ],
        )],
    );
    assert_eq!(
        (applied, conflicts),
        (0, 1),
        "one row: its status applied, its notes in conflict"
    );
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["status"].as_deref(),
        Some("broken")
    );
    let br = Browser::signed_in(&app, "jo");
    let id = br.conflict_ids().pop().unwrap();
    let (_, page) = br.get(&format!("/conflicts/{id}"));
    assert!(page.contains("Last changed by offsync import"), "{page}");
}

fn characters_xml_cannot_carry_are_refused_where_they_enter(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("jo");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    for bad in ["&#1;", "&#xFFFE;", "a&#x1B;[31mred"] {
        let s = d.open();
        let xml = doc(&[format!(
            r#"<record table="assets" id="{asset}" base="{base}"><field name="notes" was="n0">{bad}</field></record>"#
        )]);
        let answer = d.upload_raw(&s.id, &xml);
        answer.assert_error(422, Some("assets"), Some(&asset), Some("notes"));
        assert_eq!(
            answer.attr("code").as_deref(),
            Some("invalid-character"),
            "{}",
            answer.body
        );
    }
    app.add_user("office", "password", false);
    let br = Browser::signed_in(&app, "office");
    let path = format!("/assets/{asset}/edit");
    let (_, page) = br.get(&path);
    let mut pairs = form_as_sent(&page);
    set_field(&mut pairs, "notes", "nul\0inside");
    let (status, page) = post_form(&br, &path, &pairs);
    assert_eq!(status, 422);
    assert!(page.contains("U+0000"), "the message names the character");
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("n0")
    );
    // Every download stays well-formed: a laptop still syncs.
    Laptop::new(&app, "jo").sync();
}

fn a_delete_and_edits_of_its_subtree_in_one_upload_mean_what_was_done(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let mut d = app.device("jo");
    d.sync(&[]);
    let ib = d.base("inspections", &inspection);
    let rb = d.base("readings", &reading);
    let added = uid();
    let items = [
        delete("inspections", &inspection, &ib),
        record(
            "readings",
            &reading,
            Some(&rb),
            &[("value", Some("9"), Some(Some("4.2")))],
        ),
        create("readings", &added, &reading_fields(&inspection)),
    ];
    let s = d.open();
    let (applied, unchanged, conflicts, _) = d.upload(&s.id, &items);
    assert_eq!(
        conflicts, 0,
        "no conflict between the laptop's own edit and its own delete"
    );
    assert_eq!(applied + unchanged, 3);
    d.complete(&s.id);
    for (t, id) in [
        ("inspections", &inspection),
        ("readings", &reading),
        ("readings", &added),
    ] {
        assert!(
            app.row(t, id).is_none(),
            "{t} {id} went with its inspection"
        );
    }
    // Its retry after a lost answer is judged again, never refused.
    let s = d.open();
    let (_, _, conflicts, _) = d.upload(&s.id, &items);
    assert_eq!(conflicts, 0);
}

fn a_retried_upload_that_joined_two_creates_is_accepted(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, _) = app.seed_asset();
    let tag = app.uniq("TWICE");
    let (a, bee) = (uid(), uid());
    let asset = |id: &str| {
        create(
            "assets",
            id,
            &[
                ("site_id", Some(&site)),
                ("tag", Some(&tag)),
                ("status", Some("ok")),
            ],
        )
    };
    let items = [asset(&a), asset(&bee)];
    let d = app.device("jo");
    let s = d.open();
    let (applied, unchanged, _, _) = d.upload(&s.id, &items);
    assert_eq!(
        (applied, unchanged),
        (1, 1),
        "the second is joined to the first"
    );
    // The answer was lost: the same upload in a new session.
    let s = d.open();
    let answer = d.upload_raw(&s.id, &doc(&items));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (applied, unchanged, conflicts, _) = counts(&answer);
    assert_eq!((applied, unchanged, conflicts), (0, 2, 0));
}

fn a_delete_without_base_is_refused(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let d = app.device("jo");
    let s = d.open();
    let answer = d.upload_raw(
        &s.id,
        &doc(&[format!(
            r#"<delete table="inspections" id="{inspection}"/>"#
        )]),
    );
    answer.assert_error(422, Some("inspections"), Some(&inspection), None);
    assert_eq!(answer.attr("code").as_deref(), Some("missing-base"));
    assert!(
        app.row("inspections", &inspection).is_some(),
        "nothing was deleted"
    );
}

fn the_rules_agree_on_every_path(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, asset) = app.seed_asset();
    let tag = app.row("assets", &asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    // A device's " TAG " is the office's TAG: one asset.
    let mut d = app.device("jo");
    let made = uid();
    let s = d.open();
    let padded = format!("{tag} ");
    d.upload(
        &s.id,
        &[create(
            "assets",
            &made,
            &[
                ("site_id", Some(&site)),
                ("tag", Some(&padded)),
                ("status", Some("ok")),
            ],
        )],
    );
    let dl = d.download(&s.id);
    assert_eq!(
        dl.aliases(),
        vec![(made.clone(), asset.clone())],
        "joined by its trimmed key"
    );
    // One length limit on every path: the upload refuses what the form refuses.
    let long = "x".repeat(10_001);
    let base = d.base("assets", &asset);
    let s = d.open();
    let answer = d.upload_raw(
        &s.id,
        &doc(&[record(
            "assets",
            &asset,
            Some(&base),
            &[("notes", Some(&long), Some(Some("n0")))],
        )]),
    );
    answer.assert_error(422, Some("assets"), Some(&asset), Some("notes"));
    assert_eq!(answer.attr("code").as_deref(), Some("value-too-long"));
    // The laptop compares numbers as numbers: 4.2 against the server's 4.20 is no mark.
    let (inspection, reading) = app.seed_inspection(&asset);
    let _ = inspection;
    let laptop = Laptop::new(&app, "kim");
    laptop.sync();
    app.online_edit("readings", &reading, "value", Some("4.20"));
    laptop.edit("readings", &reading, &[("value", "4.2"), ("unit", "kPa")]);
    laptop.sync();
    laptop.sync();
    assert!(
        store::conflicts(&mut laptop.pool.get().unwrap())
            .unwrap()
            .is_empty(),
        "no difference marked between 4.2 and 4.20"
    );
}

/// Change-log entries an older laptop (or a damaged one) could hold, each refused by the
/// server with its own 422: each is held, the rest syncs, and discarding it frees the laptop.
fn every_refusal_that_names_a_row_has_a_way_out(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let laptop = Laptop::new(&app, "jo");
    laptop.sync();
    let readings = table_by_name("readings").unwrap();
    let sites = table_by_name("sites").unwrap();
    let log = |table, id: &str, kind, base, fields: Vec<(&str, Option<&str>, Option<&str>)>| {
        let fields: Vec<store::FieldLog> = fields
            .into_iter()
            .map(|(f, v, w)| store::FieldLog {
                field: f.into(),
                value: v.map(str::to_owned),
                was: w.map(str::to_owned),
            })
            .collect();
        store::log_change(
            &mut laptop.pool.get().unwrap(),
            table,
            id,
            kind,
            base,
            &fields,
            1,
        )
        .unwrap();
    };
    let base = laptop.version("readings", &reading);
    // (the code the server answers, how the entry is made)
    /// Makes the entry; returns the row it names.
    type Entry<'a> = Box<dyn Fn() -> String + 'a>;
    let cases: Vec<(&str, Entry<'_>)> = vec![
        (
            "invalid-character",
            Box::new(|| {
                log(
                    readings,
                    &reading,
                    store::ChangeKind::Edit,
                    Some(base),
                    vec![("unit", Some("b\u{1}r"), Some("bar"))],
                );
                reading.clone()
            }),
        ),
        (
            "missing-field",
            Box::new(|| {
                let id = uid();
                log(
                    readings,
                    &id,
                    store::ChangeKind::Create,
                    None,
                    vec![
                        ("inspection_id", Some(&inspection), None),
                        ("kind", Some("flow"), None),
                    ],
                );
                id
            }),
        ),
        (
            "create-not-allowed",
            Box::new(|| {
                let id = uid();
                log(
                    sites,
                    &id,
                    store::ChangeKind::Create,
                    None,
                    vec![("code", Some("NEW"), None), ("name", Some("New"), None)],
                );
                id
            }),
        ),
        (
            "missing-parent",
            Box::new(|| {
                let id = uid();
                let nowhere = uid();
                log(
                    readings,
                    &id,
                    store::ChangeKind::Create,
                    None,
                    vec![
                        ("inspection_id", Some(&nowhere), None),
                        ("kind", Some("flow"), None),
                        ("value", Some("1"), None),
                    ],
                );
                id
            }),
        ),
    ];
    for (code, make) in cases {
        let row = make();
        laptop.edit("assets", &asset, &[("notes", code)]);
        let s = laptop.sync();
        assert_eq!(s.held, 1, "{code}: held, not a failed sync");
        let held = store::held(&mut laptop.pool.get().unwrap()).unwrap();
        assert_eq!(
            (held[0].code.as_str(), held[0].row_id.as_str()),
            (code, row.as_str())
        );
        assert_eq!(
            app.row("assets", &asset).unwrap().fields["notes"].as_deref(),
            Some(code),
            "{code}: the rest synced"
        );
        let t = table_by_name(&held[0].table_name).unwrap();
        offsync::editing::discard(&mut laptop.pool.get().unwrap(), t, &row).unwrap();
        assert_eq!(laptop.pending(), 0, "{code}: discarded");
        assert_eq!(laptop.sync().held, 0, "{code}: the laptop is free again");
    }
}

fn a_refused_change_is_held_and_the_rest_syncs(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let laptop = Laptop::new(&app, "jo");
    laptop.sync();
    // Two changes an older laptop could have logged that the server refuses: a value over
    // the limit, and an edit of a row the server never had.
    laptop.edit("readings", &reading, &[("unit", "psi")]);
    let ghost = uid();
    {
        let mut c = laptop.pool.get().unwrap();
        offsync::db::Sql::new(format!(
            "UPDATE offline_changes SET fields = '[{{\"field\":\"unit\",\"value\":\"{}\",\"was\":\"bar\"}}]'",
            "u".repeat(10_001)
        ))
        .execute(&mut c)
        .unwrap();
        let t = table_by_name("readings").unwrap();
        offsync::db::repo::rows::insert(
            &mut c,
            t,
            &[(
                ghost.clone(),
                vec![
                    Some(inspection.clone()),
                    Some("k".into()),
                    Some("1".into()),
                    None,
                ],
                5,
            )],
            "laptop",
        )
        .unwrap();
        store::log_change(
            &mut c,
            t,
            &ghost,
            store::ChangeKind::Edit,
            Some(5),
            &[store::FieldLog {
                field: "value".into(),
                value: Some("2".into()),
                was: Some("1".into()),
            }],
            1,
        )
        .unwrap();
    }
    laptop.edit("assets", &asset, &[("status", "broken")]);
    let s = laptop.sync();
    assert_eq!(s.held, 2, "both refused changes are held on the laptop");
    assert!(
        s.to_string().contains("2 change(s) refused by the server"),
        "{s}"
    );
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["status"].as_deref(),
        Some("broken"),
        "the rest synced"
    );
    let held = store::held(&mut laptop.pool.get().unwrap()).unwrap();
    let mut codes: Vec<&str> = held.iter().map(|h| h.code.as_str()).collect();
    codes.sort();
    assert_eq!(codes, vec!["unknown-row", "value-too-long"]);
    assert!(laptop.pending() >= 2, "held changes are not forgotten");
    // The laptop's page says which and why, in words, with a way out for each.
    let server = laptop_pages(&laptop);
    let br = Browser::at(&server.base);
    let (_, page) = br.get("/conflicts");
    assert!(page.contains("Refused by the server"), "{page}");
    assert!(
        page.contains("is longer than 10000 characters") || page.contains("longer than"),
        "{page}"
    );
    assert!(page.contains("reading"), "the record is named");
    for h in &held {
        let (status, _, _) = br.post(
            "/changes/discard",
            &[
                ("csrf", &br.csrf(&page)),
                ("table", &h.table_name),
                ("id", &h.row_id),
            ],
        );
        assert_eq!(status, 303);
    }
    assert!(
        store::held(&mut laptop.pool.get().unwrap())
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        laptop.value("readings", &reading, "unit"),
        Some(Some("bar".into())),
        "back as the server has it"
    );
    assert_eq!(laptop.pending(), 0);
    assert_eq!(laptop.sync().held, 0);
}

/// The laptop copy's pages over this laptop's database.
fn laptop_pages(laptop: &Laptop) -> TestApp {
    TestApp::offline_over(laptop.pool.clone(), laptop.upstream.clone())
}

fn an_unreadable_change_log_entry_stops_the_sync_loudly(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let laptop = Laptop::new(&app, "jo");
    laptop.sync();
    laptop.edit("assets", &asset, &[("status", "broken")]);
    let mut c = laptop.pool.get().unwrap();
    offsync::db::Sql::new("UPDATE offline_changes SET fields = 'not json'")
        .execute(&mut c)
        .unwrap();
    let err = offsync::offline::sync::sync(
        &laptop.pool,
        &laptop.upstream,
        &offsync::offline::sync::Quiet,
    )
    .expect_err("the sync stops");
    let message = err.to_string();
    assert!(
        message.contains("cannot be read") && message.contains(&asset),
        "{message}"
    );
    assert_eq!(laptop.pending(), 1, "nothing is dropped");
}

fn one_sync_at_a_time_per_laptop(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let laptop = Laptop::new(&app, "jo");
    laptop.sync();
    // Another process holds the laptop's sync lock (a sync hanging on a slow line).
    let file = {
        let mut c = laptop.pool.get().unwrap();
        #[derive(diesel::QueryableByName)]
        struct F {
            #[diesel(sql_type = diesel::sql_types::Text)]
            file: String,
        }
        offsync::db::Sql::new("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .first::<F>(&mut c)
            .unwrap()
            .unwrap()
            .file
    };
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("{file}.sync-lock"))
        .unwrap();
    lock.lock().unwrap();
    let err = offsync::offline::sync::sync(
        &laptop.pool,
        &laptop.upstream,
        &offsync::offline::sync::Quiet,
    )
    .expect_err("a second sync does not run");
    assert_eq!(err.to_string(), "a sync is already running on this laptop");
    drop(lock);
    // A download older than what the laptop holds never replaces it.
    app.online_edit("assets", &asset, "notes", Some("v2"));
    let d = app.device("kim");
    let s = d.open();
    let older = d.download_raw(&s.id).bytes; // taken now, applied after a newer sync
    app.online_edit("assets", &asset, "notes", Some("v3"));
    laptop.sync();
    assert_eq!(
        laptop.value("assets", &asset, "notes"),
        Some(Some("v3".into()))
    );
    offsync::offline::sync::apply_changeset(&laptop.pool, std::io::Cursor::new(older))
        .expect("an older download applies");
    assert_eq!(
        laptop.value("assets", &asset, "notes"),
        Some(Some("v3".into())),
        "the laptop is not rolled back"
    );
    laptop.sync();
    let server = app.row("assets", &asset).unwrap().fields;
    let t = table_by_name("assets").unwrap();
    for f in TABLES[t].fields {
        assert_eq!(
            laptop.value("assets", &asset, f.name),
            Some(server[f.name].clone())
        );
    }
}
