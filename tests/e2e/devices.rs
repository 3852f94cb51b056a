//! The device registry: list with filters, detail with recent history, groups, device types.

use reqwest::Method;
use serde_json::json;

use crate::api::*;
use crate::harness::{Go, Server};

fn device_ids(items: &[serde_json::Value]) -> Vec<&str> {
    items.iter().map(|d| str_of(d, "device_id")).collect()
}

#[tokio::test]
async fn devices_are_listed_filtered_and_paginated() {
    let srv = Server::start().await;
    for (id, ty, v) in [
        ("a-1", "alpha", "1.0.0"),
        ("a-2", "alpha", "1.1.0"),
        ("a-3", "alpha", "1.1.0"),
        ("b-1", "beta_type", "1.1.0"),
        ("b-2", "beta_type", "2.0.0"),
    ] {
        check(&srv, id, ty, v).await;
    }
    srv.admin(Method::PATCH, "/api/ota/admin/devices/a-3")
        .json(&json!({"groups": ["lab"]}))
        .go()
        .await
        .expect(200);
    srv.admin(Method::PATCH, "/api/ota/admin/devices/b-1")
        .json(&json!({"groups": ["lab", "line-2"]}))
        .go()
        .await
        .expect(200);

    let all = list_all(&srv, "/api/ota/admin/devices", &[], 2).await;
    assert_eq!(device_ids(&all), ["a-1", "a-2", "a-3", "b-1", "b-2"]);
    let alpha = list_all(
        &srv,
        "/api/ota/admin/devices",
        &[("device_type", "alpha")],
        50,
    )
    .await;
    assert_eq!(device_ids(&alpha), ["a-1", "a-2", "a-3"]);
    let v11 = list_all(&srv, "/api/ota/admin/devices", &[("version", "1.1.0")], 50).await;
    assert_eq!(device_ids(&v11), ["a-2", "a-3", "b-1"]);
    let lab = list_all(&srv, "/api/ota/admin/devices", &[("group", "lab")], 50).await;
    assert_eq!(device_ids(&lab), ["a-3", "b-1"]);
    let both = list_all(
        &srv,
        "/api/ota/admin/devices",
        &[
            ("group", "lab"),
            ("device_type", "beta_type"),
            ("version", "1.1.0"),
        ],
        50,
    )
    .await;
    assert_eq!(device_ids(&both), ["b-1"]);
    assert!(
        list_all(&srv, "/api/ota/admin/devices", &[("group", "nowhere")], 50)
            .await
            .is_empty()
    );
    srv.admin(Method::GET, "/api/ota/admin/devices?version=latest")
        .go()
        .await
        .problem(400);
    srv.admin(Method::GET, "/api/ota/admin/devices?device_type=Alpha")
        .go()
        .await
        .problem(400);
}

#[tokio::test]
async fn device_detail_carries_its_recent_history() {
    let srv = Server::start().await;
    let fw = publish(&srv, "detail", "1.1.0").await;
    rollout_all(&srv, str_of(&fw, "id")).await;
    check(&srv, "dev-1", "detail", "1.0.0").await;
    for st in ["downloading", "installing"] {
        report(&srv, "dev-1", "detail", str_of(&fw, "id"), st, json!({}))
            .await
            .expect(200);
    }
    let d = srv
        .admin(Method::GET, "/api/ota/admin/devices/dev-1")
        .go()
        .await
        .expect(200);
    assert_eq!(d["device_id"], "dev-1");
    assert_eq!(d["device_type"], "detail");
    assert_eq!(d["channel"], "stable");
    assert_eq!(d["groups"], json!([]));
    assert_eq!(d["last_offer"]["firmware_id"], fw["id"]);
    assert_eq!(d["last_offer"]["version"], "1.1.0");
    let recent: Vec<&str> = d["recent_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_of(e, "status"))
        .collect();
    assert_eq!(recent, ["installing", "downloading"]);

    srv.admin(Method::GET, "/api/ota/admin/devices/never-seen")
        .go()
        .await
        .problem(404);
    srv.admin(Method::GET, "/api/ota/admin/devices/bad%20id")
        .go()
        .await
        .problem(400);
    srv.admin(Method::PATCH, "/api/ota/admin/devices/never-seen")
        .json(&json!({"groups": ["x"]}))
        .go()
        .await
        .problem(404);
    for groups in [
        json!(["has space"]),
        json!([""]),
        json!(["x".repeat(65)]),
        json!((0..33).map(|i| format!("g{i}")).collect::<Vec<_>>()),
    ] {
        srv.admin(Method::PATCH, "/api/ota/admin/devices/dev-1")
            .json(&json!({"groups": groups}))
            .go()
            .await
            .problem(400);
    }
}

#[tokio::test]
async fn device_types_are_listed_and_paginated() {
    let srv = Server::start().await;
    for name in ["zeta", "alpha", "mid_1", "mid-2"] {
        srv.admin(Method::PUT, &format!("/api/ota/admin/device-types/{name}"))
            .json(&json!({"chip": "esp32c3", "max_image_size": 1048576}))
            .go()
            .await
            .expect(200);
    }
    let all = list_all(&srv, "/api/ota/admin/device-types", &[], 3).await;
    let names: Vec<&str> = all.iter().map(|t| str_of(t, "name")).collect();
    assert_eq!(names, ["alpha", "mid-2", "mid_1", "zeta"]);
    srv.admin(Method::GET, "/api/ota/admin/device-types/absent")
        .go()
        .await
        .problem(404);
    srv.admin(Method::GET, "/api/ota/admin/device-types/Not_Valid")
        .go()
        .await
        .problem(400);
    srv.admin(Method::PUT, "/api/ota/admin/device-types/Not_Valid")
        .json(&json!({"chip": "esp32c3"}))
        .go()
        .await
        .problem(400);
    srv.admin(Method::PUT, "/api/ota/admin/device-types/alpha")
        .json(&json!({"chip": "esp32c3", "signing_key_digests": ["not-hex"]}))
        .go()
        .await
        .problem(400);
    // Replacing a policy keeps its creation time.
    let before = srv
        .admin(Method::GET, "/api/ota/admin/device-types/alpha")
        .go()
        .await
        .expect(200);
    let after = srv
        .admin(Method::PUT, "/api/ota/admin/device-types/alpha")
        .json(&json!({"chip": "esp32c3"}))
        .go()
        .await
        .expect(200);
    assert_eq!(after["created_at"], before["created_at"]);
    assert!(after["max_image_size"].is_null());
}
