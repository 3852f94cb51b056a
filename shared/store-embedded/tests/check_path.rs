//! What makes a check cheap on SQLite, and what it must never cost: the release view served from
//! memory yet never stale, and the steady-state poll that writes nothing at once yet loses no
//! `last_seen` to a failing transaction or a clean shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ota_core::audit::AuditEvent;
use ota_core::device::{Device, Offer};
use ota_core::device_type::DeviceTypePolicy;
use ota_core::ports::{MetaStore, StoreError};
use ota_core::release::{Release, ReleaseState};
use ota_core::rollout::{Rollout, RolloutState};
use ota_core::status::OtaStatus;
use ota_store_conformance::fixtures::{
    boot, check_in, dev, dt, now, release, release_of_image, report, rollout, running,
};
use ota_store_embedded::SqliteMeta;
use time::OffsetDateTime;

fn policy(chip: &str) -> DeviceTypePolicy {
    DeviceTypePolicy {
        name: dt("demo"),
        chip: chip.to_owned(),
        max_image_size: None,
        require_signature: false,
        signing_key_digests: Vec::new(),
        created_at: now(),
        updated_at: now(),
    }
}

/// What the file says of a device, read through a connection of its own, as after a crash (the
/// view `device_docs` applies the refresh of `last_seen` kept beside the document).
fn stored_device(db: &Path, device: &str) -> Device {
    let conn = rusqlite::Connection::open(db).unwrap();
    let doc: String = conn
        .query_row(
            "SELECT doc FROM device_docs WHERE device_id = ?1",
            [device],
            |r| r.get(0),
        )
        .unwrap();
    serde_json::from_str(&doc).unwrap()
}

fn stored_last_seen(db: &Path, device: &str) -> OffsetDateTime {
    stored_device(db, device).last_seen
}

/// The uptime of the last boot report the file holds for a device.
fn stored_uptime(db: &Path, device: &str) -> Option<u64> {
    stored_device(db, device).last_boot?.report.uptime_s
}

async fn view_ids(s: &SqliteMeta) -> Vec<String> {
    let view = s.release_view(&dt("demo")).await.unwrap();
    view.options.iter().map(|o| o.rollout.id.clone()).collect()
}

/// A ready release of `demo` 1.1.0 and an active rollout of it, changed by `edit` before it is
/// stored.
async fn active_rollout(s: &SqliteMeta, edit: impl FnOnce(&mut Rollout)) -> (Release, Rollout) {
    let fw = release("demo", "1.1.0", ReleaseState::Ready);
    s.insert_release(&fw).await.unwrap();
    let mut r = rollout(&fw, RolloutState::Active);
    edit(&mut r);
    s.insert_rollout(&r, &[]).await.unwrap();
    (fw, r)
}

/// What a check that offers `fw` through `r` records.
fn offer_of(fw: &Release, r: &Rollout) -> Offer {
    Offer {
        firmware_id: fw.id.clone(),
        version: fw.version.clone(),
        rollout_id: r.id.clone(),
        at: now(),
    }
}

async fn set_state(s: &SqliteMeta, r: &mut Rollout, state: RolloutState) {
    r.state = state;
    r.revision += 1;
    s.update_rollout(r, r.revision - 1).await.unwrap();
}

#[tokio::test]
async fn the_release_view_is_reused_until_what_it_is_read_from_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteMeta::open(&dir.path().join("ota.sqlite3")).unwrap();
    s.put_device_type(&policy("esp32c3")).await.unwrap();
    let first = s.release_view(&dt("demo")).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &s.release_view(&dt("demo")).await.unwrap()),
        "nothing changed: the same view is served again"
    );
    // A write to a table the view does not read leaves it alone.
    s.record_check(&check_in("d1", "demo", "1.0.0"), &|_| None)
        .await
        .unwrap();
    assert!(Arc::ptr_eq(
        &first,
        &s.release_view(&dt("demo")).await.unwrap()
    ));

    s.put_device_type(&policy("esp32s3")).await.unwrap();
    let view = s.release_view(&dt("demo")).await.unwrap();
    assert_eq!(view.chip.as_deref(), Some("esp32s3"), "a policy change");

    let (fw, mut r) = active_rollout(&s, |_| {}).await;
    assert_eq!(view_ids(&s).await, [r.id.clone()], "a new rollout");

    set_state(&s, &mut r, RolloutState::Paused).await;
    assert!(view_ids(&s).await.is_empty(), "a paused rollout");
    set_state(&s, &mut r, RolloutState::Active).await;
    assert_eq!(view_ids(&s).await, [r.id.clone()], "resumed");

    let mut edited: Release = fw.clone();
    edited.release_notes = Some("fixes the scale drift".into());
    edited.updated_at = now() + Duration::from_millis(1);
    let event = AuditEvent::new(
        "alice",
        "firmware.update",
        "firmware",
        &fw.id,
        serde_json::json!({}),
        now(),
    );
    s.update_release(&edited, &fw, &event).await.unwrap();
    let view = s.release_view(&dt("demo")).await.unwrap();
    assert_eq!(
        view.options[0].release.release_notes.as_deref(),
        Some("fixes the scale drift"),
        "a release edit"
    );
}

#[tokio::test]
async fn the_automatic_pause_inside_a_report_drops_the_rollout_from_the_view() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteMeta::open(&dir.path().join("ota.sqlite3")).unwrap();
    let (fw, r) = active_rollout(&s, |r| {
        r.failure_threshold_percent = Some(10.0);
        r.min_reports = 1;
    })
    .await;
    assert_eq!(view_ids(&s).await, [r.id.as_str()]);
    let offer = offer_of(&fw, &r);
    s.record_check(&check_in("d1", "demo", "1.0.0"), &|_| Some(offer.clone()))
        .await
        .unwrap();
    let out = s
        .record_status(&report("d1", &fw, OtaStatus::Failed, "e1"))
        .await
        .unwrap();
    assert_eq!(out.paused_rollout.as_deref(), Some(r.id.as_str()));
    assert!(view_ids(&s).await.is_empty());
}

#[tokio::test]
async fn a_poll_that_changes_nothing_but_last_seen_is_written_later_in_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ota.sqlite3");
    let s = SqliteMeta::open(&db).unwrap();
    let mut c = check_in("d1", "demo", "1.0.0");
    let first = c.at;
    s.record_check(&c, &|_| None).await.unwrap();
    assert_eq!(
        stored_last_seen(&db, "d1"),
        first,
        "a new device is written at once"
    );

    c.at = first + Duration::from_secs(30);
    let again = s.record_check(&c, &|_| None).await.unwrap();
    assert_eq!(
        again.device.last_seen, c.at,
        "the check answers with the new time"
    );
    assert_eq!(
        stored_last_seen(&db, "d1"),
        first,
        "the steady-state poll wrote nothing"
    );
    let read = s.get_device(&dev("d1")).await.unwrap().unwrap();
    assert_eq!(read.last_seen, c.at, "every read sees the waiting time");
    assert_eq!(stored_last_seen(&db, "d1"), c.at, "and it is on disk now");

    // A version change is more than last_seen: written at once.
    let mut moved = check_in("d1", "demo", "1.1.0");
    moved.at = c.at + Duration::from_secs(30);
    s.record_check(&moved, &|_| None).await.unwrap();
    assert_eq!(stored_last_seen(&db, "d1"), moved.at);
}

#[tokio::test]
async fn a_poll_in_the_same_boot_waits_with_last_seen_and_a_restart_is_written_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ota.sqlite3");
    let s = SqliteMeta::open(&db).unwrap();
    let image = "ab".repeat(32);
    let fw = release_of_image("demo", "1.0.0", &image);
    s.insert_release(&fw).await.unwrap();
    let poll = |seconds: u64, report| {
        let mut c = running("d1", "demo", Some(&image), Some(report));
        c.at += Duration::from_secs(seconds);
        c
    };
    s.record_check(&poll(0, boot("poweron", 1, 0, 5)), &|_| None)
        .await
        .unwrap();
    assert_eq!(stored_uptime(&db, "d1"), Some(5), "its first boot, at once");

    let later = poll(30, boot("poweron", 1, 0, 600));
    let answer = s.record_check(&later, &|_| None).await.unwrap();
    let last = answer.device.last_boot.clone().unwrap();
    assert_eq!(
        (last.report.uptime_s, last.received_at),
        (Some(600), later.at)
    );
    assert_eq!(
        stored_uptime(&db, "d1"),
        Some(5),
        "the same boot, polling later: nothing written yet"
    );
    assert_eq!(
        s.get_device(&dev("d1")).await.unwrap().unwrap().last_boot,
        answer.device.last_boot,
        "a read sees the waiting refresh"
    );
    assert_eq!(stored_uptime(&db, "d1"), Some(600), "and it is on disk now");

    // Served from memory, the next poll compares with the refreshed uptime, not the first one.
    s.record_check(&poll(60, boot("poweron", 1, 0, 900)), &|_| None)
        .await
        .unwrap();
    s.record_check(&poll(90, boot("panic", 1, 0, 700)), &|_| None)
        .await
        .unwrap();
    assert_eq!(
        stored_uptime(&db, "d1"),
        Some(700),
        "a restart moves a counter: written at once"
    );
    assert_eq!(
        s.release_health(&fw.id).await.unwrap().resets_by_reason,
        [("panic".to_owned(), 1), ("poweron".to_owned(), 1)].into()
    );

    s.record_check(&poll(120, boot("panic", 1, 0, 730)), &|_| None)
        .await
        .unwrap();
    drop(s);
    assert_eq!(
        stored_uptime(&db, "d1"),
        Some(730),
        "written when the store closed"
    );
}

#[tokio::test]
async fn waiting_times_are_written_after_five_seconds_without_any_other_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ota.sqlite3");
    let s = SqliteMeta::open(&db).unwrap();
    for d in ["d1", "d2"] {
        s.record_check(&check_in(d, "demo", "1.0.0"), &|_| None)
            .await
            .unwrap();
    }
    let mut c1 = check_in("d1", "demo", "1.0.0");
    c1.at += Duration::from_secs(60);
    s.record_check(&c1, &|_| None).await.unwrap();
    // The batch's window (`last_seen::FLUSH_AFTER`) and a little.
    tokio::time::sleep(Duration::from_millis(5100)).await;
    let mut c2 = check_in("d2", "demo", "1.0.0");
    c2.at += Duration::from_secs(60);
    s.record_check(&c2, &|_| None).await.unwrap();
    // The check that finds the batch due answers first and writes it beside its answer, on
    // the blocking pool: wait for that write, bounded, rather than for the answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while stored_last_seen(&db, "d1") != c1.at && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stored_last_seen(&db, "d1"), c1.at);
    assert_eq!(stored_last_seen(&db, "d2"), c2.at);
}

#[tokio::test]
async fn a_failing_transaction_or_a_clean_shutdown_loses_no_waiting_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ota.sqlite3");
    let s = SqliteMeta::open(&db).unwrap();
    let (_, mut r) = active_rollout(&s, |_| {}).await;
    let mut c = check_in("d1", "demo", "1.0.0");
    s.record_check(&c, &|_| None).await.unwrap();

    c.at += Duration::from_secs(60);
    s.record_check(&c, &|_| None).await.unwrap();
    // A stale revision: the rollout write is refused and its transaction rolled back.
    r.revision += 1;
    let refused = s.update_rollout(&r, 7).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(stored_last_seen(&db, "d1"), c.at);

    c.at += Duration::from_secs(60);
    s.record_check(&c, &|_| None).await.unwrap();
    drop(s);
    assert_eq!(
        stored_last_seen(&db, "d1"),
        c.at,
        "written when the store closed"
    );
    let reopened = SqliteMeta::open(&db).unwrap();
    let d = reopened.get_device(&dev("d1")).await.unwrap().unwrap();
    assert_eq!(d.last_seen, c.at);
}

#[tokio::test]
async fn a_device_served_from_memory_is_read_again_after_any_write_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteMeta::open(&dir.path().join("ota.sqlite3")).unwrap();
    let (fw, r) = active_rollout(&s, |_| {}).await;
    let c = check_in("d1", "demo", "1.0.0");
    let offer = offer_of(&fw, &r);
    s.record_check(&c, &|_| Some(offer.clone())).await.unwrap();
    // Polls now come from memory.
    for _ in 0..3 {
        let snap = s.record_check(&c, &|_| None).await.unwrap();
        assert_eq!(snap.last_offer_status, None);
        assert!(snap.device.groups.is_empty());
    }

    let groups = vec!["lab".to_owned()];
    s.set_device_groups(&dev("d1"), &groups).await.unwrap();
    let snap = s.record_check(&c, &|_| None).await.unwrap();
    assert_eq!(snap.device.groups, groups, "an admin's write to the device");

    s.record_status(&report("d1", &fw, OtaStatus::Downloading, "e1"))
        .await
        .unwrap();
    let snap = s.record_check(&c, &|_| None).await.unwrap();
    assert_eq!(
        snap.last_offer_status,
        Some(OtaStatus::Downloading),
        "a report on its attempt"
    );
    s.record_status(&report("d1", &fw, OtaStatus::Failed, "e2"))
        .await
        .unwrap();
    let snap = s.record_check(&c, &|_| None).await.unwrap();
    assert_eq!(
        snap.failures_of(&fw.id),
        1,
        "a failure counted on its attempt"
    );
    assert_eq!(snap.last_offer_status, Some(OtaStatus::Failed));
}
