//! The whole upload path (spool, judge, write, one transaction) on a real SQLite database:
//! any file is applied or refused, never a panic; a refused file changes nothing.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use offsync::db::repo::accounts::{Device, count};
use offsync::db::{self, Pool, Sql};
use offsync::sync::session::{self, Limits};

struct World {
    pool: Pool,
    device: Device,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a directory");
        let url = format!("sqlite://{}", dir.path().join("fuzz.db").display());
        let pool = db::connect(&url, 2).expect("a database");
        let mut conn = pool.get().expect("a connection");
        offsync::demo::load(&mut conn).expect("the demo data");
        offsync::accounts::add_user(&mut conn, "fuzz", "fuzz-password", false).expect("a user");
        let (device, _) =
            offsync::accounts::add_device(&mut conn, "fuzz", "fuzzer").expect("a device");
        drop(conn);
        World {
            pool,
            device,
            _dir: dir,
        }
    })
}

/// Rows in every table that an upload writes to.
fn fingerprint(w: &World) -> Vec<i64> {
    let mut conn = w.pool.get().expect("a connection");
    [
        "sites",
        "assets",
        "inspections",
        "readings",
        "tombstones",
        "conflicts",
        "aliases",
    ]
    .iter()
    .map(|t| {
        count(
            &mut conn,
            Sql::new(format!("SELECT COUNT(*) AS n FROM {t}")),
        )
        .expect("a count")
    })
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut conn = w.pool.get().expect("a connection");
    let Ok(s) = session::open(&mut conn, &w.device, None) else {
        return;
    };
    drop(conn);
    let before = fingerprint(w);
    let limits = Limits {
        max_upload_bytes: 1 << 20,
        max_decompressed_bytes: 4 << 20,
    };
    let sha = digest(data);
    let outcome = session::upload(
        &w.pool,
        &w.device,
        &s.id,
        std::io::Cursor::new(data.to_vec()),
        &sha,
        limits,
    );
    if outcome.is_err() {
        assert_eq!(
            before,
            fingerprint(w),
            "a refused upload changed the database"
        );
    }
});

/// A cheap digest so that two different inputs are never taken for a repeated upload.
fn digest(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}
