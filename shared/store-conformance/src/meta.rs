//! Cases for `MetaStore`: releases, rollouts, device types, checks, reports, logs and devices.

use std::sync::Arc;

use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::device::{DeviceFilter, LogFilter, Offer};
use ota_core::device_type::DeviceTypePolicy;
use ota_core::health_gate::GateNumbers;
use ota_core::ids::DeviceId;
use ota_core::ports::{MetaStore, PageRequest, StoreError};
use ota_core::release::{Release, ReleaseFilter, ReleaseState};
use ota_core::rollout::{RolloutFilter, RolloutState, TargetType};
use ota_core::rollout_evaluation;
use ota_core::stages::Stage;
use ota_core::status::OtaStatus;

use crate::fixtures::*;

type Store = Arc<dyn MetaStore>;

fn page(limit: u32, cursor: Option<String>) -> PageRequest {
    PageRequest { limit, cursor }
}

pub async fn device_types_create_if_absent(s: Store) {
    let now = now();
    let policy = |chip: &str| DeviceTypePolicy {
        name: dt("demo"),
        chip: chip.into(),
        max_image_size: None,
        require_signature: false,
        signing_key_digests: vec![],
        created_at: now,
        updated_at: now,
    };
    assert_eq!(s.get_device_type(&dt("demo")).await.unwrap(), None);
    let first = s
        .create_device_type_if_absent(&policy("esp32c3"))
        .await
        .unwrap();
    assert_eq!(first.chip, "esp32c3");
    let second = s
        .create_device_type_if_absent(&policy("esp32"))
        .await
        .unwrap();
    assert_eq!(second.chip, "esp32c3", "the first policy stays");
    let mut changed = policy("esp32c3");
    changed.max_image_size = Some(4096);
    s.put_device_type(&changed).await.unwrap();
    assert_eq!(
        s.get_device_type(&dt("demo"))
            .await
            .unwrap()
            .unwrap()
            .max_image_size,
        Some(4096)
    );
    let listed = s.list_device_types(&page(10, None)).await.unwrap();
    assert_eq!(listed.items.len(), 1);
}

pub async fn releases_unique_per_version(s: Store) {
    let a = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&a).await.unwrap();
    let dup = release("demo", "v1.0.0", ReleaseState::PendingUpload);
    assert!(matches!(
        s.insert_release(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    // Build metadata does not make another release: same precedence.
    let meta = release("demo", "1.0.0+other", ReleaseState::PendingUpload);
    assert!(matches!(
        s.insert_release(&meta).await,
        Err(StoreError::Conflict(_))
    ));
    s.insert_release(&release("other", "1.0.0", ReleaseState::Ready))
        .await
        .unwrap();
    let found = s.find_release(&dt("demo"), &ver("1.0.0")).await.unwrap();
    assert_eq!(found.as_ref().map(|f| &f.id), Some(&a.id));
    assert_eq!(s.get_release(&a.id).await.unwrap(), Some(a));
    assert_eq!(s.get_release("missing").await.unwrap(), None);
}

pub async fn releases_newest_first_with_pages(s: Store) {
    let versions = [
        "1.0.0",
        "1.10.0",
        "1.2.0",
        "2.0.0-rc.1",
        "2.0.0",
        "2.0.0-alpha",
        "0.9.9",
        "2.0.0-rc.10",
    ];
    for v in versions {
        s.insert_release(&release("demo", v, ReleaseState::Ready))
            .await
            .unwrap();
    }
    s.insert_release(&release("other", "9.0.0", ReleaseState::Ready))
        .await
        .unwrap();
    let filter = ReleaseFilter {
        device_type: Some(dt("demo")),
        ..ReleaseFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let p = s.list_releases(&filter, &page(3, cursor)).await.unwrap();
        assert!(p.items.len() <= 3);
        seen.extend(p.items.iter().map(|f| f.version.to_string()));
        cursor = p.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "2.0.0",
            "2.0.0-rc.10",
            "2.0.0-rc.1",
            "2.0.0-alpha",
            "1.10.0",
            "1.2.0",
            "1.0.0",
            "0.9.9"
        ]
    );
    let ready_other = s
        .list_releases(
            &ReleaseFilter {
                device_type: Some(dt("other")),
                state: Some(ReleaseState::PendingUpload),
                ..ReleaseFilter::default()
            },
            &page(10, None),
        )
        .await
        .unwrap();
    assert!(ready_other.items.is_empty());
}

/// The audit event of a release write in these cases.
fn release_event(release: &Release, action: &str) -> AuditEvent {
    AuditEvent::new(
        "alice",
        action,
        "firmware",
        &release.id,
        serde_json::json!({}),
        now(),
    )
}

/// The actions of the audit log, oldest first.
async fn audit_actions(s: &Store) -> Vec<String> {
    let events = s
        .list_audit(&AuditFilter::default(), &page(100, None))
        .await
        .unwrap()
        .items;
    events.into_iter().rev().map(|e| e.action).collect()
}

pub async fn release_update_checks_state(s: Store) {
    let read = release("demo", "1.0.0", ReleaseState::PendingUpload);
    s.insert_release(&read).await.unwrap();
    let mut f = read.clone();
    f.state = ReleaseState::Ready;
    f.touch(f.updated_at);
    s.update_release(&f, &read, &release_event(&f, "firmware.finalize"))
        .await
        .unwrap();
    // A second finalize racing the first loses, and its event is not recorded.
    assert!(matches!(
        s.update_release(&f, &read, &release_event(&f, "lost.finalize"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // So does any writer holding a stale copy in the right state: an edit never undoes another.
    let mut edit = f.clone();
    edit.is_active = false;
    edit.touch(edit.updated_at);
    s.update_release(&edit, &f, &release_event(&f, "firmware.deactivate"))
        .await
        .unwrap();
    let mut stale = f.clone();
    stale.description = Some("edited from a stale copy".into());
    stale.touch(stale.updated_at);
    assert!(matches!(
        s.update_release(&stale, &f, &release_event(&f, "lost.update"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_release(&f.id).await.unwrap(), Some(edit));
    let mut ghost = release("demo", "3.0.0", ReleaseState::Ready);
    ghost.id = "missing".into();
    assert_eq!(
        s.update_release(&ghost, &ghost, &release_event(&ghost, "lost.ghost"))
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        audit_actions(&s).await,
        ["firmware.finalize", "firmware.deactivate"]
    );
}

/// Racing writers of one release (finalizes of one upload): one wins, and its event is the only
/// one recorded.
pub async fn racing_release_updates_record_one_event(s: Store) {
    let read = release("demo", "1.0.0", ReleaseState::PendingUpload);
    s.insert_release(&read).await.unwrap();
    let mut ready = read.clone();
    ready.state = ReleaseState::Ready;
    ready.touch(ready.updated_at);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (s, read, ready) = (s.clone(), read.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            s.update_release(&ready, &read, &release_event(&ready, "firmware.finalize"))
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("a racing release write failed: {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(audit_actions(&s).await, ["firmware.finalize"]);
}

pub async fn rollout_revisions(s: Store) {
    let f = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&f).await.unwrap();
    let mut r = rollout(&f, RolloutState::Active);
    s.insert_rollout(&r, &[]).await.unwrap();
    r.state = RolloutState::Paused;
    r.revision = 2;
    s.update_rollout(&r, 1).await.unwrap();
    let mut stale = r.clone();
    stale.state = RolloutState::Aborted;
    stale.revision = 2;
    assert!(matches!(
        s.update_rollout(&stale, 1).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.get_rollout(&r.id).await.unwrap(), Some(r.clone()));
    let second = rollout(&f, RolloutState::Active);
    s.insert_rollout(&second, &[]).await.unwrap();
    let listed = s
        .list_rollouts(&RolloutFilter::default(), &page(1, None))
        .await
        .unwrap();
    assert_eq!(listed.items[0].id, second.id, "newest first");
    let rest = s
        .list_rollouts(&RolloutFilter::default(), &page(1, listed.next_cursor))
        .await
        .unwrap();
    assert_eq!(rest.items[0].id, r.id);
    assert_eq!(rest.next_cursor, None);
    let paused = s
        .list_rollouts(
            &RolloutFilter {
                state: Some(RolloutState::Paused),
                ..RolloutFilter::default()
            },
            &page(10, None),
        )
        .await
        .unwrap();
    assert_eq!(paused.items.len(), 1);
}

/// Two evaluators deciding on one revision together: one decision is written, with its one
/// audit event, and the release view offers the next stage at once.
pub async fn racing_decisions_write_once(s: Store) {
    let f = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&f).await.unwrap();
    let mut r = rollout(&f, RolloutState::Active);
    r.staging.stages = [1.0, 100.0]
        .map(|percent| Stage {
            percent,
            soak_s: 0,
            min_devices: 0,
        })
        .to_vec();
    r.staging.stage_started_at = Some(r.created_at);
    r.rollout_percentage = 1.0;
    s.insert_rollout(&r, &[]).await.unwrap();
    // Warm any cached view, which the decision must not leave behind.
    assert_eq!(
        s.release_view(&dt("demo")).await.unwrap().options[0].rollout,
        r
    );
    let numbers = GateNumbers::default();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, r) = (s.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            let change = rollout_evaluation::evaluate(&r, &numbers, now()).expect("due");
            s.decide_rollout(&change).await.map(|()| change.rollout)
        }));
    }
    let mut written = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => written.push(r),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("a racing decision failed: {e}"),
        }
    }
    assert_eq!(written.len(), 1, "one decision");
    assert_eq!(audit_actions(&s).await, ["rollout.stage_advance"]);
    let stored = s.get_rollout(&r.id).await.unwrap().unwrap();
    assert_eq!(stored, written[0]);
    assert_eq!(
        (stored.staging.stage_index, stored.rollout_percentage),
        (1, 100.0)
    );
    assert_eq!(stored.revision, r.revision + 1);
    let view = s.release_view(&dt("demo")).await.unwrap();
    assert_eq!(
        view.options[0].rollout, stored,
        "the view offers the next stage"
    );
    // A pause decided on the stale copy is refused: the stage that moved stands.
    let mut over = rollout_evaluation::evaluate(&r, &numbers, now()).unwrap();
    over.rollout.state = RolloutState::Paused;
    assert!(matches!(
        s.decide_rollout(&over).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(audit_actions(&s).await.len(), 1, "nothing audited for it");
}

pub async fn release_view_holds_active_rollouts(s: Store) {
    let f1 = release("demo", "1.0.0", ReleaseState::Ready);
    let f2 = release("demo", "1.1.0", ReleaseState::Ready);
    let other = release("other", "1.0.0", ReleaseState::Ready);
    for f in [&f1, &f2, &other] {
        s.insert_release(f).await.unwrap();
    }
    let active = rollout(&f2, RolloutState::Active);
    s.insert_rollout(&active, &[]).await.unwrap();
    s.insert_rollout(&rollout(&f1, RolloutState::Paused), &[])
        .await
        .unwrap();
    s.insert_rollout(&rollout(&other, RolloutState::Active), &[])
        .await
        .unwrap();
    let view = s.release_view(&dt("demo")).await.unwrap();
    assert_eq!(view.options.len(), 1);
    assert_eq!(view.options[0].rollout.id, active.id);
    assert_eq!(view.options[0].release.id, f2.id);
}

/// A `specific` rollout's devices are kept apart from its record and its type's view: each
/// device reads its memberships with itself, named before it ever checked in or after, and the
/// rollout lists them by id.
pub async fn specific_rollouts_name_devices_apart(s: Store) {
    let f = release("demo", "1.1.0", ReleaseState::Ready);
    s.insert_release(&f).await.unwrap();
    s.record_check(&check_in("known", "demo", "1.0.0"), &|_| None)
        .await
        .unwrap();
    let named: Vec<DeviceId> = (0..5)
        .map(|i| dev(&format!("named-{i}")))
        .chain([dev("known")])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut r = rollout(&f, RolloutState::Active);
    r.target_type = TargetType::Specific;
    r.named_devices = 6;
    s.insert_rollout(&r, &named).await.unwrap();
    let other = rollout(&f, RolloutState::Active);
    s.insert_rollout(&other, &[]).await.unwrap();
    let view = s.release_view(&dt("demo")).await.unwrap();
    assert!(
        view.options
            .iter()
            .all(|o| o.rollout.target_filter.device_ids.is_empty()),
        "the view holds no device ids"
    );
    for (device, expect) in [
        ("known", vec![r.id.clone()]),
        ("named-3", vec![r.id.clone()]),
        ("stranger", vec![]),
    ] {
        let snapshot = s
            .record_check(&check_in(device, "demo", "1.0.0"), &|_| None)
            .await
            .unwrap();
        assert_eq!(snapshot.named_in, expect, "{device}");
    }
    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let p = s.list_named_devices(&r.id, &page(4, cursor)).await.unwrap();
        assert!(p.items.len() <= 4);
        listed.extend(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(listed, named, "every named device once, by id");
    let none = s
        .list_named_devices(&other.id, &page(4, None))
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next_cursor.is_none());
}

pub async fn check_registers_and_refreshes(s: Store) {
    let first = s
        .record_check(&check_in("d1", "demo", "1.0.0"), &|_| None)
        .await
        .unwrap();
    assert_eq!(first.device.current_version, ver("1.0.0"));
    assert_eq!(first.device.first_seen, first.device.last_seen);
    let again = s
        .record_check(&check_in("d1", "demo", "1.1.0"), &|_| None)
        .await
        .unwrap();
    assert_eq!(again.device.current_version, ver("1.1.0"));
    assert_eq!(again.device.first_seen, first.device.first_seen);
    let groups = vec!["lab".to_owned()];
    s.set_device_groups(&dev("d1"), &groups).await.unwrap();
    let with_groups = s
        .record_check(&check_in("d1", "demo", "1.1.0"), &|_| None)
        .await
        .unwrap();
    assert_eq!(
        with_groups.device.groups, groups,
        "a check keeps the groups"
    );
    assert_eq!(
        s.set_device_groups(&dev("nobody"), &groups).await,
        Err(StoreError::NotFound)
    );
    let offer = Offer {
        firmware_id: "f".into(),
        version: ver("2.0.0"),
        rollout_id: "r".into(),
        at: now(),
    };
    let before = s
        .record_check(&check_in("d1", "demo", "1.1.0"), &|snap| {
            assert_eq!(snap.device.groups, groups, "the offer sees the snapshot");
            Some(offer.clone())
        })
        .await
        .unwrap();
    assert_eq!(
        before.device.last_offer, None,
        "the snapshot is the one offered from"
    );
    let snap = s
        .record_check(&check_in("d1", "demo", "1.1.0"), &|_| None)
        .await
        .unwrap();
    assert_eq!(snap.device.last_offer, Some(offer));
    assert_eq!(snap.last_offer_status, None);
}

/// The release `record_check` finds for device `d` of type `t` running the image `sha`.
async fn runs(s: &Store, d: &str, t: &str, sha: Option<&str>) -> Option<String> {
    let snapshot = s
        .record_check(&running(d, t, sha, None), &|_| None)
        .await
        .unwrap();
    assert_eq!(
        snapshot.device.running_image_sha256.as_deref(),
        sha,
        "{d} {sha:?}"
    );
    snapshot.device.running_firmware_id
}

pub async fn check_finds_the_release_a_device_runs(s: Store) {
    let (a, b, c) = ("aa".repeat(32), "bb".repeat(32), "cc".repeat(32));
    let fa = release_of_image("demo", "1.0.0", &a);
    let fb = release_of_image("demo", "1.1.0", &b);
    let other = release_of_image("other", "1.0.0", &a);
    let no_image = release("demo", "0.9.0", ReleaseState::Ready);
    for r in [&fa, &fb, &other, &no_image] {
        s.insert_release(r).await.unwrap();
    }
    assert_eq!(
        s.get_release(&fa.id).await.unwrap().unwrap().image_sha256,
        Some(a.clone()),
        "a release keeps its image's hash"
    );
    assert_eq!(
        s.get_release(&no_image.id)
            .await
            .unwrap()
            .unwrap()
            .image_sha256,
        None
    );
    assert_eq!(runs(&s, "d1", "demo", Some(&a)).await, Some(fa.id.clone()));
    assert_eq!(
        runs(&s, "d1", "demo", Some(&a)).await,
        Some(fa.id.clone()),
        "the match stands"
    );
    assert_eq!(
        runs(&s, "d2", "other", Some(&a)).await,
        Some(other.id.clone()),
        "the device's own type's release"
    );
    assert_eq!(
        runs(&s, "d1", "demo", Some(&c)).await,
        None,
        "no release has it"
    );
    assert_eq!(runs(&s, "d1", "demo", Some(&b)).await, Some(fb.id.clone()));
    let stored = s.get_device(&dev("d1")).await.unwrap().unwrap();
    assert_eq!(stored.running_image_sha256.as_deref(), Some(b.as_str()));
    assert_eq!(stored.running_firmware_id.as_deref(), Some(fb.id.as_str()));
    let listed = s
        .list_devices(&DeviceFilter::default(), &page(10, None))
        .await
        .unwrap();
    assert_eq!(listed.items[0], stored, "the list shows the same record");
    assert_eq!(
        runs(&s, "d1", "demo", None).await,
        None,
        "nothing said, nothing known"
    );
    let stored = s.get_device(&dev("d1")).await.unwrap().unwrap();
    assert_eq!(
        (stored.running_image_sha256, stored.running_firmware_id),
        (None, None)
    );
}

pub async fn status_state_machine(s: Store) {
    let f = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&f).await.unwrap();
    for (i, st) in [
        OtaStatus::Downloading,
        OtaStatus::Installing,
        OtaStatus::Success,
    ]
    .into_iter()
    .enumerate()
    {
        let out = s
            .record_status(&report("d1", &f, st, &format!("e{i}")))
            .await
            .unwrap();
        assert!(out.changed && !out.duplicate);
    }
    let back = s
        .record_status(&report("d1", &f, OtaStatus::Downloading, "e9"))
        .await;
    assert!(matches!(back, Err(StoreError::Conflict(_))));
    let same = s
        .record_status(&report("d1", &f, OtaStatus::Success, "e10"))
        .await
        .unwrap();
    assert!(!same.changed && !same.duplicate);
    let logs = s
        .list_logs(&LogFilter::default(), &page(50, None))
        .await
        .unwrap();
    assert!(
        logs.items.iter().all(|e| e.event_id != "e9"),
        "a refused move stores nothing"
    );
}

pub async fn status_idempotent_by_event_id(s: Store) {
    let f = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&f).await.unwrap();
    let first = s
        .record_status(&report("d1", &f, OtaStatus::Downloading, "same"))
        .await
        .unwrap();
    let again = s
        .record_status(&report("d1", &f, OtaStatus::Failed, "same"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.entry, first.entry, "answered as the first time");
    let logs = s
        .list_logs(&LogFilter::default(), &page(10, None))
        .await
        .unwrap();
    assert_eq!(logs.items.len(), 1);
}

pub async fn status_concurrent_reports(s: Store) {
    let f = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&f).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let s = s.clone();
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            // 100 devices, three distinct events each; every event sent twice.
            let device = format!("d{}", i % 100);
            let event = format!("ev-{i}");
            let r = report(&device, &f, OtaStatus::Downloading, &event);
            let a = s.record_status(&r).await.unwrap();
            let b = s.record_status(&r).await.unwrap();
            assert_eq!(a.entry, b.entry);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut total = 0;
    let mut cursor = None;
    loop {
        let p = s
            .list_logs(&LogFilter::default(), &page(100, cursor))
            .await
            .unwrap();
        total += p.items.len();
        cursor = p.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(total, 300);
}

pub async fn failures_counted_per_release(s: Store) {
    let f = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&f).await.unwrap();
    s.record_check(&check_in("d1", "demo", "0.9.0"), &|_| None)
        .await
        .unwrap();
    let mut n = 0;
    for attempt in 0..3 {
        for st in [OtaStatus::Downloading, OtaStatus::Failed] {
            n += 1;
            s.record_status(&report("d1", &f, st, &format!("a{attempt}-{n}")))
                .await
                .unwrap();
        }
    }
    // Reporting the same failure again is not another failure.
    s.record_status(&report("d1", &f, OtaStatus::Failed, "repeat"))
        .await
        .unwrap();
    let snap = s
        .record_check(&check_in("d1", "demo", "0.9.0"), &|_| None)
        .await
        .unwrap();
    assert_eq!(snap.failures_of(&f.id), 3);
}

pub async fn rollout_of_report_is_last_offer(s: Store) {
    let f = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&f).await.unwrap();
    let offer = Offer {
        firmware_id: f.id.clone(),
        version: f.version.clone(),
        rollout_id: "r1".into(),
        at: now(),
    };
    s.record_check(&check_in("d1", "demo", "0.9.0"), &|_| Some(offer.clone()))
        .await
        .unwrap();
    let out = s
        .record_status(&report("d1", &f, OtaStatus::Downloading, "x"))
        .await
        .unwrap();
    assert_eq!(out.entry.rollout_id.as_deref(), Some("r1"));
    let snap = s
        .record_check(&check_in("d1", "demo", "0.9.0"), &|_| None)
        .await
        .unwrap();
    assert_eq!(snap.last_offer_status, Some(OtaStatus::Downloading));
}

pub async fn logs_filtered_and_paged(s: Store) {
    let f1 = release("demo", "1.0.0", ReleaseState::Ready);
    let f2 = release("demo", "2.0.0", ReleaseState::Ready);
    s.insert_release(&f1).await.unwrap();
    s.insert_release(&f2).await.unwrap();
    for i in 0..25 {
        let f = if i % 2 == 0 { &f1 } else { &f2 };
        let st = if i % 5 == 0 {
            OtaStatus::Failed
        } else {
            OtaStatus::Downloading
        };
        s.record_status(&report(&format!("d{}", i % 3), f, st, &format!("e{i}")))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let p = s
            .list_logs(&LogFilter::default(), &page(4, cursor))
            .await
            .unwrap();
        seen.extend(p.items.iter().map(|e| e.event_id.clone()));
        cursor = p.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expect: Vec<String> = (0..25).rev().map(|i| format!("e{i}")).collect();
    assert_eq!(seen, expect, "newest first, nothing lost or repeated");
    let by_fw = s
        .list_logs(
            &LogFilter {
                firmware_id: Some(f1.id.clone()),
                ..LogFilter::default()
            },
            &page(100, None),
        )
        .await
        .unwrap();
    assert_eq!(by_fw.items.len(), 13);
    let failed_d0 = s
        .list_logs(
            &LogFilter {
                device_id: Some(dev("d0")),
                status: Some(OtaStatus::Failed),
                ..LogFilter::default()
            },
            &page(100, None),
        )
        .await
        .unwrap();
    // i in 0..25 with i%3==0 and i%5==0: 0 and 15.
    assert_eq!(failed_d0.items.len(), 2);
    let future = s
        .list_logs(
            &LogFilter {
                since: Some(now() + time::Duration::hours(1)),
                ..LogFilter::default()
            },
            &page(100, None),
        )
        .await
        .unwrap();
    assert!(future.items.is_empty());
}

pub async fn devices_filtered_and_paged(s: Store) {
    for i in 0..7 {
        let (t, v) = if i < 4 {
            ("demo", "1.0.0")
        } else {
            ("other", "2.0.0")
        };
        s.record_check(&check_in(&format!("dev{i}"), t, v), &|_| None)
            .await
            .unwrap();
    }
    s.set_device_groups(&dev("dev1"), &["lab".to_owned(), "eu".to_owned()])
        .await
        .unwrap();
    s.set_device_groups(&dev("dev5"), &["lab".to_owned()])
        .await
        .unwrap();
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let p = s
            .list_devices(&DeviceFilter::default(), &page(3, cursor))
            .await
            .unwrap();
        all.extend(p.items.into_iter().map(|d| d.device_id.to_string()));
        cursor = p.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(all.len(), 7);
    let demo = s
        .list_devices(
            &DeviceFilter {
                device_type: Some(dt("demo")),
                ..DeviceFilter::default()
            },
            &page(50, None),
        )
        .await
        .unwrap();
    assert_eq!(demo.items.len(), 4);
    let v2 = s
        .list_devices(
            &DeviceFilter {
                version: Some(ver("2.0.0")),
                ..DeviceFilter::default()
            },
            &page(50, None),
        )
        .await
        .unwrap();
    assert_eq!(v2.items.len(), 3);
    let lab = s
        .list_devices(
            &DeviceFilter {
                group: Some("lab".into()),
                ..DeviceFilter::default()
            },
            &page(50, None),
        )
        .await
        .unwrap();
    let ids: Vec<String> = lab.items.iter().map(|d| d.device_id.to_string()).collect();
    assert_eq!(ids, ["dev1", "dev5"]);
}

pub async fn bad_cursor_refused(s: Store) {
    let bad = page(10, Some("not-a-cursor!".into()));
    assert_eq!(
        s.list_logs(&LogFilter::default(), &bad).await,
        Err(StoreError::BadCursor)
    );
    assert_eq!(
        s.list_releases(&ReleaseFilter::default(), &bad).await,
        Err(StoreError::BadCursor)
    );
    assert_eq!(
        s.list_devices(&DeviceFilter::default(), &bad).await,
        Err(StoreError::BadCursor)
    );
}
