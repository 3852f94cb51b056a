//! Health and the published contract.

use serde_json::Value;

use crate::harness::{Go, Server};

#[tokio::test]
async fn health_answers_ok_without_credentials() {
    let srv = Server::start().await;
    let r = srv.get("/health").go().await;
    let body = r.expect(200);
    assert_eq!(body["status"], "ok");
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json")
    );
}

/// Every (method, path) the suite drives, as the OpenAPI document must name it.
const EXERCISED: &[(&str, &str)] = &[
    ("post", "/api/ota/check"),
    ("get", "/api/ota/download/{firmware_id}"),
    ("head", "/api/ota/download/{firmware_id}"),
    ("post", "/api/ota/status"),
    ("get", "/api/firmware/check"),
    ("get", "/api/firmware/download/{version}"),
    ("head", "/api/firmware/download/{version}"),
    ("post", "/api/device/{device_id}/update-status"),
    ("post", "/api/ota/admin/upload"),
    ("post", "/api/ota/admin/firmware"),
    ("get", "/api/ota/admin/firmware"),
    ("post", "/api/ota/admin/firmware/{id}/finalize"),
    ("get", "/api/ota/admin/firmware/{id}"),
    ("patch", "/api/ota/admin/firmware/{id}"),
    ("delete", "/api/ota/admin/firmware/{id}"),
    ("get", "/api/ota/admin/device-types"),
    ("get", "/api/ota/admin/device-types/{name}"),
    ("put", "/api/ota/admin/device-types/{name}"),
    ("post", "/api/ota/admin/rollouts"),
    ("get", "/api/ota/admin/rollouts"),
    ("get", "/api/ota/admin/rollouts/{id}"),
    ("patch", "/api/ota/admin/rollouts/{id}"),
    ("post", "/api/admin/rollout/create"),
    ("get", "/api/ota/admin/devices"),
    ("get", "/api/ota/admin/devices/{id}"),
    ("patch", "/api/ota/admin/devices/{id}"),
    ("post", "/api/ota/admin/devices/{id}/token"),
    ("get", "/api/ota/admin/logs"),
    ("get", "/health"),
    ("get", "/api/ota/openapi.json"),
];

#[tokio::test]
async fn openapi_is_3_1_and_lists_every_exercised_operation() {
    let srv = Server::start().await;
    // The contract is public: no credential.
    let doc: Value = srv.get("/api/ota/openapi.json").go().await.expect(200);
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "OpenAPI {version}, want 3.1");
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().expect("paths");
    let missing: Vec<String> = EXERCISED
        .iter()
        .filter(|(method, path)| paths.get(*path).and_then(|p| p.get(*method)).is_none())
        .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "operations missing from the OpenAPI document: {missing:?}"
    );
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    assert!(schemes.contains_key("admin_token") && schemes.contains_key("device_token"));
}
