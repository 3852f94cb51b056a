//! Health and the published contract.

use serde_json::Value;

use crate::harness::{Deploy, Go, Server, deploy};

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
    ("get", "/api/ota/keys"),
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

/// Every operation of the document, as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            ops.push((method.clone(), path.clone(), op.clone()));
        }
    }
    ops
}

#[tokio::test]
async fn openapi_operations_are_what_clients_can_be_generated_from() {
    let srv = Server::start().await;
    let doc: Value = srv.get("/api/ota/openapi.json").go().await.expect(200);
    let ops = operations(&doc);
    let mut ids: Vec<&str> = ops
        .iter()
        .map(|(m, p, op)| {
            op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{m} {p}: no operationId"))
        })
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds repeat: {ids:?}");
    for (method, path, op) in &ops {
        for param in op["parameters"].as_array().into_iter().flatten() {
            let name = param["name"].as_str().unwrap();
            // A path parameter is in the template; anything else is a query or header one.
            assert_eq!(
                param["in"] == "path",
                path.contains(&format!("{{{name}}}")),
                "{method} {path}: parameter {name} is declared in {}",
                param["in"]
            );
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            if status.as_str() >= "400" {
                let types: Vec<&String> = response["content"].as_object().unwrap().keys().collect();
                assert_eq!(
                    types,
                    ["application/problem+json"],
                    "{method} {path} {status}"
                );
            }
        }
        if op["security"].as_array().is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
        }) {
            assert!(
                op["responses"].get("401").is_some(),
                "{method} {path}: no 401"
            );
        }
    }
    // Only a deployment that serves capability URLs itself documents them.
    let capability = doc["paths"]
        .get("/api/ota/blob/firmware/{object}")
        .is_some();
    assert_eq!(capability, deploy() == Deploy::Embedded);
}
