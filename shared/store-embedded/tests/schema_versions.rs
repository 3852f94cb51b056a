//! A database file of an earlier schema version opens as the current one: its records read as
//! they were, with what later versions added as null, and what later versions do works on it.

use ota_core::ports::{MetaStore, PageRequest};
use ota_core::release::ReleaseState;
use ota_core::rollout::{RolloutState, TargetType};
use ota_core::status::OtaStatus;
use ota_store_conformance::fixtures::{
    check_in, dev, offered, release, release_of_image, report, rollout, running,
};
use ota_store_embedded::SqliteMeta;

/// The version a file has once opened.
const CURRENT: i64 = 6;

fn version_of(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// Makes the file at `db` what version 5 left: attempts without the time of their last
/// report, no index of open attempts, no offer budgets.
fn back_to_version_5(db: &std::path::Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "DROP INDEX open_attempts;
         ALTER TABLE attempts DROP COLUMN last_report_at;
         DROP TABLE offer_budgets;
         PRAGMA user_version = 5;",
    )
    .unwrap();
}

/// Makes the file at `db` what version 4 left: no per-release device counters, and device
/// records without `running_crashed`.
fn back_to_version_4(db: &std::path::Path) {
    back_to_version_5(db);
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "DROP TABLE release_devices;
         UPDATE devices SET doc = json_remove(doc, '$.running_crashed');
         PRAGMA user_version = 4;",
    )
    .unwrap();
}

/// Makes the file at `db` what version 3 left: each device's `last_seen` and `last_boot` in its
/// document only.
fn back_to_version_3(db: &std::path::Path) {
    back_to_version_4(db);
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "UPDATE devices SET doc = (SELECT v.doc FROM device_docs v
                                   WHERE v.device_id = devices.device_id);
         DROP VIEW device_docs;
         DROP TABLE device_seen;
         PRAGMA user_version = 3;",
    )
    .unwrap();
}

/// Makes the file at `db` what version 2 left: no membership table, and `specific` rollouts
/// that keep their devices in their records.
fn back_to_version_2(db: &std::path::Path) {
    back_to_version_3(db);
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "UPDATE rollouts SET doc = json_remove(json_set(doc, '$.target_filter.device_ids',
                 (SELECT json_group_array(device_id) FROM rollout_targets t
                  WHERE t.rollout_id = rollouts.id)), '$.named_devices')
             WHERE json_extract(doc, '$.target_type') = 'specific';
         DROP TABLE rollout_targets;
         PRAGMA user_version = 2;",
    )
    .unwrap();
}

/// Makes the file at `db` what version 1 left: none of version 2's index and tables, and
/// records without the fields version 2 added.
fn back_to_version_1(db: &std::path::Path) {
    back_to_version_2(db);
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
    assert_eq!(version_of(&db), CURRENT);
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

#[tokio::test]
async fn a_version_2_file_moves_the_named_devices_out_of_its_rollouts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ota.sqlite3");
    let fw = release("demo", "1.1.0", ReleaseState::Ready);
    let mut specific = rollout(&fw, RolloutState::Active);
    specific.target_type = TargetType::Specific;
    specific.named_devices = 2;
    let everyone = rollout(&fw, RolloutState::Active);
    {
        let s = SqliteMeta::open(&db).unwrap();
        s.insert_release(&fw).await.unwrap();
        s.insert_rollout(&specific, &[dev("a"), dev("b")])
            .await
            .unwrap();
        s.insert_rollout(&everyone, &[]).await.unwrap();
    }
    back_to_version_2(&db);
    let embedded = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT json_extract(doc, '$.target_filter.device_ids') FROM rollouts WHERE id = ?1",
            [&specific.id],
            |r| r.get::<_, String>(0),
        )
        .unwrap();
    assert_eq!(embedded, r#"["a","b"]"#, "what version 2 stored");

    let s = SqliteMeta::open(&db).unwrap();
    assert_eq!(version_of(&db), CURRENT);
    assert_eq!(
        s.get_rollout(&specific.id).await.unwrap(),
        Some(specific.clone())
    );
    assert_eq!(s.get_rollout(&everyone.id).await.unwrap(), Some(everyone));
    let listed = s
        .list_named_devices(&specific.id, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items, [dev("a"), dev("b")]);
    for (device, named_in) in [("a", vec![specific.id.clone()]), ("c", vec![])] {
        let snapshot = s
            .record_check(&check_in(device, "demo", "1.0.0"), &|_| None)
            .await
            .unwrap();
        assert_eq!(snapshot.named_in, named_in, "{device}");
    }
}

#[tokio::test]
async fn a_version_3_file_keeps_its_last_seen_times_and_refreshes_them_beside_the_documents() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ota.sqlite3");
    let mut c = check_in("d1", "demo", "1.0.0");
    let first = c.at;
    {
        let s = SqliteMeta::open(&db).unwrap();
        s.record_check(&c, &|_| None).await.unwrap();
        c.at = first + std::time::Duration::from_secs(30);
        s.record_check(&c, &|_| None).await.unwrap();
    }
    back_to_version_3(&db);
    let in_document = |db: &std::path::Path| -> String {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row(
                "SELECT json_extract(doc, '$.last_seen') FROM devices WHERE device_id = 'd1'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let refreshed_then = in_document(&db);

    let s = SqliteMeta::open(&db).unwrap();
    assert_eq!(version_of(&db), CURRENT);
    let device = s.get_device(&dev("d1")).await.unwrap().unwrap();
    assert_eq!(device.last_seen, c.at, "what version 3 stored");

    // A steady poll now: its time goes beside the document, which stays as it was, and every
    // read sees the later of the two.
    c.at = first + std::time::Duration::from_secs(60);
    s.record_check(&c, &|_| None).await.unwrap();
    let device = s.get_device(&dev("d1")).await.unwrap().unwrap();
    assert_eq!(device.last_seen, c.at);
    let listed = s
        .list_devices(&Default::default(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items, [device]);
    assert_eq!(
        in_document(&db),
        refreshed_then,
        "the document is not rewritten"
    );
}

#[tokio::test]
async fn a_version_4_file_gains_the_release_device_counters() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ota.sqlite3");
    let image = "ab".repeat(32);
    let fw = release_of_image("demo", "1.0.0", &image);
    {
        let s = SqliteMeta::open(&db).unwrap();
        s.insert_release(&fw).await.unwrap();
        s.record_check(&running("d1", "demo", Some(&image), None), &|_| None)
            .await
            .unwrap();
    }
    back_to_version_4(&db);

    let s = SqliteMeta::open(&db).unwrap();
    assert_eq!(version_of(&db), CURRENT);
    let counts = s.release_health(&fw.id).await.unwrap();
    assert_eq!(
        (counts.devices, counts.crashed_devices),
        (0, 0),
        "counted from version 5 on"
    );
    let d1 = s.get_device(&dev("d1")).await.unwrap().unwrap();
    assert!(
        !d1.running_crashed,
        "a record of version 4 reads as not crashed"
    );
    s.record_check(&running("d2", "demo", Some(&image), None), &|_| None)
        .await
        .unwrap();
    assert_eq!(s.release_health(&fw.id).await.unwrap().devices, 1);
}

#[tokio::test]
async fn a_version_5_file_times_out_only_the_attempts_reported_from_version_6_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ota.sqlite3");
    let fw = release("demo", "2.0.0", ReleaseState::Ready);
    let r = rollout(&fw, RolloutState::Active);
    {
        let s = SqliteMeta::open(&db).unwrap();
        s.insert_release(&fw).await.unwrap();
        s.insert_rollout(&r, &[]).await.unwrap();
        offered(&s, "d1", &fw, &r).await;
        s.record_status(&report("d1", &fw, OtaStatus::Downloading, "e1"))
            .await
            .unwrap();
    }
    back_to_version_5(&db);

    let s = SqliteMeta::open(&db).unwrap();
    assert_eq!(version_of(&db), CURRENT);
    let later = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    assert!(
        s.silent_attempts(&r.id, later, 10)
            .await
            .unwrap()
            .is_empty(),
        "an attempt of version 5 has no time to be silent since"
    );
    s.record_status(&report("d1", &fw, OtaStatus::Installing, "e2"))
        .await
        .unwrap();
    let silent = s.silent_attempts(&r.id, later, 10).await.unwrap();
    assert_eq!(silent.len(), 1);
    assert_eq!(silent[0].status, OtaStatus::Installing);
    let first = s.take_offer(&r.id, 1, later).await.unwrap();
    assert_eq!(first, ota_core::offer_budget::Taken::Granted);
}
