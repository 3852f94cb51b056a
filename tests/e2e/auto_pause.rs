//! Rule 4, the automatic pause: exactly once under hundreds of concurrent reports (on the first
//! crossing on SQLite; on DynamoDB, whose counters are sharded, at or after it, within the
//! reports in flight), never at exactly the threshold, never before `min_reports`, never without a
//! threshold; what happens after a pause and after re-activation; and which reports count
//! toward which rollout.

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::*;
use crate::harness::{Go, Server};

/// A release of `device_type` and an active rollout of it to every device.
async fn rollout_with(
    srv: &Server,
    device_type: &str,
    threshold: Option<u64>,
    min_reports: Option<u64>,
) -> (String, String) {
    let fw = publish(srv, device_type, "1.1.0").await;
    let mut body = json!({"name": "guarded", "firmware_id": fw["id"], "target_type": "all"});
    if let Some(t) = threshold {
        merge(&mut body, json!({ "failure_threshold_percent": t }));
    }
    if let Some(n) = min_reports {
        merge(&mut body, json!({ "min_reports": n }));
    }
    let r = create_rollout(srv, body).await.expect(201);
    (str_of(&fw, "id").to_owned(), str_of(&r, "id").to_owned())
}

/// The device checks in on 1.0.0 and must be offered the release by `rollout_id`.
async fn offered_by(srv: &Server, device: &str, device_type: &str, rollout_id: &str) {
    let r = check(srv, device, device_type, "1.0.0").await;
    assert_eq!(r["update_available"], true, "{device}: {r}");
    assert_eq!(r["rollout_id"], rollout_id, "{device}: {r}");
}

async fn send(
    srv: &Server,
    device: &str,
    device_type: &str,
    firmware_id: &str,
    status: &str,
    event_id: &str,
) -> Value {
    report(
        srv,
        device,
        device_type,
        firmware_id,
        status,
        json!({ "event_id": event_id }),
    )
    .await
    .expect(200)
}

fn progress(
    [
        pending,
        downloading,
        installing,
        success,
        failed,
        rolled_back,
    ]: [u64; 6],
    success_reports: u64,
    failure_reports: u64,
) -> Value {
    json!({
        "devices": {"pending": pending, "downloading": downloading, "installing": installing,
                    "success": success, "failed": failed, "rolled_back": rolled_back,
                    "timed_out": 0},
        "success_reports": success_reports,
        "failure_reports": failure_reports,
    })
}

async fn pauses_of(srv: &Server, rollout_id: &str) -> Vec<Value> {
    audit_events(
        srv,
        &[("action", "rollout.auto_pause"), ("target_id", rollout_id)],
    )
    .await
}

#[track_caller]
fn assert_state(r: &Value, state: &str, revision: u64) {
    assert_eq!(
        (r["state"].as_str(), r["revision"].as_u64()),
        (Some(state), Some(revision)),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_concurrent_final_reports_pause_once_from_the_first_crossing() {
    const DEVICES: usize = 320;
    const THRESHOLD: u64 = 25;
    const MIN_REPORTS: u64 = 40;
    let dt = "burst_pause";
    let srv = Server::start().await;
    let (fw, rid) = rollout_with(&srv, dt, Some(THRESHOLD), Some(MIN_REPORTS)).await;
    let devices: Vec<String> = (0..DEVICES).map(|i| format!("burst-{i:03}")).collect();
    concurrently(&devices, 32, |d| offered_by(&srv, d, dt, &rid)).await;
    // Half of them were downloading; every device then sends its one final report, all at once.
    let (srv_ref, fw_ref) = (&srv, fw.as_str());
    concurrently(devices.iter().step_by(2), 32, |d| async move {
        send(srv_ref, d, dt, fw_ref, "downloading", &format!("{d}-dl")).await
    })
    .await;
    let mut rng = Rng(0xA070_0001);
    let outcomes: Vec<&str> = (0..DEVICES)
        .map(|i| match (rng.chance(35), i % 2) {
            (true, 0) => "failed",
            (true, _) => "rolled_back",
            (false, _) => "success",
        })
        .collect();
    let count = |s: &str| outcomes.iter().filter(|o| **o == s).count() as u64;
    let (ok, failed, rolled_back) = (count("success"), count("failed"), count("rolled_back"));
    assert!(
        (failed + rolled_back) * 100 > THRESHOLD * DEVICES as u64,
        "the mix must end over the threshold"
    );
    let tasks: Vec<_> = devices
        .iter()
        .zip(&outcomes)
        .map(|(d, st)| {
            let req = srv
                .device(Method::POST, "/api/ota/status", d, dt)
                .json(&json!({"device_id": d, "firmware_id": fw, "status": st,
                              "event_id": format!("{d}-final")}));
            tokio::spawn(req.go())
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect(200);
    }

    // Paused once, revision bumped by exactly one, every report counted exactly once.
    let r = get_rollout(&srv, &rid).await;
    assert_state(&r, "paused", 2);
    assert_eq!(
        r["progress"],
        progress([0, 0, 0, ok, failed, rolled_back], ok, failed + rolled_back),
        "counters vs the {DEVICES} reports sent"
    );
    let pauses = pauses_of(&srv, &rid).await;
    assert_eq!(pauses.len(), 1, "{pauses:#?}");
    let details = &pauses[0]["details"];
    let f = details["failure_reports"].as_u64().unwrap();
    let s = details["success_reports"].as_u64().unwrap();
    assert!(
        rule4_pauses(f, s, THRESHOLD, MIN_REPORTS),
        "the recorded numbers do not satisfy rule 4: {details}"
    );
    assert_eq!(details["revision"], 2);

    // Replay the final reports in the order the server stored them: on SQLite the pause must
    // name the first report after which the rule held, with the counters at that report. On
    // DynamoDB the rule is decided after each report's commit on the totals read then
    // (docs/aws-keys.md §Contention and limits): the pause comes at or after that report,
    // within the reports in flight, and its numbers are the totals it read. The log orders the
    // reports of different shards by their writers' clocks, not by commit, so the crossing it
    // shows is compared by its count of reports: a pause at the 40th report with 14 failures
    // is on time even where the log's 40th has 13.
    let mut stored = logs(&srv, &[("firmware_id", &fw)]).await;
    assert_eq!(stored.len(), DEVICES + DEVICES / 2);
    stored.reverse();
    let (mut sf, mut ss) = (0, 0);
    let mut first = None;
    for e in &stored {
        assert_eq!(e["rollout_id"], rid.as_str(), "{e}");
        match str_of(e, "status") {
            "success" => ss += 1,
            "failed" | "rolled_back" => sf += 1,
            _ => continue,
        }
        if first.is_none() && rule4_pauses(sf, ss, THRESHOLD, MIN_REPORTS) {
            first = Some((str_of(e, "event_id").to_owned(), sf, ss));
        }
    }
    let (trigger, want_f, want_s) = first.expect("the stored reports never crossed");
    if srv.is_aws() {
        assert!(
            f + s >= want_f + want_s,
            "{details} before the crossing at {want_f}/{want_s}"
        );
        eprintln!(
            "auto_pause on DynamoDB: first crossing at {}, paused at {} final reports",
            want_f + want_s,
            f + s
        );
        return;
    }
    assert_eq!(details["trigger_event_id"], trigger.as_str(), "{details}");
    assert_eq!((f, s), (want_f, want_s), "{details}");
    let trigger_was_failure = stored
        .iter()
        .find(|e| e["event_id"] == trigger.as_str())
        .is_some_and(|e| e["status"] != "success");
    let before = if trigger_was_failure {
        (f - 1, s)
    } else {
        (f, s - 1)
    };
    assert!(
        !rule4_pauses(before.0, before.1, THRESHOLD, MIN_REPORTS),
        "one report earlier ({before:?}) the rule already held"
    );
}

#[tokio::test]
async fn exactly_at_the_threshold_is_not_over_it() {
    let dt = "at_threshold";
    let srv = Server::start().await;
    let (fw, rid) = rollout_with(&srv, dt, Some(25), Some(4)).await;
    let steps = [
        ("e0", "success", "active"),
        ("e1", "success", "active"),
        ("e2", "failed", "active"),  // 1 of 3, but fewer than 4 reports
        ("e3", "success", "active"), // 1 of 4 = 25 %: equal is not over
        ("e4", "success", "active"), // 1 of 5
        ("e5", "rolled_back", "paused"), // 2 of 6 = 33 %: over
    ];
    for (d, status, want) in steps {
        offered_by(&srv, d, dt, &rid).await;
        send(&srv, d, dt, &fw, status, &format!("{d}-final")).await;
        let revision = if want == "paused" { 2 } else { 1 };
        assert_state(&get_rollout(&srv, &rid).await, want, revision);
    }
    let pauses = pauses_of(&srv, &rid).await;
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0]["details"]["failure_reports"], 2);
    assert_eq!(pauses[0]["details"]["success_reports"], 4);
    assert_eq!(pauses[0]["details"]["trigger_event_id"], "e5-final");
    let rate = pauses[0]["details"]["failure_rate_percent"]
        .as_f64()
        .unwrap();
    assert!((rate - 200.0 / 6.0).abs() < 1e-9, "{rate}");
}

#[tokio::test]
async fn min_reports_must_be_reached_before_the_rule_applies() {
    let dt = "min_reports";
    let srv = Server::start().await;
    let (fw, rid) = rollout_with(&srv, dt, Some(10), Some(5)).await;
    // Four failures in a row: 100 %, but only 4 of the 5 reports needed.
    for d in ["m0", "m1", "m2", "m3"] {
        offered_by(&srv, d, dt, &rid).await;
        send(&srv, d, dt, &fw, "failed", &format!("{d}-final")).await;
        assert_state(&get_rollout(&srv, &rid).await, "active", 1);
    }
    // Non-final reports are not final reports.
    offered_by(&srv, "m4", dt, &rid).await;
    for st in ["pending", "downloading", "installing"] {
        send(&srv, "m4", dt, &fw, st, &format!("m4-{st}")).await;
        assert_state(&get_rollout(&srv, &rid).await, "active", 1);
    }
    // The fifth final report, a success, brings the rule into force: 4 of 5 failed.
    send(&srv, "m4", dt, &fw, "success", "m4-final").await;
    let r = get_rollout(&srv, &rid).await;
    assert_state(&r, "paused", 2);
    assert_eq!(r["progress"], progress([0, 0, 0, 1, 4, 0], 1, 4));
    let pauses = pauses_of(&srv, &rid).await;
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0]["details"]["trigger_event_id"], "m4-final");
    assert_eq!(pauses[0]["details"]["min_reports"], 5);

    // Without min_reports the default is 10 (API notes): nine failures do not pause.
    let dt = "default_min";
    let (fw, rid) = rollout_with(&srv, dt, Some(10), None).await;
    assert_eq!(get_rollout(&srv, &rid).await["min_reports"], 10);
    for i in 0..10 {
        let d = format!("n{i}");
        offered_by(&srv, &d, dt, &rid).await;
        send(&srv, &d, dt, &fw, "failed", "final").await;
        let want = if i < 9 { ("active", 1) } else { ("paused", 2) };
        assert_state(&get_rollout(&srv, &rid).await, want.0, want.1);
    }
}

#[tokio::test]
async fn rollouts_without_a_threshold_never_pause() {
    let srv = Server::start().await;
    for (dt, threshold) in [("no_threshold", None), ("threshold_100", Some(100))] {
        let (fw, rid) = rollout_with(&srv, dt, threshold, Some(1)).await;
        for i in 0..30 {
            let d = format!("{dt}-{i}");
            offered_by(&srv, &d, dt, &rid).await;
            let st = if i % 3 == 0 { "rolled_back" } else { "failed" };
            send(&srv, &d, dt, &fw, st, "final").await;
        }
        let r = get_rollout(&srv, &rid).await;
        assert_state(&r, "active", 1);
        assert_eq!(r["progress"], progress([0, 0, 0, 0, 20, 10], 0, 30), "{dt}");
        assert!(pauses_of(&srv, &rid).await.is_empty(), "{dt}");
        // Still offering.
        offered_by(&srv, &format!("{dt}-late"), dt, &rid).await;
    }
}

#[tokio::test]
async fn after_a_pause_reports_still_count_and_reactivation_lets_it_pause_again() {
    let dt = "repause";
    let srv = Server::start().await;
    let (fw, rid) = rollout_with(&srv, dt, Some(20), Some(5)).await;
    for i in 0..10 {
        offered_by(&srv, &format!("p{i}"), dt, &rid).await;
    }
    for (d, st) in [
        ("p0", "success"),
        ("p1", "failed"),
        ("p2", "failed"),
        ("p3", "success"),
    ] {
        send(&srv, d, dt, &fw, st, &format!("{d}-a")).await;
        assert_state(&get_rollout(&srv, &rid).await, "active", 1);
    }
    send(&srv, "p4", dt, &fw, "rolled_back", "p4-a").await; // 3 of 5 = 60 %
    assert_state(&get_rollout(&srv, &rid).await, "paused", 2);
    assert_eq!(
        check(&srv, "fresh", dt, "1.0.0").await["update_available"],
        false,
        "a paused rollout offers nothing"
    );

    // Devices offered before the pause keep reporting: stored, counted, no second pause.
    let late = send(&srv, "p5", dt, &fw, "failed", "p5-a").await;
    assert_eq!(late["status"], "failed");
    send(&srv, "p6", dt, &fw, "success", "p6-a").await;
    let r = get_rollout(&srv, &rid).await;
    assert_state(&r, "paused", 2);
    assert_eq!(r["progress"], progress([0, 0, 0, 3, 3, 1], 3, 4));
    assert_eq!(logs(&srv, &[("device_id", "p5")]).await.len(), 1);
    assert_eq!(pauses_of(&srv, &rid).await.len(), 1);

    // The pause bumped the revision: an edit based on the old one is stale.
    patch_rollout(&srv, &rid, json!({"state": "active", "revision": 1}))
        .await
        .problem(409);
    let r = patch_rollout(&srv, &rid, json!({"state": "active", "revision": 2}))
        .await
        .expect(200);
    assert_state(&r, "active", 3);
    offered_by(&srv, "fresh", dt, &rid).await;

    // Re-activation keeps the counters (4 of 7 failed, over 20 %). Progress reports are not
    // final reports and leave it running; the next final report, here a failure, pauses it
    // again with the numbers at that report.
    for st in ["pending", "downloading", "installing"] {
        send(&srv, "p7", dt, &fw, st, &format!("p7-{st}")).await;
        assert_state(&get_rollout(&srv, &rid).await, "active", 3);
    }
    send(&srv, "p7", dt, &fw, "failed", "p7-a").await;
    assert_state(&get_rollout(&srv, &rid).await, "paused", 4);
    let pauses = pauses_of(&srv, &rid).await;
    assert_eq!(pauses.len(), 2, "{pauses:#?}");
    let d = &pauses[0]["details"];
    assert_eq!(
        (&d["failure_reports"], &d["success_reports"], &d["revision"]),
        (&json!(5), &json!(3), &json!(4)),
        "{d}"
    );
    assert_eq!(d["trigger_event_id"], "p7-a");

    // Again, and a success that leaves the rate over the threshold (5 of 9) pauses it too:
    // the rule looks at the counters, and re-activation does not reset them.
    patch_rollout(&srv, &rid, json!({"state": "active", "revision": 4}))
        .await
        .expect(200);
    send(&srv, "p8", dt, &fw, "success", "p8-a").await;
    assert_state(&get_rollout(&srv, &rid).await, "paused", 6);
    let pauses = pauses_of(&srv, &rid).await;
    assert_eq!(pauses.len(), 3);
    assert_eq!(pauses[0]["details"]["trigger_event_id"], "p8-a");
    assert_eq!(pauses[0]["details"]["success_reports"], 4);

    // The rollout's history: create, three automatic pauses, two admin re-activations.
    let history: Vec<(String, String)> = audit_events(&srv, &[("target_id", &rid)])
        .await
        .iter()
        .map(|e| {
            (
                str_of(e, "action").to_owned(),
                str_of(e, "actor").to_owned(),
            )
        })
        .collect();
    let sys = |a: &str| (a.to_owned(), "system".to_owned());
    let admin = |a: &str| (a.to_owned(), srv.admin_subject());
    assert_eq!(
        history,
        [
            sys("rollout.auto_pause"),
            admin("rollout.update"),
            sys("rollout.auto_pause"),
            admin("rollout.update"),
            sys("rollout.auto_pause"),
            admin("rollout.create"),
        ]
    );
}

#[tokio::test]
async fn only_reports_of_attempts_a_rollout_offered_count_toward_it() {
    let dt = "attribution";
    let srv = Server::start().await;
    let fw = publish(&srv, dt, "1.1.0").await;
    let fw = str_of(&fw, "id").to_owned();
    let specific = |name: &str, ids: &[&str]| {
        json!({"name": name, "firmware_id": fw, "target_type": "specific",
               "target_filter": {"device_ids": ids}})
    };
    let a = create_rollout(&srv, specific("a", &["a1", "a2"]))
        .await
        .expect(201);
    let a = str_of(&a, "id").to_owned();
    let b = create_rollout(&srv, specific("b", &["b1"]))
        .await
        .expect(201);
    let b = str_of(&b, "id").to_owned();
    let zero = progress([0; 6], 0, 0);

    // Reports of devices no rollout offered the release to are stored but count nowhere.
    assert_eq!(
        check(&srv, "stranger", dt, "1.0.0").await["update_available"],
        false
    );
    let e = send(&srv, "stranger", dt, &fw, "failed", "s-1").await;
    assert_eq!(e["status"], "failed");
    send(&srv, "never-checked", dt, &fw, "downloading", "n-1").await;
    for entry in logs(&srv, &[]).await {
        assert!(entry["rollout_id"].is_null(), "{entry}");
    }
    assert_eq!(get_rollout(&srv, &a).await["progress"], zero);
    assert_eq!(get_rollout(&srv, &b).await["progress"], zero);

    // Each offered device counts toward the rollout that offered it.
    offered_by(&srv, "a1", dt, &a).await;
    send(&srv, "a1", dt, &fw, "downloading", "a1-1").await;
    offered_by(&srv, "b1", dt, &b).await;
    send(&srv, "b1", dt, &fw, "rolled_back", "b1-1").await;
    assert_eq!(
        get_rollout(&srv, &a).await["progress"],
        progress([0, 1, 0, 0, 0, 0], 0, 0)
    );
    assert_eq!(
        get_rollout(&srv, &b).await["progress"],
        progress([0, 0, 0, 0, 0, 1], 0, 1)
    );

    // An attempt started before any offer joins the rollout that offers the release later,
    // without taking anything from the devices already counted there.
    send(&srv, "a2", dt, &fw, "downloading", "a2-1").await;
    assert_eq!(
        get_rollout(&srv, &a).await["progress"],
        progress([0, 1, 0, 0, 0, 0], 0, 0)
    );
    offered_by(&srv, "a2", dt, &a).await;
    let e = send(&srv, "a2", dt, &fw, "installing", "a2-2").await;
    assert_eq!(e["status"], "installing");
    assert_eq!(
        get_rollout(&srv, &a).await["progress"],
        progress([0, 1, 1, 0, 0, 0], 0, 0),
        "a1 is still downloading, a2 is installing"
    );

    // A retry after a failure, offered by another rollout, belongs to that rollout; the
    // failure stays counted where it happened.
    send(&srv, "a1", dt, &fw, "failed", "a1-2").await;
    patch_rollout(&srv, &a, json!({"state": "aborted"}))
        .await
        .expect(200);
    let c = create_rollout(&srv, specific("c", &["a1"]))
        .await
        .expect(201);
    let c = str_of(&c, "id").to_owned();
    offered_by(&srv, "a1", dt, &c).await;
    send(&srv, "a1", dt, &fw, "downloading", "a1-3").await;
    send(&srv, "a1", dt, &fw, "success", "a1-4").await;
    assert_eq!(
        get_rollout(&srv, &a).await["progress"],
        progress([0, 0, 1, 0, 0, 0], 0, 1),
        "a keeps a1's failure as a report, and a2"
    );
    assert_eq!(
        get_rollout(&srv, &c).await["progress"],
        progress([0, 0, 0, 1, 0, 0], 1, 0)
    );
    let a1: Vec<(String, Value)> = logs(&srv, &[("device_id", "a1")])
        .await
        .iter()
        .map(|e| (str_of(e, "event_id").to_owned(), e["rollout_id"].clone()))
        .collect();
    assert_eq!(
        a1,
        [
            ("a1-4".to_owned(), json!(c)),
            ("a1-3".to_owned(), json!(c)),
            ("a1-2".to_owned(), json!(a)),
            ("a1-1".to_owned(), json!(a)),
        ]
    );

    // A retry without a new offer stays with the rollout that offered the failed attempt.
    send(&srv, "b1", dt, &fw, "downloading", "b1-2").await;
    assert_eq!(
        get_rollout(&srv, &b).await["progress"],
        progress([0, 1, 0, 0, 0, 0], 0, 1)
    );
}

#[tokio::test]
async fn a_decimal_threshold_is_not_exceeded_by_float_rounding() {
    // 69 of 375 is exactly 18.4 %, yet 18.4 * 375 is 6899.999999999999 in binary floating
    // point: a rate at the threshold must not count as over it however the threshold is written.
    let dt = "decimal_threshold";
    let srv = Server::start().await;
    let fw = publish(&srv, dt, "1.1.0").await;
    let fw = str_of(&fw, "id").to_owned();
    let r = create_rollout(
        &srv,
        json!({"name": "decimal", "firmware_id": fw, "target_type": "all",
               "failure_threshold_percent": 18.4, "min_reports": 1}),
    )
    .await
    .expect(201);
    let rid = str_of(&r, "id").to_owned();
    assert_eq!(r["failure_threshold_percent"].as_f64(), Some(18.4));
    let fine: Vec<String> = (0..306).map(|i| format!("fine-{i:03}")).collect();
    let (srv_ref, fw_ref, rid_ref) = (&srv, fw.as_str(), rid.as_str());
    concurrently(&fine, 32, |d| async move {
        offered_by(srv_ref, d, dt, rid_ref).await;
        send(srv_ref, d, dt, fw_ref, "success", "done").await;
    })
    .await;
    // Ten flaky devices fail over and over (each retry is a new attempt and a new final report).
    for i in 0..10 {
        offered_by(&srv, &format!("flaky-{i}"), dt, &rid).await;
    }
    for k in 1..=70u64 {
        let d = format!("flaky-{}", k % 10);
        send(&srv, &d, dt, &fw, "downloading", &format!("dl-{k}")).await;
        send(&srv, &d, dt, &fw, "failed", &format!("fail-{k}")).await;
        let r = get_rollout(&srv, &rid).await;
        // Over 18.4 % exactly when k * 1000 > 184 * (306 + k).
        if k * 1000 > 184 * (306 + k) {
            assert_eq!(k, 70, "the arithmetic of this test");
            assert_state(&r, "paused", 2);
        } else {
            assert_state(&r, "active", 1);
        }
    }
    let pauses = pauses_of(&srv, &rid).await;
    assert_eq!(pauses.len(), 1);
    assert_eq!(pauses[0]["details"]["failure_reports"], 70);
    assert_eq!(pauses[0]["details"]["success_reports"], 306);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_edit_racing_the_automatic_pause_never_undoes_it() {
    let dt = "race_pause";
    let srv = Server::start().await;
    let (fw, rid) = rollout_with(&srv, dt, Some(10), Some(20)).await;
    let devices: Vec<String> = (0..200).map(|i| format!("race-{i:03}")).collect();
    concurrently(&devices, 32, |d| offered_by(&srv, d, dt, &rid)).await;
    // Final reports (30 % failing) race edits based on revision 1 that would re-activate it.
    let mut reports = Vec::new();
    let mut edits = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let st = if i % 10 < 3 { "failed" } else { "success" };
        let req = srv
            .device(Method::POST, "/api/ota/status", d, dt)
            .json(&json!({"device_id": d, "firmware_id": fw, "status": st, "event_id": "final"}));
        reports.push(tokio::spawn(req.go()));
        if i % 40 == 20 {
            let req = srv
                .admin(Method::PATCH, &format!("/api/ota/admin/rollouts/{rid}"))
                .json(&json!({"state": "active", "rollout_percentage": 90, "revision": 1}));
            edits.push(tokio::spawn(req.go()));
        }
    }
    for t in reports {
        t.await.unwrap().expect(200);
    }
    let mut won = 0;
    for t in edits {
        let r = t.await.unwrap();
        match r.status {
            200 => won += 1,
            409 => {
                r.problem(409);
            }
            s => panic!("edit answered {s}: {}", r.text()),
        }
    }
    assert!(won <= 1, "{won} edits won on one revision");
    // Whoever came first, the pause stands, once, on top of the edit if the edit came first.
    let r = get_rollout(&srv, &rid).await;
    assert_state(&r, "paused", 2 + won);
    assert_eq!(r["progress"], progress([0, 0, 0, 140, 60, 0], 140, 60));
    let pauses = pauses_of(&srv, &rid).await;
    assert_eq!(pauses.len(), 1, "{pauses:#?}");
    assert_eq!(pauses[0]["details"]["revision"], 2 + won);
    let updates = audit_events(&srv, &[("action", "rollout.update")]).await;
    assert_eq!(updates.len() as u64, won);
}
