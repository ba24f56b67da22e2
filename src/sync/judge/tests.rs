//! The judge's rules as a table: every rule of PROTOCOL §4 is at least one row.

use super::*;
use crate::domain::table_by_name;

const SITE: &str = "00000000-0000-7000-8000-000000000001";
const ASSET: &str = "00000000-0000-7000-8000-0000000000a1";
const INSPECTION: &str = "00000000-0000-7000-8000-0000000000b1";
const DELETED_INSPECTION: &str = "00000000-0000-7000-8000-0000000000b2";
const READING: &str = "00000000-0000-7000-8000-0000000000c1";
const NEW: &str = "00000000-0000-7000-8000-0000000000f1";
const NEW2: &str = "00000000-0000-7000-8000-0000000000f2";
const JOINED_CLIENT: &str = "00000000-0000-7000-8000-0000000000e1";
const NOWHERE: &str = "00000000-0000-7000-8000-0000000000d9";

fn t(name: &str) -> TableId {
    table_by_name(name).unwrap()
}

fn row(table: &str, id: &str, stamp: Micros, values: &[Option<&str>]) -> Row {
    assert_eq!(values.len(), TABLES[t(table)].fields.len());
    Row {
        id: id.into(),
        last_updated: stamp,
        values: values.iter().map(|v| v.map(str::to_owned)).collect(),
        changed_by: Some("office import".into()),
    }
}

/// A field change; `was`: None = not sent, Some(None) = was NULL.
fn f(table: &str, name: &str, value: Option<&str>, was: Option<Option<&str>>) -> FieldChange {
    FieldChange {
        index: TABLES[t(table)].field_index(name).unwrap(),
        value: value.map(str::to_owned),
        was: match was {
            None => Was::Unknown,
            Some(w) => Was::Known(w.map(str::to_owned)),
        },
    }
}

fn record(table: &str, id: &str, base: Option<Micros>, fields: Vec<FieldChange>) -> Record {
    Record {
        table: t(table),
        id: id.into(),
        base,
        updated: Some(1),
        fields,
    }
}

fn asset_row() -> Row {
    row(
        "assets",
        ASSET,
        100,
        &[
            Some(SITE),
            Some("P-001"),
            Some("pump"),
            Some("ok"),
            Some("office notes"),
        ],
    )
}

fn new_reading(id: &str, inspection: &str) -> Record {
    record(
        "readings",
        id,
        None,
        vec![
            f("readings", "inspection_id", Some(inspection), None),
            f("readings", "kind", Some("pressure"), None),
            f("readings", "value", Some("4.2"), None),
        ],
    )
}

fn new_asset(id: &str, tag: &str, status: &str) -> Record {
    record(
        "assets",
        id,
        None,
        vec![
            f("assets", "site_id", Some(SITE), None),
            f("assets", "tag", Some(tag), None),
            f("assets", "status", Some(status), None),
        ],
    )
}

/// What the server holds, as the load phase would find it for `table`.
fn known(table: &str) -> Known {
    let mut k = Known::default();
    match table {
        "assets" => {
            k.rows.insert(ASSET.into(), asset_row());
            k.key_owners.insert("P-001".into(), asset_row());
            k.parents.insert(SITE.into(), Presence::Live);
            k.aliases.insert(JOINED_CLIENT.into(), ASSET.into());
        }
        "inspections" => {
            k.rows.insert(
                INSPECTION.into(),
                row(
                    "inspections",
                    INSPECTION,
                    200,
                    &[
                        Some(ASSET),
                        Some("2026-11-20T10:00:00.000000Z"),
                        Some(" Jo Bloggs "),
                        Some("pass"),
                        None,
                    ],
                ),
            );
            k.tombstones.insert(
                DELETED_INSPECTION.into(),
                Tombstone {
                    id: DELETED_INSPECTION.into(),
                    last_updated: 300,
                    values: Some(vec![
                        Some(ASSET.into()),
                        Some("2026-11-20T10:00:00.000000Z".into()),
                        None,
                        Some("fail".into()),
                        Some("old".into()),
                    ]),
                    changed_by: Some("office".into()),
                },
            );
        }
        "readings" => {
            k.rows.insert(
                READING.into(),
                row(
                    "readings",
                    READING,
                    400,
                    &[
                        Some(INSPECTION),
                        Some("pressure"),
                        Some("4.20"),
                        Some("bar"),
                    ],
                ),
            );
            k.parents.insert(INSPECTION.into(), Presence::Live);
            k.parents
                .insert(DELETED_INSPECTION.into(), Presence::Deleted);
            k.parents.insert(NOWHERE.into(), Presence::Never);
        }
        _ => {}
    }
    k
}

#[derive(Debug, PartialEq)]
enum Want {
    Insert,
    Update {
        applied: usize,
        conflict: Option<ConflictKind>,
    },
    Unchanged,
    Conflict(ConflictKind),
    Join {
        new: bool,
        conflict: bool,
    },
    Delete,
    Reject(&'static str),
}

fn summary(d: Result<Decision, Rejection>) -> Want {
    match d {
        Err(r) => Want::Reject(r.code.as_str()),
        Ok(Decision::Insert(_)) => Want::Insert,
        Ok(Decision::Update {
            changes, conflict, ..
        }) => Want::Update {
            applied: changes.len(),
            conflict: conflict.map(|c| c.kind),
        },
        Ok(Decision::Unchanged) => Want::Unchanged,
        Ok(Decision::Conflict(c)) => Want::Conflict(c.kind),
        Ok(Decision::Join { new, conflict, .. }) => Want::Join {
            new,
            conflict: conflict.is_some(),
        },
        Ok(Decision::Delete) => Want::Delete,
    }
}

enum Input {
    Record(Record),
    Delete(&'static str, &'static str, Option<Micros>),
}

#[test]
fn every_rule_of_protocol_4_is_a_row() {
    let held: HashSet<(TableId, String)> = [(t("inspections"), NEW.to_owned())].into();
    let gone: HashSet<(TableId, String)> = [(t("inspections"), INSPECTION.to_owned())].into();
    // (rule, table, item, upload so far, expected)
    type Ids = HashSet<(TableId, String)>;
    type Case<'a> = (
        &'a str,
        &'a str,
        Input,
        Option<&'a Ids>,
        Option<&'a Ids>,
        Want,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "§4.3 edit at base: applied",
            "assets",
            Input::Record(record(
                "assets",
                ASSET,
                Some(100),
                vec![f("assets", "status", Some("broken"), Some(Some("ok")))],
            )),
            None,
            None,
            Want::Update {
                applied: 1,
                conflict: None,
            },
        ),
        (
            "§4.3 edit at base, same values: unchanged",
            "assets",
            Input::Record(record(
                "assets",
                ASSET,
                Some(100),
                vec![f("assets", "status", Some("ok"), Some(Some("ok")))],
            )),
            None,
            None,
            Want::Unchanged,
        ),
        (
            "§4.3 stale, only the laptop changed the field: applied",
            "assets",
            Input::Record(record(
                "assets",
                ASSET,
                Some(50),
                vec![f("assets", "status", Some("broken"), Some(Some("ok")))],
            )),
            None,
            None,
            Want::Update {
                applied: 1,
                conflict: None,
            },
        ),
        (
            "§4.3 stale, both changed: conflict",
            "assets",
            Input::Record(record(
                "assets",
                ASSET,
                Some(50),
                vec![f("assets", "notes", Some("mine"), Some(Some("before")))],
            )),
            None,
            None,
            Want::Conflict(ConflictKind::Fields),
        ),
        (
            "§4.3 stale, one field applied, one in conflict",
            "assets",
            Input::Record(record(
                "assets",
                ASSET,
                Some(50),
                vec![
                    f("assets", "status", Some("broken"), Some(Some("ok"))),
                    f("assets", "notes", Some("mine"), Some(Some("before"))),
                ],
            )),
            None,
            None,
            Want::Update {
                applied: 1,
                conflict: Some(ConflictKind::Fields),
            },
        ),
        (
            "§4.3 stale, equal values: unchanged",
            "readings",
            Input::Record(record(
                "readings",
                READING,
                Some(10),
                vec![f("readings", "value", Some("4.2"), Some(Some("3")))],
            )),
            None,
            None,
            Want::Unchanged,
        ),
        (
            "§4.3 stale, no was: conflict",
            "assets",
            Input::Record(record(
                "assets",
                ASSET,
                Some(50),
                vec![f("assets", "status", Some("broken"), None)],
            )),
            None,
            None,
            Want::Conflict(ConflictKind::Fields),
        ),
        (
            "§4.3 edit of a row the server deleted: conflict",
            "inspections",
            Input::Record(record(
                "inspections",
                DELETED_INSPECTION,
                Some(250),
                vec![f("inspections", "summary", Some("x"), Some(None))],
            )),
            None,
            None,
            Want::Conflict(ConflictKind::EditDeleted),
        ),
        (
            "§4.3 stale delete: conflict",
            "inspections",
            Input::Delete("inspections", INSPECTION, Some(150)),
            None,
            None,
            Want::Conflict(ConflictKind::Delete),
        ),
        (
            "§4.3 delete at base: deleted",
            "inspections",
            Input::Delete("inspections", INSPECTION, Some(200)),
            None,
            None,
            Want::Delete,
        ),
        (
            "§4.3 create under a parent the server deleted: conflict, not a rejection",
            "readings",
            Input::Record(new_reading(NEW, DELETED_INSPECTION)),
            None,
            None,
            Want::Conflict(ConflictKind::ParentDeleted),
        ),
        (
            "§4.3 create under a create held in a conflict: held too",
            "readings",
            Input::Record(new_reading(NEW2, NEW)),
            Some(&held),
            None,
            Want::Conflict(ConflictKind::ParentDeleted),
        ),
        (
            "§4.1 create under a live parent: inserted",
            "readings",
            Input::Record(new_reading(NEW, INSPECTION)),
            None,
            None,
            Want::Insert,
        ),
        (
            "§4.4 retried create, equal values: unchanged",
            "readings",
            Input::Record(record(
                "readings",
                READING,
                None,
                vec![
                    f("readings", "inspection_id", Some(INSPECTION), None),
                    f("readings", "kind", Some("pressure"), None),
                    f("readings", "value", Some("4.2"), None),
                    f("readings", "unit", Some("bar"), None),
                ],
            )),
            None,
            None,
            Want::Unchanged,
        ),
        (
            "§4.4 retried create, differing values: conflict",
            "readings",
            Input::Record(record(
                "readings",
                READING,
                None,
                vec![
                    f("readings", "inspection_id", Some(INSPECTION), None),
                    f("readings", "kind", Some("pressure"), None),
                    f("readings", "value", Some("9"), None),
                ],
            )),
            None,
            None,
            Want::Conflict(ConflictKind::Fields),
        ),
        (
            "§4.4 retried create of a row deleted since: conflict",
            "inspections",
            Input::Record(record(
                "inspections",
                DELETED_INSPECTION,
                None,
                vec![
                    f("inspections", "asset_id", Some(ASSET), None),
                    f(
                        "inspections",
                        "inspected_at",
                        Some("2026-11-20T10:00:00.000000Z"),
                        None,
                    ),
                    f("inspections", "result", Some("pass"), None),
                ],
            )),
            None,
            None,
            Want::Conflict(ConflictKind::EditDeleted),
        ),
        (
            "§4.4 delete of a row already deleted: unchanged",
            "inspections",
            Input::Delete("inspections", DELETED_INSPECTION, Some(1)),
            None,
            None,
            Want::Unchanged,
        ),
        (
            "§4.5 same natural key, same values: joined, unchanged",
            "assets",
            Input::Record(record(
                "assets",
                NEW,
                None,
                vec![
                    f("assets", "site_id", Some(SITE), None),
                    f("assets", "tag", Some("P-001"), None),
                    f("assets", "description", Some("pump"), None),
                    f("assets", "status", Some("ok"), None),
                    f("assets", "notes", Some("office notes"), None),
                ],
            )),
            None,
            None,
            Want::Join {
                new: true,
                conflict: false,
            },
        ),
        (
            "§4.5 same natural key, other values: joined, conflict",
            "assets",
            Input::Record(new_asset(NEW, "P-001", "broken")),
            None,
            None,
            Want::Join {
                new: true,
                conflict: true,
            },
        ),
        (
            "§4.5 a retry of a joined create is judged as the join, never refused",
            "assets",
            Input::Record(new_asset(JOINED_CLIENT, "P-001", "broken")),
            None,
            None,
            Want::Join {
                new: false,
                conflict: true,
            },
        ),
        (
            "§4.5 new natural key: inserted",
            "assets",
            Input::Record(new_asset(NEW, "P-002", "ok")),
            None,
            None,
            Want::Insert,
        ),
        (
            "§4 whole: a record under a row this upload deletes means nothing",
            "readings",
            Input::Record(new_reading(NEW, INSPECTION)),
            None,
            Some(&gone),
            Want::Unchanged,
        ),
        (
            "§4.2 parent neither on the server nor in the upload",
            "readings",
            Input::Record(new_reading(NEW, NOWHERE)),
            None,
            None,
            Want::Reject("missing-parent"),
        ),
        (
            "§4.2 edit of a row that never existed",
            "readings",
            Input::Record(record(
                "readings",
                NEW,
                Some(5),
                vec![f("readings", "value", Some("1"), Some(Some("2")))],
            )),
            None,
            None,
            Want::Reject("unknown-row"),
        ),
        (
            "§4.2 edit with no field",
            "readings",
            Input::Record(record("readings", READING, Some(400), vec![])),
            None,
            None,
            Want::Reject("empty-edit"),
        ),
        (
            "§4.2 a field offline may not write",
            "inspections",
            Input::Record(record(
                "inspections",
                INSPECTION,
                Some(200),
                vec![f(
                    "inspections",
                    "inspector",
                    Some("Jo Bloggs"),
                    Some(Some(" Jo Bloggs ")),
                )],
            )),
            None,
            None,
            Want::Reject("field-not-editable"),
        ),
        (
            "§4.2 a create missing a NOT NULL field",
            "readings",
            Input::Record(record(
                "readings",
                NEW,
                None,
                vec![f("readings", "inspection_id", Some(INSPECTION), None)],
            )),
            None,
            None,
            Want::Reject("missing-field"),
        ),
        (
            "§4.2 a create where offline may not",
            "sites",
            Input::Record(record(
                "sites",
                NEW,
                None,
                vec![
                    f("sites", "code", Some("S"), None),
                    f("sites", "name", Some("N"), None),
                ],
            )),
            None,
            None,
            Want::Reject("create-not-allowed"),
        ),
        (
            "§4.2 a delete where offline may not",
            "assets",
            Input::Delete("assets", ASSET, Some(100)),
            None,
            None,
            Want::Reject("delete-not-allowed"),
        ),
        (
            "§4.2 a delete without base",
            "inspections",
            Input::Delete("inspections", INSPECTION, None),
            None,
            None,
            Want::Reject("missing-base"),
        ),
        (
            "§4.2 a delete of a row that never existed",
            "readings",
            Input::Delete("readings", NOWHERE, Some(1)),
            None,
            None,
            Want::Reject("unknown-row"),
        ),
    ];
    for (rule, table, input, held, gone, want) in cases {
        let mut k = known(table);
        let upload = Upload {
            gone: gone.cloned().unwrap_or_default(),
            held: held.cloned().unwrap_or_default(),
        };
        let got = match input {
            Input::Record(r) => judge_record(t(table), &r, &mut k, &upload),
            Input::Delete(tn, id, base) => judge_delete(
                t(tn),
                &Delete {
                    table: t(tn),
                    id: id.into(),
                    was: Vec::new(),
                    base,
                    updated: None,
                },
                &k,
            ),
        };
        assert_eq!(summary(got), want, "{rule}");
    }
}

#[test]
fn a_conflict_names_the_server_side_as_it_was_before_the_upload() {
    let mut k = known("assets");
    let r = record(
        "assets",
        ASSET,
        Some(50),
        vec![
            f("assets", "status", Some("broken"), Some(Some("ok"))),
            f("assets", "notes", Some("mine"), Some(Some("before"))),
        ],
    );
    let Ok(Decision::Update {
        conflict: Some(c), ..
    }) = judge_record(t("assets"), &r, &mut k, &Upload::default())
    else {
        panic!("an update with a conflict");
    };
    assert_eq!(c.server_by.as_deref(), Some("office import"));
    assert_eq!(c.server_updated, Some(100));
    assert_eq!(c.fields.len(), 1);
    assert_eq!(c.fields[0].server_value.as_deref(), Some("office notes"));
    assert_eq!(c.fields[0].base_value.as_deref(), Some("before"));
}

#[test]
fn a_stale_delete_shows_the_server_version_and_sends_the_row_again() {
    let k = known("inspections");
    let d = Delete {
        table: t("inspections"),
        id: INSPECTION.into(),
        base: Some(150),
        updated: None,
        was: vec![(4, Some("laptop saw this".into()))],
    };
    let Ok(Decision::Conflict(c)) = judge_delete(t("inspections"), &d, &k) else {
        panic!("a conflict");
    };
    assert!(c.resend, "the device gets the row and its children back");
    let inspector = c.fields.iter().find(|f| f.field == "inspector").unwrap();
    assert_eq!(inspector.server_value.as_deref(), Some(" Jo Bloggs "));
    assert!(!inspector.base_known, "no base sent for it");
    let summary = c.fields.iter().find(|f| f.field == "summary").unwrap();
    assert!(summary.base_known, "the base the laptop sent is kept");
    assert_eq!(summary.base_value.as_deref(), Some("laptop saw this"));
}

#[test]
fn two_creates_of_one_key_in_a_batch_are_one_row() {
    let mut k = known("assets");
    let upload = Upload::default();
    let first = judge_record(t("assets"), &new_asset(NEW, "P-009", "ok"), &mut k, &upload);
    assert_eq!(summary(first), Want::Insert);
    let second = judge_record(
        t("assets"),
        &new_asset(NEW2, "P-009", "ok"),
        &mut k,
        &upload,
    );
    assert_eq!(
        summary(second),
        Want::Join {
            new: true,
            conflict: false
        }
    );
}
