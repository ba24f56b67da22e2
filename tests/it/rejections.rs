//! PROTOCOL.md §4.2: every rejection is all-or-nothing, names the row and field, and
//! fails the session.

use offsync::sync::session::Limits;

use crate::helpers::*;
use crate::on_both;

on_both!(
    every_rejection_applies_nothing_and_names_the_row,
    size_limits_answer_413
);

struct Case {
    name: &'static str,
    status: u16,
    body: String,
    table: Option<&'static str>,
    id: Option<String>,
    field: Option<&'static str>,
}

fn every_rejection_applies_nothing_and_names_the_row(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, asset) = app.seed_asset();
    let (inspection, reading) = app.seed_inspection(&asset);
    let (_, other) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let since = d.state().0;
    let ab = d.base("assets", &asset);
    let ob = d.base("assets", &other);
    let sb = d.base("sites", &site);
    let ib = d.base("inspections", &inspection);
    let good = edit("assets", &asset, &ab, &[("notes", Some("must not stay"))]);
    let x = uid();
    let wrap = |bad: String| doc(&[good.clone(), bad]);
    let cases = vec![
        Case {
            name: "not xml",
            status: 400,
            body: "this is not XML".into(),
            table: None,
            id: None,
            field: None,
        },
        Case {
            name: "truncated",
            status: 400,
            body: wrap(String::new())[..60].to_owned(),
            table: None,
            id: None,
            field: None,
        },
        Case {
            name: "doctype",
            status: 400,
            body: format!(
                "<?xml version=\"1.0\"?><!DOCTYPE changeset [<!ENTITY x \"y\">]>{}",
                wrap(String::new()).split_once("?>").unwrap().1
            ),
            table: None,
            id: None,
            field: None,
        },
        Case {
            name: "unknown version",
            status: 400,
            body: wrap(String::new()).replace("version=\"1\">", "version=\"7\">"),
            table: None,
            id: None,
            field: None,
        },
        Case {
            name: "unknown table",
            status: 422,
            body: wrap(format!("<record table=\"pumps\" id=\"{x}\"/>")),
            table: Some("pumps"),
            id: Some(x.clone()),
            field: None,
        },
        Case {
            name: "unknown field",
            status: 422,
            body: wrap(edit("assets", &other, &ob, &[("colour", Some("red"))])),
            table: Some("assets"),
            id: Some(other.clone()),
            field: Some("colour"),
        },
        Case {
            name: "field offline may not write",
            status: 422,
            body: wrap(edit("sites", &site, &sb, &[("name", Some("x"))])),
            table: Some("sites"),
            id: Some(site.clone()),
            field: Some("name"),
        },
        Case {
            name: "natural key not editable",
            status: 422,
            body: wrap(edit("assets", &other, &ob, &[("tag", Some("x"))])),
            table: Some("assets"),
            id: Some(other.clone()),
            field: Some("tag"),
        },
        Case {
            name: "wrong type",
            status: 422,
            body: wrap(edit("readings", &reading, &ab, &[("value", Some("four"))])),
            table: Some("readings"),
            id: Some(reading.clone()),
            field: Some("value"),
        },
        Case {
            name: "outside the allowed set",
            status: 422,
            body: wrap(edit(
                "inspections",
                &inspection,
                &ib,
                &[("result", Some("maybe"))],
            )),
            table: Some("inspections"),
            id: Some(inspection.clone()),
            field: Some("result"),
        },
        Case {
            name: "missing parent",
            status: 422,
            body: wrap(create("readings", &x, &reading_fields(&uid()))),
            table: Some("readings"),
            id: Some(x.clone()),
            field: Some("inspection_id"),
        },
        Case {
            name: "edit of a row that never existed",
            status: 422,
            body: wrap(edit("inspections", &x, &ib, &[("summary", Some("s"))])),
            table: Some("inspections"),
            id: Some(x.clone()),
            field: None,
        },
        Case {
            name: "edit with no field",
            status: 422,
            body: wrap(edit("inspections", &inspection, &ib, &[])),
            table: Some("inspections"),
            id: Some(inspection.clone()),
            field: None,
        },
        Case {
            name: "create missing a NOT NULL field",
            status: 422,
            body: wrap(create(
                "inspections",
                &x,
                &[("asset_id", Some(&asset)), ("result", Some("pass"))],
            )),
            table: Some("inspections"),
            id: Some(x.clone()),
            field: Some("inspected_at"),
        },
        Case {
            name: "create where offline may not",
            status: 422,
            body: wrap(create(
                "sites",
                &x,
                &[("code", Some("C")), ("name", Some("N"))],
            )),
            table: Some("sites"),
            id: Some(x.clone()),
            field: None,
        },
        Case {
            name: "delete where offline may not",
            status: 422,
            body: wrap(delete("assets", &other, &ob)),
            table: Some("assets"),
            id: Some(other.clone()),
            field: None,
        },
        Case {
            name: "unparsable was",
            status: 422,
            body: wrap(record(
                "readings",
                &reading,
                Some(&ab),
                &[("value", Some("5"), Some(Some("five")))],
            )),
            table: Some("readings"),
            id: Some(reading.clone()),
            field: Some("value"),
        },
        Case {
            name: "NULL for a NOT NULL field",
            status: 422,
            body: wrap(edit("assets", &other, &ob, &[("status", None)])),
            table: Some("assets"),
            id: Some(other.clone()),
            field: Some("status"),
        },
        Case {
            name: "id that is no UUID",
            status: 422,
            body: wrap(edit("assets", "pump-1", &ab, &[("notes", Some("x"))])),
            table: Some("assets"),
            id: Some("pump-1".into()),
            field: None,
        },
        Case {
            name: "a field twice",
            status: 422,
            body: wrap(record(
                "assets",
                &other,
                Some(&ob),
                &[("notes", Some("x"), None), ("notes", Some("y"), None)],
            )),
            table: Some("assets"),
            id: Some(other.clone()),
            field: Some("notes"),
        },
        Case {
            name: "an element inside a field (depth)",
            status: 400,
            body: wrap(
                edit("assets", &other, &ob, &[("notes", Some("x"))])
                    .replace(">x<", "><b><i>deep</i></b><"),
            ),
            table: None,
            id: None,
            field: None,
        },
        Case {
            name: "a value longer than 1 MiB",
            status: 422,
            body: wrap(edit(
                "assets",
                &other,
                &ob,
                &[("notes", Some(&"v".repeat((1 << 20) + 1)))],
            )),
            table: None,
            id: None,
            field: None,
        },
        Case {
            name: "one row twice",
            status: 422,
            body: wrap(good.clone()),
            table: Some("assets"),
            id: Some(asset.clone()),
            field: None,
        },
    ];
    for case in cases {
        let s = d.open();
        assert_eq!(s.since, since, "{}: since moved", case.name);
        let a = d.upload_bytes(&s.id, gzip(case.body.as_bytes()));
        assert_eq!(a.status, case.status, "{}: {}", case.name, a.body);
        a.assert_error(case.status, case.table, case.id.as_deref(), case.field);
        let row = app.row("assets", &asset).unwrap();
        assert_eq!(
            row.fields["notes"].as_deref(),
            Some("n0"),
            "{}: the valid edit was applied",
            case.name
        );
        assert!(app.row("readings", &x).is_none() && app.row("inspections", &x).is_none());
        d.complete_raw(&s.id).assert_error(409, None, None, None);
    }
    // Uncompressed uploads are read too (told apart by the magic bytes).
    let s = d.open();
    let a = d.upload_bytes(&s.id, doc(&[good]).into_bytes());
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(counts(&a), (1, 0, 0, false));
}

fn size_limits_answer_413(b: Backend) {
    let limits = Limits {
        max_upload_bytes: 4096,
        max_decompressed_bytes: 64 << 10,
    };
    let Some(app) = TestApp::spawn_with(b, limits) else {
        return;
    };
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    // Compressed over the limit: random-looking text does not compress.
    let noise: String = (0..20_000)
        .map(|i| char::from(b'a' + ((i * 7919 + i / 3) % 26) as u8))
        .collect();
    let s = d.open();
    let big = d.upload_bytes(
        &s.id,
        doc(&[edit("assets", &asset, &base, &[("notes", Some(&noise))])]).into_bytes(),
    );
    big.assert_error(413, None, None, None);
    // Small compressed, large decompressed.
    let s = d.open();
    let padding = " ".repeat(200_000);
    let bomb = doc(&[
        edit("assets", &asset, &base, &[("notes", Some("x"))]),
        padding,
    ]);
    let a = d.upload_raw(&s.id, &bomb);
    a.assert_error(413, None, None, None);
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("n0")
    );
    d.complete_raw(&s.id).assert_error(409, None, None, None);
}
