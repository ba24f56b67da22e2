//! A gzip bomb is stopped at the decompressed limit, and memory does not grow with it.
//! Its own test binary, so that the process's peak memory is this test's alone.

#[allow(
    dead_code,
    reason = "shares the integration tests' helpers; uses a few"
)]
#[path = "it/helpers.rs"]
mod helpers;

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use helpers::*;
use offsync::sync::session::Limits;

/// The process's peak resident memory, in KiB (Linux).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_gzip_bomb_stops_at_the_limit_in_flat_memory() {
    const LIMIT: u64 = 64 << 20;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        Limits {
            max_upload_bytes: 64 << 20,
            max_decompressed_bytes: LIMIT,
        },
    )
    .expect("SQLite is always there");
    let (_, asset) = app.seed_asset();
    let mut d = app.device("alice");
    d.sync(&[]);
    let base = d.base("assets", &asset);
    // 512 MiB of small, valid XML events after one real edit, compressed to well under 1 MiB.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    let head = doc(&[edit("assets", &asset, &base, &[("notes", Some("bomb"))])]);
    let head = head.trim_end().trim_end_matches("</changeset>");
    gz.write_all(head.as_bytes()).unwrap();
    let filler = "<!-- padding padding padding padding padding padding -->\n".repeat(1 << 12);
    let mut written = 0u64;
    while written < 512 << 20 {
        gz.write_all(filler.as_bytes()).unwrap();
        written += filler.len() as u64;
    }
    gz.write_all(b"</changeset>\n").unwrap();
    let bomb = gz.finish().unwrap();
    assert!(
        bomb.len() < 4 << 20,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let before = peak_kib();
    let s = d.open();
    let answer = d.upload_bytes(&s.id, bomb);
    answer.assert_error(413, None, None, None);
    assert!(
        answer.body.contains(&LIMIT.to_string()),
        "the error names the limit: {}",
        answer.body
    );
    assert_eq!(
        app.row("assets", &asset).unwrap().fields["notes"].as_deref(),
        Some("n0"),
        "nothing applied"
    );
    let before = before.expect("VmHWM in /proc/self/status");
    let after = peak_kib().expect("VmHWM in /proc/self/status");
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 32,
        "peak memory grew by {grown_mib} MiB while reading a 512 MiB bomb"
    );
}
