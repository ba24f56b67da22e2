//! offsync: a sync server for field inspection data, and the offline copy of it.
//!
//! Layers, each depending only on those below it:
//! - `cli`: the command line (`serve`, `user`, `device`, `import`, `demo`);
//! - `web`: actix-web handlers and askama pages; the only layer that knows HTTP;
//! - `sync`: the engine (codec, apply, download, sessions, conflicts);
//! - `db`: connections, migrations, and the repository functions;
//! - `domain`: the synced tables declared once, values and times.

pub mod accounts;
pub mod bench;
pub mod cli;
pub mod db;
pub mod demo;
pub mod domain;
pub mod editing;
pub mod offline;
pub mod sync;
pub mod web;
