//! No change is missed by a download, even when writers commit out of order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use offsync::db::repo::rows;
use offsync::db::write_txn;
use offsync::domain::table_by_name;

use crate::helpers::*;
use crate::on_both;

on_both!(
    writers_committing_out_of_order_never_slip_past_a_download,
    one_device_has_one_open_session
);

fn writers_committing_out_of_order_never_slip_past_a_download(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let (site, _) = app.seed_asset();
    let assets = table_by_name("assets").unwrap();
    let written = Arc::new(Mutex::new(Vec::new()));
    let running = Arc::new(AtomicBool::new(true));
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let pool = app.pool.clone();
            let site = site.clone();
            let written = written.clone();
            std::thread::spawn(move || {
                for i in 0..12u64 {
                    let id = uid();
                    let mut conn = pool.get().unwrap();
                    // Each transaction takes its stamp, then holds it uncommitted for a
                    // while, so that later stamps commit before earlier ones.
                    let hold = Duration::from_millis((w * 13 + i * 7) % 40);
                    write_txn::<_, offsync::db::DbError>(&mut conn, |c, now| {
                        let values = vec![
                            Some(site.clone()),
                            Some(format!("W{w}-{id}")),
                            None,
                            Some("ok".into()),
                            None,
                        ];
                        rows::insert(
                            c,
                            assets,
                            &[(id.clone(), values, offsync::domain::time::after(now))],
                            "concurrency test",
                        )?;
                        std::thread::sleep(hold);
                        Ok(())
                    })
                    .unwrap();
                    written.lock().unwrap().push(id);
                }
            })
        })
        .collect();
    let mut d = app.device("alice");
    let mut seen = HashSet::new();
    let watcher_running = running.clone();
    while watcher_running.load(Ordering::Relaxed) {
        let (_, dl) = d.sync(&[]);
        for i in &dl.items {
            seen.insert(i.id().to_owned());
        }
        if writers.iter().all(|w| w.is_finished()) {
            running.store(false, Ordering::Relaxed);
        }
    }
    for w in writers {
        w.join().unwrap();
    }
    let (_, dl) = d.sync(&[]);
    for i in &dl.items {
        seen.insert(i.id().to_owned());
    }
    let written = written.lock().unwrap();
    assert_eq!(written.len(), 36);
    let missed: Vec<_> = written.iter().filter(|id| !seen.contains(*id)).collect();
    assert!(missed.is_empty(), "rows never downloaded: {missed:?}");
}

fn one_device_has_one_open_session(b: Backend) {
    let Some(app) = TestApp::spawn(b) else { return };
    let d = app.device("alice");
    // Opened at once from two threads: both answer, and exactly one stays usable.
    let (x, y) = std::thread::scope(|s| {
        let a = s.spawn(|| d.open());
        let b = s.spawn(|| d.open());
        (a.join().unwrap(), b.join().unwrap())
    });
    let usable: Vec<_> = [&x, &y]
        .into_iter()
        .filter(|s| d.download_raw(&s.id).status == 200)
        .collect();
    assert_eq!(usable.len(), 1, "exactly one session of the device is open");
}
