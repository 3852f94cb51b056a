//! Credentials: admin roles, device tokens, refused tokens of every kind, minted device tokens,
//! and `OTA_DEVICE_AUTH=off`.

use firmware_samples::Target;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::api::*;
use crate::harness::{Go, Server, now, server_only, sign_with, unsigned_jwt};

fn admin_claims(role: &str, exp_offset: i64) -> Value {
    json!({"sub": "someone", "role": role, "aud": "ota-admin", "exp": now() + exp_offset})
}

fn device_claims(id: &str, device_type: &str) -> Value {
    json!({"sub": id, "aud": "ota-device", "device_type": device_type})
}

fn check_body(id: &str, device_type: &str) -> Value {
    json!({"device_id": id, "device_type": device_type, "current_version": "1.0.0"})
}

#[tokio::test]
async fn requests_without_a_valid_credential_are_401() {
    let srv = Server::start().await;
    let admin_paths = [
        (Method::GET, "/api/ota/admin/firmware"),
        (Method::GET, "/api/ota/admin/logs"),
        (Method::GET, "/api/ota/admin/devices"),
        (Method::GET, "/api/ota/admin/rollouts"),
        (Method::GET, "/api/ota/admin/device-types"),
        (Method::GET, "/api/ota/admin/metrics"),
        (Method::GET, "/api/ota/admin/audit"),
        (Method::POST, "/api/ota/admin/firmware"),
        (Method::POST, "/api/ota/admin/rollouts"),
    ];
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &admin_claims("admin", 3600),
        &EncodingKey::from_secret(b"whatever"),
    )
    .unwrap();
    let refused_admin: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("not a JWT", Some("Bearer not-a-jwt".into())),
        (
            "another scheme",
            Some(format!("Basic {}", srv.admin_token())),
        ),
        (
            "bad signature",
            Some(format!(
                "Bearer {}",
                sign_with(b"another secret", &admin_claims("admin", 3600))
            )),
        ),
        (
            "expired",
            Some(format!("Bearer {}", srv.sign(&admin_claims("admin", -120)))),
        ),
        (
            "alg none",
            Some(format!(
                "Bearer {}",
                unsigned_jwt(&admin_claims("admin", 3600))
            )),
        ),
        ("HS512", Some(format!("Bearer {hs512}"))),
        (
            "device audience",
            Some(format!("Bearer {}", srv.device_token("d1", "t"))),
        ),
        (
            "unknown role",
            Some(format!("Bearer {}", srv.sign(&admin_claims("root", 3600)))),
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                srv.sign(&json!({"sub": "x", "role": "admin", "aud": "ota-admin"}))
            )),
        ),
        (
            "no sub",
            Some(format!(
                "Bearer {}",
                srv.sign(&json!({"role": "admin", "aud": "ota-admin", "exp": now() + 60}))
            )),
        ),
    ];
    for (what, header) in &refused_admin {
        for (method, path) in &admin_paths {
            let mut req = srv.req(method.clone(), path);
            if let Some(h) = header {
                req = req.header("Authorization", h);
            }
            // Credentials come before the body: even a bad body gets 401.
            let r = req
                .header("content-type", "application/json")
                .body("{oops")
                .go()
                .await;
            assert_eq!(r.status, 401, "{what} on {method} {path}: {}", r.text());
            r.problem(401);
        }
    }

    let refused_device: Vec<(&str, String)> = vec![
        (
            "bad signature",
            sign_with(b"another secret", &device_claims("d1", "t")),
        ),
        (
            "expired",
            srv.sign(
                &json!({"sub": "d1", "aud": "ota-device", "device_type": "t", "exp": now() - 120}),
            ),
        ),
        ("alg none", unsigned_jwt(&device_claims("d1", "t"))),
        ("admin audience", srv.admin_token().to_owned()),
        (
            "no audience",
            srv.sign(&json!({"sub": "d1", "device_type": "t"})),
        ),
    ];
    let device_calls = |token: Option<&str>| -> Vec<RequestBuilder> {
        let with = |r: RequestBuilder| match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        vec![
            with(srv.post("/api/ota/check")).json(&check_body("d1", "t")),
            with(srv.post("/api/ota/status"))
                .json(&json!({"device_id": "d1", "firmware_id": "x", "status": "pending"})),
            with(srv.get("/api/ota/download/x")),
            with(srv.get("/api/firmware/check?device_id=d1&device_model=t&current_version=1.0.0")),
            with(srv.get("/api/firmware/download/1.0.0?device_model=t")),
            with(srv.post("/api/device/d1/update-status"))
                .json(&json!({"firmware_version": "1.0.0", "status": "pending"})),
        ]
    };
    for req in device_calls(None) {
        req.go().await.problem(401);
    }
    for (what, token) in &refused_device {
        for req in device_calls(Some(token)) {
            let r = req.go().await;
            assert_eq!(r.status, 401, "{what}: {}", r.text());
        }
        // The same in the device-token header.
        let r = srv
            .post("/api/ota/check")
            .header("X-OTA-Device-Token", token)
            .json(&check_body("d1", "t"))
            .go()
            .await;
        assert_eq!(r.status, 401, "{what} in X-OTA-Device-Token");
    }
}

#[tokio::test]
async fn device_tokens_act_only_as_their_own_device_and_type() {
    let srv = Server::start().await;
    // A token with a future exp is fine too.
    let expiring = srv
        .sign(&json!({"sub": "d1", "aud": "ota-device", "device_type": "t", "exp": now() + 600}));
    srv.post("/api/ota/check")
        .bearer_auth(&expiring)
        .json(&check_body("d1", "t"))
        .go()
        .await
        .expect(200);
    srv.post("/api/ota/check")
        .header("X-OTA-Device-Token", &expiring)
        .json(&check_body("d1", "t"))
        .go()
        .await
        .expect(200);
    let token = srv.device_token("d1", "t");
    for body in [check_body("d2", "t"), check_body("d1", "other_type")] {
        srv.post("/api/ota/check")
            .bearer_auth(&token)
            .json(&body)
            .go()
            .await
            .problem(403);
    }
    srv.get("/api/firmware/check?device_id=d2&device_model=t&current_version=1.0.0")
        .bearer_auth(&token)
        .go()
        .await
        .problem(403);
    // Nothing was registered for the refused identities.
    srv.admin(Method::GET, "/api/ota/admin/devices/d2")
        .go()
        .await
        .problem(404);
}

/// Every write of the admin API, as (method, path, body), for a release `id`, a rollout `rid`
/// and a device that exists.
fn writes(id: &str, rid: &str) -> Vec<(Method, String, Value)> {
    vec![
        (
            Method::PATCH,
            format!("/api/ota/admin/firmware/{id}"),
            json!({"description": "x"}),
        ),
        (
            Method::DELETE,
            format!("/api/ota/admin/firmware/{id}"),
            Value::Null,
        ),
        (
            Method::POST,
            "/api/ota/admin/rollouts".into(),
            json!({"name": "r", "firmware_id": id, "target_type": "all"}),
        ),
        (
            Method::POST,
            "/api/admin/rollout/create".into(),
            json!({"name": "r", "firmware_id": id, "target_type": "all"}),
        ),
        (
            Method::PATCH,
            format!("/api/ota/admin/rollouts/{rid}"),
            json!({"state": "paused"}),
        ),
        (
            Method::PUT,
            "/api/ota/admin/device-types/roles".into(),
            json!({"chip": "esp32c3"}),
        ),
        (
            Method::PATCH,
            "/api/ota/admin/devices/dev-1".into(),
            json!({"groups": ["g"]}),
        ),
        (
            Method::POST,
            "/api/ota/admin/devices/dev-1/token".into(),
            json!({}),
        ),
    ]
}

async fn call(srv: &Server, token: &str, method: &Method, path: &str, body: &Value) -> u16 {
    let mut req = srv.req(method.clone(), path).bearer_auth(token);
    if !body.is_null() {
        req = req.json(body);
    }
    req.go().await.status
}

#[tokio::test]
async fn roles_viewer_publisher_admin() {
    let srv = Server::start().await;
    let fw = publish(&srv, "roles", "1.0.0").await;
    let id = str_of(&fw, "id").to_owned();
    let rollout = rollout_all(&srv, &id).await;
    check(&srv, "dev-1", "roles", "0.9.0").await;
    let viewer = srv.token("viewer");
    let publisher = srv.token("publisher");

    // Viewers read everything.
    for path in [
        "/api/ota/admin/firmware".to_owned(),
        format!("/api/ota/admin/firmware/{id}"),
        "/api/ota/admin/device-types".to_owned(),
        "/api/ota/admin/device-types/roles".to_owned(),
        "/api/ota/admin/rollouts".to_owned(),
        format!("/api/ota/admin/rollouts/{}", str_of(&rollout, "id")),
        "/api/ota/admin/devices".to_owned(),
        "/api/ota/admin/devices/dev-1".to_owned(),
        "/api/ota/admin/logs".to_owned(),
        "/api/ota/admin/metrics".to_owned(),
        "/api/ota/admin/audit".to_owned(),
    ] {
        srv.get(&path).bearer_auth(&viewer).go().await.expect(200);
    }
    // ...and write nothing: not even publishing.
    let file = image(Target::Esp32c3, "1.1.0");
    upload_as(&srv, &viewer, "roles", "1.1.0", file.clone(), &[])
        .await
        .problem(403);
    let create = json!({"device_type": "roles", "version": "1.1.0", "file_size": file.len(), "file_hash": sha256_hex(&file)});
    srv.post("/api/ota/admin/firmware")
        .bearer_auth(&viewer)
        .json(&create)
        .go()
        .await
        .problem(403);
    srv.post(&format!("/api/ota/admin/firmware/{id}/finalize"))
        .bearer_auth(&viewer)
        .go()
        .await
        .problem(403);
    let rid = str_of(&rollout, "id");
    for (method, path, body) in writes(&id, rid) {
        assert_eq!(
            call(&srv, &viewer, &method, &path, &body).await,
            403,
            "viewer {method} {path}"
        );
        assert_eq!(
            call(&srv, &publisher, &method, &path, &body).await,
            403,
            "publisher {method} {path}"
        );
    }

    // Publishers publish: one-shot, and create / PUT / finalize.
    let one_shot = upload_as(&srv, &publisher, "roles", "1.1.0", file, &[])
        .await
        .expect(201);
    assert_eq!(one_shot["state"], "ready");
    let file = image(Target::Esp32c3, "1.2.0");
    let created = srv
        .post("/api/ota/admin/firmware")
        .bearer_auth(&publisher)
        .json(&json!({"device_type": "roles", "version": "1.2.0", "file_size": file.len(), "file_hash": sha256_hex(&file)}))
        .go()
        .await
        .expect(201);
    put_upload(&srv, &created["upload"], file).await.expect(200);
    let ready = srv
        .post(&format!(
            "/api/ota/admin/firmware/{}/finalize",
            str_of(&created, "id")
        ))
        .bearer_auth(&publisher)
        .go()
        .await
        .expect(200);
    assert_eq!(ready["state"], "ready");

    // Admins do everything (the same list, in order, succeeds).
    let admin = srv.token("admin");
    for (method, path, body) in writes(&id, rid) {
        let status = call(&srv, &admin, &method, &path, &body).await;
        assert!(
            (200..300).contains(&status) || status == 422,
            "admin {method} {path}: {status}"
        );
    }
}

#[tokio::test]
async fn minted_device_tokens_work_on_the_device_endpoints() {
    let srv = Server::start().await;
    let fw = publish(&srv, "minted", "1.1.0").await;
    rollout_all(&srv, str_of(&fw, "id")).await;

    // A device that never checked in needs its type named: the registry's state, so 422.
    srv.admin(Method::POST, "/api/ota/admin/devices/dev-1/token")
        .go()
        .await
        .problem(422);
    let minted = srv
        .admin(Method::POST, "/api/ota/admin/devices/dev-1/token")
        .json(&json!({"device_type": "minted"}))
        .go()
        .await
        .expect(200);
    assert_eq!(minted["device_id"], "dev-1");
    assert_eq!(minted["device_type"], "minted");
    assert!(minted["expires_at"].is_null());
    let token = str_of(&minted, "token").to_owned();
    let offer = srv
        .post("/api/ota/check")
        .bearer_auth(&token)
        .json(&check_body("dev-1", "minted"))
        .go()
        .await
        .expect(200);
    assert_eq!(offer["update_available"], true);
    let download = format!("/api/ota/download/{}", str_of(&fw, "id"));
    assert_eq!(
        srv.get(&download)
            .header("X-OTA-Device-Token", &token)
            .go()
            .await
            .status,
        302
    );
    // It is a device credential, not an admin one, and only for dev-1.
    srv.get("/api/ota/admin/firmware")
        .bearer_auth(&token)
        .go()
        .await
        .problem(401);
    srv.post("/api/ota/check")
        .bearer_auth(&token)
        .json(&check_body("dev-2", "minted"))
        .go()
        .await
        .problem(403);

    // Once registered, the type defaults to the device's own; a lifetime sets exp.
    let expiring = srv
        .admin(Method::POST, "/api/ota/admin/devices/dev-1/token")
        .json(&json!({"ttl_s": 600}))
        .go()
        .await
        .expect(200);
    assert_eq!(expiring["device_type"], "minted");
    assert!(expiring["expires_at"].is_string());
    srv.post("/api/ota/check")
        .bearer_auth(str_of(&expiring, "token"))
        .json(&check_body("dev-1", "minted"))
        .go()
        .await
        .expect(200);
    for bad in [
        json!({"ttl_s": 0}),
        json!({"device_type": "Bad"}),
        json!({"lifetime": 5}),
    ] {
        srv.admin(Method::POST, "/api/ota/admin/devices/dev-1/token")
            .json(&bad)
            .go()
            .await
            .problem(400);
    }
    srv.admin(Method::POST, "/api/ota/admin/devices/bad%20id/token")
        .json(&json!({"device_type": "minted"}))
        .go()
        .await
        .problem(400);
}

#[tokio::test]
async fn device_auth_off_lets_devices_in_without_a_token() {
    let srv = Server::builder()
        .env("OTA_DEVICE_AUTH", "off")
        .start()
        .await;
    let fw = publish(&srv, "bench", "1.1.0").await;
    let id = str_of(&fw, "id").to_owned();
    rollout_all(&srv, &id).await;
    let offer = srv
        .post("/api/ota/check")
        .json(&check_body("bench-1", "bench"))
        .go()
        .await
        .expect(200);
    assert_eq!(offer["update_available"], true);
    srv.post("/api/ota/status")
        .json(&json!({"device_id": "bench-1", "firmware_id": id, "status": "downloading"}))
        .go()
        .await
        .expect(200);
    assert_eq!(
        srv.get(&format!("/api/ota/download/{id}"))
            .go()
            .await
            .status,
        302
    );
    assert_eq!(
        srv.head(&format!("/api/ota/download/{id}"))
            .go()
            .await
            .status,
        200
    );
    let legacy = srv
        .get("/api/firmware/check?device_id=bench-2&device_model=bench&current_version=1.0.0")
        .go()
        .await
        .expect(200);
    assert_eq!(legacy["latest_version"], "1.1.0");
    // The paku status alias finds the device's type from its registration.
    srv.post("/api/device/bench-2/update-status")
        .json(&json!({"firmware_version": "1.1.0", "status": "downloading"}))
        .go()
        .await
        .expect(200);
    srv.post("/api/device/never-seen/update-status")
        .json(&json!({"firmware_version": "1.1.0", "status": "downloading"}))
        .go()
        .await
        .problem(404);
    // Admin endpoints still need a credential.
    srv.get("/api/ota/admin/firmware").go().await.problem(401);
    srv.post("/api/ota/admin/rollouts")
        .json(&json!({"name": "x", "firmware_id": id, "target_type": "all"}))
        .go()
        .await
        .problem(401);
}

#[tokio::test]
async fn the_jwt_secret_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    if server_only("the files are ota-server's; the functions read the secret from Secrets Manager")
    {
        return;
    }
    let srv = Server::start().await;
    for file in ["jwt-secret", "admin-token"] {
        let mode = std::fs::metadata(srv.data_dir().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file} has mode {:o}", mode & 0o777);
    }
    // The printed admin token is a working admin credential.
    srv.admin(Method::PUT, "/api/ota/admin/device-types/owned")
        .json(&json!({"chip": "esp32"}))
        .go()
        .await
        .expect(200);
}

/// A refusal names what is wrong with the token in the service's words, never the JWT
/// library's (serde's "missing field ... at line 1 column 70", its algorithm list); `nbf` is
/// checked and an `aud` array holding ours is accepted (RFC 7519).
#[tokio::test]
async fn refusals_are_short_and_the_registered_claims_follow_rfc_7519() {
    let srv = Server::start().await;
    let lacking = srv.sign(&json!({"sub": "d1", "aud": "ota-device"}));
    let r = srv
        .post("/api/ota/check")
        .bearer_auth(&lacking)
        .json(&check_body("d1", "t"))
        .go()
        .await;
    let p = r.problem(401);
    assert_eq!(p["detail"], "the token lacks the claim device_type", "{p}");

    let mut tomorrow = admin_claims("viewer", 7 * 86_400);
    tomorrow["nbf"] = json!(now() + 86_400);
    let r = srv
        .get("/api/ota/admin/firmware")
        .bearer_auth(srv.sign(&tomorrow))
        .go()
        .await;
    assert_eq!(r.problem(401)["detail"], "the token is not valid yet");

    let mut listed = admin_claims("viewer", 3600);
    listed["aud"] = json!(["https://idp.example", "ota-admin"]);
    srv.get("/api/ota/admin/firmware")
        .bearer_auth(srv.sign(&listed))
        .go()
        .await
        .expect(200);
}
