//! PROTOCOL.md §4.3: conflicts, judged field by field.

use offsync::db::repo::conflicts;

use crate::helpers::*;
use crate::on_both;

on_both!(
    a_stale_edit_with_another_value_is_a_conflict,
    a_field_only_the_laptop_changed_is_applied_beside_a_conflict,
    was_null_counts_as_a_known_base,
    a_second_upload_updates_the_open_conflict,
    a_stale_delete_is_a_conflict,
    an_edit_of_a_deleted_row_is_a_conflict,
    the_rest_of_the_upload_goes_on_after_a_conflict,
    many_conflicts_in_one_upload_are_all_recorded,
    a_device_reads_its_users_open_conflicts,
);

fn open_conflicts(
    app: &TestApp,
    user: &str,
) -> Vec<(conflicts::Conflict, Vec<conflicts::ConflictField>)> {
    let mut conn = app.conn();
    let u = offsync::db::repo::accounts::user_by_name(&mut conn, user)
        .unwrap()
        .unwrap();
    conflicts::list(
        &mut conn,
        &conflicts::Scope {
            user_id: Some(&u.id),
            ..Default::default()
        },
        offsync::db::repo::conflicts::ConflictStatus::Open,
        1000,
        0,
    )
    .unwrap()
    .into_iter()
    .map(|c| {
        let f = conflicts::fields(&mut conn, &c.id).unwrap();
        (c, f)
    })
    .collect()
}

fn a_stale_edit_with_another_value_is_a_conflict(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("server"));
    let server = app.row("assets", &asset).unwrap();
    let (r, _) = d.sync(&[record(
        "assets",
        &asset,
        Some(&base),
        &[("notes", Some("offline"), Some(Some("n0")))],
    )]);
    assert_eq!(r, Some((0, 0, 1, true)));
    assert_eq!(
        app.row("assets", &asset).unwrap(),
        server,
        "the server row and its last_updated stay"
    );
    let open = open_conflicts(&app, "alice");
    assert_eq!(open.len(), 1);
    let (c, fields) = &open[0];
    assert_eq!(
        (c.table_name.as_str(), c.row_id.as_str(), c.kind.as_str()),
        ("assets", asset.as_str(), "fields")
    );
    assert_eq!(c.base, time::parse(&base));
    assert_eq!(c.server_updated, Some(server.updated));
    assert!(
        c.offline_updated.is_some(),
        "the laptop's change time is kept"
    );
    assert_eq!(fields.len(), 1);
    let f = &fields[0];
    assert_eq!(f.field, "notes");
    assert!(f.base_known);
    assert_eq!(f.base_value.as_deref(), Some("n0"));
    assert_eq!(f.server_value.as_deref(), Some("server"));
    assert_eq!(f.offline_value.as_deref(), Some("offline"));
}

fn a_field_only_the_laptop_changed_is_applied_beside_a_conflict(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("server"));
    let (r, _) = d.sync(&[record(
        "assets",
        &asset,
        Some(&base),
        &[
            ("status", Some("broken"), Some(Some("ok"))),
            ("notes", Some("offline"), Some(Some("n0"))),
            ("description", Some("Pump"), Some(Some("Pump"))),
        ],
    )]);
    assert_eq!(
        r,
        Some((0, 0, 1, true)),
        "a row with a field in conflict counts as a conflict"
    );
    let row = app.row("assets", &asset).unwrap();
    assert_eq!(
        row.fields["status"].as_deref(),
        Some("broken"),
        "only the laptop changed status: applied"
    );
    assert_eq!(
        row.fields["notes"].as_deref(),
        Some("server"),
        "both changed notes: the server's stays"
    );
    let open = open_conflicts(&app, "alice");
    let names: Vec<_> = open[0].1.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, vec!["notes"], "only the disputed field is recorded");
    // Without `was`, a field the server did not change still cannot be told apart.
    let mut e = app.device("erin");
    e.sync(&[]);
    let base = e.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("server 2"));
    let (r, _) = e.sync(&[edit(
        "assets",
        &asset,
        &base,
        &[("description", Some("new"))],
    )]);
    assert_eq!(r, Some((0, 0, 1, true)));
}

fn was_null_counts_as_a_known_base(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    app.online_edit("assets", &asset, "description", None);
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("server"));
    let (r, _) = d.sync(&[record(
        "assets",
        &asset,
        Some(&base),
        &[("description", Some("filled"), Some(None))],
    )]);
    assert_eq!(r, Some((1, 0, 0, false)));
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["description"].as_deref(),
        Some("filled")
    );
}

fn a_second_upload_updates_the_open_conflict(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("server"));
    d.sync(&[edit("assets", &asset, &base, &[("notes", Some("first"))])]);
    let first = open_conflicts(&app, "alice").remove(0).0;
    let (r, _) = d.sync(&[edit(
        "assets",
        &asset,
        &base,
        &[("notes", Some("second")), ("status", Some("retired"))],
    )]);
    assert_eq!(r, Some((0, 0, 1, true)));
    let open = open_conflicts(&app, "alice");
    assert_eq!(open.len(), 1, "one open conflict per user and row");
    assert_eq!(
        open[0].0.id, first.id,
        "the open conflict is kept, not replaced"
    );
    assert_eq!(open[0].0.created_at, first.created_at);
    assert!(open[0].0.updated_at > first.updated_at);
    let fields = &open[0].1;
    let notes = fields.iter().find(|f| f.field == "notes").unwrap();
    assert_eq!(notes.offline_value.as_deref(), Some("second"));
    assert!(fields.iter().any(|f| f.field == "status"));
    assert_eq!(d.state().2, 1);
    // Another user's upload of the same row is their own conflict.
    let mut e = app.device("erin");
    e.sync(&[]);
    let stale = base.clone();
    let (r, _) = e.sync(&[edit("assets", &asset, &stale, &[("notes", Some("erin"))])]);
    assert_eq!(r, Some((0, 0, 1, true)));
    assert_eq!(d.state().2, 1);
    assert_eq!(e.state().2, 1);
}

fn a_stale_delete_is_a_conflict(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("inspections", &inspection);
    app.online_edit(
        "inspections",
        &inspection,
        "summary",
        Some("changed online"),
    );
    let (r, _) = d.sync(&[delete("inspections", &inspection, &base)]);
    assert_eq!(r, Some((0, 0, 1, true)));
    assert!(
        app.row("inspections", &inspection).is_some(),
        "the row stays"
    );
    let open = open_conflicts(&app, "alice");
    assert_eq!(open[0].0.kind, "delete");
}

fn an_edit_of_a_deleted_row_is_a_conflict(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("inspections", &inspection);
    let mut online = app.device("office");
    online.sync(&[]);
    online.sync(&[delete(
        "inspections",
        &inspection,
        &online.base("inspections", &inspection),
    )]);
    let (r, dl) = d.sync(&[edit(
        "inspections",
        &inspection,
        &base,
        &[("summary", Some("offline"))],
    )]);
    assert_eq!(r, Some((0, 0, 1, true)));
    assert!(
        dl.deleted("inspections", &inspection),
        "the device learns of the delete"
    );
    let open = open_conflicts(&app, "alice");
    assert_eq!(open[0].0.kind, "edit_deleted");
    assert_eq!(open[0].1[0].offline_value.as_deref(), Some("offline"));
    assert!(app.row("inspections", &inspection).is_none());
}

fn the_rest_of_the_upload_goes_on_after_a_conflict(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("server"));
    let ib = d.base("inspections", &inspection);
    let (r, _) = d.sync(&[
        edit("assets", &asset, &base, &[("notes", Some("offline"))]),
        edit("inspections", &inspection, &ib, &[("result", Some("fail"))]),
    ]);
    assert_eq!(r, Some((1, 0, 1, true)));
    assert_eq!(
        app.row("inspections", &inspection).unwrap().fields["result"].as_deref(),
        Some("fail")
    );
}

fn many_conflicts_in_one_upload_are_all_recorded(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let ids = app.seed_readings(&inspection, 300);
    let mut d = app.device("alice");
    d.sync(&[]);
    let bases: Vec<String> = ids.iter().map(|id| d.base("readings", id)).collect();
    let online: Vec<String> = ids
        .iter()
        .map(|id| {
            create(
                "readings",
                id,
                &[("value", Some("9.9")), ("unit", Some("psi"))],
            )
        })
        .collect();
    app.import(&doc(&online));
    let edits: Vec<String> = ids
        .iter()
        .zip(&bases)
        .map(|(id, base)| {
            edit(
                "readings",
                id,
                base,
                &[("value", Some("1.1")), ("unit", Some("kPa"))],
            )
        })
        .collect();
    let (r, _) = d.sync(&edits);
    assert_eq!(r, Some((0, 0, 300, true)));
    let open = open_conflicts(&app, "alice");
    assert_eq!(open.len(), 300, "one conflict per row");
    assert!(
        open.iter().all(|(_, f)| f.len() == 2),
        "each with both fields"
    );
    let rows: std::collections::HashSet<&str> =
        open.iter().map(|(c, _)| c.row_id.as_str()).collect();
    assert_eq!(rows.len(), 300);
    // A second upload of the same rows updates those conflicts; it adds none.
    let (r, _) = d.sync(&edits);
    assert_eq!(r, Some((0, 0, 300, true)));
    assert_eq!(d.state().2, 300);
}

fn a_device_reads_its_users_open_conflicts(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("server <&> \"quoted\""));
    d.sync(&[record(
        "assets",
        &asset,
        Some(&base),
        &[("notes", Some("offline"), Some(Some("n0")))],
    )]);
    let read = |token: Option<&str>| {
        let mut req = client().get(format!("{}/api/sync/conflicts", app.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, body) = read(Some(&d.token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(attr(&body, "count").as_deref(), Some("1"), "{body}");
    let id = &open_conflicts(&app, "alice")[0].0.id;
    assert!(body.contains(&format!("id=\"{id}\"")), "{body}");
    assert!(body.contains(&format!("row=\"{asset}\"")), "{body}");
    assert!(body.contains("kind=\"fields\""), "{body}");
    assert!(
        body.contains("name=\"notes\"") && body.contains("offline=\"offline\""),
        "{body}"
    );
    assert!(
        body.contains("server=\"server &lt;&amp;&gt; &quot;quoted&quot;\""),
        "escaped: {body}"
    );
    // Another person's device sees only theirs; no token, no list.
    let other = app.device("bob");
    let (status, body) = read(Some(&other.token));
    assert_eq!(status, 200);
    assert_eq!(attr(&body, "count").as_deref(), Some("0"), "{body}");
    assert!(!body.contains("<conflict "), "{body}");
    assert_eq!(read(None).0, 401);
}
