//! The offline copy on a laptop (`offsync offline`, `offsync sync`): a local SQLite
//! database with the same tables and pages, a log of local changes, and the client side of
//! the sync protocol. Local edits are logged by `editing` in offline mode; `sync` uploads
//! them, applies the server's changes, and forgets what a completed sync took.

pub mod client;
pub mod store;
pub mod sync;
