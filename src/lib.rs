//! offsync: a sync server for field inspection data, and the offline copy of it.
//!
//! Layers, each depending only on those below it:
//! - `cli`, `demo`: the command line and what only it uses (the bench is a program of its
//!   own, `src/bin/offsync-bench`);
//! - `web`: actix-web handlers and askama pages; the only layer that knows HTTP on the
//!   server side (`offline::client` is the laptop's HTTP client);
//! - `services`: what the pages do, without HTTP: each call takes a connection and returns
//!   the view model its page shows;
//! - `sync` (the server's engine: codec, apply, download, sessions, conflicts), `offline`
//!   (the laptop's change log and sync), `editing` (online and offline edits from the
//!   pages), `accounts` (users, passwords, device tokens);
//! - `config`: every setting, read in one place (used by every layer);
//! - `telemetry`: the metrics operators watch (used by every layer above `db`);
//! - `db`: connections, migrations, and the repository functions;
//! - `domain`: the synced tables declared once, values and times; `logsafe`: client text
//!   made safe for a log line.

pub mod accounts;
pub mod cli;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod editing;
pub mod logsafe;
pub mod offline;
pub mod services;
pub mod sync;
pub mod telemetry;
pub mod web;
