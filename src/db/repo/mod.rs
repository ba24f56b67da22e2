//! Repository functions: each takes `&mut DbConn`, so that callers compose them inside one
//! transaction. No HTTP, no sync rules.

pub mod accounts;
pub mod aliases;
pub mod conflicts;
pub mod fleet;
pub mod resends;
pub mod rows;
pub mod sessions;
pub mod sign_in;
pub mod web_sessions;
