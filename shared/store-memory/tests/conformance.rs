//! The storage contract, run against the in-memory stores: it must behave as SQLite and DynamoDB
//! do for the use-case tests built on it to mean anything.

use std::sync::Arc;

use ota_core::ports::{BlobStore, MetaStore};
use ota_store_memory::{MemoryBlobs, MemoryMeta};

async fn fresh() -> (Arc<dyn MetaStore>, ()) {
    (Arc::new(MemoryMeta::new()), ())
}

async fn fresh_blobs() -> (Arc<dyn BlobStore>, ()) {
    (Arc::new(MemoryBlobs::new()), ())
}

ota_store_conformance::meta_store_tests!(fresh);
ota_store_conformance::blob_store_tests!(fresh_blobs);
