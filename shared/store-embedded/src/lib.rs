//! The embedded default's storage: SQLite metadata and a local directory of firmware files
//! served through HMAC-signed capability URLs.

mod audit;
mod blobs;
mod counters;
mod device_cache;
mod last_seen;
mod mapped_objects;
mod meta;
mod reports;
mod schema;
mod sql;
mod view_cache;
mod watch;

pub use blobs::LocalBlobs;
pub use meta::SqliteMeta;
