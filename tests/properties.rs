//! Property tests of the conflict rules (PROTOCOL.md §4–5) on a real SQLite database,
//! through the library's sync and resolution functions: random sequences of online edits,
//! offline edits, resolutions and syncs never lose a value the laptop sent, judge every
//! field as the contract says, and always leave the laptop equal to the server after
//! resolution and a sync.

#[allow(
    dead_code,
    reason = "shares the integration tests' helpers; uses a few"
)]
#[path = "it/helpers.rs"]
mod helpers;

use helpers::*;
use offsync::db::repo::accounts::{Device, User};
use offsync::db::repo::conflicts;
use offsync::db::{self, Pool};
use offsync::domain::{TABLES, table_by_name, time};
use offsync::sync::download;
use offsync::sync::resolve::{self, Choice, Resolution};
use offsync::sync::session::{self, Limits};
use proptest::prelude::*;

/// The fields the laptop edits: both free text, both editable offline.
const FIELDS: [&str; 2] = ["description", "notes"];

type Values = [Option<String>; 2];

fn value() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("a".to_owned())),
        Just(Some("b".to_owned())),
        Just(Some("c".to_owned())),
    ]
}

/// Fields to set: for each field, maybe a new value.
fn change() -> impl Strategy<Value = [Option<Option<String>>; 2]> {
    [proptest::option::of(value()), proptest::option::of(value())]
}

#[derive(Debug, Clone)]
struct Round {
    online: Vec<[Option<Option<String>>; 2]>,
    offline: [Option<Option<String>>; 2],
    /// Per field, whether the resolution keeps the offline value.
    keep_offline: [bool; 2],
}

fn round() -> impl Strategy<Value = Round> {
    (
        proptest::collection::vec(change(), 0..3),
        change(),
        [any::<bool>(), any::<bool>()],
    )
        .prop_map(|(online, offline, keep_offline)| Round {
            online,
            offline,
            keep_offline,
        })
}

struct World {
    pool: Pool,
    _db: TestDb,
    device: Device,
    user: User,
    asset: String,
    /// The laptop's copy of the row: its values and version.
    laptop: Values,
    base: i64,
}

impl World {
    fn new(initial: &Values) -> World {
        let db = TestDb::new(Backend::Sqlite).expect("SQLite");
        let pool = db::connect(&db.url, 2).expect("the test database");
        let mut conn = pool.get().expect("a connection");
        offsync::accounts::add_user(&mut conn, "pat", "password", false).expect("a user");
        let (device, _) =
            offsync::accounts::add_device(&mut conn, "pat", "laptop").expect("a device");
        let user = offsync::db::repo::accounts::user_by_name(&mut conn, "pat")
            .expect("a lookup")
            .expect("the user");
        drop(conn);
        let (site, asset) = (uid(), uid());
        let mut w = World {
            pool,
            _db: db,
            device,
            user,
            asset: asset.clone(),
            laptop: [None, None],
            base: 0,
        };
        w.import(&[
            create("sites", &site, &[("code", Some("P")), ("name", Some("P"))]),
            create(
                "assets",
                &asset,
                &[
                    ("site_id", Some(site.as_str())),
                    ("tag", Some("P-1")),
                    ("status", Some("ok")),
                    ("description", initial[0].as_deref()),
                    ("notes", initial[1].as_deref()),
                ],
            ),
        ]);
        w.sync(None);
        w
    }

    fn import(&self, items: &[String]) {
        offsync::sync::import::import(
            &mut self.pool.get().expect("a connection"),
            std::io::Cursor::new(doc(items).into_bytes()),
            u64::MAX,
        )
        .expect("import");
    }

    fn server(&self) -> Values {
        let table = table_by_name("assets").expect("assets");
        let row = offsync::db::repo::rows::get(
            &mut self.pool.get().expect("a connection"),
            table,
            &self.asset,
        )
        .expect("a lookup")
        .expect("the asset");
        FIELDS.map(|f| {
            TABLES[table]
                .field_index(f)
                .and_then(|i| row.values[i].clone())
        })
    }

    /// One protocol sync: open, upload `edit` if any, download, complete; the laptop
    /// takes what it downloads.
    fn sync(&mut self, edit: Option<String>) {
        let mut conn = self.pool.get().expect("a connection");
        let s = session::open(&mut conn, &self.device, None).expect("open");
        if let Some(edit) = edit {
            let file = gzip(doc(&[edit]).as_bytes());
            session::upload(
                &self.pool,
                &self.device,
                &s.id,
                std::io::Cursor::new(file),
                &uid(),
                Limits::default(),
            )
            .expect("upload");
        }
        let prepared = download::prepare(&mut conn, &self.device, &s.id).expect("download");
        let mut bytes = Vec::new();
        download::write(&self.pool, &prepared, &mut bytes).expect("download");
        session::complete(&mut conn, &self.device, &s.id).expect("complete");
        let got = parse(&bytes);
        if let Some(r) = got.record("assets", &self.asset) {
            let table = table_by_name("assets").expect("assets");
            for (slot, name) in self.laptop.iter_mut().zip(FIELDS) {
                let index = TABLES[table].field_index(name).expect("a field");
                if let Some(f) = r.fields.iter().find(|f| f.index == index) {
                    slot.clone_from(&f.value);
                }
            }
            self.base = r.updated.expect("a downloaded row has its version");
        }
    }

    fn open_conflicts(&self) -> Vec<(conflicts::Conflict, Vec<conflicts::ConflictField>)> {
        let mut conn = self.pool.get().expect("a connection");
        let scope = conflicts::Scope {
            user_id: Some(&self.user.id),
            table: None,
            device_id: None,
        };
        conflicts::list(&mut conn, &scope, "open", 10, 0)
            .expect("the conflicts")
            .into_iter()
            .map(|c| {
                let fields = conflicts::fields(&mut conn, &c.id).expect("its fields");
                (c, fields)
            })
            .collect()
    }

    fn flagged(&self) -> bool {
        offsync::db::repo::accounts::user_by_name(
            &mut self.pool.get().expect("a connection"),
            "pat",
        )
        .expect("a lookup")
        .expect("the user")
        .is_conflict
    }
}

fn run(initial: Values, rounds: Vec<Round>) -> Result<(), TestCaseError> {
    let mut w = World::new(&initial);
    for r in rounds {
        // Online edits, one import each.
        for change in &r.online {
            let fields: Vec<(&str, Option<&str>)> = FIELDS
                .iter()
                .zip(change)
                .filter_map(|(name, v)| v.as_ref().map(|v| (*name, v.as_deref())))
                .collect();
            if !fields.is_empty() {
                w.import(&[create("assets", &w.asset, &fields)]);
            }
        }
        let server_before = w.server();

        // The laptop's edit: each chosen field, with the value it started from.
        let sent: Vec<(usize, Option<String>)> = r
            .offline
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.clone().map(|v| (i, v)))
            .collect();
        if sent.is_empty() {
            w.sync(None);
            prop_assert_eq!(w.laptop.clone(), w.server());
            continue;
        }
        let specs: Vec<FieldSpec<'_>> = sent
            .iter()
            .map(|(i, v)| (FIELDS[*i], v.as_deref(), Some(w.laptop[*i].as_deref())))
            .collect();
        let edit = record("assets", &w.asset, Some(&time::format(w.base)), &specs);
        let laptop_before = w.laptop.clone();
        w.sync(Some(edit));

        // The contract's judgement, field by field.
        let mut expected = server_before.clone();
        let mut conflicting = Vec::new();
        for (i, offline) in &sent {
            // PROTOCOL.md §4.3: equal to the server's value → nothing to do; `was` equal
            // to the server's value → only the laptop changed it → applied; otherwise in
            // conflict (even a field sent unchanged, when the server changed it).
            let (was, server) = (&laptop_before[*i], &server_before[*i]);
            if offline != server {
                if server == was {
                    expected[*i] = offline.clone();
                } else {
                    conflicting.push(*i);
                }
            }
        }
        prop_assert_eq!(w.server(), expected.clone());
        let open = w.open_conflicts();
        prop_assert_eq!(open.len(), usize::from(!conflicting.is_empty()));
        prop_assert_eq!(w.flagged(), !conflicting.is_empty());
        // No value lost: every conflicting value the laptop sent is in the conflict.
        for i in &conflicting {
            let (_, fields) = &open[0];
            let f = fields.iter().find(|f| f.field == FIELDS[*i]);
            prop_assert!(
                f.is_some(),
                "field {} missing from the conflict",
                FIELDS[*i]
            );
            let f = f.expect("checked");
            prop_assert_eq!(
                &f.offline_value,
                &sent.iter().find(|(j, _)| j == i).expect("sent").1
            );
            prop_assert_eq!(&f.server_value, &server_before[*i]);
        }

        // The person resolves, field by field; the laptop syncs and converges.
        if let Some((c, fields)) = open.into_iter().next() {
            let mut conn = w.pool.get().expect("a connection");
            let mut res = Resolution {
                version: resolve::server_version(&mut conn, &c).expect("a version"),
                ..Resolution::default()
            };
            for f in &fields {
                let Some(i) = FIELDS.iter().position(|n| *n == f.field) else {
                    continue;
                };
                let (choice, value) = if r.keep_offline[i] {
                    (Choice::Offline, f.offline_value.clone())
                } else {
                    (Choice::Server, f.server_value.clone())
                };
                res.fields.insert(f.field.clone(), choice);
                expected[i] = value;
            }
            let outcome = resolve::resolve(&mut conn, &w.user, &c.id, &res).expect("resolve");
            prop_assert_eq!(outcome, resolve::Outcome::Resolved);
            drop(conn);
            prop_assert_eq!(w.server(), expected);
            prop_assert!(!w.flagged());
            prop_assert!(w.open_conflicts().is_empty());
            w.sync(None);
        }
        prop_assert_eq!(w.laptop.clone(), w.server(), "the laptop converges");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn online_and_offline_edits_never_lose_a_value_and_converge(
        initial in [value(), value()],
        rounds in proptest::collection::vec(round(), 1..5),
    ) {
        run(initial, rounds)?;
    }
}
