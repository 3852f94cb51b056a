//! Steps the tests share: images, publishing, rollouts, device calls, log, audit and metrics
//! reading, the canary formula, bounded concurrency and a seeded generator.

use std::future::Future;

use firmware_samples::{ImageSpec, Target};
use futures_util::stream::{self, StreamExt};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{Go, Resp, Server};

/// An image of `version` for `target` (64 KB, hash appended).
pub fn image(target: Target, version: &str) -> Vec<u8> {
    ImageSpec::new(target, version).build()
}

/// An image of a given size.
pub fn image_of_size(target: Target, version: &str, size: usize) -> Vec<u8> {
    ImageSpec {
        size,
        ..ImageSpec::new(target, version)
    }
    .build()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The multipart form of `POST /api/ota/admin/upload`.
pub fn upload_form(
    device_type: &str,
    version: &str,
    file: Vec<u8>,
    extra: &[(&str, &str)],
) -> Form {
    let mut form = Form::new()
        .text("device_type", device_type.to_owned())
        .text("version", version.to_owned());
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    let part = Part::bytes(file)
        .file_name("firmware.bin")
        .mime_str("application/octet-stream")
        .expect("mime");
    form.part("file", part)
}

/// One-shot upload with a given token.
pub async fn upload_as(
    srv: &Server,
    token: &str,
    device_type: &str,
    version: &str,
    file: Vec<u8>,
    extra: &[(&str, &str)],
) -> Resp {
    srv.post("/api/ota/admin/upload")
        .bearer_auth(token)
        .multipart(upload_form(device_type, version, file, extra))
        .go()
        .await
}

/// One-shot upload with the admin token.
pub async fn upload(
    srv: &Server,
    device_type: &str,
    version: &str,
    file: Vec<u8>,
    extra: &[(&str, &str)],
) -> Resp {
    upload_as(srv, srv.admin_token(), device_type, version, file, extra).await
}

/// Publishes an esp32c3 image of `version`; returns the firmware record.
pub async fn publish(srv: &Server, device_type: &str, version: &str) -> Value {
    publish_with(
        srv,
        device_type,
        version,
        image(Target::Esp32c3, version),
        &[],
    )
    .await
}

pub async fn publish_with(
    srv: &Server,
    device_type: &str,
    version: &str,
    file: Vec<u8>,
    extra: &[(&str, &str)],
) -> Value {
    upload(srv, device_type, version, file, extra)
        .await
        .expect(201)
}

/// Step one of the two-step flow with the admin token.
pub async fn create_firmware(srv: &Server, body: Value) -> Resp {
    srv.admin(Method::POST, "/api/ota/admin/firmware")
        .json(&body)
        .go()
        .await
}

/// PUTs bytes to an upload target as returned by create, with its headers.
pub async fn put_upload(srv: &Server, upload: &Value, bytes: Vec<u8>) -> Resp {
    assert_eq!(upload["method"], "PUT");
    let mut req = srv.req(Method::PUT, upload["url"].as_str().expect("upload.url"));
    for (k, v) in upload["headers"].as_object().expect("upload.headers") {
        // reqwest sets Content-Length from the body itself.
        if !k.eq_ignore_ascii_case("content-length") {
            req = req.header(k.as_str(), v.as_str().expect("header value"));
        } else {
            assert_eq!(
                v.as_str(),
                Some(bytes.len().to_string().as_str()),
                "declared content-length"
            );
        }
    }
    req.body(bytes).go().await
}

pub async fn finalize(srv: &Server, id: &str) -> Resp {
    srv.admin(
        Method::POST,
        &format!("/api/ota/admin/firmware/{id}/finalize"),
    )
    .go()
    .await
}

/// The whole two-step flow; returns the finalized record.
pub async fn publish_two_step(
    srv: &Server,
    device_type: &str,
    version: &str,
    file: Vec<u8>,
) -> Value {
    let created = create_firmware(
        srv,
        json!({
            "device_type": device_type,
            "version": version,
            "file_size": file.len(),
            "file_hash": sha256_hex(&file),
        }),
    )
    .await
    .expect(201);
    put_upload(srv, &created["upload"], file).await.expect(200);
    finalize(srv, created["id"].as_str().unwrap())
        .await
        .expect(200)
}

/// `GET /api/ota/admin/firmware/{id}`: the release record.
pub async fn get_release(srv: &Server, id: &str) -> Value {
    srv.admin(Method::GET, &format!("/api/ota/admin/firmware/{id}"))
        .go()
        .await
        .expect(200)
}

pub async fn create_rollout(srv: &Server, body: Value) -> Resp {
    srv.admin(Method::POST, "/api/ota/admin/rollouts")
        .json(&body)
        .go()
        .await
}

/// A rollout of `firmware_id` to every device of its type.
pub async fn rollout_all(srv: &Server, firmware_id: &str) -> Value {
    create_rollout(
        srv,
        json!({"name": format!("all {firmware_id}"), "firmware_id": firmware_id, "target_type": "all"}),
    )
    .await
    .expect(201)
}

pub async fn patch_rollout(srv: &Server, id: &str, body: Value) -> Resp {
    srv.admin(Method::PATCH, &format!("/api/ota/admin/rollouts/{id}"))
        .json(&body)
        .go()
        .await
}

/// `GET /api/ota/admin/rollouts/{id}` (with its progress).
pub async fn get_rollout(srv: &Server, id: &str) -> Value {
    srv.admin(Method::GET, &format!("/api/ota/admin/rollouts/{id}"))
        .go()
        .await
        .expect(200)
}

/// `u32_be(sha256(rollout_id + ":" + device_id)[0..4]) % 10000`, docs/api.md §Update rules, rule 2.
pub fn canary_bucket(rollout_id: &str, device_id: &str) -> u32 {
    let d = Sha256::digest(format!("{rollout_id}:{device_id}"));
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 10_000
}

/// Whether a canary at `percentage` includes the device, by the formula.
pub fn in_canary(rollout_id: &str, device_id: &str, percentage: u32) -> bool {
    canary_bucket(rollout_id, device_id) < percentage * 100
}

/// Rule 4 as the tests read docs/api.md: pause once there are at least `min_reports` final reports
/// and failed * 100 > threshold * (failed + success). Integers only, so "equal" is never "over".
pub fn rule4_pauses(failed: u64, success: u64, threshold: u64, min_reports: u64) -> bool {
    let finals = failed + success;
    finals >= min_reports.max(1) && failed * 100 > threshold * finals
}

/// `PATCH /api/ota/admin/devices/{id}` `{"groups": [...]}`.
pub async fn set_groups(srv: &Server, device_id: &str, groups: &[&str]) -> Value {
    srv.admin(
        Method::PATCH,
        &format!("/api/ota/admin/devices/{device_id}"),
    )
    .json(&json!({ "groups": groups }))
    .go()
    .await
    .expect(200)
}

/// `POST /api/ota/check` with the device's own token; `extra` is merged into the body.
pub async fn check_raw(
    srv: &Server,
    device_id: &str,
    device_type: &str,
    current: &str,
    extra: Value,
) -> Resp {
    let mut body = json!({
        "device_id": device_id,
        "device_type": device_type,
        "current_version": current,
    });
    merge(&mut body, extra);
    srv.device(Method::POST, "/api/ota/check", device_id, device_type)
        .json(&body)
        .go()
        .await
}

pub async fn check(srv: &Server, device_id: &str, device_type: &str, current: &str) -> Value {
    check_raw(srv, device_id, device_type, current, json!({}))
        .await
        .expect(200)
}

pub async fn check_with(
    srv: &Server,
    device_id: &str,
    device_type: &str,
    current: &str,
    extra: Value,
) -> Value {
    check_raw(srv, device_id, device_type, current, extra)
        .await
        .expect(200)
}

/// `POST /api/ota/status` with the device's own token.
pub async fn report(
    srv: &Server,
    device_id: &str,
    device_type: &str,
    firmware_id: &str,
    status: &str,
    extra: Value,
) -> Resp {
    let mut body = json!({"device_id": device_id, "firmware_id": firmware_id, "status": status});
    merge(&mut body, extra);
    srv.device(Method::POST, "/api/ota/status", device_id, device_type)
        .json(&body)
        .go()
        .await
}

/// Every item of a paginated admin list, following `next_cursor` with pages of `limit`.
pub async fn list_all(srv: &Server, path: &str, query: &[(&str, &str)], limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let mut q: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        q.push(("limit".into(), limit.to_string()));
        if let Some(c) = &cursor {
            q.push(("cursor".into(), c.clone()));
        }
        let page = srv
            .admin(Method::GET, path)
            .query(&q)
            .go()
            .await
            .expect(200);
        let batch = page["items"].as_array().expect("items").clone();
        assert!(
            batch.len() <= limit as usize,
            "a page larger than its limit"
        );
        items.extend(batch);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(
                    page["next_cursor"].is_null(),
                    "next_cursor must be a string or null"
                );
                return items;
            }
        }
    }
    panic!("pagination of {path} never ended");
}

/// The OTA log (newest first), every page.
pub async fn logs(srv: &Server, query: &[(&str, &str)]) -> Vec<Value> {
    list_all(srv, "/api/ota/admin/logs", query, 500).await
}

/// The audit log (newest first), every page.
pub async fn audit_events(srv: &Server, query: &[(&str, &str)]) -> Vec<Value> {
    list_all(srv, "/api/ota/admin/audit", query, 500).await
}

/// `GET /api/ota/admin/metrics`.
pub async fn metrics(srv: &Server) -> Value {
    srv.admin(Method::GET, "/api/ota/admin/metrics")
        .go()
        .await
        .expect(200)
}

/// Runs `f` over `items` with at most `limit` in flight; results come back in completion order.
pub async fn concurrently<T, R, F, Fut>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
    f: F,
) -> Vec<R>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = R>,
{
    stream::iter(items)
        .map(f)
        .buffer_unordered(limit)
        .collect()
        .await
}

/// SplitMix64: a tiny deterministic generator, so a failing case can be replayed by its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below n")
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

pub fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

pub fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("field '{field}' is not a string in {v}"))
}
