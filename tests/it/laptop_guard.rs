//! The laptop copy answers only itself (issue 12): a real `offsync offline` process, asked
//! as a web page that rebinds its own host name to 127.0.0.1 would ask it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// `offsync offline` as a child process on a free loopback port.
pub struct Copy {
    child: Child,
    pub port: u16,
}

impl Copy {
    pub fn start(
        db: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Copy, String> {
        let port = free_port();
        Self::start_on(db, &format!("127.0.0.1:{port}"), port, args, env)
    }

    fn start_on(
        db: &std::path::Path,
        bind: &str,
        port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Copy, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_offsync"))
            .args(["offline", "--no-open", "--bind", bind])
            .arg("--database-url")
            .arg(format!("sqlite://{}", db.display()))
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("OFFSYNC_TOKEN")
            .env_remove("OFFSYNC_UPSTREAM")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("offsync offline starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let out = child.wait_with_output().expect("its output");
                return Err(String::from_utf8_lossy(&out.stderr).into_owned());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Copy { child, port });
            }
            assert!(Instant::now() < deadline, "offsync offline did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn browser() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

#[test]
fn the_laptop_copy_answers_only_its_own_address_and_pages() {
    let Some(app) = TestApp::spawn(Backend::Sqlite) else {
        return;
    };
    app.seed_asset();
    let device = app.device("jo");
    let dir = tempfile::tempdir().expect("a directory");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", device.token)).expect("the token file");
    let db = dir.path().join("laptop.db");
    let token_path = token_file.to_str().expect("a path");
    let copy = Copy::start(
        &db,
        &["--upstream", &app.base, "--token-file", token_path],
        &[],
    )
    .expect("the copy starts");
    let http = browser();
    let rebound = format!("rebind.attacker.example:{}", copy.port);

    // A page whose host name now points at 127.0.0.1 sends its own name: refused.
    let r = http
        .get(copy.url("/sites"))
        .header("host", &rebound)
        .send()
        .expect("an answer");
    assert_eq!(r.status(), 421);
    let body = r.text().expect("a body");
    assert!(!body.contains("csrf"), "no page, no token: {body}");
    for host in [
        format!("127.0.0.1:{}", copy.port),
        format!("localhost:{}", copy.port),
    ] {
        let r = http
            .get(copy.url("/sites"))
            .header("host", &host)
            .send()
            .expect("an answer");
        assert_eq!(r.status(), 200, "Host: {host}");
    }

    // A form post needs the copy's own origin, even with the right Host and token. The
    // copy syncs by itself at start; its "Sync now" form (with the token) is back after.
    let deadline = Instant::now() + Duration::from_secs(60);
    let csrf = loop {
        let page = http
            .get(copy.url("/sites"))
            .send()
            .and_then(|r| r.text())
            .expect("the sites page");
        if let Some(csrf) = attr_after(&page, "name=\"csrf\"", "value") {
            break csrf;
        }
        assert!(Instant::now() < deadline, "no Sync now form: {page}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let post = |origin: Option<&str>, referer: Option<&str>, back: &str| {
        let mut req = http
            .post(copy.url("/sync"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("csrf", csrf.as_str()), ("back", back)]).unwrap());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        req.send().expect("an answer")
    };
    let own = format!("http://127.0.0.1:{}", copy.port);
    assert_eq!(
        post(Some(&format!("http://{rebound}")), None, "/").status(),
        403
    );
    assert_eq!(post(None, None, "/").status(), 403, "no Origin, no Referer");
    assert_eq!(
        post(None, Some(&format!("http://{rebound}/sites")), "/").status(),
        403
    );
    let ok = post(None, Some(&format!("{own}/sites")), "/sites");
    assert_eq!(ok.status(), 303, "a Referer of its own pages will do");
    // Back to a page of this site only: `/\evil.example/` is another site to a browser.
    for evil in [
        "/\\evil.example/",
        "//evil.example/",
        "https://evil.example/",
    ] {
        let r = post(Some(&own), None, evil);
        assert_eq!(r.status(), 303);
        assert_eq!(
            r.headers().get("location").and_then(|l| l.to_str().ok()),
            Some("/"),
            "back={evil}"
        );
    }

    // Its own cookie, apart from the main site's (a fresh browser is given one).
    let cookie = browser()
        .get(copy.url("/sites"))
        .send()
        .expect("an answer")
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect::<Vec<_>>();
    assert!(
        cookie.iter().any(|c| c.starts_with("offsync-laptop="))
            && cookie.iter().all(|c| !c.starts_with("offsync=")),
        "{cookie:?}"
    );

    // The database is the owner's alone, and kept upstream and token: no flags next time.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [db.clone(), dir.path().join("laptop.db-wal")] {
            let mode = std::fs::metadata(&file)
                .expect("the file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", file.display());
        }
    }
    copy.stop();
    let again = Copy::start(&db, &[], &[]).expect("starts with no flags");
    let page = browser()
        .get(again.url("/sites"))
        .send()
        .and_then(|r| r.text())
        .expect("the sites page");
    assert!(page.contains(&app.base), "the upstream it kept: {page}");
}

#[test]
fn the_laptop_copy_beyond_loopback_needs_a_password() {
    let Some(app) = TestApp::spawn(Backend::Sqlite) else {
        return;
    };
    let device = app.device("jo");
    let dir = tempfile::tempdir().expect("a directory");
    let db = dir.path().join("laptop.db");
    let port = free_port();
    let flags = [
        "--upstream",
        app.base.as_str(),
        "--token",
        device.token.as_str(),
    ];
    let refused = Copy::start_on(&db, &format!("0.0.0.0:{port}"), port, &flags, &[])
        .err()
        .expect("refuses to start");
    assert!(refused.contains("password"), "{refused}");

    let copy = Copy::start_on(
        &db,
        &format!("0.0.0.0:{port}"),
        port,
        &flags,
        &[("OFFSYNC_OFFLINE_PASSWORD", "correct horse battery")],
    )
    .expect("starts with a password");
    let http = browser();
    let r = http.get(copy.url("/sites")).send().expect("an answer");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = http
        .get(copy.url("/sites"))
        .basic_auth("anyone", Some("wrong password"))
        .send()
        .expect("an answer");
    assert_eq!(r.status(), 401);
    let r = http
        .get(copy.url("/sites"))
        .basic_auth("anyone", Some("correct horse battery"))
        .send()
        .expect("an answer");
    assert_eq!(r.status(), 200);
}
