//! Rollouts that promote and stop themselves (docs/api.md §9.5, §9.6): a release widens
//! through its stages alone, only ever to the canary buckets of the current stage; a crash rate
//! over the gate pauses it in its first stage; two evaluators racing make one decision; the
//! schedule keeps offers inside its times; an admin promotes; and what a create or an edit may
//! not ask. Soaks are seconds long, so each test takes a few seconds.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::*;
use crate::device_health::sample;
use crate::harness::Server;

/// The ids of `n` devices of a test.
fn devices(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// The devices a check offers the release to, checking each once on 1.0.0.
async fn offered(srv: &Server, device_type: &str, ids: &[String]) -> BTreeSet<String> {
    let mut offered = BTreeSet::new();
    for id in ids {
        if check(srv, id, device_type, "1.0.0").await["update_available"] == true {
            offered.insert(id.clone());
        }
    }
    offered
}

/// The devices of `ids` within the canary share `percent` of rollout `rollout_id`.
fn in_share(rollout_id: &str, ids: &[String], percent: u32) -> BTreeSet<String> {
    ids.iter()
        .filter(|d| in_canary(rollout_id, d, percent))
        .cloned()
        .collect()
}

/// Checks as `device` until `done` holds for the rollout, for at most `within`.
async fn until(
    srv: &Server,
    rollout_id: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let r = get_rollout(srv, rollout_id).await;
        if done(&r) {
            return r;
        }
        assert!(
            start.elapsed() < within,
            "the rollout did not get there: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_healthy_release_moves_through_its_stages_alone() {
    let srv = Server::start().await;
    let fw = publish(&srv, "staged", "1.1.0").await;
    let fw_id = str_of(&fw, "id").to_owned();
    // Long enough for 40 checks and a dozen reports through the slowest deployment (Lambda
    // functions on DynamoDB Local) to fit in the soak.
    const SOAK: Duration = Duration::from_secs(10);
    let created = Instant::now();
    let r = create_rollout(
        &srv,
        json!({"name": "staged", "firmware_id": fw_id, "target_type": "all",
               "stages": [{"percent": 25, "soak_s": SOAK.as_secs(), "min_devices": 2}, {"percent": 100}],
               "health_gate": {"max_failure_percent": 50, "min_reports": 2}}),
    )
    .await
    .expect(201);
    let id = str_of(&r, "id").to_owned();
    assert_eq!(r["rollout_percentage"], 25.0, "the first stage's share");
    assert_eq!(
        (
            r["stage_index"].clone(),
            r["health"]["completed_devices"].clone()
        ),
        (json!(0), json!(0))
    );
    // The soak ends by the server's clock (the create itself may take a cold Lambda start).
    let soaked = time::OffsetDateTime::parse(
        str_of(&r["health"], "next_evaluation_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("next_evaluation_at");

    // Only the first stage's buckets are offered, each of them.
    let ids = devices("st", 40);
    let first = in_share(&id, &ids, 25);
    assert!(
        first.len() >= 3 && first.len() < ids.len(),
        "{} in the first stage",
        first.len()
    );
    assert_eq!(offered(&srv, "staged", &ids).await, first);

    for d in &first {
        report(&srv, d, "staged", &fw_id, "success", json!({}))
            .await
            .expect(200);
    }
    let r = get_rollout(&srv, &id).await;
    assert!(
        created.elapsed() < SOAK,
        "the soak ended before the test could look"
    );
    assert_eq!(r["stage_index"], 0, "soaking: {r}");
    assert_eq!(r["health"]["completed_devices"], first.len());
    assert_eq!(r["health"]["failure_percent"], 0.0);

    // Once soaked, the next check moves the stage on and is itself offered the release.
    let left = soaked - time::OffsetDateTime::now_utc() + time::Duration::milliseconds(100);
    tokio::time::sleep(left.try_into().unwrap_or_default()).await;
    let outside = ids.iter().find(|d| !first.contains(*d)).unwrap();
    let answer = check(&srv, outside, "staged", "1.0.0").await;
    assert_eq!(
        answer["update_available"], true,
        "the check that moved the stage: {answer}"
    );
    let r = get_rollout(&srv, &id).await;
    assert_eq!(
        (r["stage_index"].clone(), r["rollout_percentage"].clone()),
        (json!(1), json!(100.0))
    );
    assert_eq!(
        r["health"]["next_evaluation_at"],
        Value::Null,
        "the last stage"
    );
    let d = &r["decisions"][0];
    assert_eq!(
        (
            d["kind"].as_str(),
            d["from_stage"].as_u64(),
            d["to_stage"].as_u64()
        ),
        (Some("stage_advance"), Some(0), Some(1))
    );
    assert_eq!(d["actor"], "system");
    assert_eq!(d["numbers"]["completed_devices"], first.len());
    let events = audit_events(&srv, &[("action", "rollout.stage_advance")]).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["target_id"], id.as_str());
    let rest: Vec<String> = ids
        .iter()
        .filter(|d| !first.contains(*d))
        .cloned()
        .collect();
    assert_eq!(
        offered(&srv, "staged", &rest).await.len(),
        rest.len(),
        "every other device now"
    );
}

#[tokio::test]
async fn a_crashing_release_pauses_in_its_first_stage() {
    let srv = Server::start().await;
    let (bytes, hash) = sample();
    let fw = publish_with(&srv, "crashy", "1.1.0", bytes, &[]).await;
    let fw_id = str_of(&fw, "id").to_owned();
    let r = create_rollout(
        &srv,
        json!({"name": "crashy", "firmware_id": fw_id, "target_type": "all",
               "stages": [{"percent": 30, "soak_s": 3600}, {"percent": 100}],
               "health_gate": {"max_crash_percent": 10, "min_reports": 2}}),
    )
    .await
    .expect(201);
    let id = str_of(&r, "id").to_owned();
    let ids = devices("cr", 40);
    let first = in_share(&id, &ids, 30);
    assert_eq!(offered(&srv, "crashy", &ids).await, first);

    // The first stage installs; one device in ten of it comes back crashing, the rest healthy.
    let runs = |reason: &str, crashes: u32| {
        json!({"running_image_sha256": hash, "boot": {"reset_reason": reason,
               "boots_since_update": 1, "crashes_since_last_check": crashes, "uptime_s": 5}})
    };
    let first: Vec<&String> = first.iter().collect();
    let (crashing, healthy) = first.split_at(2);
    for d in healthy {
        report(&srv, d, "crashy", &fw_id, "success", json!({}))
            .await
            .expect(200);
        check_with(&srv, d, "crashy", "1.1.0", runs("poweron", 0)).await;
    }
    let r = get_rollout(&srv, &id).await;
    assert_eq!(r["state"], "active", "healthy so far: {r}");
    assert_eq!(r["health"]["devices_on_release"], healthy.len());
    for d in crashing {
        check_with(&srv, d, "crashy", "1.1.0", runs("panic", 1)).await;
    }
    // 2 of 12 or so: over 10 %, paused by the crash that crossed it.
    let r = until(&srv, &id, Duration::from_secs(10), |r| {
        r["state"] == "paused"
    })
    .await;
    assert_eq!(r["stage_index"], 0, "paused in its first stage");
    assert_eq!(r["health"]["crashed_devices"], 2);
    let d = &r["decisions"][0];
    assert_eq!(
        (d["kind"].as_str(), d["limit"].as_str()),
        (Some("auto_pause"), Some("max_crash_percent"))
    );
    let events = audit_events(&srv, &[("action", "rollout.auto_pause")]).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["details"]["limit"], "max_crash_percent");
    // No device outside the first stage was ever offered: the OTA log names only the stage.
    let outside: Vec<_> = ids.iter().filter(|d| !in_canary(&id, d, 30)).collect();
    assert!(!outside.is_empty());
    assert_eq!(
        offered(&srv, "crashy", &ids).await,
        BTreeSet::new(),
        "paused: nobody"
    );
    let metrics = metrics(&srv).await;
    let health = metrics["release_health"].as_array().unwrap();
    let mine = health
        .iter()
        .find(|h| h["firmware_id"] == fw_id.as_str())
        .unwrap();
    assert_eq!(
        (mine["devices"].clone(), mine["crashed_devices"].clone()),
        (json!(first.len()), json!(2))
    );
}

#[tokio::test]
async fn checks_racing_at_the_end_of_a_soak_make_one_decision() {
    let srv = Server::start().await;
    let fw = publish(&srv, "racing", "1.1.0").await;
    let r = create_rollout(
        &srv,
        json!({"name": "racing", "firmware_id": fw["id"], "target_type": "all",
               "stages": [{"percent": 10, "soak_s": 1, "min_devices": 0}, {"percent": 100}]}),
    )
    .await
    .expect(201);
    let id = str_of(&r, "id").to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ids = devices("race", 24);
    // Each check finds the stage due; whichever evaluates first moves it, once.
    concurrently(ids.iter(), 24, |d| check(&srv, d, "racing", "1.0.0")).await;
    let events = audit_events(&srv, &[("action", "rollout.stage_advance")]).await;
    assert_eq!(events.len(), 1, "one decision: {events:?}");
    let r = get_rollout(&srv, &id).await;
    assert_eq!(
        (
            r["stage_index"].clone(),
            r["decisions"].as_array().map(Vec::len)
        ),
        (json!(1), Some(1))
    );
    assert_eq!(
        offered(&srv, "racing", &ids).await.len(),
        ids.len(),
        "all in the last stage"
    );
}

#[tokio::test]
async fn offers_keep_to_the_schedule() {
    let srv = Server::start().await;
    let fw = publish(&srv, "sched", "1.1.0").await;
    let now = time::OffsetDateTime::now_utc();
    let at = |d: time::Duration| {
        (now + d)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let hhmm = |d: time::Duration| {
        let t = now + d;
        format!("{:02}:{:02}", t.hour(), t.minute())
    };
    let cases = [
        (
            "not yet",
            json!({"start_at": at(time::Duration::hours(1))}),
            false,
        ),
        (
            "over",
            json!({"end_at": at(time::Duration::seconds(-1))}),
            false,
        ),
        (
            "outside the window",
            json!({"windows": [{"start": hhmm(time::Duration::hours(2)), "end": hhmm(time::Duration::hours(3))}]}),
            false,
        ),
        (
            "inside the window",
            json!({"start_at": at(time::Duration::hours(-1)),
                "windows": [{"start": hhmm(time::Duration::minutes(-5)), "end": hhmm(time::Duration::minutes(10))}]}),
            true,
        ),
    ];
    for (i, (case, schedule, offers)) in cases.into_iter().enumerate() {
        let r = create_rollout(
            &srv,
            json!({"name": case, "firmware_id": fw["id"], "target_type": "all", "schedule": schedule}),
        )
        .await
        .expect(201);
        let answer = check(&srv, &format!("sched-{i}"), "sched", "1.0.0").await;
        assert_eq!(answer["update_available"], offers, "{case}: {answer}");
        patch_rollout(&srv, str_of(&r, "id"), json!({"state": "aborted"}))
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn a_silent_device_times_out_counts_as_a_failure_and_is_heard_late() {
    let srv = Server::start().await;
    let fw = publish(&srv, "silent", "1.1.0").await;
    let fw_id = str_of(&fw, "id").to_owned();
    const TIMEOUT: Duration = Duration::from_secs(2);
    let r = create_rollout(
        &srv,
        json!({"name": "silent", "firmware_id": fw_id, "target_type": "all",
               "install_timeout_s": TIMEOUT.as_secs(),
               "health_gate": {"max_failure_percent": 40, "min_reports": 2}}),
    )
    .await
    .expect(201);
    let id = str_of(&r, "id").to_owned();
    assert_eq!(r["install_timeout_s"], 2);
    let ids = devices("si", 3);
    assert_eq!(offered(&srv, "silent", &ids).await.len(), 3);
    // si-000 goes silent while downloading; si-001 completes; si-002 never starts.
    report(&srv, &ids[0], "silent", &fw_id, "downloading", json!({}))
        .await
        .expect(200);
    report(&srv, &ids[1], "silent", &fw_id, "downloading", json!({}))
        .await
        .expect(200);
    report(&srv, &ids[1], "silent", &fw_id, "success", json!({}))
        .await
        .expect(200);
    // A device cannot say it timed out: only the server can.
    report(&srv, &ids[2], "silent", &fw_id, "timed_out", json!({}))
        .await
        .expect(400);
    let r = get_rollout(&srv, &id).await;
    assert_eq!(r["progress"]["devices"]["timed_out"], 0, "not yet: {r}");

    // Past the timeout, a check of the type finds the silence.
    tokio::time::sleep(TIMEOUT + Duration::from_millis(300)).await;
    let start = Instant::now();
    let r = loop {
        check(&srv, "si-other", "silent", "1.0.0").await;
        let r = get_rollout(&srv, &id).await;
        if r["progress"]["devices"]["timed_out"] == 1 || start.elapsed() > Duration::from_secs(15) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(r["progress"]["devices"]["timed_out"], 1, "{r}");
    assert_eq!(r["progress"]["failure_reports"], 1);
    assert_eq!(r["health"]["failures"], 1);
    assert_eq!(r["health"]["timed_out"], 1);
    // 1 failure of 2 final outcomes: over 40 %, the gate paused the rollout.
    assert_eq!(r["state"], "paused", "{r}");
    assert_eq!(r["decisions"][0]["limit"], "max_failure_percent");
    let entries = logs(&srv, &[("device_id", ids[0].as_str())]).await;
    let timed_out: Vec<_> = entries
        .iter()
        .filter(|e| e["status"] == "timed_out")
        .collect();
    assert_eq!(timed_out.len(), 1, "written once: {entries:?}");
    assert!(
        str_of(timed_out[0], "error_message").contains("install_timeout_s"),
        "{}",
        timed_out[0]
    );
    assert_eq!(timed_out[0]["rollout_id"], id.as_str());

    // The device comes back running the release (rule 5): its success replaces the timeout.
    check(&srv, &ids[0], "silent", "1.1.0").await;
    let r = get_rollout(&srv, &id).await;
    assert_eq!(
        (
            r["progress"]["devices"]["timed_out"].clone(),
            r["progress"]["devices"]["success"].clone(),
            r["progress"]["failure_reports"].clone()
        ),
        (json!(0), json!(2), json!(0)),
        "{r}"
    );
}

#[tokio::test]
async fn first_offers_keep_to_the_hourly_budget() {
    let srv = Server::start().await;
    let fw = publish(&srv, "budget", "1.1.0").await;
    let r = create_rollout(
        &srv,
        json!({"name": "budget", "firmware_id": fw["id"], "target_type": "all",
               "max_offers_per_hour": 3}),
    )
    .await
    .expect(201);
    assert_eq!(r["max_offers_per_hour"], 3);
    let ids = devices("bu", 8);
    let mut granted = Vec::new();
    for d in &ids {
        let answer = check(&srv, d, "budget", "1.0.0").await;
        if answer["update_available"] == true {
            granted.push(d.clone());
        } else {
            // Refused for now: asked back when the hour's oldest offers leave it (under an
            // hour and a minute), far sooner than the usual day.
            let poll = answer["poll_interval_s"].as_u64().unwrap();
            assert!((1..=3660).contains(&poll), "{answer}");
        }
    }
    assert_eq!(granted, ids[..3], "the first three, and no more");
    // A device offered keeps its offer: asking again takes nothing more from the budget.
    for d in &granted {
        let answer = check(&srv, d, "budget", "1.0.0").await;
        assert_eq!(answer["update_available"], true, "{answer}");
    }
    assert_eq!(
        check(&srv, &ids[7], "budget", "1.0.0").await["update_available"],
        false
    );
}

#[tokio::test]
async fn an_admin_promotes_and_edits_keep_to_the_stages() {
    let srv = Server::start().await;
    let fw = publish(&srv, "promo", "1.1.0").await;
    let r = create_rollout(
        &srv,
        json!({"name": "promo", "firmware_id": fw["id"], "target_type": "group",
               "target_filter": {"groups": ["lab"]},
               "stages": [{"percent": 1, "soak_s": 86400}, {"percent": 50}, {"percent": 100}]}),
    )
    .await
    .expect(201);
    let id = str_of(&r, "id").to_owned();
    let r = patch_rollout(&srv, &id, json!({"action": "promote", "revision": 1}))
        .await
        .expect(200);
    assert_eq!(
        (
            r["stage_index"].clone(),
            r["rollout_percentage"].clone(),
            r["revision"].clone()
        ),
        (json!(1), json!(50.0), json!(2))
    );
    assert_eq!(r["decisions"][0]["actor"], srv.admin_subject());
    let events = audit_events(&srv, &[("action", "rollout.promote")]).await;
    assert_eq!(events[0]["actor"], srv.admin_subject());
    let p = patch_rollout(&srv, &id, json!({"rollout_percentage": 60})).await;
    p.problem(409);
    let r = patch_rollout(&srv, &id, json!({"action": "promote", "state": "paused"}))
        .await
        .expect(200);
    assert_eq!(
        (r["stage_index"].clone(), r["state"].clone()),
        (json!(2), json!("paused"))
    );
    patch_rollout(&srv, &id, json!({"action": "promote"}))
        .await
        .problem(409);
    patch_rollout(&srv, &id, json!({"action": "widen"}))
        .await
        .problem(400);
    let unstaged = rollout_all(&srv, str_of(&fw, "id")).await;
    patch_rollout(&srv, str_of(&unstaged, "id"), json!({"action": "promote"}))
        .await
        .problem(409);
}

#[tokio::test]
async fn a_create_asks_only_what_stages_gates_and_schedules_can_do() {
    let srv = Server::start().await;
    let fw = publish(&srv, "bad-stages", "1.1.0").await;
    let bad = [
        (
            json!({"stages": [{"percent": 10}, {"percent": 5}]}),
            "stages[1].percent",
        ),
        (json!({"stages": [{"percent": 0}]}), "stages[0].percent"),
        (
            json!({"stages": [{"percent": 10, "soak_s": 7_776_001}]}),
            "stages[0].soak_s",
        ),
        (
            json!({"stages": [{"percent": 10}], "rollout_percentage": 10}),
            "rollout_percentage",
        ),
        (json!({"health_gate": {"min_reports": 3}}), "health_gate"),
        (
            json!({"health_gate": {"max_crash_percent": 101}}),
            "health_gate.max_crash_percent",
        ),
        (
            json!({"schedule": {"start_at": "2026-12-10T02:00:00Z", "end_at": "2026-12-10T02:00:00Z"}}),
            "schedule.end_at",
        ),
        (
            json!({"schedule": {"windows": [{"days": [], "start": "01:00", "end": "02:00"}]}}),
            "schedule.windows[0].days",
        ),
    ];
    for (extra, field) in bad {
        let mut body = json!({"name": "bad", "firmware_id": fw["id"], "target_type": "all"});
        merge(&mut body, extra.clone());
        let p = create_rollout(&srv, body).await;
        p.problem(400);
        assert_eq!(p.error_fields(), [field], "{extra}");
    }
    // Shapes the contract does not allow: a stage as a list, an unknown member, a bad time.
    for extra in [
        json!({"stages": [[10, 60]]}),
        json!({"stages": [{"percent": 10, "soak": 60}]}),
        json!({"schedule": {"windows": [{"start": "1:00", "end": "02:00"}]}}),
        json!({"schedule": {"windows": [{"days": ["monday"], "start": "01:00", "end": "02:00"}]}}),
        json!({"health_gate": [5]}),
    ] {
        let mut body = json!({"name": "bad", "firmware_id": fw["id"], "target_type": "all"});
        merge(&mut body, extra.clone());
        create_rollout(&srv, body).await.problem(400);
    }
    assert_eq!(
        list_all(&srv, "/api/ota/admin/rollouts", &[], 50)
            .await
            .len(),
        0,
        "nothing stored"
    );
}
