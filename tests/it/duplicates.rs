//! PROTOCOL.md §4.5: the same thing created on two laptops is one thing.

use crate::helpers::*;
use crate::on_both;

fn as_refs<'a>(v: &'a [(&'static str, Option<String>)]) -> Vec<(&'static str, Option<&'a str>)> {
    v.iter().map(|(k, v)| (*k, v.as_deref())).collect()
}

on_both!(
    a_duplicate_is_aliased_and_its_children_follow,
    a_duplicate_with_other_values_is_a_conflict
);

fn a_duplicate_is_aliased_and_its_children_follow(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, _) = app.seed_asset();
    let mut first = app.device("alice");
    let mut second = app.device("bob");
    first.sync(&[]);
    second.sync(&[]);
    let tag = app.uniq("DUP");
    let fields = |s: &str| {
        vec![
            ("site_id", Some(s.to_owned())),
            ("tag", Some(tag.clone())),
            ("status", Some("ok".to_owned())),
        ]
    };
    let (a1, i1) = (uid(), uid());
    let f = fields(&site);
    let (r, _) = first.sync(&[
        create("assets", &a1, &as_refs(&f)),
        create("inspections", &i1, &inspection_fields(&a1)),
    ]);
    assert_eq!(r, Some((2, 0, 0, false)));
    // The second laptop made the same asset under its own id, with an inspection; the
    // child comes first in its document.
    let (a2, i2) = (uid(), uid());
    let s = second.open();
    let r = second.upload(
        &s.id,
        &[
            create("inspections", &i2, &inspection_fields(&a2)),
            create("assets", &a2, &as_refs(&f)),
        ],
    );
    assert_eq!(
        r,
        (1, 1, 0, false),
        "equal duplicate: unchanged; its child: applied"
    );
    assert!(app.row("assets", &a2).is_none(), "no second asset");
    assert_eq!(
        app.row("inspections", &i2).unwrap().fields["asset_id"].as_deref(),
        Some(a1.as_str()),
        "the child follows the mapping"
    );
    let dl = second.download(&s.id);
    assert_eq!(dl.aliases(), vec![(a2.clone(), a1.clone())]);
    second.complete(&s.id);
    // Later uploads naming the client id still follow it.
    let i3 = uid();
    let (r, dl) = second.sync(&[create("inspections", &i3, &inspection_fields(&a2))]);
    assert_eq!(r, Some((1, 0, 0, false)));
    assert!(
        dl.aliases().is_empty(),
        "an alias is sent until a completed session carried it"
    );
    assert_eq!(
        app.row("inspections", &i3).unwrap().fields["asset_id"].as_deref(),
        Some(a1.as_str())
    );
    // Other devices never see the client id.
    let (_, dl) = first.sync(&[]);
    assert!(dl.aliases().is_empty());
    assert!(dl.items.iter().all(|i| !format!("{i:?}").contains(&a2)));
    assert!(dl.record("inspections", &i2).is_some() && dl.record("inspections", &i3).is_some());
}

fn a_duplicate_with_other_values_is_a_conflict(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, asset) = app.seed_asset();
    let tag = app.row("assets", &asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    let mut d = app.device("alice");
    let copy = uid();
    let s = d.open();
    let r = d.upload(
        &s.id,
        &[create(
            "assets",
            &copy,
            &[
                ("site_id", Some(&site)),
                ("tag", Some(&tag)),
                ("status", Some("broken")),
                ("notes", Some("n0")),
            ],
        )],
    );
    assert_eq!(r, (0, 0, 1, true));
    let row = app.row("assets", &asset).unwrap();
    assert_eq!(
        row.fields["status"].as_deref(),
        Some("ok"),
        "the existing row's values stay"
    );
    let dl = d.download(&s.id);
    assert_eq!(dl.aliases(), vec![(copy.clone(), asset.clone())]);
    d.complete(&s.id);
    let mut conn = app.conn();
    let u = offsync::db::repo::accounts::user_by_name(&mut conn, "alice")
        .unwrap()
        .unwrap();
    let open = offsync::db::repo::conflicts::list(
        &mut conn,
        &offsync::db::repo::conflicts::Scope {
            user_id: Some(&u.id),
            ..Default::default()
        },
        offsync::db::repo::conflicts::ConflictStatus::Open,
        10,
        0,
    )
    .unwrap();
    assert_eq!(open[0].kind, "duplicate");
    assert_eq!(open[0].row_id, asset);
    assert_eq!(open[0].client_id.as_deref(), Some(copy.as_str()));
    let fields = offsync::db::repo::conflicts::fields(&mut conn, &open[0].id).unwrap();
    let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(
        names,
        vec!["description", "status"],
        "the fields where the offline values differ"
    );
}
