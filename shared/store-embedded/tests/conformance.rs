//! The storage contract, run against SQLite and the local blob directory.

use std::sync::Arc;

use ota_core::capability::CapabilitySigner;
use ota_core::ports::{BlobStore, MetaStore};
use ota_store_embedded::{LocalBlobs, SqliteMeta};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn meta_store_conforms() {
    let dirs = std::sync::Mutex::new(Vec::new());
    ota_store_conformance::meta_cases(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMeta::open(&dir.path().join("ota.sqlite3")).unwrap();
        dirs.lock().unwrap().push(dir);
        async move { Arc::new(store) as Arc<dyn MetaStore> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_conform() {
    let dirs = std::sync::Mutex::new(Vec::new());
    ota_store_conformance::fleet_cases(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteMeta::open(&dir.path().join("ota.sqlite3")).unwrap();
        dirs.lock().unwrap().push(dir);
        async move { Arc::new(store) as Arc<dyn MetaStore> }
    })
    .await;
}

#[tokio::test]
async fn blob_store_conforms() {
    let dirs = std::sync::Mutex::new(Vec::new());
    ota_store_conformance::blob_cases(|| {
        let dir = tempfile::tempdir().unwrap();
        let blobs = LocalBlobs::open(
            dir.path(),
            "http://127.0.0.1:1",
            CapabilitySigner::from_secret(b"test"),
        )
        .unwrap();
        dirs.lock().unwrap().push(dir);
        async move { Arc::new(blobs) as Arc<dyn BlobStore> }
    })
    .await;
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ota.sqlite3");
    let fw = {
        let store = SqliteMeta::open(&path).unwrap();
        let fw: ota_core::firmware::Firmware = serde_json::from_value(serde_json::json!({
                "id": "f1", "device_type": "demo", "version": "1.0.0", "build_number": 0,
                "channel": "stable", "file_size": 1, "file_hash": "00", "secure_version": 0,
                "chip": null, "project_name": null, "idf_version": null,
                "min_current_version": null, "description": null, "release_notes": null,
                "state": "ready", "is_active": true,
                "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
                "released_at": null
        }))
        .unwrap();
        store.insert_firmware(&fw).await.unwrap();
        fw
    };
    let reopened = SqliteMeta::open(&path).unwrap();
    assert_eq!(reopened.get_firmware("f1").await.unwrap(), Some(fw));
}
