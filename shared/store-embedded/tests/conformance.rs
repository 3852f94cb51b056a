//! The storage contract, run against SQLite and the local blob directory.

use std::sync::Arc;

use ota_core::capability::CapabilitySigner;
use ota_core::ports::{BlobStore, MetaStore};
use ota_store_embedded::{LocalBlobs, SqliteMeta};

/// A store on a new database in a temporary directory, kept as long as the store.
async fn fresh_meta() -> (Arc<dyn MetaStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteMeta::open(&dir.path().join("ota.sqlite3")).unwrap();
    (Arc::new(store), dir)
}

async fn fresh_blobs() -> (Arc<dyn BlobStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = LocalBlobs::open(
        dir.path(),
        "http://127.0.0.1:1",
        CapabilitySigner::from_secret(b"test"),
    )
    .unwrap();
    (Arc::new(blobs), dir)
}

ota_store_conformance::meta_store_tests!(fresh_meta);
ota_store_conformance::blob_store_tests!(fresh_blobs);

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ota.sqlite3");
    let fw = {
        let store = SqliteMeta::open(&path).unwrap();
        let fw: ota_core::release::Release = serde_json::from_value(serde_json::json!({
                "id": "f1", "device_type": "demo", "version": "1.0.0", "build_number": 0,
                "channel": "stable", "file_size": 1, "file_hash": "00", "secure_version": 0,
                "chip": null, "project_name": null, "idf_version": null,
                "min_current_version": null, "description": null, "release_notes": null,
                "state": "ready", "is_active": true,
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "released_at": null
        }))
        .unwrap();
        store.insert_release(&fw).await.unwrap();
        fw
    };
    let reopened = SqliteMeta::open(&path).unwrap();
    assert_eq!(reopened.get_release("f1").await.unwrap(), Some(fw));
}
