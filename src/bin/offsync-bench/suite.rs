//! End-to-end sync timings over HTTP against real `offsync serve` processes: a first
//! download, an upload and the download after it with the server's peak memory; many
//! devices at once; the conflict pages; the gzip levels. The ratios to an independent floor
//! are `floor.rs`'s. See docs/performance.md.

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use diesel::Connection;
use diesel::connection::SimpleConnection;

use offsync::db::cursor::Window;
use offsync::db::repo::rows;
use offsync::db::{self, Pool, write_txn};
use offsync::domain::rules::next_stamp;
use offsync::domain::{TABLES, table_by_name, time};
use offsync::offline::client::Upstream;
use offsync::sync::codec::{ChangesetWriter, FieldChange, Item, Record, Was};

/// What to measure.
pub struct BenchArgs {
    pub rows: Vec<u64>,
    pub runs: usize,
    /// A PostgreSQL server (any database on it) to measure as well.
    pub postgres: Option<String>,
    /// Only this backend ("sqlite" or "postgres").
    pub only: Option<String>,
}

/// One measured operation.
struct Figure {
    backend: &'static str,
    rows: u64,
    op: &'static str,
    offsync: Vec<f64>,
    peak_mib: f64,
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut figures = Vec::new();
    let mut backends: Vec<(&'static str, Option<String>)> = vec![("sqlite", None)];
    if let Some(pg) = &args.postgres {
        backends.push(("postgres", Some(pg.clone())));
    }
    if let Some(only) = &args.only {
        backends.retain(|(name, _)| name == only);
        if backends.is_empty() {
            bail!("--only {only}: measure \"sqlite\", or \"postgres\" with --postgres URL");
        }
    }
    for (backend, admin) in &backends {
        for &n in &args.rows {
            figures.extend(measure(backend, admin.as_deref(), n, args.runs.max(1))?);
        }
    }
    println!("| backend | rows | operation | offsync (median s) | rows/s | server peak MiB |");
    println!("|---|---:|---|---:|---:|---:|");
    for f in &figures {
        let o = median(&f.offsync);
        println!(
            "| {} | {} | {} | {:.3} | {:.0} | {:.1} |",
            f.backend,
            f.rows,
            f.op,
            o,
            f.rows as f64 / o,
            f.peak_mib
        );
    }
    Ok(())
}

/// The `offsync` program beside this one (the same build).
pub(crate) fn offsync_binary() -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::current_exe()?.with_file_name("offsync");
    if !path.exists() {
        bail!(
            "{} is missing: build it first (cargo build --release)",
            path.display()
        );
    }
    Ok(path)
}

/// A fresh database of the backend; its URL, and a drop guard.
pub(crate) struct BenchDb {
    pub(crate) url: String,
    admin: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl BenchDb {
    pub(crate) fn new(admin: Option<&str>) -> anyhow::Result<BenchDb> {
        match admin {
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                Ok(BenchDb {
                    url,
                    admin: None,
                    _dir: Some(dir),
                })
            }
            Some(admin) => {
                let name = format!("offsync_bench_{}", uuid::Uuid::new_v4().simple());
                let mut c =
                    diesel::PgConnection::establish(admin).context("connecting to PostgreSQL")?;
                c.batch_execute(&format!("CREATE DATABASE {name}"))?;
                let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
                Ok(BenchDb {
                    url: format!("{base}/{name}"),
                    admin: Some((admin.to_owned(), name)),
                    _dir: None,
                })
            }
        }
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.admin
            && let Ok(mut c) = diesel::PgConnection::establish(admin)
        {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

/// `offsync serve` as a child process, killed on drop.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
}

impl Server {
    pub(crate) fn start(url: &str) -> anyhow::Result<Server> {
        Self::start_on(url, None)
    }

    /// Started on these CPUs only (`taskset -c`), as if on a machine of its own that size.
    pub(crate) fn start_on(url: &str, cpus: Option<&str>) -> anyhow::Result<Server> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(offsync_binary()?);
                c
            }
            None => Command::new(offsync_binary()?),
        };
        let child = command
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                url,
            ])
            .arg("--session-key-file")
            .arg(dir.path().join("key"))
            .env("OFFSYNC_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("offsync serve did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::mem::forget(dir);
        Ok(Server { child, base })
    }

    /// The process's peak resident memory so far (VmHWM), in MiB.
    pub(crate) fn peak_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    /// Stops the server gracefully (so that a profiler around it writes its data), and
    /// kills it when it has not stopped within ten seconds.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo schema filled with `n` rows: one site, one asset, an inspection per 100
/// readings, the rest readings. Returns the readings' ids.
fn fill(pool: &Pool, n: u64) -> anyhow::Result<Vec<String>> {
    let new_id = || uuid::Uuid::new_v4().to_string();
    let mut w = ChangesetWriter::start(Vec::new(), None)?;
    // Rows by field name; a name the domain does not declare is an error, not a guess.
    let rec = |table: &str, id: &str, named: &[(&str, Option<&str>)]| {
        Record::create(table, id, named)
            .map(Item::Record)
            .ok_or_else(|| anyhow::anyhow!("the bench names a field {table} does not have"))
    };
    let (site, asset) = (new_id(), new_id());
    w.item(&rec(
        "sites",
        &site,
        &[("code", Some("BENCH")), ("name", Some("Bench site"))],
    )?)?;
    w.item(&rec(
        "assets",
        &asset,
        &[
            ("site_id", Some(&site)),
            ("tag", Some("BENCH-1")),
            ("status", Some("ok")),
        ],
    )?)?;
    let mut readings = Vec::new();
    let mut inspection = String::new();
    for i in 0..n.saturating_sub(2) {
        if i % 101 == 0 {
            inspection = new_id();
            w.item(&rec(
                "inspections",
                &inspection,
                &[
                    ("asset_id", Some(&asset)),
                    ("inspected_at", Some("2026-11-21T09:00:00.000000Z")),
                    ("inspector", Some("Bench")),
                    ("result", Some("pass")),
                ],
            )?)?;
            continue;
        }
        let r = new_id();
        let value = format!("{}.5", i % 997);
        w.item(&rec(
            "readings",
            &r,
            &[
                ("inspection_id", Some(&inspection)),
                ("kind", Some("pressure")),
                ("value", Some(&value)),
                ("unit", Some("bar")),
            ],
        )?)?;
        readings.push(r);
    }
    let doc = w.finish()?;
    let mut conn = pool.get()?;
    offsync::sync::import::import(&mut conn, std::io::Cursor::new(doc), u64::MAX)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(readings)
}

fn measure(
    backend: &'static str,
    admin: Option<&str>,
    n: u64,
    runs: usize,
) -> anyhow::Result<Vec<Figure>> {
    let mut first = Vec::new();
    let mut upload = Vec::new();
    let mut after = Vec::new();
    let mut peak: f64 = 0.0;
    for run in 0..runs {
        eprintln!("bench: {backend}, {n} rows, run {}/{runs}", run + 1);
        let bench_db = BenchDb::new(admin)?;
        let pool = db::connect(&bench_db.url, 4)?;
        let readings = fill(&pool, n)?;
        let server = Server::start(&bench_db.url)?;
        let token = {
            let mut conn = pool.get()?;
            if offsync::db::repo::accounts::user_by_name(&mut conn, "bench")?.is_none() {
                offsync::accounts::add_user(&mut conn, "bench", "bench-password", false)?;
            }
            offsync::accounts::add_device(&mut conn, "bench", "bench laptop")?.1
        };
        let up = Upstream::new(&server.base, &token)?;

        // (1) A first full download.
        let s = up.open(&time::format(time::now()))?;
        let t = Instant::now();
        let bytes = std::io::copy(&mut up.download(&s.id)?, &mut std::io::sink())?;
        first.push(t.elapsed().as_secs_f64());
        up.complete(&s.id)?;
        eprintln!(
            "bench:   first download {:.2} s ({bytes} bytes)",
            first.last().copied().unwrap_or(0.0)
        );

        // (2) An upload of an edit of every reading: 10% of them stale (changed online
        // since), half of those true conflicts (the same field), half not (another field).
        let stamps = current_stamps(&pool, &readings)?;
        let stale = readings.len() / 10;
        stale_online(&pool, &readings[..stale])?;
        let file = edits_file(&readings, &stamps)?;
        let s2 = up.open(&time::format(time::now()))?;
        let t = Instant::now();
        let result = up.upload(&s2.id, file.path())?;
        upload.push(t.elapsed().as_secs_f64());
        eprintln!(
            "bench:   upload {:.2} s: {result:?}",
            upload.last().copied().unwrap_or(0.0)
        );

        // (3) The download that follows.
        let t = Instant::now();
        std::io::copy(&mut up.download(&s2.id)?, &mut std::io::sink())?;
        after.push(t.elapsed().as_secs_f64());
        up.complete(&s2.id)?;
        peak = peak.max(server.peak_mib());
    }
    let figure = |op, offsync: Vec<f64>| Figure {
        backend,
        rows: n,
        op,
        offsync,
        peak_mib: peak,
    };
    Ok(vec![
        figure("first download", first),
        figure("upload of edits (10% stale)", upload),
        figure("download after the upload", after),
    ])
}

/// Each reading's version and value, as a laptop that just synced holds them.
fn current_stamps(pool: &Pool, ids: &[String]) -> anyhow::Result<Vec<(i64, Option<String>)>> {
    let readings = table_by_name("readings").unwrap_or_default();
    let value = TABLES[readings].field_index("value").unwrap_or(2);
    let mut conn = pool.get()?;
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(rows::BATCH) {
        let found = rows::by_ids(&mut conn, readings, chunk, false)?;
        out.extend(chunk.iter().map(|id| {
            found
                .get(id)
                .map_or((0, None), |r| (r.last_updated, r.values[value].clone()))
        }));
    }
    Ok(out)
}

/// Online changes to these readings: the first half change `value` (the laptop's edit will
/// be a true conflict), the second half `unit` (the laptop's edit applies beside it).
fn stale_online(pool: &Pool, ids: &[String]) -> anyhow::Result<()> {
    let readings = table_by_name("readings").unwrap_or_default();
    let mut conn = pool.get()?;
    let half = ids.len() / 2;
    write_txn::<_, anyhow::Error>(&mut conn, |c, now| {
        let value = TABLES[readings].field_index("value").unwrap_or(2);
        let unit = TABLES[readings].field_index("unit").unwrap_or(3);
        let updates: Vec<rows::RowUpdate> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let change = if i < half {
                    (value, Some("999.9".to_owned()))
                } else {
                    (unit, Some("kPa".to_owned()))
                };
                (id.clone(), vec![change], next_stamp(now, 0))
            })
            .collect();
        rows::update_many(c, readings, &updates, "bench")?;
        Ok(())
    })
}

/// A gzip changeset editing every reading's value, with its base and `was`.
fn edits_file(
    ids: &[String],
    stamps: &[(i64, Option<String>)],
) -> anyhow::Result<tempfile::NamedTempFile> {
    let readings = table_by_name("readings").unwrap_or_default();
    let value = TABLES[readings].field_index("value").unwrap_or(2);
    let file = tempfile::NamedTempFile::new()?;
    let gz = offsync::sync::codec::gzip_writer(file.reopen()?);
    let mut w = ChangesetWriter::start(gz, None)?;
    for (i, (id, (stamp, was))) in ids.iter().zip(stamps).enumerate() {
        w.item(&Item::Record(Record {
            table: readings,
            id: id.clone(),
            base: Some(*stamp),
            updated: Some(time::now()),
            fields: vec![FieldChange {
                index: value,
                value: Some(format!("{i}.25")),
                was: Was::Known(was.clone()),
            }],
        }))?;
    }
    offsync::sync::codec::finish_gzip(w.finish()?)?;
    Ok(file)
}

/// What the load run does.
pub struct LoadArgs {
    /// Devices syncing at once (loopback only; at most 200).
    pub devices: usize,
    /// Edits each device uploads.
    pub edits: usize,
    /// Rows in the database.
    pub rows: u64,
    pub postgres: Option<String>,
    /// Pin each server process to this many CPUs of its own (Linux `taskset`), so that
    /// instances stand for separate machines; `None` leaves them unpinned.
    pub cpus_per_instance: Option<usize>,
}

/// Many devices syncing at once (open, upload, download, complete), against one server on
/// SQLite, and one then two server processes on one PostgreSQL database.
pub fn load(args: LoadArgs) -> anyhow::Result<()> {
    if args.devices == 0 || args.devices > 200 {
        bail!("--load takes 1 to 200 devices");
    }
    let mut setups: Vec<(&'static str, Option<String>, usize)> = vec![("sqlite", None, 1)];
    if let Some(pg) = &args.postgres {
        setups.push(("postgres", Some(pg.clone()), 1));
        setups.push(("postgres", Some(pg.clone()), 2));
    }
    println!(
        "| backend | instances | devices | edits each | syncs/s | p50 s | p99 s | failed | \"database is locked\" |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (backend, admin, instances) in setups {
        eprintln!(
            "load: {backend}, {instances} instance(s), {} devices",
            args.devices
        );
        let bench_db = BenchDb::new(admin.as_deref())?;
        let pool = db::connect(&bench_db.url, 4)?;
        let readings = fill(&pool, args.rows)?;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let servers = (0..instances)
            .map(|i| {
                let cpus = args.cpus_per_instance.map(|n| {
                    let first = (i * n) % cores;
                    format!("{first}-{}", (first + n - 1).min(cores - 1))
                });
                Server::start_on(&bench_db.url, cpus.as_deref())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut uplinks = Vec::with_capacity(args.devices);
        {
            let mut conn = pool.get()?;
            if offsync::db::repo::accounts::user_by_name(&mut conn, "bench")?.is_none() {
                offsync::accounts::add_user(&mut conn, "bench", "bench-password", false)?;
            }
            for d in 0..args.devices {
                let token =
                    offsync::accounts::add_device(&mut conn, "bench", &format!("device {d}"))?.1;
                uplinks.push(Upstream::new(&servers[d % instances].base, &token)?);
            }
        }
        // Every device has synced once before (not measured).
        for up in &uplinks {
            let s = up.open(&time::format(time::now()))?;
            std::io::copy(&mut up.download(&s.id)?, &mut std::io::sink())?;
            up.complete(&s.id)?;
        }
        let stamps = current_stamps(&pool, &readings)?;
        let mut files = Vec::with_capacity(args.devices);
        for d in 0..args.devices {
            let start = (d * args.edits) % readings.len().max(1);
            let ids: Vec<String> = (0..args.edits)
                .map(|k| readings[(start + k) % readings.len()].clone())
                .collect();
            let st: Vec<(i64, Option<String>)> = (0..args.edits)
                .map(|k| stamps[(start + k) % readings.len()].clone())
                .collect();
            files.push(edits_file(&ids, &st)?);
        }
        let gate = std::sync::Barrier::new(args.devices);
        let wall = Instant::now();
        let outcomes: Vec<Result<f64, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = uplinks
                .iter()
                .zip(&files)
                .map(|(up, file)| {
                    let gate = &gate;
                    scope.spawn(move || {
                        gate.wait();
                        let t = Instant::now();
                        let sync = || -> Result<(), String> {
                            let s = up
                                .open(&time::format(time::now()))
                                .map_err(|e| e.to_string())?;
                            up.upload(&s.id, file.path()).map_err(|e| e.to_string())?;
                            let mut body = up.download(&s.id).map_err(|e| e.to_string())?;
                            std::io::copy(&mut body, &mut std::io::sink())
                                .map_err(|e| e.to_string())?;
                            up.complete(&s.id).map_err(|e| e.to_string())
                        };
                        sync().map(|()| t.elapsed().as_secs_f64())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("the device's thread panicked".into()))
                })
                .collect()
        });
        let wall = wall.elapsed().as_secs_f64();
        let mut latencies: Vec<f64> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().copied())
            .collect();
        latencies.sort_by(f64::total_cmp);
        let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        let locked = failed
            .iter()
            .filter(|e| e.contains("database is locked"))
            .count();
        for e in failed.iter().take(3) {
            eprintln!("load: a sync failed: {e}");
        }
        let pct = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "| {backend} | {instances} | {} | {} | {:.1} | {:.2} | {:.2} | {} | {locked} |",
            args.devices,
            args.edits,
            latencies.len() as f64 / wall,
            pct(0.5),
            pct(0.99),
            failed.len()
        );
        drop(servers);
    }
    Ok(())
}

/// The conflict pages with many open conflicts: p50/p99 of the list (first and a middle
/// page) and of single conflicts, signed in as their owner.
pub fn pages(conflict_count: usize, requests: usize) -> anyhow::Result<()> {
    use offsync::db::repo::conflicts::{self, Conflict, ConflictField};
    let bench_db = BenchDb::new(None)?;
    let pool = db::connect(&bench_db.url, 4)?;
    let readings = fill(&pool, (conflict_count as u64).max(100) + 100)?;
    let mut ids = Vec::with_capacity(conflict_count);
    {
        let mut conn = pool.get()?;
        let user = offsync::accounts::add_user(&mut conn, "bench", "bench-password", false)?;
        let (device, _) = offsync::accounts::add_device(&mut conn, "bench", "bench laptop")?;
        let now = time::now();
        let items: Vec<(Conflict, Vec<ConflictField>)> = readings
            .iter()
            .take(conflict_count)
            .enumerate()
            .map(|(n, row)| {
                let id = uuid::Uuid::new_v4().to_string();
                ids.push(id.clone());
                let c = Conflict {
                    id,
                    user_id: user.id.clone(),
                    device_id: device.id.clone(),
                    session_id: None,
                    table_name: "readings".into(),
                    row_id: row.clone(),
                    kind: "fields".into(),
                    client_id: None,
                    base: Some(now - 1),
                    server_updated: Some(now),
                    offline_updated: Some(now),
                    status: "open".into(),
                    created_at: now + n as i64,
                    updated_at: now + n as i64,
                    resolved_at: None,
                    resolved_by: None,
                    resolution: None,
                    server_by: None,
                };
                let f = ConflictField {
                    field: "value".into(),
                    base_known: true,
                    base_value: Some("1".into()),
                    server_value: Some("2".into()),
                    offline_value: Some("3".into()),
                    choice: None,
                    chosen_value: None,
                };
                (c, vec![f])
            })
            .collect();
        write_txn::<_, anyhow::Error>(&mut conn, |c, _| {
            conflicts::record_open(c, &items)?;
            offsync::db::repo::accounts::set_conflict_flag(c, &user.id, true)?;
            Ok(())
        })?;
    }
    let server = Server::start(&bench_db.url)?;
    let http = reqwest::blocking::Client::builder()
        .cookie_store(true)
        .build()?;
    let login = http.get(format!("{}/login", server.base)).send()?.text()?;
    let csrf = login
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_owned();
    let form = serde_urlencoded::to_string([
        ("csrf", csrf.as_str()),
        ("username", "bench"),
        ("password", "bench-password"),
    ])?;
    let signed = http
        .post(format!("{}/login", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()?;
    if !signed.status().is_success() {
        bail!("signing in failed: {}", signed.status());
    }
    let middle = (conflict_count / 50 / 2).max(1);
    let targets: Vec<(&str, Vec<String>)> = vec![
        (
            "GET /conflicts (first page)",
            vec![format!("{}/conflicts", server.base)],
        ),
        (
            "GET /conflicts?page=N (middle)",
            vec![format!("{}/conflicts?page={middle}", server.base)],
        ),
        (
            "GET /conflicts/ID",
            ids.iter()
                .take(requests)
                .map(|id| format!("{}/conflicts/{id}", server.base))
                .collect(),
        ),
    ];
    println!("| page | open conflicts | requests | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for (label, urls) in targets {
        let mut times = Vec::with_capacity(requests);
        for k in 0..requests {
            let url = &urls[k % urls.len()];
            let t = Instant::now();
            let r = http.get(url).send()?;
            let ok = r.status().is_success();
            r.bytes()?;
            if !ok {
                bail!("{url} failed");
            }
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "| {label} | {conflict_count} | {requests} | {:.1} | {:.1} |",
            pct(0.5),
            pct(0.99)
        );
    }
    Ok(())
}

/// `offsync bench --gzip N`: a first download of N rows written uncompressed, then
/// compressed at each gzip level, to choose `codec::GZIP_LEVEL` by measurement.
pub fn gzip_levels(n: u64, runs: usize) -> anyhow::Result<()> {
    let bench_db = BenchDb::new(None)?;
    let pool = db::connect(&bench_db.url, 1)?;
    fill(&pool, n)?;
    let mut xml = ChangesetWriter::start(Vec::new(), None)?;
    let mut conn = pool.get()?;
    let mut pages = rows::ChangedPages::new(Window::all_since(None), 1000);
    while let Some((table, page)) = pages.next(&mut conn)? {
        for r in &page {
            xml.row(table, &r.id, r.last_updated, &r.values)?;
        }
    }
    let xml = xml.finish()?;
    println!(
        "{n} rows, {:.1} MiB of XML, through flate2 with the backend Cargo.toml selects:",
        xml.len() as f64 / (1 << 20) as f64
    );
    println!("| level | median s | rows/s | compressed MiB | ratio to XML |");
    println!("|---:|---:|---:|---:|---:|");
    for level in [1, 2, 3, 4, 5, 6, 9] {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..runs.max(1) {
            let t = Instant::now();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            for chunk in xml.chunks(64 << 10) {
                gz.write_all(chunk)?;
            }
            size = gz.finish()?.len();
            times.push(t.elapsed().as_secs_f64());
        }
        let s = median(&times);
        println!(
            "| {level} | {s:.3} | {:.0} | {:.2} | {:.3} |",
            n as f64 / s,
            size as f64 / (1 << 20) as f64,
            size as f64 / xml.len() as f64
        );
    }
    Ok(())
}
