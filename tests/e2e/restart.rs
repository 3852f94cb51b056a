//! Durability: everything written survives a stop (graceful or SIGKILL) and a start on the same
//! data directory, and credentials and capability URLs issued before stay valid.

use firmware_samples::Target;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::*;
use crate::harness::{Go, Server};

/// Everything the admin API lists, for comparing before and after a restart.
async fn snapshot(srv: &Server) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for path in [
        "/api/ota/admin/firmware",
        "/api/ota/admin/rollouts",
        "/api/ota/admin/devices",
        "/api/ota/admin/logs",
        "/api/ota/admin/device-types",
    ] {
        out.push((path.to_owned(), list_all(srv, path, &[], 500).await));
    }
    out
}

/// A URL issued by the previous process, pointed at the new one (the port changed).
fn moved(url: &str, srv: &Server) -> String {
    if srv.is_aws() {
        // A presigned S3 URL does not name the server.
        return url.to_owned();
    }
    let parsed = reqwest::Url::parse(url).expect("URL");
    let rest = &url[parsed.origin().ascii_serialization().len()..];
    format!("{}{rest}", srv.base())
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let mut srv = Server::start().await;
    srv.admin(Method::PUT, "/api/ota/admin/device-types/durable")
        .json(&json!({"chip": "esp32c3", "max_image_size": 1048576}))
        .go()
        .await
        .expect(200);
    let one_shot = publish_with(
        &srv,
        "durable",
        "1.1.0",
        image(Target::Esp32c3, "1.1.0"),
        &[("channel", "stable")],
    )
    .await;
    let two_step =
        publish_two_step(&srv, "durable", "1.2.0", image(Target::Esp32c3, "1.2.0")).await;
    let pending_file = image(Target::Esp32c3, "1.3.0");
    let pending = create_firmware(
        &srv,
        json!({"device_type": "durable", "version": "1.3.0",
               "file_size": pending_file.len(), "file_hash": sha256_hex(&pending_file)}),
    )
    .await
    .expect(201);
    let r1 = rollout_all(&srv, str_of(&one_shot, "id")).await;
    let r2 = rollout_all(&srv, str_of(&two_step, "id")).await;
    patch_rollout(
        &srv,
        str_of(&r1, "id"),
        json!({"state": "paused", "revision": 1}),
    )
    .await
    .expect(200);

    let old_admin = srv.admin_token().to_owned();
    let viewer = srv.token("viewer");
    let device = srv.device_token("dev-1", "durable");
    let offer = check(&srv, "dev-1", "durable", "1.0.0").await;
    assert_eq!(offer["version"], "1.2.0");
    let fw2 = str_of(&two_step, "id").to_owned();
    for st in ["downloading", "installing", "success"] {
        report(
            &srv,
            "dev-1",
            "durable",
            &fw2,
            st,
            json!({"event_id": format!("ev-{st}")}),
        )
        .await
        .expect(200);
    }
    check(&srv, "dev-2", "durable", "1.0.0").await;
    for _ in 0..3 {
        report(&srv, "dev-2", "durable", &fw2, "downloading", json!({}))
            .await
            .expect(200);
        report(&srv, "dev-2", "durable", &fw2, "failed", json!({}))
            .await
            .expect(200);
    }
    srv.admin(Method::PATCH, "/api/ota/admin/devices/dev-2")
        .json(&json!({"groups": ["lab"]}))
        .go()
        .await
        .expect(200);
    let before = snapshot(&srv).await;
    let secret_before = std::fs::read(srv.data_dir().join("jwt-secret")).unwrap();

    srv.restart();

    assert_eq!(
        snapshot(&srv).await,
        before,
        "state changed across a graceful restart"
    );
    assert_eq!(
        std::fs::read(srv.data_dir().join("jwt-secret")).unwrap(),
        secret_before
    );
    // Tokens issued before are still valid: the secret persisted.
    srv.get("/api/ota/admin/firmware")
        .bearer_auth(&old_admin)
        .go()
        .await
        .expect(200);
    srv.get("/api/ota/admin/logs")
        .bearer_auth(&viewer)
        .go()
        .await
        .expect(200);
    srv.admin(Method::GET, "/api/ota/admin/firmware")
        .go()
        .await
        .expect(200);
    // So are capability URLs, once pointed at the new port.
    let old_url = moved(str_of(&offer, "download_url"), &srv);
    let bytes = srv.get(&old_url).go().await;
    assert_eq!(bytes.status, 200);
    assert_eq!(sha256_hex(&bytes.body), str_of(&two_step, "file_hash"));
    // The pending release can still be finished with its original upload URL.
    let mut upload = pending["upload"].clone();
    upload["url"] = json!(moved(str_of(&upload, "url"), &srv));
    put_upload(&srv, &upload, pending_file).await.expect(200);
    assert_eq!(
        finalize(&srv, str_of(&pending, "id")).await.expect(200)["state"],
        "ready"
    );

    // The device loop carries on where it was.
    let again = srv
        .post("/api/ota/check")
        .bearer_auth(&device)
        .json(&json!({"device_id": "dev-1", "device_type": "durable", "current_version": "1.2.0"}))
        .go()
        .await
        .expect(200);
    assert_eq!(again["update_available"], false);
    report(&srv, "dev-1", "durable", &fw2, "downloading", json!({}))
        .await
        .problem(409);
    let replay = report(
        &srv,
        "dev-1",
        "durable",
        &fw2,
        "downloading",
        json!({"event_id": "ev-downloading"}),
    )
    .await
    .expect(200);
    assert_eq!(
        replay["status"], "downloading",
        "the stored answer, not a new report"
    );
    assert_eq!(
        check(&srv, "dev-2", "durable", "1.0.0").await["update_available"],
        false,
        "3 failures remembered"
    );
    // Rollout revisions persisted: a stale edit is still refused.
    patch_rollout(
        &srv,
        str_of(&r1, "id"),
        json!({"state": "active", "revision": 1}),
    )
    .await
    .problem(409);
    let r2_now = srv
        .admin(
            Method::GET,
            &format!("/api/ota/admin/rollouts/{}", str_of(&r2, "id")),
        )
        .go()
        .await
        .expect(200);
    // Counters kept on write survive too: dev-2's three failed attempts, one success.
    assert_eq!(r2_now["progress"]["failure_reports"], 3, "{r2_now}");
    assert_eq!(r2_now["progress"]["success_reports"], 1, "{r2_now}");
    let without_progress = |v: &serde_json::Value| {
        let mut v = v.clone();
        v.as_object_mut().map(|o| o.remove("progress"));
        v
    };
    assert_eq!(without_progress(&r2_now), without_progress(&r2));
    let download = srv
        .device(
            Method::GET,
            &format!("/api/ota/download/{fw2}"),
            "dev-3",
            "durable",
        )
        .go()
        .await;
    assert_eq!(download.status, 302);
    assert_eq!(
        srv.get(download.header("location").unwrap())
            .go()
            .await
            .body
            .len() as u64,
        two_step["file_size"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn committed_writes_survive_a_kill() {
    let mut srv = Server::start().await;
    let fw = publish(&srv, "killed", "1.1.0").await;
    let id = str_of(&fw, "id").to_owned();
    rollout_all(&srv, &id).await;
    for i in 0..20 {
        let device = format!("k{i}");
        check(&srv, &device, "killed", "1.0.0").await;
        report(&srv, &device, "killed", &id, "downloading", json!({}))
            .await
            .expect(200);
    }
    let before = snapshot(&srv).await;

    srv.crash_and_restart();

    assert_eq!(
        snapshot(&srv).await,
        before,
        "acknowledged writes were lost"
    );
    let offer = check(&srv, "k0", "killed", "1.0.0").await;
    let got = srv.get(str_of(&offer, "download_url")).go().await;
    assert_eq!(sha256_hex(&got.body), str_of(&fw, "file_hash"));
    // Nothing half-written is left in blob storage: the one release, nothing else.
    assert_eq!(srv.stored_blobs().await, [format!("firmware/{id}.bin")]);
}
