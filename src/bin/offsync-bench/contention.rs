//! What others wait while uploads are applied: session opens and office page saves during a
//! large upload (p50/p99), and several uploads of disjoint rows at once against the same run
//! one after another, on one instance and split over two.

use std::time::{Duration, Instant};

use anyhow::Context;
use offsync::db;
use offsync::domain::time;
use offsync::offline::client::Upstream;

use crate::floor::{Store, drop_copy, edits_file, import_file, site_file, stamps_of};
use crate::suite::{BenchDb, Server};

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() as f64 - 1.0) * p).round() as usize]
}

fn backends(postgres: Option<&str>) -> Vec<(&'static str, Option<String>)> {
    let mut out = vec![("sqlite", None)];
    if let Some(pg) = postgres {
        out.push(("postgres", Some(pg.to_owned())));
    }
    out
}

/// The value of `name="NAME" ... value="V"` in a page.
fn input_value(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\""))?;
    let tag_end = at + page[at..].find('>')?;
    let tag_start = page[..at].rfind('<')?;
    let tag = &page[tag_start..tag_end];
    let v = tag.find("value=\"")? + "value=\"".len();
    let end = v + tag[v..].find('"')?;
    quick_xml::escape::unescape(&tag[v..end])
        .ok()
        .map(|s| s.into_owned())
}

/// A form posted as a browser posts it.
fn post_form(
    http: &reqwest::blocking::Client,
    url: &str,
    form: &[(&str, String)],
) -> anyhow::Result<reqwest::blocking::Response> {
    Ok(http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form)?)
        .send()?)
}

/// An office person's browser: signs in, then saves an asset's notes as the edit page does.
struct Office {
    http: reqwest::blocking::Client,
    base: String,
}

impl Office {
    fn sign_in(base: &str, name: &str, password: &str) -> anyhow::Result<Office> {
        let http = reqwest::blocking::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let page = http.get(format!("{base}/login")).send()?.text()?;
        let mut form = vec![
            ("username", name.to_owned()),
            ("password", password.to_owned()),
        ];
        if let Some(csrf) = input_value(&page, "csrf") {
            form.push(("csrf", csrf));
        }
        let r = post_form(&http, &format!("{base}/login"), &form)?;
        anyhow::ensure!(r.status().as_u16() == 303, "sign-in: {}", r.status());
        Ok(Office {
            http,
            base: base.to_owned(),
        })
    }

    /// Saves new notes; the seconds the save (the POST) took.
    fn save_notes(&self, asset: &str, notes: &str) -> anyhow::Result<f64> {
        let url = format!("{}/assets/{asset}/edit", self.base);
        let page = self.http.get(&url).send()?.text()?;
        let field = |n: &str| {
            input_value(&page, n).with_context(|| format!("{n} on the edit page of {asset}"))
        };
        let form = [
            ("csrf", field("csrf")?),
            ("version", field("version")?),
            ("was.notes", field("was.notes").unwrap_or_default()),
            ("notes", notes.to_owned()),
        ];
        let t = Instant::now();
        let r = post_form(&self.http, &url, &form)?;
        let took = t.elapsed().as_secs_f64();
        anyhow::ensure!(r.status().as_u16() == 303, "a page save: {}", r.status());
        Ok(took)
    }
}

/// A database with `n` assets in site LOAD (the laptop's) and 50 in site OFFICE; a laptop
/// that has its first download, and an office user.
struct Scene {
    db: BenchDb,
    dir: tempfile::TempDir,
    laptop_token: String,
    other_token: String,
    load: Vec<String>,
    office: Vec<String>,
}

impl Scene {
    fn new(admin: Option<&str>, n: u64) -> anyhow::Result<Scene> {
        let dir = tempfile::tempdir()?;
        let load = site_file("LOAD", n, &dir.path().join("load.xml.gz"))?;
        let office = site_file("OFFICE", 50, &dir.path().join("office.xml.gz"))?;
        let db = BenchDb::new(admin)?;
        import_file(
            &db.url,
            &dir.path().join("load.xml.gz").display().to_string(),
        )?;
        import_file(
            &db.url,
            &dir.path().join("office.xml.gz").display().to_string(),
        )?;
        let (laptop_token, other_token) = {
            let pool = db::connect(&db.url, 1)?;
            let mut conn = pool.get()?;
            offsync::accounts::add_user(&mut conn, "laptop", "laptop-password", false)?;
            offsync::accounts::add_user(&mut conn, "office", "office-password", false)?;
            let laptop = offsync::accounts::add_device(&mut conn, "laptop", "big upload")?.1;
            let other = offsync::accounts::add_device(&mut conn, "laptop", "opens sessions")?.1;
            (laptop, other)
        };
        Ok(Scene {
            db,
            dir,
            laptop_token,
            other_token,
            load,
            office,
        })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// The first download of the laptop, as the base of its edits.
    fn download(&self, server: &Server, token: &str) -> anyhow::Result<()> {
        let up = Upstream::new(&server.base, token)?;
        let s = up.open(&time::format(time::now()))?;
        let mut out = std::fs::File::create(self.path("download.xml.gz"))?;
        std::io::copy(&mut up.download(&s.id)?, &mut out)?;
        up.complete(&s.id)?;
        Ok(())
    }
}

/// `offsync-bench during-upload`: session opens and page saves, alone and while one laptop's
/// upload of `edits` edits is applied.
pub fn during_upload(edits: u64, postgres: Option<&str>) -> anyhow::Result<()> {
    println!(
        "| backend | edits | upload s | what | alone p50 ms | alone p99 ms | during p50 ms | during p99 ms | during max ms | during n |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for (backend, admin) in backends(postgres) {
        eprintln!("during-upload: {backend}, {edits} edits: preparing");
        let scene = Scene::new(admin.as_deref(), edits)?;
        let server = Server::start(&scene.db.url)?;
        scene.download(&server, &scene.laptop_token)?;
        let base = stamps_of(&scene.path("download.xml.gz"))?;
        edits_file(
            &base,
            scene.load.iter().enumerate(),
            &scene.path("upload.xml.gz"),
        )?;
        let opener = Upstream::new(&server.base, &scene.other_token)?;
        let office = Office::sign_in(&server.base, "office", "office-password")?;
        let open = |opener: &Upstream| -> anyhow::Result<f64> {
            let t = Instant::now();
            opener.open(&time::format(time::now()))?;
            Ok(t.elapsed().as_secs_f64())
        };
        let mut alone = (Vec::new(), Vec::new());
        for i in 0..40 {
            alone.0.push(open(&opener)?);
            alone
                .1
                .push(office.save_notes(&scene.office[i % scene.office.len()], &format!("a{i}"))?);
        }
        let up = Upstream::new(&server.base, &scene.laptop_token)?;
        let s = up.open(&time::format(time::now()))?;
        let file = scene.path("upload.xml.gz");
        let uploading = std::thread::spawn(move || {
            let t = Instant::now();
            up.upload(&s.id, &file)
                .map(|r| (r, t.elapsed().as_secs_f64()))
        });
        // Give the upload its start (the file is sent and parsed before it is applied).
        std::thread::sleep(Duration::from_millis(200));
        let mut during = (Vec::new(), Vec::new());
        let mut i = 0;
        while !uploading.is_finished() {
            during.0.push(open(&opener)?);
            during
                .1
                .push(office.save_notes(&scene.office[i % scene.office.len()], &format!("d{i}"))?);
            i += 1;
        }
        let (result, upload_secs) = uploading
            .join()
            .map_err(|_| anyhow::anyhow!("the upload's thread panicked"))??;
        eprintln!("during-upload: {backend}: upload {upload_secs:.2} s {result:?}");
        for (what, a, d) in [
            ("session open", &alone.0, &during.0),
            ("page save", &alone.1, &during.1),
        ] {
            println!(
                "| {backend} | {edits} | {upload_secs:.2} | {what} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                percentile(a, 0.5) * 1e3,
                percentile(a, 0.99) * 1e3,
                percentile(d, 0.5) * 1e3,
                percentile(d, 0.99) * 1e3,
                percentile(d, 1.0) * 1e3,
                d.len()
            );
        }
    }
    Ok(())
}

/// `offsync-bench parallel`: `uploads` laptops, each editing `edits` rows of its own, one
/// after another and then all at once; on PostgreSQL on one instance and on two.
pub fn parallel(uploads: usize, edits: u64, postgres: Option<&str>) -> anyhow::Result<()> {
    println!(
        "| backend | instances | uploads × edits | one after another s | all at once s | ratio |"
    );
    println!("|---|---:|---|---:|---:|---:|");
    for (backend, admin) in backends(postgres) {
        eprintln!("parallel: {backend}: preparing");
        let scene = Scene::new(admin.as_deref(), edits * uploads as u64)?;
        let tokens: Vec<String> = {
            let pool = db::connect(&scene.db.url, 1)?;
            let mut conn = pool.get()?;
            (0..uploads)
                .map(|i| {
                    offsync::accounts::add_user(&mut conn, &format!("p{i}"), "password-p", false)?;
                    Ok(offsync::accounts::add_device(&mut conn, &format!("p{i}"), "laptop")?.1)
                })
                .collect::<anyhow::Result<_>>()?
        };
        {
            let server = Server::start(&scene.db.url)?;
            scene.download(&server, &scene.laptop_token)?;
        }
        let base = stamps_of(&scene.path("download.xml.gz"))?;
        let files: Vec<std::path::PathBuf> = (0..uploads)
            .map(|u| {
                let path = scene.path(&format!("upload-{u}.xml.gz"));
                let block = scene
                    .load
                    .iter()
                    .enumerate()
                    .skip(u * edits as usize)
                    .take(edits as usize);
                edits_file(&base, block, &path).map(|()| path)
            })
            .collect::<anyhow::Result<_>>()?;
        let store = match &admin {
            None => {
                let path = scene.db.url.trim_start_matches("sqlite://").to_owned();
                checkpoint_sqlite(&path)?;
                Store::Sqlite(path.into())
            }
            Some(a) => Store::Postgres(
                a.clone(),
                scene
                    .db
                    .url
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
        };
        let instance_counts: &[usize] = if admin.is_some() { &[1, 2] } else { &[1] };
        for (round, &instances) in instance_counts.iter().enumerate() {
            let mut times = Vec::new();
            for (k, at_once) in [false, true].into_iter().enumerate() {
                let (url, guard) = store.copy(round * 2 + k, "parallel")?;
                let url = match admin {
                    None => format!("sqlite://{url}"),
                    Some(_) => url,
                };
                let servers = (0..instances)
                    .map(|_| Server::start(&url))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let t = Instant::now();
                let run = |u: usize| -> anyhow::Result<()> {
                    let up = Upstream::new(&servers[u % instances].base, &tokens[u])?;
                    let s = up.open(&time::format(time::now()))?;
                    up.upload(&s.id, &files[u])?;
                    up.complete(&s.id)?;
                    Ok(())
                };
                if at_once {
                    std::thread::scope(|scope| -> anyhow::Result<()> {
                        let handles: Vec<_> =
                            (0..uploads).map(|u| scope.spawn(move || run(u))).collect();
                        for h in handles {
                            h.join()
                                .map_err(|_| anyhow::anyhow!("an upload panicked"))??;
                        }
                        Ok(())
                    })?;
                } else {
                    for u in 0..uploads {
                        run(u)?;
                    }
                }
                times.push(t.elapsed().as_secs_f64());
                drop(servers);
                drop_copy(guard);
            }
            println!(
                "| {backend} | {instances} | {uploads} × {edits} | {:.2} | {:.2} | **{:.2}** |",
                times[0],
                times[1],
                times[1] / times[0]
            );
        }
    }
    Ok(())
}

fn checkpoint_sqlite(path: &str) -> anyhow::Result<()> {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let mut c = diesel::SqliteConnection::establish(path)?;
    c.batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(())
}
