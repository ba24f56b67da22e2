use super::*;
use crate::domain::table_by_name;

const ID: &str = "0193a1c4-0000-7000-8000-000000000001";
const PARENT: &str = "0193a1c4-0000-7000-8000-000000000002";

fn read_all(doc: &str) -> Result<(Header, Vec<Item>), CodecError> {
    let mut r = ChangesetReader::new(doc.as_bytes(), 1 << 30);
    let h = r.header()?;
    let mut items = Vec::new();
    while let Some(i) = r.next_item()? {
        items.push(i);
    }
    Ok((h, items))
}

fn write_all(since: Option<Micros>, items: &[Item]) -> String {
    let mut w = ChangesetWriter::start(Vec::new(), since).unwrap();
    for i in items {
        w.item(i).unwrap();
    }
    String::from_utf8(w.finish().unwrap()).unwrap()
}

fn asset(notes: Option<&str>, was: Was) -> Item {
    let t = table_by_name("assets").unwrap();
    Item::Record(Record {
        table: t,
        id: ID.into(),
        base: Some(1_700_000_000_000_001),
        updated: Some(1_700_000_000_000_002),
        fields: vec![FieldChange {
            index: TABLES[t].field_index("notes").unwrap(),
            value: notes.map(str::to_owned),
            was,
        }],
    })
}

#[test]
fn round_trip_keeps_every_item() {
    let t = table_by_name("readings").unwrap();
    let items = vec![
        asset(Some("Seal leaking"), Was::Known(Some("ok <then>".into()))),
        asset(None, Was::Known(None)),
        asset(Some(""), Was::Unknown),
        Item::Delete(Delete {
            table: t,
            id: ID.into(),
            base: Some(5),
            updated: Some(6),
            was: vec![(3, Some("4.2 & <more>".into())), (2, None)],
        }),
        Item::Alias(Alias {
            table: table_by_name("assets").unwrap(),
            id: ID.into(),
            canonical: PARENT.into(),
        }),
    ];
    let doc = write_all(Some(1_700_000_000_123_456), &items);
    let (h, back) = read_all(&doc).unwrap();
    assert_eq!(h.since, Some(1_700_000_000_123_456));
    assert_eq!(back, items);
}

#[test]
fn null_and_empty_string_stay_apart() {
    let doc = write_all(
        None,
        &[asset(None, Was::Unknown), asset(Some(""), Was::Unknown)],
    );
    assert!(
        doc.contains(r#"<field name="notes" null="true"/>"#),
        "{doc}"
    );
    assert!(doc.contains(r#"<field name="notes"></field>"#), "{doc}");
    let (_, items) = read_all(&doc).unwrap();
    let values: Vec<_> = items
        .iter()
        .map(|i| match i {
            Item::Record(r) => r.fields[0].value.clone(),
            _ => panic!("not a record"),
        })
        .collect();
    assert_eq!(values, vec![None, Some(String::new())]);
}

#[test]
fn escaping_survives_markup_entities_and_line_ends() {
    let nasty = "Fish & chips <b>\"quoted\"</b> 'x' \r\n tab\t end ]]> café";
    let doc = write_all(None, &[asset(Some(nasty), Was::Known(Some(nasty.into())))]);
    let (_, items) = read_all(&doc).unwrap();
    // Line breaks arrive as LF, the one normalisation of every value (domain::value).
    let read = nasty.replace("\r\n", "\n");
    assert_eq!(
        items,
        vec![asset(Some(&read), Was::Known(Some(read.clone())))]
    );
}

#[test]
fn entity_and_character_references_are_resolved() {
    let doc = format!(
        r#"<changeset version="1"><record table="assets" id="{ID}" base="2026-11-20T10:00:00Z">
        <field name="notes">Fish &amp; chips &#233;&#x41;<![CDATA[<raw>]]></field></record></changeset>"#
    );
    let (_, items) = read_all(&doc).unwrap();
    match &items[0] {
        Item::Record(r) => assert_eq!(r.fields[0].value.as_deref(), Some("Fish & chips éA<raw>")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn doctype_is_rejected() {
    let doc =
        r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><changeset version="1"/>"#;
    assert!(matches!(read_all(doc), Err(CodecError::Doctype)));
}

#[test]
fn unknown_entities_version_and_truncation_are_rejected() {
    let doc = format!(
        r#"<changeset version="1"><record table="assets" id="{ID}"><field name="notes">&lol;</field></record></changeset>"#
    );
    assert!(matches!(read_all(&doc), Err(CodecError::Malformed(_))));
    assert!(matches!(
        read_all(r#"<changeset version="2"/>"#),
        Err(CodecError::Version(v)) if v == "2"
    ));
    let cut =
        format!(r#"<changeset version="1"><record table="assets" id="{ID}"><field name="notes">x"#);
    assert!(matches!(read_all(&cut), Err(CodecError::Malformed(_))));
    assert!(matches!(
        read_all("not xml at all"),
        Err(CodecError::Malformed(_))
    ));
    assert!(matches!(read_all(""), Err(CodecError::Malformed(_))));
}

#[test]
fn unknown_names_and_bad_values_name_the_row_and_field() {
    let cases = [
        (r#"<record table="nope" id="ID"/>"#, "unknown-table", None),
        (
            r#"<record table="assets" id="ID"><field name="colour">red</field></record>"#,
            "unknown-field",
            Some("colour"),
        ),
        (
            r#"<record table="assets" id="ID"><field name="status">fine</field></record>"#,
            "invalid-value",
            Some("status"),
        ),
        (
            r#"<record table="readings" id="ID"><field name="value">4,2</field></record>"#,
            "invalid-value",
            Some("value"),
        ),
        (
            r#"<record table="readings" id="ID"><field name="value" was="x">4</field></record>"#,
            "invalid-was",
            Some("value"),
        ),
        (
            r#"<record table="assets" id="ID"><field name="notes">a</field><field name="notes">b</field></record>"#,
            "duplicate-field",
            Some("notes"),
        ),
    ];
    for (body, want_code, want_field) in cases {
        let doc = format!(
            r#"<changeset version="1">{}</changeset>"#,
            body.replace("ID", ID)
        );
        match read_all(&doc) {
            Err(CodecError::Invalid {
                code, id, field, ..
            }) => {
                assert_eq!(code.as_str(), want_code, "{body}");
                assert_eq!(id.as_deref(), Some(ID), "{body}");
                assert_eq!(field.as_deref(), want_field, "{body}");
            }
            other => panic!("{body}: {other:?}"),
        }
    }
}

#[test]
fn values_are_stored_in_canonical_form() {
    let doc = format!(
        r#"<changeset version="1"><record table="inspections" id="{}">
        <field name="inspected_at">2026-11-20T11:00:00+01:00</field></record></changeset>"#,
        ID.to_uppercase()
    );
    let (_, items) = read_all(&doc).unwrap();
    match &items[0] {
        Item::Record(r) => {
            assert_eq!(r.id, ID);
            assert_eq!(
                r.fields[0].value.as_deref(),
                Some("2026-11-20T10:00:00.000000Z")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn gzip_and_plain_are_told_apart() {
    use flate2::{Compression, write::GzEncoder};
    let doc = write_all(None, &[asset(Some("x"), Was::Unknown)]);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(doc.as_bytes()).unwrap();
    for bytes in [gz.finish().unwrap(), doc.clone().into_bytes()] {
        let input = decompressing(std::io::Cursor::new(bytes)).unwrap();
        let mut r = ChangesetReader::new(input, 1 << 20);
        r.header().unwrap();
        assert_eq!(r.next_item().unwrap(), Some(asset(Some("x"), Was::Unknown)));
        assert_eq!(r.next_item().unwrap(), None);
    }
}

#[test]
fn decompressed_size_is_bounded() {
    let mut doc = String::from(r#"<changeset version="1">"#);
    doc.push_str(&" ".repeat(10_000));
    doc.push_str("</changeset>");
    let mut r = ChangesetReader::new(doc.as_bytes(), 1000);
    let err = r.header().and_then(|_| r.next_item());
    assert!(matches!(err, Err(CodecError::TooLarge(1000))), "{err:?}");
}

#[test]
fn one_huge_event_is_refused() {
    let doc = format!(
        r#"<changeset version="1"><record table="assets" id="{ID}"><field name="notes">{}</field></record></changeset>"#,
        "x".repeat(MAX_EVENT_BYTES * 2)
    );
    // A real input arrives in buffer-sized pieces, so the budget is checked as it grows.
    let mut r = ChangesetReader::new(
        std::io::BufReader::with_capacity(4096, doc.as_bytes()),
        1 << 30,
    );
    match r.header().and_then(|_| r.next_item()) {
        Err(CodecError::Invalid { code, .. }) => assert_eq!(code.as_str(), "event-too-large"),
        other => panic!("{other:?}"),
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Text that XML 1.0 can carry (everything but the C0 controls other than tab, line
    /// feed and carriage return, and the two non-characters U+FFFE and U+FFFF), in its
    /// stored form: no carriage return, which every value loses to LF.
    fn xml_text() -> impl Strategy<Value = String> {
        "[^\u{0}-\u{8}\u{b}-\u{1f}\u{fffe}\u{ffff}]{0,40}"
    }

    fn was() -> impl Strategy<Value = Was> {
        prop_oneof![
            Just(Was::Unknown),
            Just(Was::Known(None)),
            xml_text().prop_map(|w| Was::Known(Some(w))),
        ]
    }

    fn item() -> impl Strategy<Value = Item> {
        let assets = table_by_name("assets").unwrap_or_default();
        let text_fields: Vec<usize> = ["description", "notes"]
            .iter()
            .filter_map(|f| TABLES[assets].field_index(f))
            .collect();
        let id = any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string());
        let stamp = proptest::option::of(0i64..4_000_000_000_000_000);
        let field = (
            proptest::sample::select(text_fields),
            proptest::option::of(xml_text()),
            was(),
        )
            .prop_map(|(index, value, was)| FieldChange { index, value, was });
        let record = (
            id.clone(),
            stamp.clone(),
            stamp.clone(),
            proptest::collection::vec(field, 0..2),
        )
            .prop_map(move |(id, base, updated, mut fields)| {
                fields.dedup_by_key(|f| f.index);
                Item::Record(Record {
                    table: assets,
                    id,
                    base,
                    updated,
                    fields,
                })
            });
        let delete = (id.clone(), stamp.clone(), stamp).prop_map(move |(id, base, updated)| {
            Item::Delete(Delete {
                table: assets,
                id,
                base,
                updated,
                was: Vec::new(),
            })
        });
        let alias = (id.clone(), id).prop_map(move |(id, canonical)| {
            Item::Alias(Alias {
                table: assets,
                id,
                canonical,
            })
        });
        prop_oneof![4 => record, 1 => delete, 1 => alias]
    }

    proptest! {
        /// Whatever the writer writes, the reader reads back the same, through gzip too.
        #[test]
        fn what_is_written_is_read_back(
            since in proptest::option::of(0i64..4_000_000_000_000_000),
            items in proptest::collection::vec(item(), 0..20),
        ) {
            let doc = write_all(since, &items);
            let (header, back) = read_all(&doc).map_err(|e| TestCaseError::fail(format!("{e}: {doc}")))?;
            prop_assert_eq!(header.since, since);
            prop_assert_eq!(&back, &items);

            let mut gz = gzip_writer(Vec::new());
            std::io::Write::write_all(&mut gz, doc.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let packed = finish_gzip(gz).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let input = decompressing(std::io::Cursor::new(packed)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut reader = ChangesetReader::new(input, 1 << 30);
            reader.header().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut again = Vec::new();
            while let Some(i) = reader.next_item().map_err(|e| TestCaseError::fail(e.to_string()))? {
                again.push(i);
            }
            prop_assert_eq!(again, items);
        }

        /// Any bytes at all: the reader answers with items or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut reader = ChangesetReader::new(bytes.as_slice(), 1 << 20);
            if reader.header().is_ok() {
                while let Ok(Some(_)) = reader.next_item() {}
            }
        }
    }
}

#[test]
fn a_download_reader_leaves_out_fields_it_does_not_know() {
    let doc = format!(
        r#"<?xml version="1.0"?><changeset version="1">
<record table="assets" id="{ID}" updated="2026-11-20T10:00:00Z"><field name="colour">red</field><field name="notes">n</field><field name="rating" null="true"/></record>
</changeset>"#
    );
    let mut r = ChangesetReader::for_download(doc.as_bytes());
    r.header().unwrap();
    let Some(Item::Record(rec)) = r.next_item().unwrap() else {
        panic!("a record");
    };
    let notes = TABLES[rec.table].field_index("notes").unwrap();
    assert_eq!(rec.fields.len(), 1, "only the known field");
    assert_eq!(rec.fields[0].index, notes);
    assert!(r.next_item().unwrap().is_none());
    // An upload reader still refuses it (PROTOCOL §4.2: unknown field, 422).
    let mut strict = ChangesetReader::new(doc.as_bytes(), 1 << 20);
    strict.header().unwrap();
    assert!(matches!(
        strict.next_item(),
        Err(CodecError::Invalid {
            code: crate::sync::code::ErrorCode::UnknownField,
            ..
        })
    ));
}
