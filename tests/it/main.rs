//! Integration tests over real HTTP: each test starts offsync on a free port over a fresh
//! database, on SQLite and (when `OFFSYNC_TEST_PG` is set) on PostgreSQL.

mod helpers;
mod laptop;

mod accounts;
mod busy;
mod concurrency;
mod conflicts;
mod declaration;
mod devices;
mod duplicates;
mod enrol;
mod laptop_guard;
mod never_stuck;
mod offline;
mod offline_pages;
mod pages;
mod rejections;
mod resume;
mod roles;
mod sessions;
mod site;
mod trust;
mod uploads;
mod wire_schema;
