//! The acceptance test of staged rollouts: a fleet of 1,000 devices (and 200 that appear later)
//! on one device type, a canary at 10 % then 50 % that follows the bucket formula of docs/api.md
//! §Update rules 2 exactly, and the automatic pause of rule 4 firing on exactly the report the
//! rule predicts, over real HTTP with bounded concurrency.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::api::*;
use crate::harness::Server;

const DEVICE_TYPE: &str = "fleet_node";
const FLEET: usize = 1_000;
const LATECOMERS: usize = 200;
const IN_FLIGHT: usize = 32;
const THRESHOLD: u64 = 20;
const MIN_REPORTS: u64 = 20;
const OLD: &str = "1.0.0";
const NEW: &str = "1.1.0";

/// How one device's update ends.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Reports `success` itself.
    Reported,
    /// Reboots into the new version and checks in (rule 5 records the success).
    CheckedIn,
    Failed,
    RolledBack,
}

/// What the test expects the server to hold.
#[derive(Default)]
struct Model {
    /// Device → the version it runs.
    version: BTreeMap<String, &'static str>,
    /// Device → the status of its current attempt at the new release.
    attempt: BTreeMap<String, &'static str>,
    success_reports: u64,
    failure_reports: u64,
    /// Stored status reports by status.
    stored: BTreeMap<&'static str, u64>,
}

impl Model {
    fn running(&self, device: &str) -> &'static str {
        self.version.get(device).copied().unwrap_or(OLD)
    }

    /// One stored report that moved the device's attempt.
    fn moved(&mut self, device: &str, status: &'static str) {
        self.attempt.insert(device.to_owned(), status);
        *self.stored.entry(status).or_default() += 1;
        match status {
            "success" => {
                self.success_reports += 1;
                self.version.insert(device.to_owned(), NEW);
            }
            "failed" | "rolled_back" => self.failure_reports += 1,
            _ => {}
        }
    }

    fn progress(&self) -> Value {
        let count = |s: &str| self.attempt.values().filter(|v| **v == s).count();
        json!({
            "devices": {
                "pending": count("pending"),
                "downloading": count("downloading"),
                "installing": count("installing"),
                "success": count("success"),
                "failed": count("failed"),
                "rolled_back": count("rolled_back"),
                "timed_out": count("timed_out"),
            },
            "success_reports": self.success_reports,
            "failure_reports": self.failure_reports,
        })
    }

    fn pauses(&self) -> bool {
        rule4_pauses(
            self.failure_reports,
            self.success_reports,
            THRESHOLD,
            MIN_REPORTS,
        )
    }
}

fn event_id(device: &str, round: u32, status: &str) -> String {
    format!("{device}:r{round}:{status}")
}

/// Every device in `devices` checks once, running what the model says, `IN_FLIGHT` at a time;
/// returns the devices offered the new release, after checking that each offer names it and the
/// rollout, and that every other answer is a plain "no update".
async fn offered(
    srv: &Server,
    devices: &[String],
    model: &Model,
    firmware_id: &str,
    rollout_id: &str,
) -> BTreeSet<String> {
    let answers = concurrently(devices, IN_FLIGHT, |d| async move {
        let answer = check(srv, d, DEVICE_TYPE, model.running(d)).await;
        (d.clone(), answer)
    })
    .await;
    let mut offered = BTreeSet::new();
    for (d, a) in answers {
        match a["update_available"].as_bool() {
            Some(true) => {
                assert_eq!(a["firmware_id"], firmware_id, "{d}: {a}");
                assert_eq!(a["rollout_id"], rollout_id, "{d}: {a}");
                assert_eq!(a["version"], NEW, "{d}: {a}");
                offered.insert(d);
            }
            Some(false) => assert_eq!(
                a,
                json!({"update_available": false, "poll_interval_s": 86400}),
                "{d}"
            ),
            None => panic!("{d}: no update_available in {a}"),
        }
    }
    offered
}

/// One device's update: `downloading`, `installing`, then the outcome. Returns the statuses
/// the server stored for it, in order.
async fn update(
    srv: &Server,
    firmware_id: &str,
    device: &str,
    round: u32,
    outcome: Outcome,
) -> (String, Vec<&'static str>) {
    let mut stored = Vec::new();
    for (status, extra) in [
        (
            "downloading",
            json!({"progress_percent": 40, "bytes_downloaded": 26_000}),
        ),
        ("installing", json!({"progress_percent": 100})),
    ] {
        let mut extra = extra;
        merge(
            &mut extra,
            json!({"event_id": event_id(device, round, status)}),
        );
        report(srv, device, DEVICE_TYPE, firmware_id, status, extra)
            .await
            .expect(200);
        stored.push(status);
    }
    let last = match outcome {
        Outcome::CheckedIn => {
            let after = check(srv, device, DEVICE_TYPE, NEW).await;
            assert_eq!(after["update_available"], false, "{device}: {after}");
            "success"
        }
        Outcome::Reported => "success",
        Outcome::Failed => "failed",
        Outcome::RolledBack => "rolled_back",
    };
    if !matches!(outcome, Outcome::CheckedIn) {
        report(
            srv,
            device,
            DEVICE_TYPE,
            firmware_id,
            last,
            json!({"event_id": event_id(device, round, last), "error_message":
                   (last != "success").then_some("flash verify failed")}),
        )
        .await
        .expect(200);
    }
    stored.push(last);
    (device.to_owned(), stored)
}

/// Runs `update` for each (device, outcome), `IN_FLIGHT` at a time, and records it in the model.
async fn updates(
    srv: &Server,
    model: &mut Model,
    firmware_id: &str,
    round: u32,
    plan: &[(String, Outcome)],
) {
    let done = concurrently(plan, IN_FLIGHT, |(d, o)| {
        update(srv, firmware_id, d, round, *o)
    })
    .await;
    for (d, statuses) in done {
        for s in statuses {
            model.moved(&d, s);
        }
    }
}

#[tokio::test]
async fn a_canary_over_a_thousand_devices_grows_by_the_formula_and_pauses_on_the_predicted_report()
{
    let srv = Server::start().await;
    let fw = publish(&srv, DEVICE_TYPE, NEW).await;
    let fw_id = str_of(&fw, "id").to_owned();
    let created = create_rollout(
        &srv,
        json!({"name": "fleet canary", "firmware_id": fw_id, "target_type": "canary",
               "rollout_percentage": 10, "failure_threshold_percent": THRESHOLD,
               "min_reports": MIN_REPORTS}),
    )
    .await
    .expect(201);
    let rid = str_of(&created, "id").to_owned();
    let mut model = Model::default();
    assert_eq!(created["progress"], model.progress());
    assert_eq!(created["revision"], 1);

    let fleet: Vec<String> = (0..FLEET).map(|i| format!("esp-{i:04}")).collect();
    let latecomers: Vec<String> = (FLEET..FLEET + LATECOMERS)
        .map(|i| format!("esp-{i:04}"))
        .collect();
    let by_formula = |devices: &[String], pct: u32| -> BTreeSet<String> {
        devices
            .iter()
            .filter(|d| in_canary(&rid, d, pct))
            .cloned()
            .collect()
    };

    // ---- 10 %: exactly the formula's devices are offered --------------------------------------
    let at_10 = offered(&srv, &fleet, &model, &fw_id, &rid).await;
    let want_10 = by_formula(&fleet, 10);
    assert_eq!(at_10, want_10, "the 10 % canary is not the formula's set");
    assert!(
        (40..=200).contains(&at_10.len()),
        "{} of {FLEET} devices at 10 %",
        at_10.len()
    );

    // Every tenth offered device fails (half of them roll back), the others succeed, half by
    // reporting success and half by checking in on the new version (rule 5). Successes first,
    // so the failure rate never exceeds its final value, which stays under the threshold.
    let mut successes = Vec::new();
    let mut failures = Vec::new();
    for (i, d) in at_10.iter().enumerate() {
        if i % 10 == 3 {
            let o = if (i / 10) % 2 == 0 {
                Outcome::Failed
            } else {
                Outcome::RolledBack
            };
            failures.push((d.clone(), o));
        } else {
            let o = if i % 2 == 0 {
                Outcome::Reported
            } else {
                Outcome::CheckedIn
            };
            successes.push((d.clone(), o));
        }
    }
    updates(&srv, &mut model, &fw_id, 1, &successes).await;
    updates(&srv, &mut model, &fw_id, 1, &failures).await;
    assert!(model.success_reports + model.failure_reports >= MIN_REPORTS);
    assert!(
        !model.pauses(),
        "the test meant to stay under the threshold"
    );
    let r = get_rollout(&srv, &rid).await;
    assert_eq!(r["state"], "active", "{r}");
    assert_eq!(r["revision"], 1);
    assert_eq!(
        r["progress"],
        model.progress(),
        "progress after the 10 % step"
    );
    assert!(
        audit_events(&srv, &[("action", "rollout.auto_pause")])
            .await
            .is_empty()
    );

    // ---- 50 %: the formula's set, a superset of the 10 % one, minus who already runs 1.1.0 ---
    let r = patch_rollout(&srv, &rid, json!({"rollout_percentage": 50, "revision": 1}))
        .await
        .expect(200);
    assert_eq!(r["revision"], 2);
    assert_eq!(r["rollout_percentage"].as_f64(), Some(50.0));
    assert_eq!(
        r["progress"],
        model.progress(),
        "an edit keeps the counters"
    );
    let at_50 = offered(&srv, &fleet, &model, &fw_id, &rid).await;
    let want_50 = by_formula(&fleet, 50);
    assert!(
        want_10.is_subset(&want_50),
        "the formula lost devices as it grew"
    );
    let upgraded: BTreeSet<String> = successes.iter().map(|(d, _)| d.clone()).collect();
    let still_old: BTreeSet<String> = want_50.difference(&upgraded).cloned().collect();
    assert_eq!(at_50, still_old, "the 50 % canary is not the formula's set");
    for (d, _) in &failures {
        assert!(
            at_50.contains(d),
            "{d} failed at 10 % and is not offered again"
        );
    }
    for d in &upgraded {
        assert!(
            !at_50.contains(d),
            "{d} runs {NEW} and was offered it again"
        );
    }
    assert!(
        (350..=650).contains(&want_50.len()),
        "{} devices at 50 %",
        want_50.len()
    );

    // ---- devices that appear later fall into their buckets without any rollout edit ---------
    let late = offered(&srv, &latecomers, &model, &fw_id, &rid).await;
    assert_eq!(late, by_formula(&latecomers, 50), "latecomers at 50 %");
    assert!(!late.is_empty() && late.len() < LATECOMERS);
    assert_eq!(get_rollout(&srv, &rid).await["revision"], 2);

    // Half of the devices now offered succeed (concurrently: successes cannot trip the rule).
    let now_offered: Vec<String> = at_50.iter().chain(late.iter()).cloned().collect();
    let (first_half, second_half): (Vec<_>, Vec<_>) = now_offered
        .iter()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let plan: Vec<(String, Outcome)> = first_half
        .iter()
        .map(|(i, d)| {
            let o = if i % 4 == 0 {
                Outcome::Reported
            } else {
                Outcome::CheckedIn
            };
            ((*d).clone(), o)
        })
        .collect();
    updates(&srv, &mut model, &fw_id, 2, &plan).await;
    let r = get_rollout(&srv, &rid).await;
    assert_eq!(r["state"], "active");
    assert_eq!(
        r["progress"],
        model.progress(),
        "progress after the 50 % successes"
    );

    // ---- the threshold trips on exactly the predicted report -----------------------------------
    // The other half reports one device at a time, mostly failing; after every single report
    // the rollout's state must be what rule 4 says of the counters so far.
    let mut rng = Rng(0xF1EE_7000);
    let mut trip: Option<(String, u64, u64)> = None;
    let mut after_trip = 0;
    for (n, (_, d)) in second_half.iter().enumerate() {
        let d = d.as_str();
        let round = 2;
        let status: &'static str = if rng.chance(80) {
            if n % 3 == 0 { "rolled_back" } else { "failed" }
        } else {
            "success"
        };
        for st in ["downloading", status] {
            let ev = event_id(d, round, st);
            report(
                &srv,
                d,
                DEVICE_TYPE,
                &fw_id,
                st,
                json!({"event_id": ev.clone()}),
            )
            .await
            .expect(200);
            model.moved(d, st);
            if trip.is_none() && model.pauses() {
                trip = Some((ev, model.failure_reports, model.success_reports));
            }
            let r = get_rollout(&srv, &rid).await;
            let (state, revision) = if trip.is_some() {
                ("paused", 3)
            } else {
                ("active", 2)
            };
            assert_eq!(
                (r["state"].as_str(), r["revision"].as_u64()),
                (Some(state), Some(revision)),
                "after {d} reported {st}: {} failed, {} succeeded",
                model.failure_reports,
                model.success_reports
            );
            assert_eq!(r["progress"], model.progress(), "after {d} reported {st}");
        }
        if trip.is_some() {
            // A few more reports after the pause: stored and counted, no second pause.
            after_trip += 1;
            if after_trip > 6 {
                break;
            }
        }
    }
    let (trigger, failed, succeeded) = trip.expect("the failures never crossed the threshold");
    assert!(after_trip > 1, "no report arrived after the pause");

    // Exactly one automatic pause in the audit log, with the numbers of the crossing report.
    let pauses = audit_events(&srv, &[("action", "rollout.auto_pause")]).await;
    assert_eq!(pauses.len(), 1, "{pauses:#?}");
    let e = &pauses[0];
    assert_eq!(e["actor"], "system");
    assert_eq!(e["target_type"], "rollout");
    assert_eq!(e["target_id"], rid.as_str());
    let details = &e["details"];
    assert_eq!(details["trigger_event_id"], trigger.as_str(), "{details}");
    assert_eq!(details["failure_reports"], failed, "{details}");
    assert_eq!(details["success_reports"], succeeded, "{details}");
    assert_eq!(details["min_reports"], MIN_REPORTS, "{details}");
    assert_eq!(details["revision"], 3, "{details}");
    assert_eq!(
        details["failure_threshold_percent"].as_f64(),
        Some(THRESHOLD as f64)
    );
    let rate = details["failure_rate_percent"].as_f64().expect("a rate");
    let want = failed as f64 * 100.0 / (failed + succeeded) as f64;
    assert!((rate - want).abs() < 1e-9, "rate {rate}, want {want}");
    assert!(!rule4_pauses(failed - 1, succeeded, THRESHOLD, MIN_REPORTS));
    let history: Vec<Value> = audit_events(&srv, &[("target_id", &rid)])
        .await
        .iter()
        .map(|e| e["action"].clone())
        .collect();
    assert_eq!(
        history,
        ["rollout.auto_pause", "rollout.update", "rollout.create"]
    );

    // ---- paused: nobody is offered anything, whatever their bucket ---------------------------
    let everyone: Vec<String> = fleet.iter().chain(latecomers.iter()).cloned().collect();
    let after_pause = offered(&srv, &everyone, &model, &fw_id, &rid).await;
    assert!(
        after_pause.is_empty(),
        "a paused rollout offered {after_pause:?}"
    );

    // The counters agree with the whole story.
    let r = get_rollout(&srv, &rid).await;
    assert_eq!(r["state"], "paused");
    assert_eq!(r["progress"], model.progress());
    let stored = logs(&srv, &[("firmware_id", &fw_id)]).await;
    assert_eq!(
        stored.len() as u64,
        model.stored.values().sum::<u64>(),
        "stored reports"
    );
    let m = metrics(&srv).await;
    assert_eq!(m["active_rollouts"], json!([]), "{m}");
    assert_eq!(m["devices_total"], FLEET + LATECOMERS);
    let upgraded = model.version.values().filter(|v| **v == NEW).count();
    assert_eq!(
        m["versions_by_type"],
        json!({DEVICE_TYPE: {OLD: FLEET + LATECOMERS - upgraded, NEW: upgraded}})
    );
    let outcomes: serde_json::Map<String, Value> = [
        "pending",
        "downloading",
        "installing",
        "success",
        "failed",
        "rolled_back",
        "timed_out",
    ]
    .iter()
    .map(|s| {
        (
            s.to_string(),
            json!(model.stored.get(s).copied().unwrap_or(0)),
        )
    })
    .collect();
    assert_eq!(m["outcomes_24h"], Value::Object(outcomes), "{m}");
}
