//! Bad input of every kind: problem+json everywhere, the field named, the right status, and a
//! seeded fuzz of JSON bodies that must never get a 5xx.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::api::*;
use crate::harness::{Deploy, Go, Resp, Server, assert_problem_shape, deploy};

fn raw_json(srv: &Server, method: Method, path: &str, body: &str) -> reqwest::RequestBuilder {
    srv.admin(method, path)
        .header("content-type", "application/json")
        .body(body.to_owned())
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let srv = Server::start().await;
    srv.get("/").go().await.problem(404);
    srv.get("/api/ota/nothing-here").go().await.problem(404);
    srv.admin(Method::GET, "/api/ota/admin/nothing")
        .go()
        .await
        .problem(404);
    srv.req(Method::DELETE, "/api/ota/check")
        .go()
        .await
        .problem(405);
    srv.get("/api/ota/check").go().await.problem(405);
    srv.admin(Method::PUT, "/api/ota/admin/logs")
        .go()
        .await
        .problem(405);
}

#[tokio::test]
async fn unknown_json_fields_are_refused_naming_the_field() {
    let srv = Server::start().await;
    let fw = publish(&srv, "strict", "1.0.0").await;
    let id = str_of(&fw, "id");
    let rollout = rollout_all(&srv, id).await;
    let token = srv.device_token("d1", "strict");
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/ota/check".into(),
            json!({"device_id": "d1", "device_type": "strict", "current_version": "1.0.0", "firmware": "x"}),
            "firmware",
        ),
        (
            Method::POST,
            "/api/ota/status".into(),
            json!({"device_id": "d1", "firmware_id": id, "status": "pending", "percent": 5}),
            "percent",
        ),
        (
            Method::POST,
            "/api/ota/admin/firmware".into(),
            json!({"device_type": "strict", "version": "2.0.0", "file_size": 10, "file_hash": "ab".repeat(32), "sha1": "x"}),
            "sha1",
        ),
        (
            Method::POST,
            "/api/ota/admin/rollouts".into(),
            json!({"name": "r", "firmware_id": id, "target_type": "all", "everyone": true}),
            "everyone",
        ),
        (
            Method::POST,
            "/api/ota/admin/rollouts".into(),
            json!({"name": "r", "firmware_id": id, "target_type": "specific", "target_filter": {"device_ids": ["a"], "regions": ["eu"]}}),
            "target_filter.regions",
        ),
        (
            Method::PATCH,
            format!("/api/ota/admin/rollouts/{}", str_of(&rollout, "id")),
            json!({"state": "paused", "reason": "x"}),
            "reason",
        ),
        (
            Method::PATCH,
            format!("/api/ota/admin/firmware/{id}"),
            json!({"file_hash": "x"}),
            "file_hash",
        ),
        (
            Method::PUT,
            "/api/ota/admin/device-types/strict".into(),
            json!({"chip": "esp32c3", "flash": "4MB"}),
            "flash",
        ),
        (
            Method::PATCH,
            "/api/ota/admin/devices/d1".into(),
            json!({"groups": [], "name": "x"}),
            "name",
        ),
    ];
    check(&srv, "d1", "strict", "0.1.0").await;
    for (method, path, body, field) in cases {
        let mut req = srv.req(method.clone(), &path).json(&body);
        req = if path.starts_with("/api/ota/admin") {
            req.bearer_auth(srv.admin_token())
        } else {
            req.bearer_auth(&token)
        };
        let r = req.go().await;
        let p = r.problem(400);
        assert_eq!(r.error_fields(), [field], "{method} {path}: {p}");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(field.rsplit('.').next().unwrap()),
            "{p}"
        );
    }
    // Unknown multipart fields too.
    let r = upload(
        &srv,
        "strict",
        "1.1.0",
        vec![0xE9; 1024],
        &[("colour", "blue")],
    )
    .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["colour"]);
    // Nothing changed.
    assert_eq!(
        list_all(&srv, "/api/ota/admin/firmware", &[], 50)
            .await
            .len(),
        1
    );
    assert_eq!(
        list_all(&srv, "/api/ota/admin/rollouts", &[], 50)
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn malformed_json_and_wrong_content_types() {
    let srv = Server::start().await;
    for body in [
        "{",
        "[1,2",
        r#"{"device_type": }"#,
        "",
        "null",
        "[]",
        r#""text""#,
        r#"{"a":1,}"#,
        "\u{feff}{}",
    ] {
        let r = raw_json(&srv, Method::POST, "/api/ota/admin/firmware", body)
            .go()
            .await;
        let p = r.problem(400);
        assert_eq!(p["type"], "/problems/invalid-json", "{body:?}: {p}");
    }
    let check =
        json!({"device_id": "d1", "device_type": "t", "current_version": "1.0.0"}).to_string();
    let token = srv.device_token("d1", "t");
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/xml"),
    ] {
        let mut req = srv
            .post("/api/ota/check")
            .bearer_auth(&token)
            .body(check.clone());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.go().await.problem(415);
    }
    // JSON with parameters or a +json type is JSON.
    for ct in [
        "application/json; charset=utf-8",
        "application/vnd.ota+json",
    ] {
        srv.post("/api/ota/check")
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(check.clone())
            .go()
            .await
            .expect(200);
    }
    // The upload takes multipart only.
    srv.admin(Method::POST, "/api/ota/admin/upload")
        .json(&json!({"device_type": "t", "version": "1.0.0"}))
        .go()
        .await
        .problem(415);
    // A JSON body larger than any request needs.
    let big = json!({"device_id": "d1", "device_type": "t", "current_version": "1.0.0", "channel": "x".repeat(300_000)});
    srv.post("/api/ota/check")
        .bearer_auth(&token)
        .json(&big)
        .go()
        .await
        .problem(413);
}

#[tokio::test]
async fn invalid_identifiers_are_400_naming_the_field() {
    let srv = Server::builder()
        .env("OTA_DEVICE_AUTH", "off")
        .start()
        .await;
    let base =
        json!({"device_id": "d1", "device_type": "valid_type-1", "current_version": "1.0.0"});
    srv.post("/api/ota/check")
        .json(&base)
        .go()
        .await
        .expect(200);
    let bad: Vec<(&str, Value)> = vec![
        ("device_type", json!("Upper")),
        ("device_type", json!("_leading")),
        ("device_type", json!("-leading")),
        ("device_type", json!("has space")),
        ("device_type", json!("a".repeat(65))),
        ("device_type", json!("")),
        ("device_type", json!(5)),
        ("device_id", json!("has space")),
        ("device_id", json!("")),
        ("device_id", json!("x".repeat(129))),
        ("device_id", json!("a/b")),
        ("device_id", json!(1.5)),
        ("device_id", json!(true)),
        ("device_id", json!(null)),
        ("current_version", json!("1.0")),
        ("current_version", json!("latest")),
        ("current_version", json!("01.0.0")),
        ("current_version", json!("1.0.0-")),
        ("current_version", json!("99999999999999999999.0.0")),
        ("current_version", json!(1)),
        ("channel", json!("has space")),
        ("channel", json!("")),
        ("secure_version", json!(-1)),
        ("current_build", json!("7")),
    ];
    for (field, value) in bad {
        let mut body = base.clone();
        body[field] = value.clone();
        let r = srv.post("/api/ota/check").json(&body).go().await;
        r.problem(400);
        assert_eq!(r.error_fields(), [field], "{field} = {value}: {}", r.text());
    }
    // Within the limits is fine.
    for (field, value) in [
        ("device_type", json!("a".repeat(64))),
        ("device_type", json!("0")),
        ("device_id", json!("x".repeat(128))),
        ("device_id", json!("AA:BB:CC.dd_ee-ff")),
        ("current_version", json!("v1.2.3-rc.1+build.5")),
    ] {
        let mut body = base.clone();
        body[field] = value;
        srv.post("/api/ota/check")
            .json(&body)
            .go()
            .await
            .expect(200);
    }
    // In paths and query strings as well.
    srv.admin(Method::GET, "/api/ota/admin/devices/has%20space")
        .go()
        .await
        .problem(400);
    srv.admin(Method::GET, "/api/ota/admin/device-types/UPPER")
        .go()
        .await
        .problem(400);
    srv.get("/api/firmware/download/not-a-version?device_model=valid_type-1")
        .go()
        .await
        .problem(400);
    srv.admin(Method::GET, "/api/ota/admin/firmware?device_type=UPPER")
        .go()
        .await
        .problem(400);
    let r = upload(&srv, "valid_type-1", "1.0", vec![0xE9; 1024], &[]).await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["version"]);
    let r = upload(&srv, "Bad Type", "1.0.0", vec![0xE9; 1024], &[]).await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["device_type"]);
}

#[tokio::test]
async fn a_device_id_may_be_a_json_number() {
    let srv = Server::start().await;
    let fw = publish(&srv, "numeric", "1.1.0").await;
    let id = str_of(&fw, "id");
    rollout_all(&srv, id).await;
    let offer = srv
        .device(Method::POST, "/api/ota/check", "123456789", "numeric")
        .json(
            &json!({"device_id": 123456789, "device_type": "numeric", "current_version": "1.0.0"}),
        )
        .go()
        .await
        .expect(200);
    assert_eq!(offer["update_available"], true);
    let st = srv
        .device(Method::POST, "/api/ota/status", "123456789", "numeric")
        .json(&json!({"device_id": 123456789, "firmware_id": id, "status": "downloading"}))
        .go()
        .await
        .expect(200);
    assert_eq!(st["device_id"], "123456789");
    let dev = srv
        .admin(Method::GET, "/api/ota/admin/devices/123456789")
        .go()
        .await
        .expect(200);
    assert_eq!(dev["device_id"], "123456789");
    // Negative numbers are read as their decimal string as well.
    srv.device(Method::POST, "/api/ota/check", "-42", "numeric")
        .json(&json!({"device_id": -42, "device_type": "numeric", "current_version": "1.0.0"}))
        .go()
        .await
        .expect(200);
}

#[tokio::test]
async fn bad_limits_and_cursors_are_400() {
    let srv = Server::start().await;
    publish(&srv, "paging", "1.0.0").await;
    let lists = [
        "/api/ota/admin/firmware",
        "/api/ota/admin/rollouts",
        "/api/ota/admin/devices",
        "/api/ota/admin/logs",
        "/api/ota/admin/device-types",
    ];
    // A well-formed cursor of another list's shape is as bad as garbage.
    let wrong_shape = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"not":"a position"}"#)
    };
    for path in lists {
        for limit in ["0", "501", "-1", "abc", "1.5"] {
            let r = srv
                .admin(Method::GET, path)
                .query(&[("limit", limit)])
                .go()
                .await;
            r.problem(400);
            assert_eq!(r.error_fields(), ["limit"], "{path}?limit={limit}");
        }
        for cursor in ["!!!", "bm90IGpzb24", wrong_shape.as_str()] {
            let r = srv
                .admin(Method::GET, path)
                .query(&[("cursor", cursor)])
                .go()
                .await;
            r.problem(400);
            assert_eq!(r.error_fields(), ["cursor"], "{path}?cursor={cursor}");
        }
        for limit in ["1", "500"] {
            srv.admin(Method::GET, path)
                .query(&[("limit", limit)])
                .go()
                .await
                .expect(200);
        }
        let r = srv
            .admin(Method::GET, path)
            .query(&[("sort", "asc")])
            .go()
            .await;
        r.problem(400);
    }
}

#[tokio::test]
async fn keep_alive_clients_survive_refused_bodies() {
    let srv = Server::start().await;
    let body = vec![0u8; 200_000];
    for i in 0..20 {
        // Refused before the body is read: the connection must be marked for closing.
        let r = srv
            .req(
                Method::PUT,
                "/api/ota/blob/firmware/x.bin?exp=1&size=5&sha256=00&sig=00",
            )
            .body(body.clone())
            .go()
            .await;
        // With the AWS storage the server has no capability endpoint of its own: 404.
        r.problem(if srv.is_aws() { 404 } else { 403 });
        assert_eq!(r.header("connection"), Some("close"), "round {i}");
        srv.post("/api/ota/admin/firmware")
            .header("content-type", "application/json")
            .body(body.clone())
            .go()
            .await
            .problem(401);
        srv.get("/health").go().await.expect(200);
    }
}

// ---- fuzz ------------------------------------------------------------------------------------

/// Strings that are valid somewhere, almost valid, or hostile.
fn string_pool(firmware_id: &str) -> Vec<String> {
    vec![
        String::new(),
        "a".into(),
        "fuzz".into(),
        "d1".into(),
        "1.0.0".into(),
        "v2.0.0-rc.1+b.7".into(),
        "1.0".into(),
        "99999999999999999999.0.0".into(),
        "stable".into(),
        "beta".into(),
        "all".into(),
        "canary".into(),
        "specific".into(),
        "group".into(),
        "active".into(),
        "paused".into(),
        "aborted".into(),
        "completed".into(),
        "pending".into(),
        "downloading".into(),
        "success".into(),
        "failed".into(),
        "rolled_back".into(),
        "ab".repeat(32),
        "AB".repeat(32),
        firmware_id.to_owned(),
        "0194f1a2-0000-7000-8000-000000000000".into(),
        "x".repeat(5000),
        "é\u{0}ß\u{202e}😀".into(),
        "'; DROP TABLE firmware; --".into(),
        "../../jwt-secret".into(),
        "%00%2e%2e".into(),
        "check-in:d1:x".into(),
        "\\\"\n\t".into(),
    ]
}

fn random_value(rng: &mut Rng, pool: &[String], depth: usize) -> Value {
    match rng.below(if depth > 2 { 9 } else { 11 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => json!(i64::try_from(rng.below(200)).unwrap() - 50),
        3 => json!(*rng.pick(&[
            u64::MAX,
            i64::MAX as u64,
            1 << 53,
            4_294_967_296,
            65536,
            256,
            101
        ])),
        4 => json!(*rng.pick(&[i64::MIN, -1, -4_294_967_296])),
        5 => json!(*rng.pick(&[0.5, -0.0, 1e308, -1e-308, 100.000_001, 99.99])),
        6..=8 => Value::String(rng.pick(pool).clone()),
        9 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, pool, depth + 1))
                .collect(),
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                let k = rng.pick(pool).chars().take(20).collect::<String>();
                m.insert(k, random_value(rng, pool, depth + 1));
            }
            Value::Object(m)
        }
    }
}

/// A body that starts from a valid one and breaks it at random: fields replaced, dropped or
/// added, or the whole body replaced.
fn mutate(rng: &mut Rng, valid: &Value, pool: &[String]) -> Value {
    if rng.chance(5) {
        return random_value(rng, pool, 0);
    }
    let mut out = Map::new();
    for (k, v) in valid.as_object().expect("templates are objects") {
        match rng.below(10) {
            0 => {}
            1..=3 => {
                out.insert(k.clone(), random_value(rng, pool, 1));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if rng.chance(10) {
        out.insert(
            rng.pick(pool).chars().take(30).collect(),
            random_value(rng, pool, 1),
        );
    }
    Value::Object(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_json_bodies_never_get_a_5xx() {
    const CASES_PER_ENDPOINT: usize = 150;
    let seed: u64 = std::env::var("OTA_E2E_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x007A_5EED);
    let srv = Server::builder()
        .env("OTA_DEVICE_AUTH", "off")
        .start()
        .await;
    let fw = publish(&srv, "fuzz", "1.0.0").await;
    let fw_id = str_of(&fw, "id").to_owned();
    let rollout = rollout_all(&srv, &fw_id).await;
    let pool = string_pool(&fw_id);
    let endpoints: Vec<(Method, String, Value)> = vec![
        (
            Method::POST,
            "/api/ota/check".into(),
            json!({"device_id": "d1", "device_type": "fuzz", "current_version": "0.9.0",
                   "current_build": 1, "secure_version": 0, "channel": "stable"}),
        ),
        (
            Method::POST,
            "/api/ota/status".into(),
            json!({"device_id": "d1", "firmware_id": fw_id, "status": "downloading",
                   "bytes_downloaded": 100, "progress_percent": 10, "error_message": null, "event_id": "e1"}),
        ),
        (
            Method::POST,
            "/api/ota/admin/firmware".into(),
            json!({"device_type": "fuzz", "version": "2.0.0", "build_number": 1, "file_size": 65536,
                   "file_hash": "ab".repeat(32), "channel": "stable", "description": "d",
                   "min_current_version": "1.0.0", "release_notes": "n"}),
        ),
        (
            Method::POST,
            "/api/ota/admin/rollouts".into(),
            json!({"name": "r", "firmware_id": fw_id, "target_type": "specific", "rollout_percentage": 50,
                   "target_filter": {"device_ids": ["d1"]},
                   "failure_threshold_percent": 20, "min_reports": 5, "allow_downgrade": false}),
        ),
        (
            Method::PATCH,
            format!("/api/ota/admin/rollouts/{}", str_of(&rollout, "id")),
            json!({"rollout_percentage": 50, "state": "paused", "revision": 1}),
        ),
        (
            Method::PATCH,
            format!("/api/ota/admin/firmware/{fw_id}"),
            json!({"description": "d", "release_notes": "n", "channel": "beta", "is_active": true,
                   "min_current_version": "0.1.0"}),
        ),
    ];
    let mut rng = Rng(seed);
    let mut statuses = std::collections::BTreeMap::new();
    for (method, path, valid) in &endpoints {
        for case in 0..CASES_PER_ENDPOINT {
            let body = mutate(&mut rng, valid, &pool);
            let r: Resp = srv.admin(method.clone(), path).json(&body).go().await;
            assert!(
                r.status < 500,
                "seed {seed:#x}, {method} {path} case {case}: {} for body {body}\n{}",
                r.status,
                r.text()
            );
            if r.status >= 400 {
                assert_problem_shape(&r);
            } else {
                r.json();
            }
            *statuses.entry((path.clone(), r.status)).or_insert(0) += 1;
        }
        // Invalid bytes as JSON.
        for case in 0..20 {
            // cargo lambda watch answers 500 itself, before any function runs, for a JSON body
            // that is not UTF-8 (it cannot put it into the event as text): there the bytes are
            // ASCII, still not JSON.
            let mask = if deploy() == Deploy::Lambda {
                0x7f
            } else {
                0xff
            };
            let bytes: Vec<u8> = (0..rng.below(64))
                .map(|_| rng.next().to_le_bytes()[0] & mask)
                .collect();
            let r = srv
                .admin(method.clone(), path)
                .header("content-type", "application/json")
                .body(bytes)
                .go()
                .await;
            assert_eq!(
                r.status, 400,
                "seed {seed:#x}, {method} {path} raw case {case}"
            );
            assert_problem_shape(&r);
        }
    }
    // The fuzz reached past validation: some bodies were accepted on every endpoint.
    for (_, path, _) in &endpoints {
        let ok = statuses
            .iter()
            .filter(|((p, s), _)| p == path && (200..300).contains(s))
            .count();
        assert!(
            ok > 0,
            "no fuzzed body was accepted by {path}: {statuses:?}"
        );
    }
    // The service is still healthy and consistent.
    srv.get("/health").go().await.expect(200);
    list_all(&srv, "/api/ota/admin/firmware", &[], 500).await;
    list_all(&srv, "/api/ota/admin/logs", &[], 500).await;
}

#[tokio::test]
async fn path_parameters_that_are_not_utf8_are_problems_naming_them() {
    let srv = Server::start().await;
    let r = srv
        .admin(Method::GET, "/api/ota/admin/firmware/%FF%FE")
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["id"]);
    let r = srv
        .device(Method::GET, "/api/ota/download/%C3%28", "d1", "t1")
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["firmware_id"]);
}

#[tokio::test]
async fn a_missing_query_parameter_is_named() {
    let srv = Server::start().await;
    let r = srv
        .device(Method::GET, "/api/firmware/check", "d1", "t1")
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["device_id"]);
    let r = srv
        .device(Method::GET, "/api/firmware/check?device_id=d1", "d1", "t1")
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["device_model"]);
}

#[tokio::test]
async fn integers_written_with_a_zero_fraction_are_integers() {
    let srv = Server::start().await;
    let body = json!({"device_id": "d1", "device_type": "t1", "current_version": "1.0.0",
                      "current_build": 7.0, "secure_version": 2.0});
    let r = srv
        .device(Method::POST, "/api/ota/check", "d1", "t1")
        .json(&body)
        .go()
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut fractional = body.clone();
    fractional["secure_version"] = json!(2.5);
    let r = srv
        .device(Method::POST, "/api/ota/check", "d1", "t1")
        .json(&fractional)
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["secure_version"]);
}

#[tokio::test]
async fn bodies_and_the_records_in_them_are_objects_not_arrays_of_their_fields() {
    let srv = Server::start().await;
    let r = srv
        .device(Method::POST, "/api/ota/check", "d1", "t1")
        .json(&json!(["d1", "t1", "1.0.0"]))
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["body"]);
    let r = srv
        .admin(Method::POST, "/api/ota/admin/rollouts")
        .json(
            &json!({"name": "r", "firmware_id": "f", "target_type": "specific",
                      "target_filter": [["d1"], []]}),
        )
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["target_filter"]);
}
