//! Browser tests in headless Chromium, driven through WebDriver (chromedriver): a field
//! engineer signs in, sees the conflict banner, opens the conflict, picks versions by
//! clicking, saves, and finds the banner gone and the chosen values on the record page.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the test prints a notice
//! and passes on a laptop, and fails under CI=true (`.ci/run` installs them).

#[allow(
    dead_code,
    reason = "shares the integration tests' helpers; uses a few"
)]
#[path = "it/helpers.rs"]
mod helpers;
#[allow(dead_code, reason = "the browser tests use its proxy only")]
#[path = "it/laptop.rs"]
mod laptop;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use helpers::*;
use thirtyfour::components::SelectElement;
use thirtyfour::prelude::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn browser_available() -> bool {
    let found = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !found {
        missing("chromium and chromium-driver are not installed");
    }
    found
}

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        Driver::start_in("UTC")
    }

    /// A browser whose clock is in `zone` (an IANA name): what a person's laptop says.
    fn start_in(zone: &str) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("TZ", zone)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while client().get(format!("{url}/status")).send().is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer within 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromium(driver: &Driver, profile: &Path) -> WebDriverResult<WebDriver> {
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(CHROMIUM)?;
    for arg in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--window-size=1280,1000",
    ] {
        caps.add_arg(arg)?;
    }
    caps.add_arg(&format!("--user-data-dir={}", profile.display()))?;
    let wd = WebDriver::new(&driver.url, caps).await?;
    wd.set_implicit_wait_timeout(Duration::from_secs(5)).await?;
    Ok(wd)
}

/// A conflict on an asset's notes and status for `user`; returns the asset id.
fn make_conflict(app: &TestApp, user: &str) -> String {
    let (_, asset) = app.seed_asset();
    let mut d = app.device(user);
    d.sync(&[]);
    let base = d.base("assets", &asset);
    app.online_edit("assets", &asset, "notes", Some("Bearing replaced (office)"));
    app.online_edit("assets", &asset, "status", Some("degraded"));
    let (r, _) = d.sync(&[edit(
        "assets",
        &asset,
        &base,
        &[
            ("notes", Some("Seal leaking at the flange (laptop)")),
            ("status", Some("broken")),
        ],
    )]);
    assert_eq!(r.map(|r| r.2), Some(1));
    asset
}

#[test]
fn an_engineer_resolves_a_conflict_by_clicking() {
    if !browser_available() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).expect("SQLite is always there");
    let asset = make_conflict(&app, "carol");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let base = app.base.clone();
    let screenshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/conflict-page.png");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome: WebDriverResult<()> = runtime.block_on(async {
        let wd = chromium(&driver, profile.path()).await?;
        let result = async {
            sign_in(&wd, &base, "carol").await?;

            let banner = wd.find(By::Css(".banner")).await?.text().await?;
            assert!(
                banner.contains("1 conflict waits for you"),
                "banner: {banner}"
            );
            wd.find(By::LinkText("Review them")).await?.click().await?;
            wd.find(By::Css("table.list a[href^='/conflicts/']"))
                .await?
                .click()
                .await?;

            // Waits (implicitly) for the conflict page's form before reading the page.
            wd.find(By::Id("save")).await?;
            let page = wd.find(By::Tag("main")).await?.text().await?;
            assert!(
                page.contains("Bearing replaced (office)")
                    && page.contains("Seal leaking at the flange (laptop)")
            );
            std::fs::create_dir_all(screenshot.parent().unwrap()).ok();
            std::fs::write(&screenshot, wd.screenshot_as_png().await?)
                .expect("writing the screenshot");

            // The laptop's notes, the server's status.
            wd.find(By::Id("c-notes-offline")).await?.click().await?;
            wd.find(By::Id("c-status-server")).await?.click().await?;
            wd.find(By::Id("save")).await?.click().await?;

            // The empty list: only there once the save has gone through.
            wd.find(By::Css("p.empty")).await?;
            assert!(wd.current_url().await?.path().ends_with("/conflicts"));
            let list = wd.find(By::Tag("body")).await?.text().await?;
            assert!(!list.contains("waits for you"), "the banner is gone");
            assert!(list.contains("No open conflicts"));

            wd.goto(format!("{base}/assets/{asset}")).await?;
            let record = wd.find(By::Css("dl.facts")).await?.text().await?;
            assert!(
                record.contains("Seal leaking at the flange (laptop)"),
                "{record}"
            );
            assert!(record.contains("degraded"), "{record}");
            assert!(record.contains("carol (resolving a conflict)"), "{record}");
            Ok(())
        }
        .await;
        wd.quit().await?;
        result
    });
    outcome.expect("the browser session");
    let row = app.row("assets", &asset).unwrap();
    assert_eq!(
        row.fields["notes"].as_deref(),
        Some("Seal leaking at the flange (laptop)")
    );
    assert_eq!(row.fields["status"].as_deref(), Some("degraded"));
    assert!(screenshot.exists());
}

#[test]
fn an_engineer_keeps_a_reading_made_under_an_inspection_the_office_deleted() {
    if !browser_available() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).expect("SQLite is always there");
    let (_, asset) = app.seed_asset();
    let (inspection, _) = app.seed_inspection(&asset);
    let mut d = app.device("dana");
    d.sync(&[]);
    app.online_delete("inspections", &inspection);
    let reading = uid();
    let (r, _) = d.sync(&[create(
        "readings",
        &reading,
        &[
            ("inspection_id", Some(&inspection)),
            ("kind", Some("vibration")),
            ("value", Some("12.5")),
            ("unit", Some("mm/s")),
        ],
    )]);
    assert_eq!(r.map(|r| r.2), Some(1), "held in a conflict, not refused");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let base = app.base.clone();
    let screenshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/conflict-held-create.png");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome: WebDriverResult<()> = runtime.block_on(async {
        let wd = chromium(&driver, profile.path()).await?;
        let result = async {
            sign_in(&wd, &base, "dana").await?;
            wd.goto(format!("{base}/conflicts")).await?;
            wd.find(By::Css("table.list a[href^='/conflicts/']"))
                .await?
                .click()
                .await?;
            wd.find(By::Id("save")).await?;
            let page = wd.find(By::Tag("main")).await?.text().await?;
            assert!(page.contains("not on the server yet"), "{page}");
            assert!(page.contains("12.5") && page.contains("mm/s"), "{page}");
            std::fs::create_dir_all(screenshot.parent().unwrap()).ok();
            std::fs::write(&screenshot, wd.screenshot_as_png().await?)
                .expect("writing the screenshot");
            wd.find(By::Css("input[name='choice.row'][value='offline']"))
                .await?
                .click()
                .await?;
            wd.find(By::Id("save")).await?.click().await?;
            wd.find(By::Css("p.empty")).await?;
            Ok(())
        }
        .await;
        wd.quit().await?;
        result
    });
    outcome.expect("the browser session");
    assert!(
        app.row("inspections", &inspection).is_some(),
        "restored with it"
    );
    assert_eq!(
        app.row("readings", &reading).unwrap().fields["value"].as_deref(),
        Some("12.5")
    );
}

#[test]
fn an_inspection_made_offline_reaches_the_main_site_with_sync_now() {
    if !browser_available() {
        return;
    }
    let main = TestApp::spawn(Backend::Sqlite).expect("SQLite is always there");
    let (_, asset) = main.seed_asset();
    let device = main.device("jo");
    let laptop = TestApp::spawn_offline(&main.base, &device.token);
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let (main_base, laptop_base) = (main.base.clone(), laptop.base.clone());
    let summary = format!("Made offline {}", main.uniq("insp"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome: WebDriverResult<()> = runtime.block_on(async {
        let wd = chromium(&driver, profile.path()).await?;
        let result = async {
            // First sync, to bring the asset to the laptop.
            wd.goto(format!("{laptop_base}/sites")).await?;
            wd.find(By::Id("sync-now")).await?.click().await?;
            wait_for_text(&wd, "sync complete").await?;

            wd.goto(format!("{laptop_base}/assets/{asset}")).await?;
            wd.find(By::LinkText("New inspection"))
                .await?
                .click()
                .await?;
            // "Inspected at" starts at now, which will do.
            wd.find(By::Id("f-inspector"))
                .await?
                .send_keys("Jo Bloggs")
                .await?;
            wd.find(By::Id("f-summary"))
                .await?
                .send_keys(summary.as_str())
                .await?;
            wd.find(By::Css("button.primary")).await?.click().await?;
            wd.find(By::Css(".pending")).await?;
            assert!(
                wd.find(By::Tag("body"))
                    .await?
                    .text()
                    .await?
                    .contains("1 change waiting")
            );

            wd.find(By::Id("sync-now")).await?.click().await?;
            wait_for_text(&wd, "sync complete: uploaded 1").await?;

            // On the main site.
            sign_in(&wd, &main_base, "jo").await?;
            wd.goto(format!("{main_base}/assets/{asset}")).await?;
            let page = wd.find(By::Tag("main")).await?.text().await?;
            assert!(
                page.contains("Jo Bloggs") && page.contains(&summary),
                "{page}"
            );
            Ok(())
        }
        .await;
        wd.quit().await?;
        result
    });
    outcome.expect("the browser session");
}

#[test]
fn each_role_signs_in_and_is_offered_what_it_may_do() {
    if !browser_available() {
        return;
    }
    let app = TestApp::spawn(Backend::Sqlite).expect("SQLite is always there");
    use offsync::accounts::Role;
    app.add_user_as("ada", "password", Role::Administrator);
    app.add_user_as("olga", "password", Role::Office);
    app.add_user_as("erin", "password", Role::Engineer);
    let (site, asset) = app.seed_asset();
    let driver = Driver::start();
    let base = app.base.clone();
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/users-page.png");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (user, deletes_site, edits_tag, manages_users) in [
        ("ada", true, true, true),
        ("olga", false, true, false),
        ("erin", false, false, false),
    ] {
        let profile = tempfile::tempdir().unwrap();
        let outcome: WebDriverResult<()> = runtime.block_on(async {
            let wd = chromium(&driver, profile.path()).await?;
            let result = async {
                sign_in(&wd, &base, user).await?;
                wait_for_text(&wd, user).await?;
                wd.goto(format!("{base}/sites/{site}")).await?;
                let delete_links = wd
                    .find_all(By::Css(format!("a[href='/sites/{site}/delete']")))
                    .await?;
                assert_eq!(
                    !delete_links.is_empty(),
                    deletes_site,
                    "{user}: Delete site"
                );
                wd.goto(format!("{base}/assets/{asset}/edit")).await?;
                let tag_inputs = wd.find_all(By::Css("input[name='tag']")).await?;
                assert_eq!(!tag_inputs.is_empty(), edits_tag, "{user}: the tag field");
                let users_links = wd.find_all(By::Css("nav a[href='/users']")).await?;
                assert_eq!(!users_links.is_empty(), manages_users, "{user}: Users");
                if manages_users {
                    wd.goto(format!("{base}/users")).await?;
                    let body = wd.find(By::Tag("body")).await?.text().await?;
                    assert!(body.contains("erin") && body.contains("engineer"), "{body}");
                    let png = wd.screenshot_as_png().await?;
                    std::fs::write(&screenshot, png).expect("the screenshot is written");
                }
                // Signing out ends the session: the back button shows no page.
                wd.find(By::Css("form[action='/logout'] button"))
                    .await?
                    .click()
                    .await?;
                // Signed out (the sign-in page) before going on, as in `sign_in`.
                wd.find(By::Id("username")).await?;
                wd.goto(format!("{base}/sites")).await?;
                let url = wd.current_url().await?;
                assert!(url.path().starts_with("/login"), "{user}: {url}");
                Ok(())
            }
            .await;
            wd.quit().await?;
            result
        });
        outcome.expect("the browser session");
    }
}

/// A real `offsync offline` whose server is out of reach at first: the header says so,
/// calmly; when the server comes back the copy syncs by itself, and the header goes from
/// "Syncing… N of M rows" to "Synced just now" with no reload of the page.
#[test]
fn the_laptop_syncs_by_itself_when_the_server_comes_back_and_the_header_follows_live() {
    if !browser_available() {
        return;
    }
    let main = TestApp::spawn(Backend::Sqlite).expect("SQLite is always there");
    let (site, _) = main.seed_asset();
    // Enough rows that a slow line shows the download's progress.
    let mut items = Vec::new();
    for i in 0..2000 {
        items.push(create(
            "assets",
            &uid(),
            &[
                ("site_id", Some(site.as_str())),
                ("tag", Some(&format!("LIVE-{i:04}"))),
                ("status", Some("ok")),
                (
                    "notes",
                    Some("a note to give the download some bulk, repeated"),
                ),
            ],
        ));
    }
    main.import(&doc(&items));
    let device = main.device("jo");
    let proxy = laptop::Proxy::start(&main.base);
    proxy.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let (mut copy, laptop_base) = start_connected_copy(dir.path(), &proxy.base, &device.token, "1");
    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let screenshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/laptop-syncing.png");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome: WebDriverResult<()> = runtime.block_on(async {
        let wd = chromium(&driver, profile.path()).await?;
        let result = async {
            wd.goto(format!("{laptop_base}/sites")).await?;
            wait_for_text(&wd, "Server unreachable since").await?;
            // From here on the page is never reloaded: a mark in it would not survive one.
            wd.execute("window.offsyncMark = 'still this page';", vec![]).await?;
            let mark = || async {
                wd.execute("return window.offsyncMark || '';", vec![])
                    .await?
                    .convert::<String>()
            };
            proxy.set_slow(800);
            proxy.set_down(false);
            // The syncer retries by itself; the bar shows the download's progress.
            let mut seen_progress = String::new();
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                // Read in one step: the script may replace the bar between a find and a read.
                let bar = wd
                    .execute(
                        "const b = document.querySelector('.offline-bar'); return b ? b.innerText : '';",
                        vec![],
                    )
                    .await?
                    .convert::<String>()?;
                if bar.contains("Syncing…") && bar.contains(" rows") && seen_progress.is_empty() {
                    seen_progress = bar.clone();
                    let png = wd.screenshot_as_png().await?;
                    std::fs::write(&screenshot, png).expect("the screenshot is written");
                }
                if bar.contains("Synced just now") {
                    assert!(bar.contains("0 changes waiting"), "{bar}");
                    assert!(!bar.contains("unreachable"), "{bar}");
                    break;
                }
                assert!(Instant::now() < deadline, "never synced: {bar}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                seen_progress.contains("rows"),
                "the bar showed the progress: {seen_progress:?}"
            );
            assert_eq!(mark().await?, "still this page", "no reload");
            Ok(())
        }
        .await;
        wd.quit().await?;
        result
    });
    let _ = copy.kill();
    let _ = copy.wait();
    outcome.expect("the browser session");
}

/// `offsync offline` on its own database at `dir`, listening on a free port; its base URL.
/// [`start_copy`] already connected: to `upstream` with a device token (in a file, as an
/// administrator hands one out), syncing every `minutes` (0: only when asked).
fn start_connected_copy(dir: &Path, upstream: &str, token: &str, minutes: &str) -> (Child, String) {
    let token_file = dir.join("token");
    std::fs::write(&token_file, token).unwrap();
    let token_arg = token_file.to_str().unwrap().to_owned();
    start_copy(
        dir,
        &[
            "--upstream",
            upstream,
            "--token-file",
            &token_arg,
            "--sync-every-minutes",
            minutes,
        ],
    )
}

fn start_copy(dir: &Path, args: &[&str]) -> (Child, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let copy = Command::new(env!("CARGO_BIN_EXE_offsync"))
        .args([
            "offline",
            "--no-open",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("laptop.db").display()))
        .env_remove("DATABASE_URL")
        .env_remove("OFFSYNC_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("offsync offline starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "offsync offline did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (copy, format!("http://127.0.0.1:{port}"))
}

#[test]
fn an_engineer_connects_a_laptop_by_signing_in() {
    if !browser_available() {
        return;
    }
    let main = TestApp::spawn(Backend::Sqlite).expect("SQLite is always there");
    main.add_user("jo", "password", false);
    let (_, asset) = main.seed_asset();
    let tag = main.row("assets", &asset).unwrap().fields["tag"]
        .clone()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut copy, laptop_base) = start_copy(dir.path(), &["--upstream", &main.base]);
    let form_shot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/laptop-new-inspection.png");
    let driver = Driver::start_in("America/New_York");
    let profile = tempfile::tempdir().unwrap();
    let screenshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/laptop-connect.png");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome: WebDriverResult<String> = runtime.block_on(async {
        let wd = chromium(&driver, profile.path()).await?;
        let result = async {
            // A laptop that was never connected opens on the connect page.
            wd.goto(format!("{laptop_base}/")).await?;
            wait_for_text(&wd, "Connect this laptop").await?;
            let server = wd.find(By::Id("server")).await?.value().await?;
            assert_eq!(server.as_deref(), Some(main.base.as_str()));
            wd.find(By::Id("username")).await?.send_keys("jo").await?;
            wd.find(By::Id("password"))
                .await?
                .send_keys("password")
                .await?;
            let label = wd.find(By::Id("label")).await?;
            label.clear().await?;
            label.send_keys("Jo's ThinkPad").await?;
            let png = wd.screenshot_as_png().await?;
            std::fs::write(&screenshot, png).expect("the screenshot is written");
            wd.find(By::Id("connect")).await?.click().await?;
            // Connected, it syncs at once; the live header says so without a reload.
            wait_for_text(&wd, "Synced just now").await?;
            wd.goto(format!("{laptop_base}/assets/{asset}")).await?;
            wait_for_text(&wd, "Pump").await?;

            // A new inspection, offline: now by default, picked on the date-time picker in
            // the browser's zone, the asset chosen by its name, the inspector the engineer
            // who connected the laptop.
            wd.goto(format!("{laptop_base}/inspections/new")).await?;
            wait_for_text(&wd, "New inspection").await?;
            let when = wd.find(By::Id("f-inspected_at")).await?;
            assert_eq!(when.attr("type").await?.as_deref(), Some("datetime-local"));
            assert!(
                when.value().await?.is_some_and(|v| v.len() == 16),
                "now, to the minute"
            );
            let inspector = wd.find(By::Id("f-inspector")).await?.value().await?;
            assert_eq!(inspector.as_deref(), Some("jo"));
            let zone = wd
                .execute(
                    "return Intl.DateTimeFormat().resolvedOptions().timeZone;",
                    vec![],
                )
                .await?
                .convert::<String>()?;
            // The picker's fields, as a person types them (Chromium's en-US order).
            when.send_keys("11212026").await?;
            when.send_keys(Key::Tab).await?;
            when.send_keys("0914AM").await?;
            assert_eq!(when.value().await?.as_deref(), Some("2026-11-21T09:14"));
            let asset_choice = SelectElement::new(&wd.find(By::Id("f-asset_id")).await?).await?;
            asset_choice.select_by_partial_text(&tag).await?;
            SelectElement::new(&wd.find(By::Id("f-result")).await?)
                .await?
                .select_by_value("pass")
                .await?;
            let png = wd.screenshot_as_png().await?;
            std::fs::write(&form_shot, png).expect("the screenshot is written");
            wd.find(By::Css("button.primary")).await?.click().await?;
            wait_for_text(&wd, "Inspected at").await?;
            wd.find(By::Id("sync-now")).await?.click().await?;
            wait_for_text(&wd, "Synced just now").await?;
            Ok::<String, WebDriverError>(zone)
        }
        .await;
        wd.quit().await?;
        result
    });
    let _ = copy.kill();
    let _ = copy.wait();
    let zone: chrono_tz::Tz = outcome
        .expect("the browser session")
        .parse()
        .expect("the browser's zone is an IANA name");
    assert_eq!(
        zone,
        chrono_tz::America::New_York,
        "the laptop's own zone, not the server's"
    );
    let mut conn = main.conn();
    let jo = offsync::db::repo::accounts::user_by_name(&mut conn, "jo")
        .unwrap()
        .expect("jo");
    let devices = offsync::db::repo::accounts::list_devices(&mut conn, Some(&jo.id)).unwrap();
    assert_eq!(devices.len(), 1, "one device for the laptop");
    assert_eq!(devices[0].label, "Jo's ThinkPad");
    // The inspection reached the main site: under the chosen asset, at 09:14 in the
    // browser's zone, kept as UTC, by jo.
    let rows = offsync::db::repo::rows::under_parents(
        &mut conn,
        offsync::domain::table_by_name("inspections").unwrap(),
        std::slice::from_ref(&asset),
    )
    .unwrap();
    assert_eq!(rows.len(), 1, "one inspection under the asset");
    let expected = chrono::TimeZone::from_local_datetime(
        &zone,
        &chrono::NaiveDate::from_ymd_opt(2026, 11, 21)
            .unwrap()
            .and_hms_opt(9, 14, 0)
            .unwrap(),
    )
    .earliest()
    .unwrap()
    .timestamp_micros();
    assert_eq!(
        rows[0].values[1]
            .as_deref()
            .and_then(offsync::domain::time::parse),
        Some(expected),
        "{:?} in {zone}",
        rows[0].values[1]
    );
    assert_eq!(rows[0].values[2].as_deref(), Some("jo"));
}

#[test]
fn the_laptop_shows_its_conflicts_with_the_main_site_down() {
    if !browser_available() {
        return;
    }
    let main = TestApp::spawn(Backend::Sqlite).expect("SQLite is always there");
    let (_, asset) = main.seed_asset();
    let (inspection, _) = main.seed_inspection(&asset);
    let device = main.device("jo");
    let dir = tempfile::tempdir().unwrap();
    let (mut copy, laptop_base) = start_connected_copy(dir.path(), &main.base, &device.token, "0");
    // The engineer's edit, posted as a browser without script would; the office deletes
    // the inspection meanwhile.
    let br = Browser::at(&laptop_base);
    let sync = |br: &Browser| {
        let (_, page) = br.get("/sites");
        br.post("/sync", &[("csrf", &br.csrf(&page))]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, bar) = br.get("/sync/bar");
            if bar.contains("sync complete") && bar.contains("id=\"sync-now\"") {
                break;
            }
            assert!(Instant::now() < deadline, "no sync: {bar}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    sync(&br);
    let (_, form) = br.get(&format!("/inspections/{inspection}/edit"));
    let mut pairs = form_as_sent(&form);
    set_field(&mut pairs, "summary", "Corrosion on the flange");
    assert_eq!(
        post_form(&br, &format!("/inspections/{inspection}/edit"), &pairs).0,
        303
    );
    main.online_delete("inspections", &inspection);
    sync(&br);
    drop(main);

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let screenshot =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots/laptop-conflicts.png");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome: WebDriverResult<()> = runtime.block_on(async {
        let wd = chromium(&driver, profile.path()).await?;
        let result = async {
            wd.goto(format!("{laptop_base}/sites")).await?;
            wd.find(By::LinkText("Conflicts")).await?.click().await?;
            wait_for_text(&wd, "Your conflicts on the main site").await?;
            let main_text = wd.find(By::Tag("main")).await?.text().await?;
            assert!(
                main_text
                    .contains("This inspection was deleted on the main site by offsync import")
                    && main_text.contains("your edit waits in your conflicts")
                    && main_text.contains("Corrosion on the flange"),
                "{main_text}"
            );
            let png = wd.screenshot_as_png().await?;
            std::fs::write(&screenshot, png).expect("the screenshot is written");
            Ok(())
        }
        .await;
        wd.quit().await?;
        result
    });
    let _ = copy.kill();
    let _ = copy.wait();
    outcome.expect("the browser session");
}

/// Signs in on the main site's form, as a person types it (the test users' password).
async fn sign_in(wd: &WebDriver, base: &str, user: &str) -> WebDriverResult<()> {
    wd.goto(format!("{base}/login")).await?;
    wd.find(By::Id("username")).await?.send_keys(user).await?;
    wd.find(By::Id("password"))
        .await?
        .send_keys("password")
        .await?;
    wd.find(By::Css("button.primary")).await?.click().await?;
    // The click only starts the form's submission: a `goto` issued before its response
    // arrives cancels it, and the next page is the sign-in page again. Signed in is when the
    // page offers to sign out.
    wd.find(By::Css("form[action='/logout']")).await?;
    Ok(())
}

/// Reloads until the page shows `text` (a background sync finishing), for up to 30 s. The
/// page may be replaced while it is read (the button's redirect): that is "not yet", which
/// Chromium reports as a stale element or, for a node of the page just left, as an unknown
/// error that the node "does not belong to the document".
async fn wait_for_text(wd: &WebDriver, text: &str) -> WebDriverResult<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    loop {
        let body = match wd.find(By::Tag("body")).await {
            Ok(el) => el.text().await,
            Err(e) => Err(e),
        };
        match body {
            Ok(body) if body.contains(text) => return Ok(()),
            Ok(body) => last = body,
            Err(e)
                if {
                    let m = format!("{e:?}");
                    m.contains("StaleElementReference")
                        || m.contains("NoSuchElement")
                        || m.contains("does not belong to the document")
                } => {}
            Err(e) => return Err(e),
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed {text:?}: {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        wd.refresh().await?;
    }
}
