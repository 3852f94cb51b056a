//! Status reports: the state machine, idempotency by event id, validation, and several hundred
//! concurrent reports stored exactly once each.

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::*;
use crate::harness::{Go, Server};

/// A released firmware of `device_type`; returns its id.
async fn firmware(srv: &Server, device_type: &str) -> String {
    let fw = publish(srv, device_type, "1.1.0").await;
    rollout_all(srv, str_of(&fw, "id")).await;
    str_of(&fw, "id").to_owned()
}

#[tokio::test]
async fn the_state_machine_refuses_moves_back_from_final_states() {
    let srv = Server::start().await;
    let fw = firmware(&srv, "sm").await;
    check(&srv, "d1", "sm", "1.0.0").await;
    for st in [
        "pending",
        "downloading",
        "downloading",
        "installing",
        "success",
    ] {
        let r = report(
            &srv,
            "d1",
            "sm",
            &fw,
            st,
            json!({"bytes_downloaded": 1024, "progress_percent": 50}),
        )
        .await
        .expect(200);
        assert_eq!(r["accepted"], true);
        assert_eq!(r["status"], st);
        assert_eq!(r["device_id"], "d1");
        assert_eq!(r["firmware_id"], fw.as_str());
        assert!(
            r["log_id"].is_string() && r["event_id"].is_string() && r["recorded_at"].is_string()
        );
    }
    // success is final for good.
    for st in [
        "downloading",
        "pending",
        "installing",
        "failed",
        "rolled_back",
    ] {
        report(&srv, "d1", "sm", &fw, st, json!({}))
            .await
            .problem(409);
    }
    // The same final state again is accepted and logged.
    report(&srv, "d1", "sm", &fw, "success", json!({}))
        .await
        .expect(200);

    // After a failure a device may retry, but not jump to another final state.
    report(&srv, "d2", "sm", &fw, "downloading", json!({}))
        .await
        .expect(200);
    report(
        &srv,
        "d2",
        "sm",
        &fw,
        "failed",
        json!({"error_message": "timeout"}),
    )
    .await
    .expect(200);
    report(&srv, "d2", "sm", &fw, "success", json!({}))
        .await
        .problem(409);
    report(&srv, "d2", "sm", &fw, "rolled_back", json!({}))
        .await
        .problem(409);
    report(&srv, "d2", "sm", &fw, "failed", json!({}))
        .await
        .expect(200);
    report(&srv, "d2", "sm", &fw, "downloading", json!({}))
        .await
        .expect(200);
    report(&srv, "d2", "sm", &fw, "installing", json!({}))
        .await
        .expect(200);
    report(&srv, "d2", "sm", &fw, "success", json!({}))
        .await
        .expect(200);

    let d1: Vec<String> = logs(&srv, &[("device_id", "d1")])
        .await
        .iter()
        .map(|e| str_of(e, "status").to_owned())
        .collect();
    // Refused moves store nothing.
    assert_eq!(
        d1,
        [
            "success",
            "success",
            "installing",
            "downloading",
            "downloading",
            "pending"
        ]
    );
    let d2 = logs(&srv, &[("device_id", "d2")]).await;
    assert_eq!(d2.len(), 6);
    assert_eq!(d2[4]["error_message"], "timeout");
    assert_eq!(d2[4]["device_type"], "sm");
    assert_eq!(d2[4]["version"], "1.1.0");
}

#[tokio::test]
async fn a_repeated_event_id_is_answered_identically_and_stored_once() {
    let srv = Server::start().await;
    let fw = firmware(&srv, "idem").await;
    let send = |status: &str| {
        srv.device(Method::POST, "/api/ota/status", "d1", "idem")
            .json(
                &json!({"device_id": "d1", "firmware_id": fw, "status": status,
                          "progress_percent": 10, "event_id": "evt-0001"}),
            )
            .go()
    };
    let first = send("downloading").await;
    assert_eq!(first.status, 200);
    let again = send("downloading").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body, "answered byte for byte the same");
    // Even with other content, or after the attempt moved on to a final state.
    report(&srv, "d1", "idem", &fw, "success", json!({}))
        .await
        .expect(200);
    let late = send("failed").await;
    assert_eq!(late.status, 200, "{}", late.text());
    assert_eq!(late.body, first.body);

    let stored = logs(&srv, &[("device_id", "d1")]).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored
            .iter()
            .filter(|e| e["event_id"] == "evt-0001")
            .count(),
        1
    );
    assert_eq!(stored[1]["status"], "downloading");
    // Without an event id the server makes one per report.
    let a = report(&srv, "d3", "idem", &fw, "pending", json!({}))
        .await
        .expect(200);
    let b = report(&srv, "d3", "idem", &fw, "pending", json!({}))
        .await
        .expect(200);
    assert_ne!(a["event_id"], b["event_id"]);
}

#[tokio::test]
async fn event_ids_are_a_devices_own() {
    let srv = Server::start().await;
    let fw = firmware(&srv, "scoped").await;
    // Two devices whose clients happen to number their events alike.
    let a = report(
        &srv,
        "dev-a",
        "scoped",
        &fw,
        "downloading",
        json!({"event_id": "1"}),
    )
    .await
    .expect(200);
    let b = report(
        &srv,
        "dev-b",
        "scoped",
        &fw,
        "installing",
        json!({"event_id": "1"}),
    )
    .await
    .expect(200);
    assert_eq!(a["device_id"], "dev-a");
    assert_eq!(
        b["device_id"], "dev-b",
        "device b was answered with another device's report"
    );
    assert_eq!(b["status"], "installing");
    assert_eq!(logs(&srv, &[("device_id", "dev-b")]).await.len(), 1);
    // Nor can a device read another's completion through its deterministic event id.
    check(&srv, "dev-c", "scoped", "1.0.0").await;
    check(&srv, "dev-c", "scoped", "1.1.0").await;
    let probe = report(
        &srv,
        "dev-d",
        "scoped",
        &fw,
        "downloading",
        json!({"event_id": format!("check-in:dev-c:{fw}")}),
    )
    .await
    .expect(200);
    assert_eq!(probe["device_id"], "dev-d");
    assert_eq!(probe["status"], "downloading");
}

#[tokio::test]
async fn bad_reports_are_refused() {
    let srv = Server::start().await;
    let fw = firmware(&srv, "badrep").await;
    let long = "x".repeat(1025);
    let r = report(
        &srv,
        "d1",
        "badrep",
        &fw,
        "failed",
        json!({"error_message": long}),
    )
    .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["error_message"]);
    // Exactly 1024 characters (not bytes) is fine.
    let max = "é".repeat(1024);
    report(
        &srv,
        "d1",
        "badrep",
        &fw,
        "failed",
        json!({"error_message": max}),
    )
    .await
    .expect(200);
    report(
        &srv,
        "d1",
        "badrep",
        "no-such-firmware",
        "downloading",
        json!({}),
    )
    .await
    .problem(404);
    report(&srv, "d1", "badrep", &fw, "exploded", json!({}))
        .await
        .problem(400);
    report(
        &srv,
        "d1",
        "badrep",
        &fw,
        "downloading",
        json!({"progress_percent": 101}),
    )
    .await
    .problem(400);
    report(
        &srv,
        "d1",
        "badrep",
        &fw,
        "downloading",
        json!({"event_id": ""}),
    )
    .await
    .problem(400);
    report(
        &srv,
        "d1",
        "badrep",
        &fw,
        "downloading",
        json!({"event_id": "x".repeat(129)}),
    )
    .await
    .problem(400);
    // A device reports only as itself, and only on its own type's releases.
    let as_other = srv
        .device(Method::POST, "/api/ota/status", "d1", "badrep")
        .json(&json!({"device_id": "d2", "firmware_id": fw, "status": "downloading"}))
        .go()
        .await;
    as_other.problem(403);
    let other_type = srv
        .device(Method::POST, "/api/ota/status", "d1", "another")
        .json(&json!({"device_id": "d1", "firmware_id": fw, "status": "downloading"}))
        .go()
        .await;
    other_type.problem(403);
    assert_eq!(logs(&srv, &[]).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundreds_of_concurrent_reports_are_each_stored_exactly_once() {
    let srv = Server::start().await;
    let fw = firmware(&srv, "burst").await;
    const DEVICES: usize = 40;
    const PER_DEVICE: usize = 8;
    let mut tasks = Vec::new();
    // Every report is sent once; every third one a second time, concurrently.
    for d in 0..DEVICES {
        for e in 0..PER_DEVICE {
            let copies = if (d + e) % 3 == 0 { 2 } else { 1 };
            for _ in 0..copies {
                let device = format!("burst-{d:02}");
                let body = json!({
                    "device_id": device,
                    "firmware_id": fw,
                    "status": if e % 2 == 0 { "downloading" } else { "installing" },
                    "bytes_downloaded": e * 1000,
                    "event_id": format!("{device}-ev-{e}"),
                });
                let req = srv
                    .device(Method::POST, "/api/ota/status", &device, "burst")
                    .json(&body);
                tasks.push(tokio::spawn(req.go()));
            }
        }
    }
    assert!(tasks.len() > 400);
    let mut answers: HashMap<String, Vec<Value>> = HashMap::new();
    for t in tasks {
        let r = t.await.unwrap();
        let body = r.expect(200);
        answers
            .entry(str_of(&body, "event_id").to_owned())
            .or_default()
            .push(body);
    }
    assert_eq!(answers.len(), DEVICES * PER_DEVICE);
    for (event, same) in &answers {
        assert!(
            same.windows(2).all(|w| w[0] == w[1]),
            "{event} answered differently: {same:?}"
        );
    }
    let stored = logs(&srv, &[("firmware_id", &fw)]).await;
    assert_eq!(
        stored.len(),
        DEVICES * PER_DEVICE,
        "stored {} entries",
        stored.len()
    );
    let distinct: HashSet<&str> = stored.iter().map(|e| str_of(e, "event_id")).collect();
    assert_eq!(distinct.len(), stored.len(), "an event was stored twice");
    for (event, same) in &answers {
        let entry = stored
            .iter()
            .find(|e| e["event_id"] == event.as_str())
            .expect("stored");
        assert_eq!(entry["id"], same[0]["log_id"]);
    }
}
