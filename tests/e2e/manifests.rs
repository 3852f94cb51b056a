//! Signed update manifests (docs/api.md §3.1, §3.5), verified as a device or a third party
//! would: with the JWK fetched from `GET /api/ota/keys` and an independent ES256 implementation
//! (`jsonwebtoken`), not with the server's own code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ota_core::manifest_keys::ManifestKeys;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::api::*;
use crate::harness::{Go, Server, now, server_only};

const NONCE: &str = "00112233445566778899aabbccddeeff";

/// The published key set, fetched without a credential.
async fn jwks(srv: &Server) -> Vec<Value> {
    let set = srv.get("/api/ota/keys").go().await.expect(200);
    set["keys"].as_array().expect("a keys array").clone()
}

/// The manifest's protected header, exactly as sent.
fn header_text(manifest: &str) -> String {
    let b64 = manifest.split('.').next().expect("a JWS");
    String::from_utf8(URL_SAFE_NO_PAD.decode(b64).expect("base64url")).expect("UTF-8")
}

/// The manifest's claims, verified with `jwk` for device `aud`: signature, `iss`, `aud`, `exp`.
fn verify_with(
    manifest: &str,
    jwk: &Value,
    aud: &str,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let jwk: Jwk = serde_json::from_value(jwk.clone()).expect("a JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("an EC key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[aud]);
    validation.set_issuer(&["esp32-ota"]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    jsonwebtoken::decode::<Value>(manifest, &key, &validation).map(|d| d.claims)
}

/// The manifest verified with the published key its header names, which must be the first (the
/// signing key), with the documented header.
fn verify(manifest: &str, keys: &[Value], aud: &str) -> Value {
    let first = &keys[0];
    let kid = first["kid"].as_str().expect("a kid");
    assert_eq!(
        header_text(manifest),
        format!(r#"{{"alg":"ES256","kid":"{kid}","typ":"ota-manifest+jwt"}}"#)
    );
    verify_with(manifest, first, aud).unwrap_or_else(|e| panic!("manifest does not verify: {e}"))
}

/// RFC 7638: the thumbprint of a published key, computed here from its coordinates.
fn thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        str_of(jwk, "x"),
        str_of(jwk, "y")
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn unix(v: &Value) -> i64 {
    OffsetDateTime::parse(v.as_str().expect("a time string"), &Rfc3339)
        .expect("RFC 3339")
        .unix_timestamp()
}

#[tokio::test]
async fn the_key_set_is_public_and_names_each_key_by_its_thumbprint() {
    let srv = Server::start().await;
    let keys = jwks(&srv).await;
    assert_eq!(keys.len(), 1, "one generated key: {keys:?}");
    let key = &keys[0];
    for (field, value) in [
        ("kty", "EC"),
        ("crv", "P-256"),
        ("alg", "ES256"),
        ("use", "sig"),
    ] {
        assert_eq!(key[field], value, "{key}");
    }
    assert_eq!(str_of(key, "kid"), thumbprint(key));
    for coordinate in ["x", "y"] {
        let bytes = URL_SAFE_NO_PAD.decode(str_of(key, coordinate)).unwrap();
        assert_eq!(bytes.len(), 32, "{coordinate}");
    }
    assert_eq!(
        key.as_object().unwrap().len(),
        7,
        "public members only: {key}"
    );
}

#[tokio::test]
async fn an_offer_carries_a_manifest_of_what_the_device_checks() {
    let srv = Server::start().await;
    let fw = publish(&srv, "mani", "1.1.0").await;
    let rollout = rollout_all(&srv, str_of(&fw, "id")).await;
    let before = now();
    let answer = check_with(&srv, "dev-m1", "mani", "1.0.0", json!({"nonce": NONCE})).await;
    assert_eq!(answer["update_available"], true);
    let keys = jwks(&srv).await;
    let claims = verify(str_of(&answer, "manifest"), &keys, "dev-m1");
    assert_eq!(claims["iss"], "esp32-ota");
    assert_eq!(claims["aud"], "dev-m1");
    assert_eq!(claims["device_type"], "mani");
    assert_eq!(claims["nonce"], NONCE);
    assert_eq!(claims["update_available"], true);
    for (claim, field) in [
        ("firmware_id", "firmware_id"),
        ("version", "version"),
        ("build_number", "build_number"),
        ("file_size", "file_size"),
        ("sha256", "file_hash"),
        ("secure_version", "secure_version"),
        ("rollout_id", "rollout_id"),
    ] {
        assert_eq!(claims[claim], answer[field], "{claim}");
    }
    assert_eq!(claims["rollout_id"], rollout["id"]);
    assert_eq!(claims["chip"], fw["chip"]);
    assert_eq!(claims["chip"], "esp32c3");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!((before - 1..=now() + 1).contains(&iat), "iat {iat}");
    assert_eq!(
        claims["exp"].as_i64(),
        Some(unix(&answer["url_expires_at"]))
    );

    // An offer is signed without a nonce too, and the paku check signs as the /api/ota one.
    let plain = check(&srv, "dev-m1", "mani", "1.0.0").await;
    let claims = verify(str_of(&plain, "manifest"), &keys, "dev-m1");
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert_eq!(claims["sha256"], fw["file_hash"]);
    let paku = srv
        .device(
            reqwest::Method::GET,
            &format!(
                "/api/firmware/check?device_id=dev-m1&device_model=mani&current_version=1.0.0&nonce={NONCE}"
            ),
            "dev-m1",
            "mani",
        )
        .go()
        .await
        .expect(200);
    let claims = verify(str_of(&paku, "manifest"), &keys, "dev-m1");
    assert_eq!(
        (&claims["nonce"], &claims["sha256"]),
        (&json!(NONCE), &paku["checksum_sha256"])
    );

    // Another device's manifest is no use here: it is for its own audience.
    assert!(verify_with(str_of(&plain, "manifest"), &keys[0], "dev-other").is_err());
}

#[tokio::test]
async fn no_offer_is_signed_only_when_the_device_sends_a_nonce() {
    let srv = Server::start().await;
    let plain = check(&srv, "dev-m2", "mani", "1.0.0").await;
    assert_eq!(
        plain,
        json!({"update_available": false, "poll_interval_s": 86400})
    );

    let answer = check_with(
        &srv,
        "dev-m2",
        "mani",
        "1.0.0",
        json!({"nonce": NONCE.to_uppercase()}),
    )
    .await;
    assert_eq!(answer["update_available"], false);
    let claims = verify(str_of(&answer, "manifest"), &jwks(&srv).await, "dev-m2");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(
        claims,
        json!({"iss": "esp32-ota", "aud": "dev-m2", "device_type": "mani", "iat": iat,
               "exp": iat + 900, "nonce": NONCE.to_uppercase(), "update_available": false})
    );
}

#[tokio::test]
async fn a_nonce_that_is_not_16_to_64_hex_characters_is_refused() {
    let srv = Server::start().await;
    for nonce in [
        json!("0123456789abcde"),
        json!("a".repeat(65)),
        json!("0123456789abcdeg"),
        json!(""),
    ] {
        let r = check_raw(&srv, "dev-m3", "mani", "1.0.0", json!({"nonce": nonce})).await;
        r.problem(400);
        assert_eq!(r.error_fields(), ["nonce"], "{nonce}");
    }
    let r = check_raw(&srv, "dev-m3", "mani", "1.0.0", json!({"nonce": 1234})).await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["nonce"]);
    let r = srv
        .device(
            reqwest::Method::GET,
            "/api/firmware/check?device_id=dev-m3&device_model=mani&current_version=1.0.0&nonce=xyz",
            "dev-m3",
            "mani",
        )
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["nonce"]);
}

#[tokio::test]
async fn a_rotated_key_set_publishes_both_keys_and_signs_with_the_first() {
    let (new, old) = (ManifestKeys::generate_line(), ManifestKeys::generate_line());
    let text = format!("# new key first, then the one devices still trust\n{new}\n{old}\n");
    let srv = Server::builder()
        .env("OTA_MANIFEST_KEYS", &text)
        .start()
        .await;
    let keys = jwks(&srv).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let kid = |line: &str| ManifestKeys::parse(line).unwrap().signing_kid().to_owned();
    assert_eq!(keys[0]["kid"], kid(&new));
    assert_eq!(keys[1]["kid"], kid(&old));

    let answer = check_with(&srv, "dev-m4", "mani", "1.0.0", json!({"nonce": NONCE})).await;
    let manifest = str_of(&answer, "manifest");
    verify(manifest, &keys, "dev-m4");
    assert!(
        verify_with(manifest, &keys[1], "dev-m4").is_err(),
        "the old key does not sign"
    );
}

#[tokio::test]
async fn ota_server_keeps_its_generated_key_private_and_across_restarts() {
    if server_only("the key file is ota-server's; the functions get theirs from the environment") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let mut srv = Server::start().await;
    let kid = jwks(&srv).await[0]["kid"].clone();
    let file = srv.data_dir().join("manifest-keys");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    srv.restart();
    assert_eq!(jwks(&srv).await[0]["kid"], kid);
}
