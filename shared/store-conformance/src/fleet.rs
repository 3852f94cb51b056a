//! Cases for the counters kept on write: rollout progress, the automatic pause, fleet metrics,
//! release health and the audit log.

use std::sync::Arc;

use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::auto_pause::should_pause;
use ota_core::device::LogFilter;
use ota_core::device_health::{HealthCounts, ReleaseHealth};
use ota_core::offer_budget::Taken;
use ota_core::ports::{MetaStore, PageRequest};
use ota_core::release::{Release, ReleaseState};
use ota_core::report_plan::StatusReport;
use ota_core::rollout::{Rollout, RolloutState};
use ota_core::status::OtaStatus;

use crate::fixtures::*;

type Store = Arc<dyn MetaStore>;

async fn setup(s: &Store, threshold: Option<f64>, min_reports: u32) -> (Release, Rollout) {
    let fw = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&fw).await.unwrap();
    let mut r = rollout(&fw, RolloutState::Active);
    r.failure_threshold_percent = threshold;
    r.min_reports = min_reports;
    s.insert_rollout(&r, &[]).await.unwrap();
    (fw, r)
}

pub async fn progress_follows_attempts(s: Store) {
    let (fw, r) = setup(&s, None, 1).await;
    for d in ["a", "b", "c"] {
        offered(&*s, d, &fw, &r).await;
    }
    let steps = [
        ("a", OtaStatus::Downloading),
        ("b", OtaStatus::Downloading),
        ("a", OtaStatus::Installing),
        ("a", OtaStatus::Success),
        ("b", OtaStatus::Failed),
        ("b", OtaStatus::Downloading),
        ("c", OtaStatus::RolledBack),
    ];
    for (i, (d, st)) in steps.into_iter().enumerate() {
        s.record_status(&report(d, &fw, st, &format!("e{i}")))
            .await
            .unwrap();
    }
    // A repeated final state changes nothing; a report for a device never offered through this
    // rollout does not count toward it.
    s.record_status(&report("a", &fw, OtaStatus::Success, "again"))
        .await
        .unwrap();
    s.record_status(&report("stranger", &fw, OtaStatus::Failed, "x"))
        .await
        .unwrap();
    let p = s.rollout_progress(&r.id).await.unwrap();
    assert_eq!(p.devices.success, 1);
    assert_eq!(p.devices.downloading, 1, "b retried");
    assert_eq!(p.devices.failed, 0);
    assert_eq!(p.devices.rolled_back, 1);
    assert_eq!(p.devices.installing, 0);
    assert_eq!(p.success_reports, 1);
    assert_eq!(p.failure_reports, 2, "b's failure and c's rollback");
    assert_eq!(
        s.rollout_progress("none").await.unwrap(),
        Default::default()
    );
}

pub async fn pause_fires_on_the_crossing_report(s: Store) {
    // 25 %, at least 8 final reports.
    let (fw, r) = setup(&s, Some(25.0), 8).await;
    let outcomes = [
        OtaStatus::Success,
        OtaStatus::Failed,
        OtaStatus::Success,
        OtaStatus::Failed,
        OtaStatus::Failed, // 3 of 5: over 25 % but fewer than 8 reports
        OtaStatus::Success,
        OtaStatus::Success,
        OtaStatus::Success, // 3 of 8 = 37.5 %: this one pauses
        OtaStatus::Failed,
    ];
    let mut paused_at = None;
    for (i, st) in outcomes.into_iter().enumerate() {
        let d = format!("d{i}");
        offered(&*s, &d, &fw, &r).await;
        let out = s
            .record_status(&report(&d, &fw, st, "final"))
            .await
            .unwrap();
        if out.paused_rollout.is_some() {
            assert_eq!(out.paused_rollout.as_deref(), Some(r.id.as_str()));
            assert!(paused_at.is_none(), "paused twice");
            paused_at = Some(i);
        }
    }
    assert_eq!(paused_at, Some(7));
    let stored = s.get_rollout(&r.id).await.unwrap().unwrap();
    assert_eq!(stored.state, RolloutState::Paused);
    assert_eq!(stored.revision, r.revision + 1);
    let audit = auto_pauses(s.as_ref()).await;
    assert_eq!(audit.len(), 1);
    let details = &audit[0].details;
    assert_eq!(details["failure_reports"], 3);
    assert_eq!(details["success_reports"], 5);
    assert_eq!(audit[0].actor, "system");
    assert_eq!(audit[0].target_id, r.id);
    // Reports keep counting after the pause.
    assert_eq!(s.rollout_progress(&r.id).await.unwrap().failure_reports, 4);
}

pub async fn concurrent_reports_pause_once(s: Store) {
    let (fw, r) = setup(&s, Some(10.0), 20).await;
    let n = 200;
    for i in 0..n {
        offered(&*s, &format!("d{i}"), &fw, &r).await;
    }
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = s.clone();
        let fw = fw.clone();
        tasks.push(tokio::spawn(async move {
            // Every fourth device fails: 25 % overall, over the 10 % threshold.
            let st = if i % 4 == 0 {
                OtaStatus::Failed
            } else {
                OtaStatus::Success
            };
            s.record_status(&report(&format!("d{i}"), &fw, st, "final"))
                .await
                .unwrap()
        }));
    }
    let mut pauses = 0;
    for t in tasks {
        if t.await.unwrap().paused_rollout.is_some() {
            pauses += 1;
        }
    }
    assert_eq!(pauses, 1);
    let p = s.rollout_progress(&r.id).await.unwrap();
    assert_eq!(p.failure_reports, 50);
    assert_eq!(p.success_reports, 150);
    let audit = s
        .list_audit(&AuditFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    let pause: Vec<&AuditEvent> = audit
        .items
        .iter()
        .filter(|e| e.action == "rollout.auto_pause")
        .collect();
    assert_eq!(pause.len(), 1);
    let f = pause[0].details["failure_reports"].as_u64().unwrap();
    let ok = pause[0].details["success_reports"].as_u64().unwrap();
    let at = |failure_reports, success_reports| {
        should_pause(
            &r,
            &ota_core::progress::RolloutProgress {
                failure_reports,
                success_reports,
                ..Default::default()
            },
        )
    };
    assert!(at(f, ok), "the numbers recorded satisfy the rule");
    assert!(f <= 50 && ok <= 150, "{f} failed, {ok} succeeded");
    assert_eq!(
        s.get_rollout(&r.id).await.unwrap().unwrap().revision,
        r.revision + 1
    );
}

/// How late a pause may come under concurrency: a store may decide rule 4 after a report's
/// commit, on the totals it reads then (DynamoDB, whose counters are sharded), but never
/// later than one report per concurrent writer after the crossing one. Here the failure rate
/// only rises, so the crossing report is known: the 12th failure after 100 successes.
pub async fn concurrent_failures_pause_within_the_reports_in_flight(s: Store) {
    const WRITERS: usize = 8;
    const EACH: usize = 5;
    let (fw, r) = setup(&s, Some(10.0), 20).await;
    for i in 0..110 {
        let d = format!("d{i}");
        offered(&*s, &d, &fw, &r).await;
        let st = if i < 100 {
            OtaStatus::Success
        } else {
            OtaStatus::Failed
        };
        let out = s
            .record_status(&report(&d, &fw, st, "final"))
            .await
            .unwrap();
        assert_eq!(out.paused_rollout, None, "at most 10 of 110 is under 10 %");
    }
    for w in 0..WRITERS {
        for i in 0..EACH {
            offered(&*s, &format!("w{w}-{i}"), &fw, &r).await;
        }
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (s, fw) = (s.clone(), fw.clone());
        writers.push(tokio::spawn(async move {
            let mut paused = 0;
            for i in 0..EACH {
                let d = format!("w{w}-{i}");
                let out = s
                    .record_status(&report(&d, &fw, OtaStatus::Failed, "final"))
                    .await
                    .unwrap();
                paused += usize::from(out.paused_rollout.is_some());
            }
            paused
        }));
    }
    let mut pauses = 0;
    for w in writers {
        pauses += w.await.unwrap();
    }
    assert_eq!(pauses, 1, "one pause");
    let audit = auto_pauses(s.as_ref()).await;
    assert_eq!(audit.len(), 1);
    let f = audit[0].details["failure_reports"].as_u64().unwrap();
    assert_eq!(audit[0].details["success_reports"], 100);
    // 11 of 111 is 9.9 %, 12 of 112 is 10.7 %.
    let crossing = 12;
    let bound = crossing + WRITERS as u64 - 1;
    assert!(
        (crossing..=bound).contains(&f),
        "paused at {f} failures: the crossing is {crossing}, the bound {bound}"
    );
    let p = s.rollout_progress(&r.id).await.unwrap();
    assert_eq!(
        (p.failure_reports, p.success_reports),
        (10 + (WRITERS * EACH) as u64, 100),
        "every report counted, after the pause too"
    );
    assert_eq!(
        s.get_rollout(&r.id).await.unwrap().unwrap().state,
        RolloutState::Paused
    );
}

pub async fn metrics_agree_with_logs_and_devices(s: Store) {
    let (fw, r) = setup(&s, None, 1).await;
    // Deterministic pseudo-random sequence of checks and reports.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |m: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        usize::try_from(x % m as u64).expect("below m")
    };
    let versions = ["1.0.0", "1.1.0", "2.0.0"];
    for _ in 0..300 {
        let d = format!("d{}", next(40));
        match next(3) {
            0 => {
                let t = if next(4) == 0 { "other" } else { "demo" };
                s.record_check(&check_in(&d, t, versions[next(3)]), &|_| None)
                    .await
                    .unwrap();
            }
            1 => offered(&*s, &d, &fw, &r).await,
            _ => {
                let st = OtaStatus::ALL[next(6)];
                // Refused moves (409) store nothing and count nothing.
                let _ = s
                    .record_status(&report(&d, &fw, st, &format!("e{}", next(20))))
                    .await;
            }
        }
    }
    let m = s.fleet_metrics(now()).await.unwrap();
    let mut logs = Vec::new();
    let mut cursor = None;
    loop {
        let p = s
            .list_logs(&LogFilter::default(), &PageRequest { limit: 100, cursor })
            .await
            .unwrap();
        logs.extend(p.items);
        cursor = p.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    for st in OtaStatus::ALL {
        let n = logs.iter().filter(|e| e.status == st).count() as u64;
        assert_eq!(m.outcomes_24h.get(st), n, "{st:?}");
    }
    let devices = s
        .list_devices(
            &Default::default(),
            &PageRequest {
                limit: 500,
                cursor: None,
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(m.devices_total, devices.len() as u64);
    for (t, per_version) in &m.versions_by_type {
        for (v, n) in per_version {
            let count = devices
                .iter()
                .filter(|d| d.device_type.as_str() == t && d.current_version.to_string() == *v)
                .count() as u64;
            assert_eq!(*n, count, "{t} {v}");
        }
        assert_eq!(
            m.devices_by_type[t],
            devices
                .iter()
                .filter(|d| d.device_type.as_str() == t)
                .count() as u64
        );
    }
    assert_eq!(m.active_rollouts.len(), 1);
    assert_eq!(
        m.active_rollouts[0].progress,
        s.rollout_progress(&r.id).await.unwrap()
    );
}

pub async fn release_health_counts_new_boots_and_crashes(s: Store) {
    let a = "aa".repeat(32);
    let fw = release_of_image("demo", "1.0.0", &a);
    s.insert_release(&fw).await.unwrap();
    let health = || async {
        let m = s.fleet_metrics(now()).await.unwrap();
        m.release_health
    };
    assert_eq!(health().await, [], "nothing reported yet");
    let reports = [
        // The device's first report counts its boot.
        boot("poweron", 1, 0, 5),
        // Polling later in the same boot moves nothing.
        boot("poweron", 1, 0, 100),
        // An uptime below the last one: it restarted.
        boot("brownout", 1, 0, 50),
        // Crashes add up, within one boot too.
        boot("brownout", 1, 2, 70),
    ];
    for b in reports {
        s.record_check(&running("d1", "demo", Some(&a), Some(b)), &|_| None)
            .await
            .unwrap();
    }
    // A check that writes the device twice (completing an update) counts once.
    let twice = running("d1", "demo", Some(&a), Some(boot("panic", 2, 1, 3)));
    for _ in 0..2 {
        s.record_check(&twice, &|_| None).await.unwrap();
    }
    // No known release, or no hash: nothing per release.
    s.record_check(
        &running(
            "d2",
            "demo",
            Some(&"cc".repeat(32)),
            Some(boot("panic", 1, 5, 1)),
        ),
        &|_| None,
    )
    .await
    .unwrap();
    s.record_check(
        &running("d3", "demo", None, Some(boot("panic", 1, 5, 1))),
        &|_| None,
    )
    .await
    .unwrap();
    let mut expected = ReleaseHealth {
        firmware_id: fw.id.clone(),
        device_type: fw.device_type.clone(),
        version: fw.version.clone(),
        counts: HealthCounts {
            resets_by_reason: [("poweron", 1), ("brownout", 1), ("panic", 1)]
                .map(|(r, n)| (r.to_owned(), n))
                .into(),
            crashes: 3,
            // d1, counted once as it ran the release, and once as it crashed on it (the
            // brownout), whatever it reported after.
            devices: 1,
            crashed_devices: 1,
        },
    };
    assert_eq!(health().await, [expected.clone()]);
    assert_eq!(
        s.release_health(&fw.id).await.unwrap(),
        expected.counts,
        "one release's counters, as the metrics list them"
    );
    assert_eq!(
        s.release_health("no-such-release").await.unwrap(),
        HealthCounts::default()
    );
    let d1 = s.get_device(&dev("d1")).await.unwrap().unwrap();
    let last = d1.last_boot.unwrap();
    assert_eq!(last.report, boot("panic", 2, 1, 3));
    assert_eq!(last.received_at, twice.at);
    assert_eq!(d1.running_firmware_id, Some(fw.id.clone()));

    // Devices booting at once are each counted.
    let n = 20;
    let mut tasks = Vec::new();
    for i in 0..n {
        let (s, a) = (s.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            let c = running(
                &format!("e{i}"),
                "demo",
                Some(&a),
                Some(boot("poweron", 1, 1, 4)),
            );
            s.record_check(&c, &|_| None).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    *expected
        .counts
        .resets_by_reason
        .entry("poweron".into())
        .or_default() += n;
    expected.counts.crashes += n;
    expected.counts.devices += n;
    expected.counts.crashed_devices += n;
    assert_eq!(health().await, [expected]);
}

pub async fn audit_listed_newest_first_and_purged(s: Store) {
    let old = now() - time::Duration::days(400);
    for (i, at) in [old, now(), now()].into_iter().enumerate() {
        s.record_audit(&AuditEvent::new(
            "alice",
            "rollout.update",
            "rollout",
            &format!("r{i}"),
            serde_json::json!({"i": i}),
            at,
        ))
        .await
        .unwrap();
    }
    let first = s
        .list_audit(
            &AuditFilter::default(),
            &PageRequest {
                limit: 2,
                cursor: None,
            },
        )
        .await
        .unwrap();
    let ids = |page: &[AuditEvent]| page.iter().map(|e| e.target_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first.items), ["r2", "r1"]);
    // The 400-day-old event is past its retention (365 days): a store may hide it before its
    // purge runs (DynamoDB does: TTL lags), and then the first page is the last; or list it
    // until then (SQLite), on the next page.
    if let Some(cursor) = first.next_cursor {
        let rest = s
            .list_audit(
                &AuditFilter::default(),
                &PageRequest {
                    limit: 2,
                    cursor: Some(cursor),
                },
            )
            .await
            .unwrap();
        assert_eq!(ids(&rest.items), ["r0"]);
        assert_eq!(rest.next_cursor, None);
    }
    let r1 = s
        .list_audit(
            &AuditFilter {
                target_id: Some("r1".into()),
                ..AuditFilter::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(r1.items.len(), 1);
    s.purge(
        now() - time::Duration::days(365),
        now() - time::Duration::days(90),
    )
    .await
    .unwrap();
    let left = s
        .list_audit(&AuditFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(left.items.len(), 2, "the 400-day-old event is gone");
}

/// The open attempts of a rollout, oldest report first, as the install timeout reads them: a
/// final report, or one of another rollout, takes an attempt out; a new report moves it on.
pub async fn silent_attempts_are_the_open_ones_by_last_report(s: Store) {
    let fw = release("demo", "2.0.0", ReleaseState::Ready);
    s.insert_release(&fw).await.unwrap();
    let r = rollout(&fw, RolloutState::Active);
    s.insert_rollout(&r, &[]).await.unwrap();
    let t0 = now();
    let at = |secs: i64, device: &str, status, event: &str| StatusReport {
        at: t0 + time::Duration::seconds(secs),
        ..report(device, &fw, status, event)
    };
    for d in ["d1", "d2", "d3", "d4"] {
        offered(&*s, d, &fw, &r).await;
    }
    s.record_status(&at(0, "d1", OtaStatus::Downloading, "a"))
        .await
        .unwrap();
    s.record_status(&at(10, "d2", OtaStatus::Installing, "b"))
        .await
        .unwrap();
    s.record_status(&at(5, "d3", OtaStatus::Downloading, "c"))
        .await
        .unwrap();
    s.record_status(&at(6, "d3", OtaStatus::Success, "d"))
        .await
        .unwrap();
    s.record_status(&at(1, "d4", OtaStatus::Pending, "e"))
        .await
        .unwrap();
    let silent = |before: i64, limit| {
        let s = s.clone();
        let id = r.id.clone();
        async move {
            s.silent_attempts(&id, t0 + time::Duration::seconds(before), limit)
                .await
                .unwrap()
                .into_iter()
                .map(|a| (a.device_id.to_string(), a.status))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        silent(100, 10).await,
        [
            ("d1".to_owned(), OtaStatus::Downloading),
            ("d2".to_owned(), OtaStatus::Installing)
        ],
        "open ones only (not success, not pending), oldest first"
    );
    assert_eq!(silent(100, 1).await.len(), 1, "at most the limit");
    assert_eq!(silent(9, 10).await.len(), 1, "d2 spoke at 10 s");
    assert_eq!(silent(0, 10).await.len(), 1, "at or before");
    let found = s
        .silent_attempts(&r.id, t0 + time::Duration::seconds(100), 10)
        .await
        .unwrap();
    assert_eq!(found[0].since, t0);
    assert_eq!(found[0].firmware_id, fw.id);
    // d1 speaks again: its silence starts over.
    s.record_status(&at(50, "d1", OtaStatus::Installing, "f"))
        .await
        .unwrap();
    assert_eq!(silent(20, 10).await.len(), 1);
    assert_eq!(silent(50, 10).await.len(), 2);
    assert!(
        s.silent_attempts("another-rollout", t0 + time::Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Takers racing for a rollout's offer budget: exactly the budget is granted, and the refused
/// hear when it frees.
pub async fn racing_offers_keep_to_the_budget(s: Store) {
    let at = now();
    let takes = (0..12).map(|_| {
        let s = s.clone();
        tokio::spawn(async move { s.take_offer("r-budget", 5, at).await.unwrap() })
    });
    let mut granted = 0;
    for t in takes {
        match t.await.unwrap() {
            Taken::Granted => granted += 1,
            Taken::Full { frees_at } => {
                assert!(frees_at > at && frees_at <= at + time::Duration::hours(1));
            }
        }
    }
    assert_eq!(granted, 5);
    assert_eq!(
        s.take_offer("another", 5, at).await.unwrap(),
        Taken::Granted,
        "a budget per rollout"
    );
    assert_eq!(
        s.take_offer("r-budget", 5, at + time::Duration::minutes(61))
            .await
            .unwrap(),
        Taken::Granted,
        "the hour rolled on"
    );
}
