//! offsync beside `../shared/floor`, an independent program doing the same upload and
//! download with the least work, on the same files in one run (its README says how a fair
//! run looks): 1 site and N assets imported into both, 10% of the assets' notes changed
//! online on both (half to the value the upload carries, half to another), then an upload
//! editing every asset's status and notes with `was` (gzip level 6). Runs alternate which
//! goes first; each starts from a copy of the same database. Reported: medians of the
//! per-run ratios.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use diesel::Connection;
use diesel::connection::SimpleConnection;
use offsync::db;
use offsync::domain::time;
use offsync::offline::client::Upstream;
use offsync::sync::codec::{ChangesetReader, Item, decompressing};

use crate::suite::{BenchDb, Server, median};

pub struct FloorArgs {
    pub floor: PathBuf,
    pub rows: u64,
    pub runs: usize,
    pub postgres: Option<String>,
    pub only: Option<String>,
}

pub(crate) fn gzip_file(path: &Path, xml: &str, level: u32) -> anyhow::Result<()> {
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(path)?,
        flate2::Compression::new(level),
    );
    gz.write_all(xml.as_bytes())?;
    gz.finish()?;
    Ok(())
}

/// The floor's JSON line: its seconds and counts.
struct FloorRun {
    secs: f64,
    counts: Option<(u64, u64, u64)>,
}

fn floor_run(floor: &Path, target: &[String], args: &[&str]) -> anyhow::Result<FloorRun> {
    let out = Command::new(floor)
        .args(args)
        .args(target)
        .output()
        .with_context(|| format!("running {}", floor.display()))?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "the floor failed ({args:?}): {}{line}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: serde_json::Value = serde_json::from_str(line.trim())
        .with_context(|| format!("the floor's answer {line:?}"))?;
    let n = |k: &str| json.get(k).and_then(serde_json::Value::as_u64);
    Ok(FloorRun {
        secs: json
            .get("secs")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(f64::NAN),
        counts: match (n("applied"), n("unchanged"), n("conflicts")) {
            (Some(a), Some(u), Some(c)) => Some((a, u, c)),
            _ => None,
        },
    })
}

/// A database of one side, copied for each run.
pub(crate) enum Store {
    Sqlite(PathBuf),
    /// The admin URL and the template database's name.
    Postgres(String, String),
}

impl Store {
    /// A copy for one run; its offsync URL (or floor target) and a guard that drops it.
    pub(crate) fn copy(
        &self,
        run: usize,
        side: &str,
    ) -> anyhow::Result<(String, Option<(String, String)>)> {
        self.copy_as(&format!("run{run}"), side)
    }

    /// A copy named by `label`: its URL (or path) and a guard that drops it.
    pub(crate) fn copy_as(
        &self,
        label: &str,
        side: &str,
    ) -> anyhow::Result<(String, Option<(String, String)>)> {
        match self {
            Store::Sqlite(base) => {
                let copy = base.with_file_name(format!("{side}-{label}.db"));
                std::fs::copy(base, &copy)?;
                Ok((copy.display().to_string(), None))
            }
            Store::Postgres(admin, template) => {
                let name = format!("{template}_{label}");
                let mut c = diesel::PgConnection::establish(admin)?;
                c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))?;
                c.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))?;
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Ok((format!("{base}/{name}"), Some((admin.clone(), name))))
            }
        }
    }
}

pub(crate) fn drop_copy(guard: Option<(String, String)>) {
    if let Some((admin, name)) = guard
        && let Ok(mut c) = diesel::PgConnection::establish(&admin)
    {
        let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// The files: the import, the online changes, and (once offsync has served its first
/// download) the upload.
struct Files {
    dir: tempfile::TempDir,
    assets: Vec<String>,
}

/// An import file: one site (`code`) and `n` assets with notes `n{i}`; their ids.
pub(crate) fn site_file(code: &str, n: u64, path: &Path) -> anyhow::Result<Vec<String>> {
    let site = uuid::Uuid::new_v4().to_string();
    let assets: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let mut xml = format!(
        "<changeset version=\"1\"><record table=\"sites\" id=\"{site}\">\
         <field name=\"code\">{code}</field><field name=\"name\">Site {code}</field>\
         <field name=\"address\" null=\"true\"/><field name=\"access_notes\" null=\"true\"/></record>\n"
    );
    for (i, id) in assets.iter().enumerate() {
        xml.push_str(&format!(
            "<record table=\"assets\" id=\"{id}\"><field name=\"site_id\">{site}</field>\
             <field name=\"tag\">{code}-{i:07}</field><field name=\"description\" null=\"true\"/>\
             <field name=\"status\">ok</field>\
             <field name=\"notes\">n{i}</field></record>\n"
        ));
    }
    xml.push_str("</changeset>\n");
    gzip_file(path, &xml, 6)?;
    Ok(assets)
}

impl Files {
    fn new(n: u64) -> anyhow::Result<Files> {
        let dir = tempfile::tempdir()?;
        let assets = site_file("FLOOR", n, &dir.path().join("import.xml.gz"))?;
        // 10% changed online: half to the value the upload carries, half to another.
        let mut pre = String::from("<changeset version=\"1\">");
        for (i, id) in assets.iter().enumerate().filter(|(i, _)| i % 10 == 0) {
            let notes = if i % 20 == 0 {
                format!("u{i}")
            } else {
                format!("server{i}")
            };
            pre.push_str(&format!(
                "<record table=\"assets\" id=\"{id}\"><field name=\"notes\">{notes}</field></record>\n"
            ));
        }
        pre.push_str("</changeset>\n");
        gzip_file(&dir.path().join("online.xml.gz"), &pre, 6)?;
        Ok(Files { dir, assets })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Every asset edited from what the download gave it: status and notes, with `was`.
    fn write_upload(&self) -> anyhow::Result<()> {
        let base = stamps_of(Path::new(&self.path("download.xml.gz")))?;
        edits_file(
            &base,
            self.assets.iter().enumerate(),
            Path::new(&self.path("upload.xml.gz")),
        )
    }
}

/// Each record's `updated` in a download file, by id.
pub(crate) fn stamps_of(
    download: &Path,
) -> anyhow::Result<std::collections::HashMap<String, offsync::domain::Micros>> {
    let mut bytes = Vec::new();
    std::fs::File::open(download)?.read_to_end(&mut bytes)?;
    let mut reader = ChangesetReader::for_download(decompressing(std::io::Cursor::new(bytes))?);
    reader.header()?;
    let mut base = std::collections::HashMap::new();
    while let Some(item) = reader.next_item()? {
        if let Item::Record(r) = item
            && let Some(u) = r.updated
        {
            base.insert(r.id, u);
        }
    }
    Ok(base)
}

/// An upload editing these assets (numbered as imported: notes `n{i}`) from their stamps in
/// `base`: status and notes, with `was`, gzip level 6.
pub(crate) fn edits_file<'a>(
    base: &std::collections::HashMap<String, offsync::domain::Micros>,
    assets: impl Iterator<Item = (usize, &'a String)>,
    path: &Path,
) -> anyhow::Result<()> {
    {
        let mut xml = String::from("<changeset version=\"1\">");
        for (i, id) in assets {
            let stamp = base
                .get(id)
                .ok_or_else(|| anyhow::anyhow!("asset {id} is not in the download"))?;
            xml.push_str(&format!(
                "<record table=\"assets\" id=\"{id}\" base=\"{}\" updated=\"{}\">\
                 <field name=\"status\" was=\"ok\">degraded</field>\
                 <field name=\"notes\" was=\"n{i}\">u{i}</field></record>\n",
                time::format(*stamp),
                time::format(time::now()),
            ));
        }
        xml.push_str("</changeset>\n");
        gzip_file(path, &xml, 6)
    }
}

pub(crate) fn import_file(url: &str, path: &str) -> anyhow::Result<()> {
    let pool = db::connect(url, 1)?;
    let mut conn = pool.get()?;
    offsync::sync::import::import(&mut conn, std::fs::File::open(path)?, u64::MAX)
        .map_err(|e| anyhow::anyhow!("importing {path}: {e}"))?;
    Ok(())
}

struct Ratios {
    op: &'static str,
    offsync: Vec<f64>,
    floor: Vec<f64>,
}

impl Ratios {
    fn new(op: &'static str) -> Self {
        Ratios {
            op,
            offsync: Vec::new(),
            floor: Vec::new(),
        }
    }

    fn ratios(&self) -> Vec<f64> {
        self.offsync
            .iter()
            .zip(&self.floor)
            .map(|(o, f)| o / f)
            .collect()
    }
}

fn compare_on(args: &FloorArgs, backend: &'static str, admin: Option<&str>) -> anyhow::Result<()> {
    let n = args.rows;
    eprintln!("floor: {backend}, {n} assets: preparing");
    let files = Files::new(n)?;
    // offsync's base: the import, a device, its first full download, the online changes.
    let ours = BenchDb::new(admin)?;
    import_file(&ours.url, &files.path("import.xml.gz"))?;
    // The laptop that uploads, and one that never synced (each run's first full download).
    let (token, fresh_token) = {
        let pool = db::connect(&ours.url, 1)?;
        let mut conn = pool.get()?;
        offsync::accounts::add_user(&mut conn, "bench", "bench-password", false)?;
        (
            offsync::accounts::add_device(&mut conn, "bench", "bench laptop")?.1,
            offsync::accounts::add_device(&mut conn, "bench", "new laptop")?.1,
        )
    };
    {
        let server = Server::start(&ours.url)?;
        let up = Upstream::new(&server.base, &token)?;
        let s = up.open(&time::format(time::now()))?;
        let mut out = std::fs::File::create(files.path("download.xml.gz"))?;
        std::io::copy(&mut up.download(&s.id)?, &mut out)?;
        up.complete(&s.id)?;
    }
    import_file(&ours.url, &files.path("online.xml.gz"))?;
    files.write_upload()?;
    let our_store = match admin {
        None => {
            let path = ours.url.trim_start_matches("sqlite://").to_owned();
            let mut c = diesel::SqliteConnection::establish(&path)?;
            c.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")?;
            Store::Sqlite(PathBuf::from(path))
        }
        Some(a) => Store::Postgres(
            a.to_owned(),
            ours.url.rsplit('/').next().unwrap_or_default().to_owned(),
        ),
    };
    // The floor's base, with offsync's stamps.
    let floor_base = BenchDb::new(admin)?;
    let floor_target = |url: &str| -> Vec<String> {
        match url.strip_prefix("sqlite://") {
            Some(path) => vec!["--db".into(), path.into()],
            None if admin.is_none() => vec!["--db".into(), url.into()],
            None => vec!["--pg".into(), url.into()],
        }
    };
    let floor_url = match admin {
        None => floor_base.url.trim_start_matches("sqlite://").to_owned(),
        Some(_) => floor_base.url.clone(),
    };
    let import = files.path("import.xml.gz");
    let download = files.path("download.xml.gz");
    floor_run(
        &args.floor,
        &floor_target(&floor_url),
        &[
            "contract-load",
            "--fresh",
            "--in",
            &import,
            "--updated-from",
            &download,
        ],
    )?;
    let online = files.path("online.xml.gz");
    floor_run(
        &args.floor,
        &floor_target(&floor_url),
        &["contract-load", "--in", &online],
    )?;
    let floor_store = match admin {
        None => Store::Sqlite(PathBuf::from(&floor_url)),
        Some(a) => Store::Postgres(
            a.to_owned(),
            floor_base
                .url
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned(),
        ),
    };
    let upload_file = PathBuf::from(files.path("upload.xml.gz"));
    // To profile one side by hand: the prepared databases and files, kept.
    if let Ok(keep) = std::env::var("OFFSYNC_BENCH_KEEP") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep)?;
        for name in [
            "import.xml.gz",
            "online.xml.gz",
            "upload.xml.gz",
            "download.xml.gz",
        ] {
            std::fs::copy(files.path(name), keep.join(name))?;
        }
        match (&our_store, &floor_store) {
            (Store::Sqlite(ours), Store::Sqlite(floor)) => {
                std::fs::copy(ours, keep.join("offsync.db"))?;
                std::fs::copy(floor, keep.join("floor.db"))?;
            }
            // Databases named `…_keep`, left in place; their URLs in the folder.
            _ => {
                std::fs::write(keep.join("offsync.url"), our_store.copy_as("keep", "")?.0)?;
                std::fs::write(keep.join("floor.url"), floor_store.copy_as("keep", "")?.0)?;
            }
        }
        std::fs::write(keep.join("token"), &token)?;
        eprintln!("floor: kept the files in {}", keep.display());
    }
    let upload_path = files.path("upload.xml.gz");
    let sink = files.path("floor-download.xml.gz");
    let mut upload = Ratios::new("upload of 100% edits (10% stale, 5% conflicts)");
    let mut first = Ratios::new("first full download");
    let mut peak: f64 = 0.0;
    for run in 0..args.runs.max(1) {
        let ours_first = run % 2 == 0;
        for side in if ours_first { [0, 1] } else { [1, 0] } {
            if side == 0 {
                let (url, guard) = our_store.copy(run, "offsync")?;
                let url = if admin.is_none() {
                    format!("sqlite://{url}")
                } else {
                    url
                };
                let server = Server::start(&url)?;
                let fresh = Upstream::new(&server.base, &fresh_token)?;
                let s = fresh.open(&time::format(time::now()))?;
                let t = Instant::now();
                let bytes = std::io::copy(&mut fresh.download(&s.id)?, &mut std::io::sink())?;
                first.offsync.push(t.elapsed().as_secs_f64());
                anyhow::ensure!(
                    bytes > n * 10,
                    "a first download of {n} rows is {bytes} bytes"
                );
                let up = Upstream::new(&server.base, &token)?;
                let s = up.open(&time::format(time::now()))?;
                let t = Instant::now();
                let result = up.upload(&s.id, &upload_file)?;
                upload.offsync.push(t.elapsed().as_secs_f64());
                peak = peak.max(server.peak_mib());
                eprintln!(
                    "floor: run {}: offsync upload {:.3} s {result:?}, download {:.3} s",
                    run + 1,
                    upload.offsync.last().copied().unwrap_or_default(),
                    first.offsync.last().copied().unwrap_or_default()
                );
                drop(server);
                drop_copy(guard);
            } else {
                let (url, guard) = floor_store.copy(run, "floor")?;
                let target = floor_target(&url);
                let d = floor_run(
                    &args.floor,
                    &target,
                    &["contract-download", "--out", &sink, "--level", "2"],
                )?;
                first.floor.push(d.secs);
                let u = floor_run(
                    &args.floor,
                    &target,
                    &["contract-sync", "--in", &upload_path],
                )?;
                upload.floor.push(u.secs);
                eprintln!(
                    "floor: run {}: floor upload {:.3} s {:?}, download {:.3} s",
                    run + 1,
                    u.secs,
                    u.counts,
                    d.secs
                );
                drop_copy(guard);
            }
        }
    }
    for r in [&upload, &first] {
        let ratios = r.ratios();
        println!(
            "| {backend} | {n} | {} | {:.3} | {:.3} | **{:.2}** | {} | {peak:.0} |",
            r.op,
            median(&r.offsync),
            median(&r.floor),
            median(&ratios),
            ratios
                .iter()
                .map(|x| format!("{x:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    Ok(())
}

pub fn compare(args: FloorArgs) -> anyhow::Result<()> {
    if !args.floor.exists() {
        bail!(
            "no floor at {}: build it (../shared/floor/README.md), e.g. cargo build --release \
             --manifest-path ../shared/floor/Cargo.toml --target-dir /tmp/floor-zlibrs \
             --no-default-features --features pg,zlibrs",
            args.floor.display()
        );
    }
    println!(
        "| backend | rows | operation | offsync (median s) | floor (median s) | ratio (median) | per run | offsync peak MiB |"
    );
    println!("|---|---:|---|---:|---:|---:|---|---:|");
    let mut backends: Vec<(&'static str, Option<String>)> = vec![("sqlite", None)];
    if let Some(pg) = &args.postgres {
        backends.push(("postgres", Some(pg.clone())));
    }
    if let Some(only) = &args.only {
        backends.retain(|(b, _)| b == only);
    }
    for (backend, admin) in &backends {
        compare_on(&args, backend, admin.as_deref())?;
    }
    Ok(())
}
