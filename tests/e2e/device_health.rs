//! What devices report on a check of the image they run and their boots (docs/api.md §3.1): the
//! release they really run and their last boot on the device record (§5.5), each release's
//! resets and crashes in the metrics (§11), and the 400s of values out of their rules.

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::*;
use crate::harness::{Go, Server};

/// A committed sample image and its validation hash, computed here from the file: an image with
/// its hash appended ends with the SHA-256 of the bytes before it.
pub(crate) fn sample() -> (Vec<u8>, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../firmware-samples/samples/demo-esp32c3-1.1.0.bin");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (image, appended) = bytes.split_at(bytes.len() - 32);
    let hash = sha256_hex(image);
    assert_eq!(
        hex::encode(appended),
        hash,
        "the sample has its hash appended"
    );
    (bytes, hash)
}

fn boot(reason: &str, boots: u32, crashes: u32, uptime_s: u64) -> Value {
    json!({"reset_reason": reason, "boots_since_update": boots,
           "crashes_since_last_check": crashes, "uptime_s": uptime_s})
}

async fn device(srv: &Server, id: &str) -> Value {
    srv.admin(Method::GET, &format!("/api/ota/admin/devices/{id}"))
        .go()
        .await
        .expect(200)
}

#[tokio::test]
async fn checks_tell_the_release_a_device_runs_and_count_its_boots_and_crashes() {
    let srv = Server::start().await;
    let (bytes, hash) = sample();
    let fw = publish_with(&srv, "health", "1.1.0", bytes, &[]).await;
    assert_eq!(
        fw["image_sha256"], hash,
        "the release learnt its image's hash"
    );
    let id = str_of(&fw, "id");
    let got = get_release(&srv, id).await;
    assert_eq!(got["image_sha256"], hash);

    // dev-1 sends the hash in upper case (stored lowercase) over two boots, polling in each.
    let runs = |b: Value| json!({"running_image_sha256": hash.to_uppercase(), "boot": b});
    for b in [
        boot("poweron", 1, 0, 5),
        boot("poweron", 1, 0, 65),
        boot("poweron", 1, 0, 125),
        // It crashed twice, and restarted.
        boot("panic", 2, 2, 4),
        boot("panic", 2, 0, 64),
    ] {
        check_with(&srv, "dev-1", "health", "1.1.0", runs(b)).await;
    }
    // dev-2 says only its uptime: its first report is a boot of no known reason.
    check_with(
        &srv,
        "dev-2",
        "health",
        "1.1.0",
        json!({"running_image_sha256": hash, "boot": {"uptime_s": 7}}),
    )
    .await;
    // dev-3 runs an image no release has: its device record says so, no release counts it.
    let unknown = "0f".repeat(32);
    check_with(
        &srv,
        "dev-3",
        "health",
        "1.0.0",
        json!({"running_image_sha256": unknown, "boot": boot("panic", 1, 3, 1)}),
    )
    .await;

    let d1 = device(&srv, "dev-1").await;
    assert_eq!(d1["running_image_sha256"], hash);
    assert_eq!(d1["running_firmware_id"], fw["id"]);
    let last = &d1["last_boot"];
    assert_eq!(
        (&last["reset_reason"], &last["boots_since_update"]),
        (&json!("panic"), &json!(2)),
        "{d1}"
    );
    // The last poll only refreshed the boot it reported (same boot, no crash): SQLite stores
    // it, DynamoDB once the record is `OTA_LAST_SEEN_PRECISION_S` old (docs/api.md §5.5).
    assert!(
        [(0, 64), (2, 4)].contains(&(
            last["crashes_since_last_check"].as_u64().unwrap_or(99),
            last["uptime_s"].as_u64().unwrap_or(0)
        )),
        "{d1}"
    );
    assert!(last["received_at"].is_string(), "{d1}");
    let d3 = device(&srv, "dev-3").await;
    assert_eq!(d3["running_image_sha256"], unknown);
    assert_eq!(d3["running_firmware_id"], Value::Null);
    let listed = list_all(&srv, "/api/ota/admin/devices", &[], 50).await;
    assert_eq!(listed[0]["running_firmware_id"], fw["id"], "the list too");

    let expected = json!([{
        "firmware_id": id,
        "device_type": "health",
        "version": "1.1.0",
        "resets_by_reason": {"poweron": 1, "panic": 1, "unknown": 1},
        "crashes": 2,
        // dev-1 and dev-2 ran it; dev-1 crashed on it, counted once.
        "devices": 2,
        "crashed_devices": 1,
    }]);
    assert_eq!(
        metrics(&srv).await["release_health"],
        expected,
        "a reset per new boot, not per poll; crashes summed"
    );
    assert_eq!(
        get_release(&srv, id).await["health"],
        json!({"resets_by_reason": {"poweron": 1, "panic": 1, "unknown": 1}, "crashes": 2,
               "devices": 2, "crashed_devices": 1}),
        "the release's own view"
    );

    // A check without the hash says nothing of the image, and keeps the last boot.
    check(&srv, "dev-1", "health", "1.1.0").await;
    let d1 = device(&srv, "dev-1").await;
    assert_eq!(d1["running_image_sha256"], Value::Null);
    assert_eq!(d1["running_firmware_id"], Value::Null);
    assert_eq!(d1["last_boot"], *last);
    assert_eq!(metrics(&srv).await["release_health"], expected);
}

#[tokio::test]
async fn values_out_of_their_rules_are_refused_naming_the_field_and_record_nothing() {
    let srv = Server::start().await;
    let cases = [
        (
            json!({"running_image_sha256": "ab"}),
            "running_image_sha256",
        ),
        (
            json!({"running_image_sha256": "zz".repeat(32)}),
            "running_image_sha256",
        ),
        (
            json!({"boot": {"reset_reason": "ESP_RST_PANIC"}}),
            "boot.reset_reason",
        ),
        (json!({"boot": {"reset_reason": ""}}), "boot.reset_reason"),
        (
            json!({"boot": {"reset_reason": "r".repeat(33)}}),
            "boot.reset_reason",
        ),
        (
            json!({"boot": {"uptime_s": 9_223_372_036_854_775_808_u64}}),
            "boot.uptime_s",
        ),
        (json!({"boot": {"uptime_s": -1}}), "boot.uptime_s"),
        (
            json!({"boot": {"boots_since_update": 4_294_967_296_u64}}),
            "boot.boots_since_update",
        ),
        (
            json!({"boot": {"crashes_since_last_check": "1"}}),
            "boot.crashes_since_last_check",
        ),
        (
            json!({"boot": {"uptime_s": 1, "temperature_c": 40}}),
            "boot.temperature_c",
        ),
        (json!({"boot": ["panic", 1, 0, 5]}), "boot"),
        (json!({"boot": "panic"}), "boot"),
    ];
    for (extra, field) in cases {
        let r = check_raw(&srv, "dev-bad", "health", "1.0.0", extra.clone()).await;
        let p = r.problem(400);
        assert_eq!(r.error_fields(), [field], "{extra}: {p}");
    }
    srv.admin(Method::GET, "/api/ota/admin/devices/dev-bad")
        .go()
        .await
        .problem(404);
    // An accepted `boot` of nothing but nulls, and one that is null.
    for extra in [
        json!({"boot": {"reset_reason": null, "uptime_s": null}}),
        json!({"boot": null, "running_image_sha256": null}),
    ] {
        check_with(&srv, "dev-ok", "health", "1.0.0", extra).await;
    }
}
