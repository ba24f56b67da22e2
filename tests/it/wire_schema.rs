//! docs/changeset.xsd describes what offsync sends and accepts: real downloads and the
//! test fixtures are validated with xmllint.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;

fn xmllint_available() -> bool {
    let found = Command::new("xmllint").arg("--version").output().is_ok();
    if !found {
        missing("xmllint (libxml2-utils) is not installed");
    }
    found
}

fn validate(path: &Path) {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/changeset.xsd");
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(path)
        .output()
        .expect("xmllint runs");
    assert!(
        out.status.success(),
        "{} does not validate: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn downloads_validate_against_the_schema() {
    if !xmllint_available() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).expect("SQLite is always there");
    let (site, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let mut d = app.device("alice");
    d.sync(&[]);
    app.online_edit(
        "sites",
        &site,
        "access_notes",
        Some("Fish & chips <b>\"quoted\"</b>\r\nline two"),
    );
    // A delete and an alias, so that every element appears.
    let tag = app.row("assets", &asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    let s = d.open();
    d.upload(
        &s.id,
        &[
            delete(
                "inspections",
                &inspection,
                &d.base("inspections", &inspection),
            ),
            create(
                "assets",
                &uid(),
                &[
                    ("site_id", Some(&site)),
                    ("tag", Some(&tag)),
                    ("status", Some("ok")),
                ],
            ),
        ],
    );
    let raw = d.download_raw(&s.id);
    assert_eq!(raw.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("download.xml");
    let xml = {
        use std::io::Read;
        let mut out = String::new();
        flate2::read::GzDecoder::new(&raw.bytes[..])
            .read_to_string(&mut out)
            .unwrap();
        out
    };
    for element in ["<record ", "<delete ", "<alias ", " since=\""] {
        assert!(xml.contains(element), "the sample lacks {element}: {xml}");
    }
    std::fs::write(&path, xml).unwrap();
    validate(&path);
    // A resumable download (docs/protocol.md §8) has checkpoints and its count.
    let resumable = d
        .http
        .get(format!(
            "{}/api/sync/sessions/{}/changes?resumable=1",
            app.base, s.id
        ))
        .bearer_auth(&d.token)
        .send()
        .and_then(|r| r.bytes())
        .expect("a resumable download");
    let xml = ungzip(&resumable);
    for element in ["<checkpoint after=\"", " rows=\""] {
        assert!(xml.contains(element), "the sample lacks {element}: {xml}");
    }
    let path = dir.path().join("resumable.xml");
    std::fs::write(&path, xml).unwrap();
    validate(&path);
}

#[test]
fn fixtures_validate_against_the_schema() {
    if !xmllint_available() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fixtures") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "xml") {
            validate(&path);
            // And the server's own reader accepts what the schema accepts.
            let bytes = std::fs::read(&path).unwrap();
            let parsed = parse(&bytes);
            assert!(!parsed.items.is_empty(), "{} has no items", path.display());
            n += 1;
        }
    }
    assert!(n > 0, "no fixtures found");
}
