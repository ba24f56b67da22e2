//! The sync engine: the changeset codec, applying uploads, producing downloads, sessions.
//! It knows the domain and the repository; it knows nothing of HTTP.

pub mod codec;
