//! PROTOCOL.md §4: applying uploads.

use crate::helpers::*;
use crate::on_both;

on_both!(
    an_edit_at_the_current_base_is_applied,
    an_edit_equal_to_the_server_is_unchanged,
    creates_apply_parents_first_whatever_the_order,
    a_create_retried_after_a_lost_answer_is_recognised,
    deleting_a_row_deletes_its_children,
    a_repeated_upload_returns_the_first_result,
    the_client_never_sets_last_updated,
    values_compare_as_values,
    a_large_upload_applies_every_row_across_batches,
    many_deletes_arrive_across_download_pages,
    a_document_broken_after_a_refused_row_is_refused_as_broken,
);

/// An upload in judging order is judged while it is parsed; one that is broken further on
/// is still refused as broken (400), not for the row the judge met first, and nothing of it
/// is applied.
fn a_document_broken_after_a_refused_row_is_refused_as_broken(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let d = app.device("alice");
    let s = d.open();
    let mut items = vec![edit(
        "assets",
        &uid(),
        "2026-01-01T00:00:00.000000Z",
        &[("notes", Some("x"))],
    )];
    items.extend((0..1500).map(|i| {
        edit(
            "assets",
            &asset,
            "2026-01-01T00:00:00.000000Z",
            &[("notes", Some(&format!("edit {i}")))],
        )
    }));
    let whole = doc(&items);
    let broken = whole.replace("</changeset>", "<record table=\"assets\"");
    let answer = d.upload_raw(&s.id, &broken);
    answer.assert_error(400, None, None, None);
    assert!(
        answer.body.contains("code=\"malformed\""),
        "{}",
        answer.body
    );
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("n0"),
        "nothing applied"
    );
}

fn an_edit_at_the_current_base_is_applied(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut a = app.device("alice");
    let mut other = app.device("bob");
    a.sync(&[]);
    other.sync(&[]);
    let before = app.row("assets", &asset).unwrap();
    let base = a.base("assets", &asset);
    let (r, dl) = a.sync(&[edit(
        "assets",
        &asset,
        &base,
        &[
            ("status", Some("broken")),
            ("notes", Some("Seal & <flange>")),
        ],
    )]);
    assert_eq!(r, Some((1, 0, 0, false)));
    let after = app.row("assets", &asset).unwrap();
    assert_eq!(after.fields["status"].as_deref(), Some("broken"));
    assert_eq!(after.fields["notes"].as_deref(), Some("Seal & <flange>"));
    assert!(
        after.updated > before.updated,
        "an applied edit gets a new last_updated"
    );
    assert_eq!(
        dl.record("assets", &asset).and_then(|r| r.updated),
        Some(after.updated),
        "the uploader's own download carries the new version"
    );
    let (_, seen) = other.sync(&[]);
    assert_eq!(
        seen.value("assets", &asset, "notes"),
        Some(Some("Seal & <flange>".into()))
    );
}

fn an_edit_equal_to_the_server_is_unchanged(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    let before = app.row("assets", &asset).unwrap();
    // At the current base, with the current value.
    let (r, _) = d.sync(&[edit("assets", &asset, &base, &[("notes", Some("n0"))])]);
    assert_eq!(r, Some((0, 1, 0, false)));
    assert_eq!(app.row("assets", &asset).unwrap(), before, "no write");
    // At a stale base, with the server's new value: no conflict, no write.
    app.online_edit("assets", &asset, "notes", Some("both"));
    let moved = app.row("assets", &asset).unwrap();
    let (r, _) = d.sync(&[edit("assets", &asset, &base, &[("notes", Some("both"))])]);
    assert_eq!(r, Some((0, 1, 0, false)));
    assert_eq!(app.row("assets", &asset).unwrap(), moved);
    assert_eq!(d.state().2, 0);
}

fn creates_apply_parents_first_whatever_the_order(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, _) = app.seed_asset();
    let d = app.device("alice");
    let (asset, inspection, reading) = (uid(), uid(), uid());
    let tag = app.uniq("NEW");
    let s = d.open();
    let r = d.upload(
        &s.id,
        &[
            create("readings", &reading, &reading_fields(&inspection)),
            create("inspections", &inspection, &inspection_fields(&asset)),
            create(
                "assets",
                &asset,
                &[
                    ("site_id", Some(&site)),
                    ("tag", Some(&tag)),
                    ("status", Some("ok")),
                ],
            ),
        ],
    );
    assert_eq!(r, (3, 0, 0, false));
    assert!(app.row("readings", &reading).is_some());
    let a = app.row("assets", &asset).unwrap();
    assert_eq!(
        a.fields["description"], None,
        "a nullable field left out is NULL"
    );
    d.complete(&s.id);
}

fn a_create_retried_after_a_lost_answer_is_recognised(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let d = app.device("alice");
    let inspection = uid();
    let item = create("inspections", &inspection, &inspection_fields(&asset));
    let s = d.open();
    assert_eq!(
        d.upload(&s.id, std::slice::from_ref(&item)),
        (1, 0, 0, false)
    );
    // The answer was lost; the laptop opens a new session and sends the same row again.
    let s = d.open();
    assert_eq!(
        d.upload(&s.id, &[item]),
        (0, 1, 0, false),
        "equal fields: nothing to do"
    );
    let mut changed = inspection_fields(&asset);
    changed[4] = ("summary", Some("different"));
    let s = d.open();
    assert_eq!(
        d.upload(&s.id, &[create("inspections", &inspection, &changed)]),
        (0, 0, 1, true),
        "a differing field of a retried create is a conflict"
    );
    assert_eq!(
        app.row("inspections", &inspection).unwrap().fields["summary"].as_deref(),
        Some("ok")
    );
}

fn deleting_a_row_deletes_its_children(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let mut d = app.device("alice");
    let mut watcher = app.device("bob");
    d.sync(&[]);
    watcher.sync(&[]);
    let (r, _) = d.sync(&[delete(
        "inspections",
        &inspection,
        &d.base("inspections", &inspection),
    )]);
    assert_eq!(r, Some((1, 0, 0, false)));
    assert!(app.row("inspections", &inspection).is_none());
    assert!(
        app.row("readings", &reading).is_none(),
        "the child went with its parent"
    );
    let (_, dl) = watcher.sync(&[]);
    assert!(dl.deleted("inspections", &inspection));
    assert!(
        dl.deleted("readings", &reading),
        "every deleted child gets a tombstone"
    );
    // Deleting it again is nothing to do.
    let s = d.open();
    assert_eq!(
        d.upload(
            &s.id,
            &[delete("inspections", &inspection, "2026-01-01T00:00:00Z")]
        ),
        (0, 1, 0, false)
    );
}

fn a_repeated_upload_returns_the_first_result(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    let file = gzip(doc(&[edit("assets", &asset, &base, &[("notes", Some("once"))])]).as_bytes());
    let s = d.open();
    let first = d.upload_bytes(&s.id, file.clone());
    assert_eq!(first.status, 200);
    let stamp = app.row("assets", &asset).unwrap().updated;
    let again = d.upload_bytes(&s.id, file);
    assert_eq!(again.status, 200);
    assert_eq!(
        again.body, first.body,
        "the identical upload answers the first result"
    );
    assert_eq!(
        app.row("assets", &asset).unwrap().updated,
        stamp,
        "and applies nothing twice"
    );
    let other = d.upload_raw(
        &s.id,
        &doc(&[edit("assets", &asset, &base, &[("notes", Some("twice"))])]),
    );
    other.assert_error(409, None, None, None);
    d.download(&s.id);
    d.complete(&s.id);
}

fn the_client_never_sets_last_updated(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let d = app.device("alice");
    let s = d.open();
    let inspection = uid();
    d.upload(
        &s.id,
        &[create(
            "inspections",
            &inspection,
            &inspection_fields(&asset),
        )],
    );
    let row = app.row("inspections", &inspection).unwrap();
    let client_said = time::parse("2026-11-21T09:14:03Z").unwrap();
    assert_ne!(
        row.updated, client_said,
        "`updated` is the client's, never stored"
    );
    let now = chrono::Utc::now().timestamp_micros();
    assert!(
        (now - row.updated).abs() < 60_000_000,
        "stamped by the server's clock"
    );
}

fn values_compare_as_values(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let mut d = app.device("alice");
    d.sync(&[]);
    let rb = d.base("readings", &reading);
    let ib = d.base("inspections", &inspection);
    app.online_edit("readings", &reading, "unit", Some("kPa"));
    app.online_edit("inspections", &inspection, "summary", Some("x"));
    // 4.20 equals the server's 4.2; an equal instant in another offset equals too; and a
    // base written with +00:00 is the same base.
    let rb_offset = rb.replace('Z', "+00:00");
    let (r, _) = d.sync(&[
        edit("readings", &reading, &rb_offset, &[("value", Some("4.20"))]),
        edit("inspections", &inspection, &ib, &[("summary", Some("x"))]),
    ]);
    assert_eq!(r, Some((0, 2, 0, false)));
}

fn a_large_upload_applies_every_row_across_batches(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let ids = app.seed_readings(&inspection, 1200);
    let mut d = app.device("alice");
    d.sync(&[]);
    // Two shapes of edit (one field, two fields) so that rows are grouped per statement.
    let edits: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let value = format!("{n}.5");
            let base = d.base("readings", id);
            if n % 2 == 0 {
                edit("readings", id, &base, &[("value", Some(&value))])
            } else {
                edit(
                    "readings",
                    id,
                    &base,
                    &[("value", Some(&value)), ("unit", Some("kPa"))],
                )
            }
        })
        .collect();
    let (r, dl) = d.sync(&edits);
    assert_eq!(r, Some((1200, 0, 0, false)));
    for (n, id) in ids.iter().enumerate() {
        let row = app.row("readings", id).unwrap();
        assert_eq!(row.fields["value"], Some(format!("{n}.5")), "reading {n}");
        let unit = if n % 2 == 0 { "bar" } else { "kPa" };
        assert_eq!(row.fields["unit"].as_deref(), Some(unit), "reading {n}");
        assert_eq!(
            dl.record("readings", id).and_then(|r| r.updated),
            Some(row.updated)
        );
    }
}

fn many_deletes_arrive_across_download_pages(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let ids = app.seed_readings(&inspection, 1500);
    let mut watcher = app.device("bob");
    watcher.sync(&[]);
    let mut d = app.device("alice");
    d.sync(&[]);
    d.sync(&[delete(
        "inspections",
        &inspection,
        &d.base("inspections", &inspection),
    )]);
    let (_, dl) = watcher.sync(&[]);
    assert!(dl.deleted("inspections", &inspection));
    let missing: Vec<_> = ids
        .iter()
        .filter(|id| !dl.deleted("readings", id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} tombstones never downloaded",
        missing.len()
    );
}
