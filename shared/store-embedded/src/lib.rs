//! The embedded default's storage: SQLite metadata and a local directory of firmware files
//! served through HMAC-signed capability URLs.

mod blobs;
mod cursor;
mod meta;
mod schema;

pub use blobs::LocalBlobs;
pub use meta::SqliteMeta;
