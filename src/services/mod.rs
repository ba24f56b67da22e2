//! What the pages do, without HTTP. Each function takes a connection, owns the
//! transactions it needs (through [`crate::editing`], [`crate::sync::resolve`],
//! [`crate::accounts`]) and returns the view model its page shows, plain data an askama
//! template reads, or an outcome the page turns into a status. Handlers in [`crate::web`]
//! only read the request, call one of these on the blocking pool and render.

pub mod conflicts;
pub mod deleted;
pub mod laptop;
pub mod present;
pub mod records;
pub mod users;
