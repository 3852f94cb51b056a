//! The storage contract, run against the in-memory store: it must behave as SQLite and DynamoDB
//! do for the use-case tests built on it to mean anything.

use std::sync::Arc;

use ota_core::ports::MetaStore;
use ota_store_memory::MemoryMeta;

async fn fresh() -> (Arc<dyn MetaStore>, ()) {
    (Arc::new(MemoryMeta::new()), ())
}

ota_store_conformance::meta_store_tests!(fresh);
