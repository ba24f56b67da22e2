//! The test server and a device client that speaks the contract over real HTTP.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::sync::mpsc;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use flate2::Compression;
use flate2::write::GzEncoder;
use offsync::db::{self, Pool};
use offsync::domain::TABLES;
pub use offsync::domain::time;
use offsync::sync::codec::{ChangesetReader, Item};
use offsync::sync::session::Limits;
use offsync::web::{self, WebSettings};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server for tests, from `OFFSYNC_TEST_PG` (a URL of any database on the
/// server, e.g. postgres://root:root@127.0.0.1:5432/postgres). Without it the PostgreSQL
/// variant of a test prints a notice and passes on a laptop, and fails under CI=true.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("OFFSYNC_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            missing("OFFSYNC_TEST_PG is not set (the PostgreSQL variant)");
            None
        }
    }
}

/// Something a test needs is not on this machine (`what` says which): under CI=true that
/// fails the test; on a laptop the test prints a notice and passes without it.
pub fn missing(what: &str) {
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "CI=true but {what}: the tests that need it must run in CI"
    );
    eprintln!("notice: {what}; skipping what needs it");
}

/// A fresh, empty database of the backend; `None` when PostgreSQL is not available here.
pub struct TestDb {
    pub url: String,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// The database as an earlier release left it: the first `sqlite` or `postgres`
    /// migrations of its backend, then `data` (SQL). offsync runs the rest when it opens it.
    #[allow(dead_code, reason = "for the upgrade tests only")]
    pub fn as_released(&self, sqlite: usize, postgres: usize, data: &str) {
        use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
        const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
        const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
        match self.url.strip_prefix("sqlite://") {
            Some(path) => {
                let mut c = diesel::SqliteConnection::establish(path).unwrap();
                for _ in 0..sqlite {
                    c.run_next_migration(SQLITE).unwrap();
                }
                c.batch_execute(data).unwrap();
            }
            None => {
                let mut c = diesel::PgConnection::establish(&self.url).unwrap();
                for _ in 0..postgres {
                    c.run_next_migration(POSTGRES).unwrap();
                }
                c.batch_execute(data).unwrap();
            }
        }
    }

    pub fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Some(TestDb {
                    url,
                    admin: None,
                    _dir: Some(dir),
                })
            }
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let name = format!("offsync_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = diesel::PgConnection::establish(&admin)
                    .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at OFFSYNC_TEST_PG: {e}"));
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("CREATE DATABASE");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Some(TestDb {
                    url: format!("{base}/{name}"),
                    admin: Some((admin.clone(), name)),
                    _dir: None,
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.admin
            && let Ok(mut conn) = diesel::PgConnection::establish(admin)
        {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// The settings a test may turn.
pub struct Knobs {
    pub sign_in: offsync::accounts::SignInLimits,
    pub uploads: offsync::web::gate::UploadLimits,
    pub proxies: offsync::web::auth::Proxies,
    pub sessions: offsync::accounts::SessionTimeouts,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            sign_in: Default::default(),
            uploads: offsync::web::gate::UploadLimits::for_pool(8),
            proxies: Default::default(),
            sessions: Default::default(),
        }
    }
}

/// A running offsync server on a free loopback port.
pub struct TestApp {
    pub base: String,
    pub pool: Pool,
    /// Kept so that the database lives (and is dropped) with the app.
    _db: Option<TestDb>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    counter: std::cell::Cell<u32>,
}

impl TestApp {
    pub fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, Limits::default())
    }

    pub fn spawn_with(backend: Backend, limits: Limits) -> Option<TestApp> {
        Some(Self::start(
            TestDb::new(backend)?,
            limits,
            None,
            Default::default(),
        ))
    }

    /// A server with these sign-in limits.
    pub fn spawn_with_sign_in(
        backend: Backend,
        sign_in: offsync::accounts::SignInLimits,
    ) -> Option<TestApp> {
        Self::spawn_with_knobs(
            backend,
            Knobs {
                sign_in,
                ..Default::default()
            },
        )
    }

    /// A server with these settings.
    pub fn spawn_with_knobs(backend: Backend, knobs: Knobs) -> Option<TestApp> {
        Some(Self::start(
            TestDb::new(backend)?,
            Limits::default(),
            None,
            knobs,
        ))
    }

    /// A server that applies this many uploads at once, each waiting this long for its turn.
    #[allow(dead_code, reason = "for the integration tests only")]
    pub fn spawn_with_uploads(
        backend: Backend,
        uploads: offsync::web::gate::UploadLimits,
    ) -> Option<TestApp> {
        Some(Self::start(
            TestDb::new(backend)?,
            Limits::default(),
            None,
            Knobs {
                uploads,
                ..Default::default()
            },
        ))
    }

    /// A server on `db` (whose URL a test may have pointed elsewhere, e.g. at a proxy).
    #[allow(dead_code, reason = "for tests/faults.rs, which shares these helpers")]
    pub fn start_on(db: TestDb) -> TestApp {
        Self::start(db, Limits::default(), None, Default::default())
    }

    /// A laptop's offline copy (on its own SQLite database) of the main server at
    /// `upstream`, with this device token.
    pub fn spawn_offline(upstream: &str, token: &str) -> TestApp {
        let db = TestDb::new(Backend::Sqlite).expect("SQLite is always there");
        let up = offsync::offline::client::Upstream::new(upstream, token).expect("an upstream");
        Self::start(
            db,
            Limits::default(),
            Some(offsync::web::offline::OfflineApp::new(
                Some(up),
                upstream.to_owned(),
            )),
            Default::default(),
        )
    }

    /// The offline copy's pages over a laptop's own database.
    pub fn offline_over(pool: Pool, upstream: offsync::offline::client::Upstream) -> TestApp {
        Self::serve(
            None,
            pool,
            Limits::default(),
            Some(offsync::web::offline::OfflineApp::new(
                Some(upstream),
                String::new(),
            )),
            Default::default(),
        )
    }

    fn start(
        db: TestDb,
        limits: Limits,
        offline: Option<offsync::web::offline::OfflineApp>,
        knobs: Knobs,
    ) -> TestApp {
        let pool = db::connect(&db.url, 8).expect("connecting to the test database");
        Self::serve(Some(db), pool, limits, offline, knobs)
    }

    fn serve(
        db: Option<TestDb>,
        pool: Pool,
        limits: Limits,
        offline: Option<offsync::web::offline::OfflineApp>,
        knobs: Knobs,
    ) -> TestApp {
        offsync::telemetry::init();
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let settings = WebSettings {
            limits,
            session_key: actix_web::cookie::Key::generate(),
            secure_cookies: false,
            workers: 2,
            sign_in: knobs.sign_in,
            sessions: knobs.sessions,
            proxies: knobs.proxies,
            uploads: knobs.uploads,
        };
        let (tx, rx) = mpsc::channel();
        let server_pool = pool.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = web::serve(listener, server_pool, settings, offline)
                    .expect("the server starts");
                tx.send(server.handle())
                    .expect("the test waits for the handle");
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("the server's handle");
        TestApp {
            base,
            pool,
            _db: db,
            handle,
            thread: Some(thread),
            counter: std::cell::Cell::new(0),
        }
    }

    pub fn conn(&self) -> db::PooledConn {
        self.pool.get().expect("a connection")
    }

    /// A unique string for names and tags.
    pub fn uniq(&self, prefix: &str) -> String {
        self.counter.set(self.counter.get() + 1);
        format!(
            "{prefix}-{}-{}",
            self.counter.get(),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        )
    }

    pub fn add_user(&self, name: &str, password: &str, admin: bool) {
        offsync::accounts::add_user(&mut self.conn(), name, password, admin).expect("add user");
    }

    pub fn add_user_as(&self, name: &str, password: &str, role: offsync::accounts::Role) {
        offsync::accounts::add_user_with_role(&mut self.conn(), name, password, role)
            .expect("add user");
    }

    /// A new device of `user` (created when missing).
    pub fn device(&self, user: &str) -> Device {
        new_device(&mut self.conn(), &self.base, user, &self.uniq("laptop"))
    }

    /// Loads rows as online edits (`offsync import`).
    pub fn import(&self, doc: &str) {
        offsync::sync::import::import(
            &mut self.conn(),
            std::io::Cursor::new(doc.as_bytes().to_vec()),
            u64::MAX,
        )
        .expect("import");
    }

    /// The server's row, by a fresh device's full download.
    pub fn row(&self, table: &str, id: &str) -> Option<ServerRow> {
        let t = offsync::domain::table_by_name(table).unwrap();
        offsync::db::repo::rows::get(&mut self.conn(), t, id)
            .unwrap()
            .map(|r| ServerRow {
                updated: r.last_updated,
                fields: TABLES[t]
                    .fields
                    .iter()
                    .zip(r.values)
                    .map(|(f, v)| (f.name.to_owned(), v))
                    .collect(),
            })
    }

    /// A site and an asset under it, imported; returns (site id, asset id).
    pub fn seed_asset(&self) -> (String, String) {
        let site = uid();
        let asset = uid();
        let code = self.uniq("S");
        let tag = self.uniq("T");
        self.import(&doc(&[
            create(
                "sites",
                &site,
                &[
                    ("code", Some(&code)),
                    ("name", Some("Site")),
                    ("address", None),
                    ("access_notes", Some("gate")),
                ],
            ),
            create(
                "assets",
                &asset,
                &[
                    ("site_id", Some(&site)),
                    ("tag", Some(&tag)),
                    ("description", Some("Pump")),
                    ("status", Some("ok")),
                    ("notes", Some("n0")),
                ],
            ),
        ]));
        (site, asset)
    }

    /// An inspection with one reading under `asset`; returns (inspection id, reading id).
    pub fn seed_inspection(&self, asset: &str) -> (String, String) {
        let inspection = uid();
        let reading = uid();
        self.import(&doc(&[
            create("inspections", &inspection, &inspection_fields(asset)),
            create("readings", &reading, &reading_fields(&inspection)),
        ]));
        (inspection, reading)
    }

    /// `n` readings under `inspection`, imported; returns their ids.
    pub fn seed_readings(&self, inspection: &str, n: usize) -> Vec<String> {
        let ids: Vec<String> = (0..n).map(|_| uid()).collect();
        let creates: Vec<String> = ids
            .iter()
            .map(|id| create("readings", id, &reading_fields(inspection)))
            .collect();
        self.import(&doc(&creates));
        ids
    }

    /// Deletes a row online, with everything below it (`offsync import` with a `<delete>`).
    pub fn online_delete(&self, table: &str, id: &str) {
        self.import(&doc(&[format!(r#"<delete table="{table}" id="{id}"/>"#)]));
    }

    /// Changes a row online (a later server version).
    pub fn online_edit(&self, table: &str, id: &str, field: &str, value: Option<&str>) {
        self.import(&doc(&[create(table, id, &[(field, value)])]));
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let stop = self.handle.stop(false);
        futures_executor_block_on(stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
    actix_web::rt::System::new().block_on(f)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    pub updated: i64,
    pub fields: HashMap<String, Option<String>>,
}

/// `offsync ARGS --database-url URL` as a process; its stdout, trimmed. Panics with its
/// stderr when it fails.
#[allow(dead_code, reason = "for the process-level tests")]
pub fn offsync_cli(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_offsync"))
        .args(args)
        .args(["--database-url", url])
        .env_remove("DATABASE_URL")
        .output()
        .expect("offsync runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// A new device `label` of `user` (created, with the password "password", when missing),
/// talking to the server at `base`.
pub fn new_device(conn: &mut db::DbConn, base: &str, user: &str, label: &str) -> Device {
    if offsync::db::repo::accounts::user_by_name(conn, user)
        .expect("a lookup")
        .is_none()
    {
        offsync::accounts::add_user(conn, user, "password", false).expect("add user");
    }
    let (_, token) = offsync::accounts::add_device(conn, user, label).expect("add device");
    Device {
        base: base.to_owned(),
        token,
        http: client(),
        replica: HashMap::new(),
    }
}

pub fn uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---------------------------------------------------------------------------------------
// Changeset documents, written by hand so that tests control the exact markup.

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A `<record>` creating a row.
pub fn create(table: &str, id: &str, fields: &[(&str, Option<&str>)]) -> String {
    record(
        table,
        id,
        None,
        &fields
            .iter()
            .map(|(n, v)| (*n, *v, None))
            .collect::<Vec<_>>(),
    )
}

/// One field of a hand-written record: name, value (`None` is NULL), and `was`:
/// `Some(Some(v))`, `Some(None)` (was-null) or `None` (not sent).
pub type FieldSpec<'a> = (&'a str, Option<&'a str>, Option<Option<&'a str>>);

/// A `<record>`, editing the row at `base` when given.
pub fn record(table: &str, id: &str, base: Option<&str>, fields: &[FieldSpec<'_>]) -> String {
    let mut out = format!("<record table=\"{table}\" id=\"{id}\"");
    if let Some(b) = base {
        out.push_str(&format!(" base=\"{b}\""));
    }
    out.push_str(" updated=\"2026-11-21T09:14:03.000000Z\">");
    for (name, value, was) in fields {
        out.push_str(&format!("<field name=\"{name}\""));
        match was {
            Some(Some(w)) => out.push_str(&format!(" was=\"{}\"", esc(w))),
            Some(None) => out.push_str(" was-null=\"true\""),
            None => {}
        }
        match value {
            Some(v) => out.push_str(&format!(">{}</field>", esc(v))),
            None => out.push_str(" null=\"true\"/>"),
        }
    }
    out.push_str("</record>");
    out
}

pub fn edit(table: &str, id: &str, base: &str, fields: &[(&str, Option<&str>)]) -> String {
    record(
        table,
        id,
        Some(base),
        &fields
            .iter()
            .map(|(n, v)| (*n, *v, None))
            .collect::<Vec<_>>(),
    )
}

pub fn delete(table: &str, id: &str, base: &str) -> String {
    format!("<delete table=\"{table}\" id=\"{id}\" base=\"{base}\"/>")
}

pub fn doc(items: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<changeset version=\"1\">\n{}\n</changeset>\n",
        items.join("\n")
    )
}

/// The readable part of a gzip stream, cut or whole, as text.
pub fn ungzip(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(bytes);
    let mut buf = [0u8; 8192];
    while let Ok(n) = decoder.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

pub fn inspection_fields(asset: &str) -> Vec<(&str, Option<&str>)> {
    vec![
        ("asset_id", Some(asset)),
        ("inspected_at", Some("2026-11-21T09:00:00Z")),
        ("inspector", Some("Jo")),
        ("result", Some("pass")),
        ("summary", Some("ok")),
    ]
}

pub fn reading_fields(inspection: &str) -> Vec<(&str, Option<&str>)> {
    vec![
        ("inspection_id", Some(inspection)),
        ("kind", Some("pressure")),
        ("value", Some("4.2")),
        ("unit", Some("bar")),
    ]
}

// ---------------------------------------------------------------------------------------
// The device side.

/// An answer: status and body text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub bytes: Vec<u8>,
    pub content_type: String,
}

impl Answer {
    /// The value of an attribute of the body's root element.
    pub fn attr(&self, name: &str) -> Option<String> {
        attr(&self.body, name)
    }

    /// Asserts an `<error>` answer with this status and, where given, naming these.
    /// A 503 `<error code="unavailable">` whose message names `reason`.
    #[allow(dead_code, reason = "for tests/faults.rs, which shares these helpers")]
    pub fn assert_unavailable(&self, reason: &str) {
        self.assert_error(503, None, None, None);
        assert_eq!(
            self.attr("code").as_deref(),
            Some("unavailable"),
            "{}",
            self.body
        );
        assert!(self.body.contains(reason), "{reason:?} in {}", self.body);
    }

    pub fn assert_error(
        &self,
        status: u16,
        table: Option<&str>,
        id: Option<&str>,
        field: Option<&str>,
    ) {
        assert_eq!(self.status, status, "expected {status}, got: {}", self.body);
        assert!(
            self.body.starts_with("<error code=\""),
            "not an <error>: {}",
            self.body
        );
        assert!(
            self.attr("code")
                .is_some_and(|c| !c.is_empty() && !c.contains(' '))
        );
        assert_eq!(
            self.attr("table").as_deref(),
            table,
            "table in {}",
            self.body
        );
        assert_eq!(self.attr("id").as_deref(), id, "id in {}", self.body);
        assert_eq!(
            self.attr("field").as_deref(),
            field,
            "field in {}",
            self.body
        );
    }
}

/// An attribute of the first element of `xml`.
/// The ids of the records a changeset's text carries, in order.
pub fn record_ids(xml: &str) -> Vec<String> {
    xml.split("<record ")
        .skip(1)
        .filter_map(|r| attr(r, "id"))
        .collect()
}

pub fn attr(xml: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = xml.find(&needle)? + needle.len();
    let end = xml[start..].find('"')? + start;
    Some(
        xml[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

fn answer(r: reqwest::blocking::Response) -> Answer {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = r.bytes().map(|b| b.to_vec()).unwrap_or_default();
    Answer {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
        content_type,
    }
}

/// A session as the server announced it.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub since: Option<String>,
    pub started: String,
}

/// A download, parsed with the library's reader.
#[derive(Debug, Default)]
pub struct Download {
    pub since: Option<i64>,
    pub items: Vec<Item>,
}

impl Download {
    pub fn record(&self, table: &str, id: &str) -> Option<&offsync::sync::codec::Record> {
        let t = offsync::domain::table_by_name(table)?;
        self.items.iter().find_map(|i| match i {
            Item::Record(r) if r.table == t && r.id == id => Some(r),
            _ => None,
        })
    }

    pub fn value(&self, table: &str, id: &str, field: &str) -> Option<Option<String>> {
        let t = offsync::domain::table_by_name(table)?;
        let index = TABLES[t].field_index(field)?;
        self.record(table, id).map(|r| {
            r.fields
                .iter()
                .find(|f| f.index == index)
                .and_then(|f| f.value.clone())
        })
    }

    pub fn deleted(&self, table: &str, id: &str) -> bool {
        let t = offsync::domain::table_by_name(table).unwrap();
        self.items
            .iter()
            .any(|i| matches!(i, Item::Delete(d) if d.table == t && d.id == id))
    }

    pub fn aliases(&self) -> Vec<(String, String)> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Alias(a) => Some((a.id.clone(), a.canonical.clone())),
                _ => None,
            })
            .collect()
    }
}

pub struct Device {
    pub base: String,
    pub token: String,
    pub http: reqwest::blocking::Client,
    /// (table, id) → the row's `updated` as last downloaded.
    pub replica: HashMap<(String, String), i64>,
}

impl Device {
    pub fn with_token(&self, token: &str) -> Device {
        Device {
            base: self.base.clone(),
            token: token.to_owned(),
            http: client(),
            replica: HashMap::new(),
        }
    }

    pub fn open_raw(&self) -> Answer {
        answer(
            self.http
                .post(format!("{}/api/sync/sessions", self.base))
                .bearer_auth(&self.token)
                .send()
                .expect("open"),
        )
    }

    pub fn open(&self) -> Session {
        let a = self.open_raw();
        assert_eq!(a.status, 201, "open: {}", a.body);
        Session {
            id: a.attr("id").expect("session id"),
            since: a.attr("since"),
            started: a.attr("started").expect("started"),
        }
    }

    pub fn upload_bytes(&self, sid: &str, file: Vec<u8>) -> Answer {
        let part = reqwest::blocking::multipart::Part::bytes(file)
            .file_name("changes.xml.gz")
            .mime_str("application/gzip")
            .expect("a mime type");
        let form = reqwest::blocking::multipart::Form::new().part("changes", part);
        answer(
            self.http
                .post(format!("{}/api/sync/sessions/{sid}/upload", self.base))
                .bearer_auth(&self.token)
                .multipart(form)
                .send()
                .expect("upload"),
        )
    }

    pub fn upload_raw(&self, sid: &str, xml: &str) -> Answer {
        self.upload_bytes(sid, gzip(xml.as_bytes()))
    }

    /// Uploads and returns (applied, unchanged, conflicts, isConflict).
    pub fn upload(&self, sid: &str, items: &[String]) -> (u64, u64, u64, bool) {
        let a = self.upload_raw(sid, &doc(items));
        assert_eq!(a.status, 200, "upload: {}", a.body);
        counts(&a)
    }

    pub fn download_raw(&self, sid: &str) -> Answer {
        answer(
            self.http
                .get(format!("{}/api/sync/sessions/{sid}/changes", self.base))
                .bearer_auth(&self.token)
                .send()
                .expect("download"),
        )
    }

    pub fn download(&mut self, sid: &str) -> Download {
        let a = self.download_raw(sid);
        assert_eq!(a.status, 200, "download: {}", a.body);
        assert_eq!(a.content_type, "application/gzip");
        assert_eq!(&a.bytes[..2], &[0x1f, 0x8b], "a download is gzip");
        let d = parse(&a.bytes);
        for i in &d.items {
            match i {
                Item::Record(r) => {
                    self.replica.insert(
                        (TABLES[r.table].name.to_owned(), r.id.clone()),
                        r.updated.expect("downloads carry updated"),
                    );
                }
                Item::Delete(x) => {
                    self.replica
                        .remove(&(TABLES[x.table].name.to_owned(), x.id.clone()));
                }
                Item::Alias(_) => {}
            }
        }
        d
    }

    pub fn complete_raw(&self, sid: &str) -> Answer {
        answer(
            self.http
                .post(format!("{}/api/sync/sessions/{sid}/complete", self.base))
                .bearer_auth(&self.token)
                .send()
                .expect("complete"),
        )
    }

    pub fn complete(&self, sid: &str) {
        let a = self.complete_raw(sid);
        assert_eq!(a.status, 200, "complete: {}", a.body);
        assert_eq!(a.attr("status").as_deref(), Some("complete"));
    }

    pub fn state_raw(&self) -> Answer {
        answer(
            self.http
                .get(format!("{}/api/sync/state", self.base))
                .bearer_auth(&self.token)
                .send()
                .expect("state"),
        )
    }

    /// (lastSync, isConflict, conflicts)
    pub fn state(&self) -> (Option<String>, bool, u64) {
        let a = self.state_raw();
        assert_eq!(a.status, 200, "state: {}", a.body);
        (
            a.attr("lastSync"),
            a.attr("isConflict").as_deref() == Some("true"),
            a.attr("conflicts")
                .and_then(|c| c.parse().ok())
                .expect("conflicts"),
        )
    }

    /// One whole sync; returns the upload's counts (if any) and the download.
    pub fn sync(&mut self, items: &[String]) -> (Option<(u64, u64, u64, bool)>, Download) {
        let s = self.open();
        let result = if items.is_empty() {
            None
        } else {
            Some(self.upload(&s.id, items))
        };
        let d = self.download(&s.id);
        self.complete(&s.id);
        (result, d)
    }

    /// The base (server `updated`) this device holds for a row, in wire form.
    pub fn base(&self, table: &str, id: &str) -> String {
        time::format(
            *self
                .replica
                .get(&(table.to_owned(), id.to_owned()))
                .unwrap_or_else(|| panic!("the device never received {table} {id}")),
        )
    }
}

pub fn counts(a: &Answer) -> (u64, u64, u64, bool) {
    let n = |k: &str| {
        a.attr(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {}", a.body))
    };
    (
        n("applied"),
        n("unchanged"),
        n("conflicts"),
        a.attr("isConflict").as_deref() == Some("true"),
    )
}

pub fn parse(bytes: &[u8]) -> Download {
    let input =
        offsync::sync::codec::decompressing(std::io::Cursor::new(bytes.to_vec())).expect("gzip");
    let mut r = ChangesetReader::new(input, u64::MAX);
    let since = r.header().expect("a changeset header").since;
    let mut items = Vec::new();
    while let Some(i) = r.next_item().expect("a well-formed download") {
        items.push(i);
    }
    Download { since, items }
}

/// Runs a test body on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name($crate::helpers::Backend::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name($crate::helpers::Backend::Postgres) })*
        }
    };
}

// ---------------------------------------------------------------------------------------
// The pages, as a browser without JavaScript uses them.

/// A person's browser without JavaScript: a cookie jar, forms posted as browsers post them.
pub struct Browser {
    base: String,
    pub http: reqwest::blocking::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser::at(&app.base)
    }

    /// A browser for the server at `base`.
    pub fn at(base: &str) -> Browser {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        Browser {
            base: base.to_owned(),
            http: reqwest::blocking::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar,
        }
    }

    /// A cookie the page's script would set (the browser's time zone).
    pub fn set_cookie(&self, name: &str, value: &str) {
        let url = self.base.parse().expect("the base is a URL");
        self.jar
            .add_cookie_str(&format!("{name}={value}; Path=/"), &url);
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    pub fn post(&self, path: &str, pairs: &[(&str, &str)]) -> (u16, String, Option<String>) {
        self.try_post(path, pairs).expect("the server answers")
    }

    /// A form post whose answer may not come (the server may die meanwhile).
    pub fn try_post(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
    ) -> Result<(u16, String, Option<String>), reqwest::Error> {
        let body = serde_urlencoded::to_string(pairs).expect("a form");
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            // As a browser posting one of the site's own forms sends it.
            .header("origin", &self.base)
            .body(body)
            .send()?;
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((r.status().as_u16(), r.text()?, loc))
    }

    pub fn csrf(&self, page: &str) -> String {
        attr_after(page, "name=\"csrf\"", "value").expect("a csrf field")
    }

    pub fn sign_in(&self, user: &str, password: &str) -> (u16, String, Option<String>) {
        let (status, page) = self.get("/login");
        assert_eq!(status, 200);
        assert!(page.contains("name=\"username\"") && page.contains("type=\"password\""));
        let csrf = self.csrf(&page);
        self.post(
            "/login",
            &[("csrf", &csrf), ("username", user), ("password", password)],
        )
    }

    pub fn signed_in(app: &TestApp, user: &str) -> Browser {
        let b = Browser::new(app);
        let (status, _, loc) = b.sign_in(user, "password");
        assert_eq!(status, 303);
        assert_eq!(loc.as_deref(), Some("/"));
        b
    }

    /// The ids linked from /conflicts.
    pub fn conflict_ids(&self) -> Vec<String> {
        let (status, page) = self.get("/conflicts");
        assert_eq!(status, 200);
        page.match_indices("href=\"/conflicts/")
            .map(|(i, m)| {
                let rest = &page[i + m.len()..];
                rest[..rest.find('"').unwrap()].to_owned()
            })
            .collect()
    }
}

/// The value of attribute `name` in the tag that contains `marker`.
pub fn attr_after(page: &str, marker: &str, name: &str) -> Option<String> {
    let at = page.find(marker)?;
    let tag_start = page[..at].rfind('<')?;
    let tag_end = at + page[at..].find('>')?;
    attr(&page[tag_start..tag_end], name)
}

// ---------------------------------------------------------------------------------------
// Edit forms, as a browser fills and posts them.

/// What a field of a form page shows: a textarea's text, a select's chosen option, an
/// input's value.
pub fn shown_value(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let Some(at) = page.find(&marker) else {
        return String::new();
    };
    let tag_start = page[..at].rfind('<').unwrap_or(at);
    let unescape = |s: &str| {
        s.replace("&#10;", "\n")
            .replace("&#34;", "\"")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    if page[tag_start..].starts_with("<textarea") {
        let body = &page[at + page[at..].find('>').unwrap() + 1..];
        let body = &body[..body.find("</textarea>").unwrap()];
        return unescape(body.strip_prefix('\n').unwrap_or(body));
    }
    if page[tag_start..].starts_with("<select") {
        let body = &page[at..at + page[at..].find("</select>").unwrap()];
        return attr_after(body, " selected", "value").unwrap_or_default();
    }
    attr_after(page, &marker, "value").unwrap_or_default()
}

/// The pairs a browser posts for an edit form left as it is: every field with its hidden
/// `was.NAME` (textareas with CR LF, as browsers send them).
pub fn form_as_sent(page: &str) -> Vec<(String, String)> {
    let mut out = vec![
        (
            "csrf".to_owned(),
            attr_after(page, "name=\"csrf\"", "value").unwrap(),
        ),
        ("version".to_owned(), form_version(page)),
    ];
    let mut at = 0;
    while let Some(i) = page[at..].find("name=\"was.") {
        let start = at + i + "name=\"was.".len();
        let name = page[start..start + page[start..].find('"').unwrap()].to_owned();
        let was = attr_after(page, &format!("name=\"was.{name}\""), "value").unwrap_or_default();
        let value = shown_value(page, &name);
        out.push((format!("was.{name}"), was.replace('\n', "\r\n")));
        out.push((name, value.replace('\n', "\r\n")));
        at = start;
    }
    out
}

pub fn post_form(br: &Browser, path: &str, pairs: &[(String, String)]) -> (u16, String) {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (status, page, _) = br.post(path, &pairs);
    (status, page)
}

pub fn set_field(pairs: &mut [(String, String)], name: &str, value: &str) {
    for (k, v) in pairs.iter_mut() {
        if k == name {
            *v = value.to_owned();
        }
    }
}

/// The `version` hidden field of a form page.
pub fn form_version(page: &str) -> String {
    attr_after(page, "name=\"version\"", "value").unwrap()
}
