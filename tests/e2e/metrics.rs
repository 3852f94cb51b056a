//! `GET /api/ota/admin/metrics` against the logs, the device list and the rollouts after seeded
//! random sequences of checks and reports (new devices, upgrades, two device types, a type
//! change, duplicates by event id, refused moves), checked against a model of what the server
//! must have stored; and `GET /api/ota/admin/audit`: every admin change with its actor, target
//! and details, filters and pagination, and no credential anywhere in it.

use std::collections::{BTreeMap, BTreeSet};

use firmware_samples::Target;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::*;
use crate::harness::{Go, Server};

const STATUSES: [&str; 6] = [
    "pending",
    "downloading",
    "installing",
    "success",
    "failed",
    "rolled_back",
];

/// What the answers count besides: the server's own status (an install timeout, which these
/// rollouts do not set), always 0 here.
const SERVER_STATUSES: [&str; 1] = ["timed_out"];

fn is_final(s: &str) -> bool {
    matches!(s, "success" | "failed" | "rolled_back")
}

fn is_failure(s: &str) -> bool {
    matches!(s, "failed" | "rolled_back")
}

/// The state machine of API notes §Status reports: Ok(true) moves the attempt, Ok(false) is
/// the same final state again (stored, changes nothing), Err is a refused move (409).
fn transition(current: Option<&str>, next: &str) -> Result<bool, ()> {
    match current {
        None => Ok(true),
        Some(c) if !is_final(c) => Ok(true),
        Some(c) if c == next => Ok(false),
        Some(c) if is_failure(c) && !is_final(next) => Ok(true),
        Some(_) => Err(()),
    }
}

/// Steps of each random sequence; metrics are compared halfway and at the end.
const STEPS: usize = 600;

const METER: &str = "meter";
const GAUGE: &str = "gauge";

fn versions_of(device_type: &str) -> &'static [&'static str] {
    if device_type == METER {
        &["1.0.0", "1.0.0+b7", "1.0.5", "1.1.0", "1.2.0"]
    } else {
        &["2.0.0", "2.0.1", "2.1.0"]
    }
}

struct Release {
    id: String,
    device_type: &'static str,
    rollout: String,
}

#[derive(Default, Clone)]
struct Progress {
    devices: BTreeMap<&'static str, i64>,
    success_reports: u64,
    failure_reports: u64,
}

impl Progress {
    fn json(&self) -> Value {
        let devices: serde_json::Map<String, Value> = STATUSES
            .iter()
            .chain(&SERVER_STATUSES)
            .map(|s| {
                (
                    s.to_string(),
                    json!(self.devices.get(s).copied().unwrap_or(0)),
                )
            })
            .collect();
        json!({"devices": devices, "success_reports": self.success_reports,
               "failure_reports": self.failure_reports})
    }
}

struct Attempt {
    status: &'static str,
    rollout: Option<String>,
}

/// What the server must hold after the sequence.
#[derive(Default)]
struct Model {
    /// Registered devices: type and the version they last reported.
    devices: BTreeMap<String, (&'static str, String)>,
    /// Device → (firmware id, version, rollout id) of the last offer.
    last_offer: BTreeMap<String, (String, String, String)>,
    attempts: BTreeMap<(String, String), Attempt>,
    progress: BTreeMap<String, Progress>,
    /// Stored status reports by status.
    stored: BTreeMap<&'static str, u64>,
    /// Rollout → state.
    states: BTreeMap<String, &'static str>,
    /// How often the sequence exercised each case worth covering.
    seen: BTreeMap<&'static str, u32>,
}

impl Model {
    /// A report as the server must treat it (attribution per the store's `record_status`);
    /// Err for a refused move.
    fn report(&mut self, device: &str, firmware: &str, status: &'static str) -> Result<(), ()> {
        let key = (device.to_owned(), firmware.to_owned());
        let current = self.attempts.get(&key);
        let Ok(moves) = transition(current.map(|a| a.status), status) else {
            *self.seen.entry("refused move").or_default() += 1;
            return Err(());
        };
        *self.stored.entry(status).or_default() += 1;
        if !moves {
            return Ok(());
        }
        let from = current.map(|a| a.status);
        let counted_in = current.and_then(|a| a.rollout.clone());
        let new_attempt = current.is_none_or(|a| is_final(a.status));
        let rollout = if new_attempt || counted_in.is_none() {
            self.last_offer
                .get(device)
                .filter(|(fw, _, _)| fw == firmware)
                .map(|(_, _, r)| r.clone())
                .or_else(|| counted_in.clone())
        } else {
            counted_in.clone()
        };
        if counted_in.is_none() && from.is_some() && rollout.is_some() {
            *self.seen.entry("attempt joins a rollout").or_default() += 1;
        }
        if let (Some(old), Some(from)) = (&counted_in, from)
            && rollout.as_ref() != Some(old)
        {
            *self
                .seen
                .entry("retry moves to another rollout")
                .or_default() += 1;
            *self
                .progress
                .entry(old.clone())
                .or_default()
                .devices
                .entry(from)
                .or_default() -= 1;
        }
        if let Some(r) = &rollout {
            let p = self.progress.entry(r.clone()).or_default();
            if let Some(from) = from.filter(|_| counted_in.as_ref() == Some(r)) {
                *p.devices.entry(from).or_default() -= 1;
            }
            *p.devices.entry(status).or_default() += 1;
            if status == "success" {
                p.success_reports += 1;
            } else if is_failure(status) {
                p.failure_reports += 1;
            }
        }
        self.attempts.insert(key, Attempt { status, rollout });
        Ok(())
    }

    /// What a check answered: an offer must be of the device's type, by the rollout of that
    /// release, which must be active; the server remembers it as the device's last offer.
    fn answered(
        &mut self,
        releases: &[Release],
        device: &str,
        device_type: &str,
        answer: &Value,
        ctx: &str,
    ) {
        if answer["update_available"] != true {
            assert_eq!(answer["update_available"], false, "{ctx}: {answer}");
            return;
        }
        let rollout = str_of(answer, "rollout_id").to_owned();
        let fw = str_of(answer, "firmware_id").to_owned();
        let release = releases
            .iter()
            .find(|r| r.id == fw)
            .unwrap_or_else(|| panic!("{ctx}: offered an unknown release: {answer}"));
        assert_eq!(release.device_type, device_type, "{ctx}: {answer}");
        assert_eq!(release.rollout, rollout, "{ctx}: {answer}");
        assert_eq!(self.states[&rollout], "active", "{ctx}: {answer}");
        let version = str_of(answer, "version").to_owned();
        self.last_offer
            .insert(device.to_owned(), (fw, version, rollout));
    }

    /// A check-in: registers the device and, by rule 5, completes the update it was offered
    /// when it now runs that version.
    fn check_in(&mut self, device: &str, device_type: &'static str, version: &str) {
        self.devices
            .insert(device.to_owned(), (device_type, version.to_owned()));
        if let Some((fw, offered, _)) = self.last_offer.get(device).cloned()
            && offered == version
        {
            let open = self
                .attempts
                .get(&(device.to_owned(), fw.clone()))
                .is_none_or(|a| !is_final(a.status));
            if open {
                *self.seen.entry("rule 5 completion").or_default() += 1;
                self.report(device, &fw, "success")
                    .expect("rule 5 completes only open attempts");
            }
        }
    }
}

/// Seeded random checks and reports, then metrics against the logs, the device list, the
/// rollouts and the model, twice.
async fn metrics_follow_a_random_fleet(seed: u64) {
    let srv = Server::start().await;
    let mut rng = Rng(seed);
    let mut model = Model::default();

    let mut releases = Vec::new();
    for (dt, version, target) in [
        (METER, "1.1.0", json!({"target_type": "all"})),
        (
            METER,
            "1.2.0",
            json!({"target_type": "canary", "rollout_percentage": 50}),
        ),
        (
            GAUGE,
            "2.1.0",
            json!({"target_type": "group", "target_filter": {"groups": ["pilot"]}}),
        ),
        (GAUGE, "2.0.1", json!({"target_type": "all"})),
        (METER, "1.0.9", json!({"target_type": "all"})),
    ] {
        let fw = publish(&srv, dt, version).await;
        let mut body = json!({"name": format!("{dt} {version}"), "firmware_id": fw["id"]});
        merge(&mut body, target);
        let r = create_rollout(&srv, body).await.expect(201);
        let rollout = str_of(&r, "id").to_owned();
        model.states.insert(rollout.clone(), "active");
        model.progress.insert(rollout.clone(), Progress::default());
        releases.push(Release {
            id: str_of(&fw, "id").to_owned(),
            device_type: dt,
            rollout,
        });
    }
    for (i, state) in [(3, "paused"), (4, "aborted")] {
        patch_rollout(&srv, &releases[i].rollout, json!({ "state": state }))
            .await
            .expect(200);
        model.states.insert(releases[i].rollout.clone(), state);
    }

    let pool: Vec<String> = (0..30).map(|i| format!("m-{i:02}")).collect();
    // Device → reports it may repeat: (firmware id, event id, status, first answer).
    let mut sent: BTreeMap<String, Vec<(String, String, &'static str, Value)>> = BTreeMap::new();
    let mut events = 0u32;
    for step in 0..STEPS {
        let ctx = format!("seed {seed:#x}, step {step}");
        let roll = rng.below(100);
        let d = rng.pick(&pool).clone();
        match roll {
            // A check-in, sometimes on another version (an update done, or a manual flash).
            0..=39 => {
                let (dt, mut version) = model.devices.get(&d).cloned().unwrap_or_else(|| {
                    let dt = if d.ends_with(['0', '3', '6']) {
                        GAUGE
                    } else {
                        METER
                    };
                    (dt, versions_of(dt)[0].to_owned())
                });
                if rng.chance(30) {
                    version = match model.last_offer.get(&d) {
                        Some((_, v, _))
                            if rng.chance(70) && versions_of(dt).contains(&v.as_str()) =>
                        {
                            v.clone()
                        }
                        _ => rng.pick(versions_of(dt)).to_string(),
                    };
                }
                model.check_in(&d, dt, &version);
                let answer = check(&srv, &d, dt, &version).await;
                model.answered(&releases, &d, dt, &answer, &ctx);
            }
            // A status report: new, or a repeat of an event id.
            40..=84 => {
                let Some(dt) = model.devices.get(&d).map(|(t, _)| *t) else {
                    continue;
                };
                // Only reports about firmware of the device's current type: a device re-flashed
                // as another type may not speak for the old one's firmware (403).
                let repeatable: Vec<_> = sent
                    .get(&d)
                    .into_iter()
                    .flatten()
                    .filter(|(fw, ..)| releases.iter().any(|r| r.id == *fw && r.device_type == dt))
                    .cloned()
                    .collect();
                if !repeatable.is_empty() && rng.chance(15) {
                    let (fw, ev, status, first) = rng.pick(&repeatable).clone();
                    // Same event id, same or another status: answered as the first time.
                    let again = if rng.chance(50) {
                        status
                    } else {
                        *rng.pick(&STATUSES)
                    };
                    let r = report(&srv, &d, dt, &fw, again, json!({ "event_id": ev }))
                        .await
                        .expect(200);
                    assert_eq!(r, first, "{ctx}: repeated event {ev}");
                    *model.seen.entry("repeated event id").or_default() += 1;
                    continue;
                }
                let offered = model
                    .last_offer
                    .get(&d)
                    .map(|(fw, _, _)| fw.clone())
                    .filter(|fw| releases.iter().any(|r| r.id == *fw && r.device_type == dt));
                let fw = match offered {
                    Some(fw) if rng.chance(75) => fw,
                    _ => {
                        let of_type: Vec<&Release> =
                            releases.iter().filter(|r| r.device_type == dt).collect();
                        rng.pick(&of_type).id.clone()
                    }
                };
                let status = *rng.pick(&STATUSES);
                events += 1;
                let ev = format!("ev-{events}");
                let expect = model.report(&d, &fw, status);
                let r = report(
                    &srv,
                    &d,
                    dt,
                    &fw,
                    status,
                    json!({"event_id": ev, "error_message": is_failure(status).then_some("boom")}),
                )
                .await;
                match expect {
                    Ok(()) => {
                        let body = r.expect(200);
                        sent.entry(d.clone())
                            .or_default()
                            .push((fw, ev, status, body));
                    }
                    Err(()) => {
                        r.problem(409);
                    }
                }
            }
            // A device re-flashed as the other type.
            85..=87 => {
                let Some((dt, _)) = model.devices.get(&d).cloned() else {
                    continue;
                };
                let other = if dt == METER { GAUGE } else { METER };
                *model.seen.entry("type change").or_default() += 1;
                let version = versions_of(other)[0];
                model.check_in(&d, other, version);
                let answer = check(&srv, &d, other, version).await;
                model.answered(&releases, &d, other, &answer, &ctx);
            }
            // Groups.
            88..=93 => {
                if !model.devices.contains_key(&d) {
                    continue;
                }
                let groups: &[&str] = match rng.below(3) {
                    0 => &["pilot"],
                    1 => &[],
                    _ => &["lab", "pilot"],
                };
                set_groups(&srv, &d, groups).await;
            }
            // The canary moves, and the first rollout is paused or resumed.
            94..=96 => {
                let pct = rng.below(101);
                patch_rollout(
                    &srv,
                    &releases[1].rollout,
                    json!({ "rollout_percentage": pct }),
                )
                .await
                .expect(200);
            }
            _ => {
                let r = &releases[0].rollout;
                let next = if model.states[r] == "active" {
                    "paused"
                } else {
                    "active"
                };
                patch_rollout(&srv, r, json!({ "state": next }))
                    .await
                    .expect(200);
                model.states.insert(r.clone(), next);
            }
        }
        if step == STEPS / 2 || step == STEPS - 1 {
            metrics_agree(&srv, &model, &ctx).await;
        }
    }
    // The sequence must have exercised what it is meant to.
    let sent_total: usize = sent.values().map(Vec::len).sum();
    assert!(sent_total > 40, "seed {seed:#x}: only {sent_total} reports");
    for case in [
        "refused move",
        "repeated event id",
        "rule 5 completion",
        "type change",
        "attempt joins a rollout",
    ] {
        assert!(
            model.seen.contains_key(case),
            "seed {seed:#x} never exercised '{case}': {:?}",
            model.seen
        );
    }
    for status in STATUSES {
        assert!(
            model.stored.contains_key(status),
            "seed {seed:#x}: no {status}"
        );
    }
    assert!(model.devices.values().any(|(t, _)| *t == GAUGE));
    eprintln!("seed {seed:#x}: {:?}", model.seen);
}

async fn metrics_agree(srv: &Server, model: &Model, ctx: &str) {
    let m = metrics(srv).await;

    // Devices: the device list, and the model.
    let devices = list_all(srv, "/api/ota/admin/devices", &[], 500).await;
    assert_eq!(m["devices_total"], devices.len(), "{ctx}: {m}");
    assert_eq!(devices.len(), model.devices.len(), "{ctx}");
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut versions: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for d in &devices {
        let (t, v) = (str_of(d, "device_type"), str_of(d, "current_version"));
        *by_type.entry(t.to_owned()).or_default() += 1;
        *versions
            .entry(t.to_owned())
            .or_default()
            .entry(v.to_owned())
            .or_default() += 1;
        let (mt, mv) = &model.devices[str_of(d, "device_id")];
        assert_eq!((t, v), (*mt, mv.as_str()), "{ctx}: {d}");
    }
    assert_eq!(m["devices_by_type"], json!(by_type), "{ctx}");
    assert_eq!(m["versions_by_type"], json!(versions), "{ctx}");

    // Outcomes: the logs (every page), and the model.
    let entries = logs(srv, &[]).await;
    let mut outcomes = serde_json::Map::new();
    for s in STATUSES.into_iter().chain(SERVER_STATUSES) {
        let n = entries.iter().filter(|e| e["status"] == s).count() as u64;
        assert_eq!(n, model.stored.get(s).copied().unwrap_or(0), "{ctx}: {s}");
        outcomes.insert(s.to_owned(), json!(n));
    }
    assert_eq!(m["outcomes_24h"], Value::Object(outcomes), "{ctx}");

    // Active rollouts: exactly the active ones, each as its own GET shows it.
    let active = list_all(srv, "/api/ota/admin/rollouts", &[("state", "active")], 500).await;
    let listed: BTreeSet<&str> = m["active_rollouts"]
        .as_array()
        .expect("active_rollouts")
        .iter()
        .map(|r| str_of(r, "id"))
        .collect();
    let want: BTreeSet<&str> = active.iter().map(|r| str_of(r, "id")).collect();
    assert_eq!(listed, want, "{ctx}");
    let modelled: BTreeSet<&str> = model
        .states
        .iter()
        .filter(|(_, s)| **s == "active")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(listed, modelled, "{ctx}");
    for r in m["active_rollouts"].as_array().unwrap() {
        let got = get_rollout(srv, str_of(r, "id")).await;
        assert_eq!(*r, got, "{ctx}");
    }
    // Every rollout's progress, active or not, is the model's.
    for (id, p) in &model.progress {
        let got = get_rollout(srv, id).await;
        assert_eq!(got["progress"], p.json(), "{ctx}: rollout {}", got["name"]);
    }
}

#[tokio::test]
async fn metrics_agree_with_logs_devices_and_rollouts_seed_1() {
    metrics_follow_a_random_fleet(0x5EED_0001).await;
}

#[tokio::test]
async fn metrics_agree_with_logs_devices_and_rollouts_seed_2() {
    metrics_follow_a_random_fleet(0x5EED_0002).await;
}

#[tokio::test]
async fn metrics_agree_with_logs_devices_and_rollouts_seed_3() {
    metrics_follow_a_random_fleet(0x5EED_0003).await;
}

// ---- audit -----------------------------------------------------------------------------------

fn micros(at: &Value) -> i128 {
    OffsetDateTime::parse(at.as_str().expect("a time"), &Rfc3339)
        .expect("RFC 3339")
        .unix_timestamp_nanos()
        / 1000
}

#[tokio::test]
async fn every_admin_change_is_audited_with_its_actor_and_no_credential() {
    let srv = Server::start().await;
    let started = OffsetDateTime::now_utc();
    let alice = srv.token_as("alice@ops.example", "admin");
    let ci = srv.token_as("ci-pipeline-42", "publisher");
    let viewer = srv.token_as("viewer-7", "viewer");

    // The publisher: a one-shot upload, and the two-step flow.
    let v100 = upload_as(
        &srv,
        &ci,
        "audited",
        "1.0.0",
        image(Target::Esp32c3, "1.0.0"),
        &[],
    )
    .await
    .expect(201);
    let file = image(Target::Esp32c3, "1.1.0");
    let created = srv
        .post("/api/ota/admin/firmware")
        .bearer_auth(&ci)
        .json(
            &json!({"device_type": "audited", "version": "1.1.0", "file_size": file.len(),
                      "file_hash": sha256_hex(&file)}),
        )
        .go()
        .await
        .expect(201);
    let upload_url = str_of(&created["upload"], "url").to_owned();
    let v110 = str_of(&created, "id").to_owned();
    put_upload(&srv, &created["upload"], file).await.expect(200);
    srv.post(&format!("/api/ota/admin/firmware/{v110}/finalize"))
        .bearer_auth(&ci)
        .go()
        .await
        .expect(200);
    let v100 = str_of(&v100, "id").to_owned();

    // Refused changes leave no trace.
    upload_as(
        &srv,
        &ci,
        "audited",
        "1.0.0",
        image(Target::Esp32c3, "1.0.0"),
        &[],
    )
    .await
    .problem(409);
    srv.req(Method::DELETE, &format!("/api/ota/admin/firmware/{v100}"))
        .bearer_auth(&viewer)
        .go()
        .await
        .problem(403);

    // The admin.
    let as_alice = |method: Method, path: &str| srv.req(method, path).bearer_auth(&alice);
    as_alice(Method::PATCH, &format!("/api/ota/admin/firmware/{v110}"))
        .json(&json!({"description": "field fix"}))
        .go()
        .await
        .expect(200);
    as_alice(Method::DELETE, &format!("/api/ota/admin/firmware/{v100}"))
        .go()
        .await
        .expect(200);
    as_alice(Method::PUT, "/api/ota/admin/device-types/audited_next")
        .json(&json!({"chip": "esp32c3", "max_image_size": 1_048_576}))
        .go()
        .await
        .expect(200);
    let rollout = as_alice(Method::POST, "/api/ota/admin/rollouts")
        .json(
            &json!({"name": "audited canary", "firmware_id": v110, "target_type": "canary",
                      "rollout_percentage": 10}),
        )
        .go()
        .await
        .expect(201);
    let rid = str_of(&rollout, "id").to_owned();
    as_alice(Method::PATCH, &format!("/api/ota/admin/rollouts/{rid}"))
        .json(&json!({"rollout_percentage": 20, "revision": 1}))
        .go()
        .await
        .expect(200);
    as_alice(Method::PATCH, &format!("/api/ota/admin/rollouts/{rid}"))
        .json(&json!({"rollout_percentage": 30, "revision": 1}))
        .go()
        .await
        .problem(409);
    check(&srv, "dev-a", "audited", "1.0.0").await;
    as_alice(Method::PATCH, "/api/ota/admin/devices/dev-a")
        .json(&json!({"groups": ["pilot", "lab"]}))
        .go()
        .await
        .expect(200);
    let minted = as_alice(Method::POST, "/api/ota/admin/devices/dev-a/token")
        .json(&json!({"ttl_s": 600}))
        .go()
        .await
        .expect(200);
    let device_token = str_of(&minted, "token").to_owned();

    // The whole log, newest first.
    let all = audit_events(&srv, &[]).await;
    let summary: Vec<(&str, &str, &str, &str)> = all
        .iter()
        .map(|e| {
            (
                str_of(e, "actor"),
                str_of(e, "action"),
                str_of(e, "target_type"),
                str_of(e, "target_id"),
            )
        })
        .collect();
    let (a, c) = ("alice@ops.example", "ci-pipeline-42");
    assert_eq!(
        summary,
        [
            (a, "device.token_mint", "device", "dev-a"),
            (a, "device.groups", "device", "dev-a"),
            (a, "rollout.update", "rollout", rid.as_str()),
            (a, "rollout.create", "rollout", rid.as_str()),
            (a, "device_type.put", "device_type", "audited_next"),
            (a, "firmware.deactivate", "firmware", v100.as_str()),
            (a, "firmware.update", "firmware", v110.as_str()),
            (c, "firmware.finalize", "firmware", v110.as_str()),
            (c, "firmware.create", "firmware", v110.as_str()),
            (c, "firmware.upload", "firmware", v100.as_str()),
        ]
    );
    let ids: BTreeSet<&str> = all.iter().map(|e| str_of(e, "id")).collect();
    assert_eq!(ids.len(), all.len(), "event ids are unique");
    let now = OffsetDateTime::now_utc();
    for pair in all.windows(2) {
        assert!(
            micros(&pair[0]["at"]) >= micros(&pair[1]["at"]),
            "newest first"
        );
    }
    for e in &all {
        let at = OffsetDateTime::parse(str_of(e, "at"), &Rfc3339).expect("RFC 3339");
        assert!(
            at >= started - time::Duration::seconds(1) && at <= now,
            "{e}"
        );
    }

    // The details say what changed.
    let details = |action: &str| {
        let event = all.iter().find(|e| e["action"] == action);
        event.unwrap_or_else(|| panic!("no {action}"))["details"].clone()
    };
    let up = details("firmware.upload");
    assert_eq!(
        (&up["device_type"], &up["version"], &up["state"]),
        (&json!("audited"), &json!("1.0.0"), &json!("ready"))
    );
    assert_eq!(details("firmware.create")["state"], "pending_upload");
    assert_eq!(details("firmware.finalize")["state"], "ready");
    assert_eq!(
        details("firmware.update"),
        json!({"description": "field fix"})
    );
    assert_eq!(details("device_type.put")["chip"], "esp32c3");
    assert_eq!(details("device_type.put")["max_image_size"], 1_048_576);
    let rc = details("rollout.create");
    assert_eq!(
        (&rc["id"], &rc["target_type"]),
        (&json!(rid), &json!("canary"))
    );
    assert_eq!(
        details("rollout.update"),
        json!({"before": {"state": "active", "rollout_percentage": 10.0, "revision": 1},
               "after": {"state": "active", "rollout_percentage": 20.0, "revision": 2}})
    );
    assert_eq!(
        details("device.groups"),
        json!({"groups": ["lab", "pilot"]})
    );
    let mint = details("device.token_mint");
    assert_eq!(mint["device_type"], "audited");
    assert!(mint["expires_at"].is_i64(), "{mint}");
    assert_eq!(
        mint.as_object().map(serde_json::Map::len),
        Some(2),
        "{mint}"
    );

    // No credential appears anywhere in the log: not the tokens used, not the minted one,
    // not the secret, not the upload URL's signature.
    let text = serde_json::to_string(&all).unwrap();
    let secret = std::fs::read_to_string(srv.data_dir().join("jwt-secret")).unwrap();
    let upload_query = upload_url.split_once('?').map_or("", |(_, q)| q).to_owned();
    let mut secrets = vec![
        alice.clone(),
        ci.clone(),
        viewer.clone(),
        srv.admin_token().to_owned(),
        device_token.clone(),
        secret.trim().to_owned(),
        upload_url.clone(),
    ];
    for jwt in [&alice, &ci, &viewer, &device_token] {
        secrets.push(jwt.rsplit('.').next().unwrap().to_owned());
    }
    if !upload_query.is_empty() {
        secrets.push(upload_query);
    }
    for s in &secrets {
        assert!(
            s.len() > 8 && !text.contains(s.as_str()),
            "the audit log holds '{s}'"
        );
    }

    // Filters.
    let only = |events: &[Value]| -> Vec<String> {
        events.iter().map(|e| str_of(e, "id").to_owned()).collect()
    };
    let pick = |pred: &dyn Fn(&Value) -> bool| -> Vec<String> {
        only(&all.iter().filter(|e| pred(e)).cloned().collect::<Vec<_>>())
    };
    assert_eq!(
        only(&audit_events(&srv, &[("action", "firmware.create")]).await),
        pick(&|e| e["action"] == "firmware.create")
    );
    assert_eq!(
        only(&audit_events(&srv, &[("target_id", &v110)]).await),
        pick(&|e| e["target_id"] == v110.as_str())
    );
    assert_eq!(pick(&|e| e["target_id"] == v110.as_str()).len(), 3);
    assert_eq!(
        only(&audit_events(&srv, &[("action", "rollout.update"), ("target_id", &rid)]).await),
        pick(&|e| e["action"] == "rollout.update")
    );
    assert!(
        audit_events(&srv, &[("action", "rollout.auto_pause")])
            .await
            .is_empty()
    );
    let cut = all
        .iter()
        .find(|e| e["action"] == "rollout.create")
        .unwrap()["at"]
        .clone();
    let since = audit_events(&srv, &[("since", cut.as_str().unwrap())]).await;
    assert_eq!(
        only(&since),
        pick(&|e| micros(&e["at"]) >= micros(&cut)),
        "since {cut}"
    );
    assert_eq!(since.len(), 4);
    let future = (now + time::Duration::hours(1)).format(&Rfc3339).unwrap();
    assert!(audit_events(&srv, &[("since", &future)]).await.is_empty());

    // Pagination: small pages neither lose nor repeat events.
    for limit in [1, 3] {
        let paged = list_all(&srv, "/api/ota/admin/audit", &[], limit).await;
        assert_eq!(only(&paged), only(&all), "pages of {limit}");
    }
    let paged = list_all(&srv, "/api/ota/admin/audit", &[("target_id", &v110)], 1).await;
    assert_eq!(only(&paged), pick(&|e| e["target_id"] == v110.as_str()));

    // Bad queries are 400 problems; a viewer reads the same log; a device cannot.
    for q in [
        "since=yesterday",
        "limit=0",
        "limit=501",
        "cursor=not-a-cursor",
        "actor=alice",
    ] {
        let r = srv
            .admin(Method::GET, &format!("/api/ota/admin/audit?{q}"))
            .go()
            .await;
        r.problem(400);
    }
    let as_viewer = srv
        .get("/api/ota/admin/audit?limit=500")
        .bearer_auth(&viewer)
        .go()
        .await
        .expect(200);
    assert_eq!(as_viewer["items"], json!(all));
    srv.get("/api/ota/admin/audit")
        .bearer_auth(&device_token)
        .go()
        .await
        .problem(401);
}
