//! A laptop as the tests drive it (its own SQLite database, the real sync client, edits
//! through the same functions the pages call), and a proxy that drops answers as a bad
//! line does.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use offsync::db::{self, Pool};
use offsync::domain::{TABLES, table_by_name};
use offsync::editing::{self, Rights};
use offsync::offline::client::Upstream;
use offsync::offline::store;
use offsync::offline::sync::{self, Quiet, Summary};

use crate::helpers::*;

/// A laptop: its own SQLite database and its device token.
pub struct Laptop {
    pub pool: Pool,
    pub upstream: Upstream,
    _db: TestDb,
}

impl Laptop {
    pub fn new(app: &TestApp, user: &str) -> Laptop {
        Self::via(app, user, &app.base)
    }

    /// A laptop that reaches the server through `base` (a proxy, say).
    pub fn via(app: &TestApp, user: &str, base: &str) -> Laptop {
        let device = app.device(user);
        let db = TestDb::new(Backend::Sqlite).unwrap();
        let pool = db::connect(&db.url, 4).unwrap();
        let mut upstream = Upstream::new(base, &device.token).unwrap();
        upstream.backoff = std::time::Duration::from_millis(20);
        upstream.attempts = 2;
        Laptop {
            pool,
            upstream,
            _db: db,
        }
    }

    /// A copy of this laptop's database as a backup keeps it (`VACUUM INTO`: consistent
    /// while the laptop runs), with the same device token: the laptop restored from it.
    pub fn backup(&self) -> Laptop {
        use diesel::RunQueryDsl;
        let db = TestDb::new(Backend::Sqlite).unwrap();
        let path = db.url.trim_start_matches("sqlite://").to_owned();
        diesel::sql_query(format!("VACUUM INTO '{path}'"))
            .execute(&mut self.pool.get().unwrap())
            .expect("the backup is written");
        let pool = db::connect(&db.url, 4).unwrap();
        Laptop {
            pool,
            upstream: self.upstream.clone(),
            _db: db,
        }
    }

    pub fn sync(&self) -> Summary {
        sync::sync(&self.pool, &self.upstream, &Quiet).expect("the sync completes")
    }

    pub fn value(&self, table: &str, id: &str, field: &str) -> Option<Option<String>> {
        let t = table_by_name(table).unwrap();
        let i = TABLES[t].field_index(field).unwrap();
        offsync::db::repo::rows::get(&mut self.pool.get().unwrap(), t, id)
            .unwrap()
            .map(|r| r.values[i].clone())
    }

    pub fn exists(&self, table: &str, id: &str) -> bool {
        self.value(
            table,
            id,
            TABLES[table_by_name(table).unwrap()].fields[0].name,
        )
        .is_some()
    }

    pub fn version(&self, table: &str, id: &str) -> i64 {
        let t = table_by_name(table).unwrap();
        offsync::db::repo::rows::get(&mut self.pool.get().unwrap(), t, id)
            .unwrap()
            .unwrap()
            .last_updated
    }

    /// Changes fields of a row offline, as the pages do.
    pub fn edit(&self, table: &str, id: &str, fields: &[(&str, &str)]) {
        let t = table_by_name(table).unwrap();
        let input: BTreeMap<String, String> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        editing::update(
            &mut self.pool.get().unwrap(),
            Rights::Laptop,
            t,
            id,
            self.version(table, id),
            &input,
            "laptop",
        )
        .unwrap();
    }

    pub fn create(&self, table: &str, fields: &[(&str, &str)]) -> String {
        let t = table_by_name(table).unwrap();
        let input: BTreeMap<String, String> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        editing::create(
            &mut self.pool.get().unwrap(),
            Rights::Laptop,
            t,
            &input,
            "laptop",
        )
        .unwrap()
    }

    pub fn delete(&self, table: &str, id: &str) {
        let t = table_by_name(table).unwrap();
        editing::delete(
            &mut self.pool.get().unwrap(),
            Rights::Laptop,
            t,
            id,
            self.version(table, id),
            "laptop",
        )
        .unwrap();
    }

    pub fn pending(&self) -> i64 {
        store::pending_rows(&mut self.pool.get().unwrap()).unwrap()
    }

    /// Every row the laptop holds: (table, id) → values.
    pub fn snapshot(&self) -> BTreeMap<(String, String), Vec<Option<String>>> {
        let mut conn = self.pool.get().unwrap();
        let mut out = BTreeMap::new();
        for (t, def) in TABLES.iter().enumerate() {
            for r in offsync::db::repo::rows::list(&mut conn, t, &Default::default(), 1_000_000, 0)
                .unwrap()
            {
                out.insert((def.name.to_owned(), r.id), r.values);
            }
        }
        out
    }
}

/// A loopback proxy that can cut the answers to requests whose path contains a pattern,
/// after a number of bytes: the server did its work, the laptop never heard.
pub struct Proxy {
    pub base: String,
    cut: Arc<Mutex<Option<(String, usize)>>>,
    requests: Arc<Mutex<Vec<String>>>,
    /// While set, connections are closed at once: the server is out of reach.
    down: Arc<std::sync::atomic::AtomicBool>,
    /// Milliseconds to wait before passing on each piece of an answer: a slow line.
    slow: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let target = upstream.trim_start_matches("http://").to_owned();
        let cut: Arc<Mutex<Option<(String, usize)>>> = Arc::new(Mutex::new(None));
        let rule = cut.clone();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = requests.clone();
        let down: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let slow: Arc<std::sync::atomic::AtomicU64> = Arc::default();
        let (is_down, delay) = (down.clone(), slow.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if is_down.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let delay = delay.clone();
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let rule = rule.clone();
                let current = Arc::new(Mutex::new(String::new()));
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let seen = current.clone();
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let head = String::from_utf8_lossy(&buf[..n.min(200)]).to_string();
                        if let Some(line) = head.lines().next().filter(|l| l.contains(" HTTP/1.1"))
                        {
                            *seen.lock().unwrap() = line.to_owned();
                            log.lock().unwrap().push(line.to_owned());
                        }
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    let mut sent = 0usize;
                    while let Ok(n) = s_in.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        let limit = rule
                            .lock()
                            .unwrap()
                            .clone()
                            .filter(|(pattern, _)| {
                                current.lock().unwrap().contains(pattern.as_str())
                            })
                            .map(|(_, limit)| limit);
                        let pause = delay.load(std::sync::atomic::Ordering::SeqCst);
                        if pause > 0 {
                            std::thread::sleep(std::time::Duration::from_millis(pause));
                        }
                        let take = match limit {
                            Some(l) if sent + n > l => l.saturating_sub(sent),
                            _ => n,
                        };
                        if c_out.write_all(&buf[..take]).is_err() {
                            break;
                        }
                        sent += take;
                        if take < n {
                            let _ = c_out.shutdown(std::net::Shutdown::Both);
                            let _ = s_in.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                    }
                    let _ = c_out.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Proxy {
            base,
            cut,
            requests,
            down,
            slow,
        }
    }

    /// The server out of reach (`true`) or back (`false`).
    #[allow(dead_code, reason = "used by some of the tests that share the proxy")]
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Waits this long before passing on each piece of an answer.
    #[allow(dead_code, reason = "used by some of the tests that share the proxy")]
    pub fn set_slow(&self, millis: u64) {
        self.slow.store(millis, std::sync::atomic::Ordering::SeqCst);
    }

    /// The first line of every request that went through, in order.
    #[allow(dead_code, reason = "used by some of the tests that share the proxy")]
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Cuts answers to requests whose first line contains `pattern` after `bytes` bytes.
    pub fn cut(&self, pattern: &str, bytes: usize) {
        *self.cut.lock().unwrap() = Some((pattern.to_owned(), bytes));
    }

    pub fn heal(&self) {
        *self.cut.lock().unwrap() = None;
    }
}
