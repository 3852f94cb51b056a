//! A database file of an earlier schema version opens as the current one: its records read as
//! they were, with what later versions added as null, and what later versions do works on it.

use ota_core::ports::MetaStore;
use ota_store_conformance::fixtures::{dev, release_of_image, running};
use ota_store_embedded::SqliteMeta;

/// Makes the file at `db` what version 1 left: none of version 2's index and tables, and
/// records without the fields version 2 added.
fn back_to_version_1(db: &std::path::Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "DROP INDEX firmware_by_image;
         DROP TABLE release_resets;
         DROP TABLE release_crashes;
         UPDATE firmware SET doc = json_remove(doc, '$.image_sha256');
         UPDATE devices SET doc = json_remove(doc, '$.running_image_sha256',
                                              '$.running_firmware_id', '$.last_boot');
         PRAGMA user_version = 1;",
    )
    .unwrap();
}

#[tokio::test]
async fn a_version_1_file_gains_the_device_health_schema() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ota.sqlite3");
    let old_image = "0a".repeat(32);
    let old = release_of_image("demo", "1.0.0", &old_image);
    {
        let s = SqliteMeta::open(&db).unwrap();
        s.insert_release(&old).await.unwrap();
        s.record_check(&running("d1", "demo", Some(&old_image), None), &|_| None)
            .await
            .unwrap();
    }
    back_to_version_1(&db);

    let s = SqliteMeta::open(&db).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let release = s.get_release(&old.id).await.unwrap().unwrap();
    assert_eq!(
        release.image_sha256, None,
        "validated before releases kept it"
    );
    let device = s.get_device(&dev("d1")).await.unwrap().unwrap();
    assert_eq!(
        (
            device.running_image_sha256,
            device.running_firmware_id,
            device.last_boot
        ),
        (None, None, None)
    );

    let image = "0b".repeat(32);
    let new = release_of_image("demo", "1.1.0", &image);
    s.insert_release(&new).await.unwrap();
    let snapshot = s
        .record_check(&running("d1", "demo", Some(&image), None), &|_| None)
        .await
        .unwrap();
    assert_eq!(snapshot.device.running_firmware_id, Some(new.id));
}
