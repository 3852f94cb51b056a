//! Publishing: the one-shot multipart upload, the two-step create / PUT / finalize flow, image
//! and policy checks, listing, edits and deactivation, device-type policies.

use firmware_samples::{ImageSpec, Scheme, SigningKey, Target};
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::*;
use crate::harness::{Go, Server, server_only};

fn codes(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

async fn firmware_ids(srv: &Server, query: &[(&str, &str)]) -> Vec<String> {
    list_all(srv, "/api/ota/admin/firmware", query, 500)
        .await
        .iter()
        .map(|f| str_of(f, "id").to_owned())
        .collect()
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
    })
}

#[tokio::test]
async fn multipart_upload_registers_a_ready_release_with_what_the_image_says() {
    let srv = Server::start().await;
    let file = ImageSpec {
        project_name: "scales".into(),
        secure_version: 2,
        idf_version: "v5.4.1".into(),
        ..ImageSpec::new(Target::Esp32c3, "1.2.3")
    }
    .build();
    let hash = sha256_hex(&file);
    let len = file.len();
    let fw = upload(
        &srv,
        "scales_c3",
        "v1.2.3",
        file,
        &[
            ("build_number", "7"),
            ("channel", "beta"),
            ("description", "scale bridge"),
            ("min_current_version", "1.0.0"),
            ("release_notes", "fixes the tare drift"),
        ],
    )
    .await
    .expect(201);
    assert_eq!(fw["device_type"], "scales_c3");
    assert_eq!(fw["version"], "1.2.3", "the leading v is dropped");
    assert_eq!(fw["build_number"], 7);
    assert_eq!(fw["channel"], "beta");
    assert_eq!(fw["file_size"], len);
    assert_eq!(fw["file_hash"], hash.as_str());
    assert_eq!(fw["secure_version"], 2);
    assert_eq!(fw["chip"], "esp32c3");
    assert_eq!(fw["project_name"], "scales");
    assert_eq!(fw["idf_version"], "v5.4.1");
    assert_eq!(fw["min_current_version"], "1.0.0");
    assert_eq!(fw["description"], "scale bridge");
    assert_eq!(fw["release_notes"], "fixes the tare drift");
    assert_eq!(fw["state"], "ready");
    assert_eq!(fw["is_active"], true);
    for field in ["created_at", "updated_at", "released_at"] {
        assert!(
            is_rfc3339(&fw[field]),
            "{field} is not RFC 3339: {}",
            fw[field]
        );
    }
    let id = str_of(&fw, "id");
    let mut got = get_release(&srv, id).await;
    let health = got.as_object_mut().unwrap().remove("health");
    assert_eq!(got, fw, "the record, plus its health");
    assert_eq!(
        health,
        Some(json!({"resets_by_reason": {}, "crashes": 0, "devices": 0, "crashed_devices": 0}))
    );

    // The first image created the device type, with the chip read from the image.
    let dt = srv
        .admin(Method::GET, "/api/ota/admin/device-types/scales_c3")
        .go()
        .await
        .expect(200);
    assert_eq!(dt["chip"], "esp32c3");
    assert!(dt["max_image_size"].is_null());
    assert_eq!(dt["require_signature"], false);
    let all = list_all(&srv, "/api/ota/admin/device-types", &[], 50).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["name"], "scales_c3");
}

#[tokio::test]
async fn two_step_flow_create_put_finalize() {
    let srv = Server::start().await;
    // Bigger than any JSON body limit, to prove the PUT streams.
    let file = image_of_size(Target::Esp32c3, "2.0.0", 1024 * 1024);
    let hash = sha256_hex(&file);
    let created = create_firmware(
        &srv,
        json!({
            "device_type": "two_step",
            "version": "2.0.0",
            "build_number": 3,
            "file_size": file.len(),
            "file_hash": hash.to_uppercase(),
            "channel": "stable",
            "description": "d",
            "min_current_version": "1.0.0",
            "release_notes": "n",
        }),
    )
    .await
    .expect(201);
    assert_eq!(created["state"], "pending_upload");
    assert_eq!(
        created["file_hash"],
        hash.as_str(),
        "hashes are kept lowercase"
    );
    assert_eq!(created["build_number"], 3);
    assert!(created["chip"].is_null());
    let upload = &created["upload"];
    assert_eq!(upload["method"], "PUT");
    assert!(upload["url"].as_str().unwrap().starts_with("http"));
    assert!(is_rfc3339(&upload["expires_at"]));
    let headers = upload["headers"].as_object().expect("headers");
    assert_eq!(headers["content-length"], file.len().to_string().as_str());
    assert!(headers.contains_key("x-amz-checksum-sha256"));
    let id = str_of(&created, "id").to_owned();

    // Finalize before the bytes are there: 409, and the record stays pending.
    finalize(&srv, &id).await.problem(409);
    let got = get_release(&srv, &id).await;
    assert_eq!(got["state"], "pending_upload");

    // The upload URL is a capability: no Authorization header.
    put_upload(&srv, upload, file.clone()).await.expect(200);
    let ready = finalize(&srv, &id).await.expect(200);
    assert_eq!(ready["state"], "ready");
    assert_eq!(ready["chip"], "esp32c3");
    assert_eq!(ready["project_name"], "demo");
    assert_eq!(ready["secure_version"], 0);
    assert!(is_rfc3339(&ready["released_at"]));
    assert!(ready.get("upload").is_none());
    // Finalize is idempotent on a ready release.
    assert_eq!(finalize(&srv, &id).await.expect(200), ready);

    // The stored bytes are the uploaded ones.
    rollout_all(&srv, &id).await;
    let offer = check(&srv, "dev-1", "two_step", "1.0.0").await;
    assert_eq!(offer["firmware_id"], id.as_str());
    let bytes = srv.get(str_of(&offer, "download_url")).go().await;
    assert_eq!(bytes.status, 200);
    assert_eq!(sha256_hex(&bytes.body), hash);
}

#[tokio::test]
async fn put_of_wrong_bytes_is_refused_and_never_replaces_stored_bytes() {
    let srv = Server::start().await;
    let file = image(Target::Esp32c3, "1.0.0");
    let mut wrong = file.clone();
    wrong[2000] ^= 0xFF; // same length, other content
    let created = create_firmware(
        &srv,
        json!({"device_type": "put_check", "version": "1.0.0",
               "file_size": file.len(), "file_hash": sha256_hex(&file)}),
    )
    .await
    .expect(201);
    let id = str_of(&created, "id").to_owned();
    let upload = &created["upload"];

    // Same length, other bytes: refused by the SHA-256 the URL is bound to (S3: 400 BadDigest,
    // from `x-amz-checksum-sha256`).
    let refused = put_upload(&srv, upload, wrong.clone()).await;
    srv.assert_url_refused(&refused, 400);
    if !srv.is_aws() {
        // Nothing was stored: finalize still finds no bytes. (s3s-fs, unlike S3, stores the
        // object before it compares the checksum, docs/local-aws.md: finalize would find the
        // wrong bytes there and reject the release for good.)
        finalize(&srv, &id).await.problem(409);
        assert!(
            srv.stored_blobs().await.is_empty(),
            "left behind: {:?}",
            srv.stored_blobs().await
        );
    }
    // Wrong length: refused before the body is read (S3: 403, the length is signed).
    let mismatch = if srv.is_aws() { 403 } else { 400 };
    let short = file[..file.len() - 16].to_vec();
    let url = upload["url"].as_str().unwrap();
    let r = srv.req(Method::PUT, url).body(short).go().await;
    srv.assert_url_refused(&r, mismatch);
    // A checksum header that differs from the one the URL is bound to (S3: 403, it is signed).
    let r = srv
        .req(Method::PUT, url)
        .header(
            "x-amz-checksum-sha256",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .body(file.clone())
        .go()
        .await;
    srv.assert_url_refused(&r, mismatch);
    if !srv.is_aws() {
        finalize(&srv, &id).await.problem(409);
    }

    put_upload(&srv, upload, file.clone()).await.expect(200);
    finalize(&srv, &id).await.expect(200);

    // The upload URL is still within its lifetime: wrong bytes now must not destroy the
    // released image (bytes are immutable).
    let refused = put_upload(&srv, upload, wrong).await;
    srv.assert_url_refused(&refused, 400);
    if srv.is_aws() {
        // s3s-fs has just overwritten the object with the refused bytes (S3 stores nothing on a
        // checksum mismatch): what devices get is S3's promise, not checkable here.
        return;
    }
    rollout_all(&srv, &id).await;
    let offer = check(&srv, "dev-1", "put_check", "0.1.0").await;
    let got = srv.get(str_of(&offer, "download_url")).go().await;
    assert_eq!(got.status, 200);
    assert_eq!(
        sha256_hex(&got.body),
        sha256_hex(&file),
        "the released bytes changed"
    );
}

#[tokio::test]
async fn finalize_of_a_bad_image_lists_every_reason_and_rejects() {
    let srv = Server::start().await;
    // One flipped byte inside a segment: both the XOR checksum and the appended hash break.
    let mut bad = image(Target::Esp32c3, "1.0.0");
    bad[0x400] ^= 0x55;
    let created = create_firmware(
        &srv,
        json!({"device_type": "bad_fin", "version": "1.0.0",
               "file_size": bad.len(), "file_hash": sha256_hex(&bad)}),
    )
    .await
    .expect(201);
    let id = str_of(&created, "id").to_owned();
    put_upload(&srv, &created["upload"], bad).await.expect(200);
    let r = finalize(&srv, &id).await;
    let p = r.problem(422);
    let found = codes(&p);
    for want in ["file:checksum_mismatch", "file:hash_mismatch"] {
        assert!(
            found.contains(&want.to_owned()),
            "{want} missing from {found:?}"
        );
    }
    let got = get_release(&srv, &id).await;
    assert_eq!(got["state"], "rejected");
    let reasons: Vec<&str> = got["rejection_reasons"]
        .as_array()
        .expect("rejection_reasons")
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"checksum_mismatch") && reasons.contains(&"hash_mismatch"),
        "{reasons:?}"
    );
    // Finalizing again answers the same; a rejected release cannot be rolled out.
    assert_eq!(codes(&finalize(&srv, &id).await.problem(422)), found);
    create_rollout(
        &srv,
        json!({"name": "x", "firmware_id": id, "target_type": "all"}),
    )
    .await
    .problem(422);
}

#[tokio::test]
async fn finalize_reports_policy_reasons_together() {
    let srv = Server::start().await;
    publish(&srv, "policy", "1.0.0").await; // the type now runs esp32c3
    // An esp32 image that says 2.0.0, declared as 2.0.1: wrong chip and wrong version.
    let file = image(Target::Esp32, "2.0.0");
    let created = create_firmware(
        &srv,
        json!({"device_type": "policy", "version": "2.0.1",
               "file_size": file.len(), "file_hash": sha256_hex(&file)}),
    )
    .await
    .expect(201);
    put_upload(&srv, &created["upload"], file).await.expect(200);
    let p = finalize(&srv, str_of(&created, "id")).await.problem(422);
    let found = codes(&p);
    for want in ["file:version_mismatch", "file:chip_mismatch"] {
        assert!(
            found.contains(&want.to_owned()),
            "{want} missing from {found:?}"
        );
    }
}

#[tokio::test]
async fn duplicate_version_is_409_in_both_flows() {
    let srv = Server::start().await;
    let first = publish(&srv, "dup", "1.0.0").await;
    upload(&srv, "dup", "1.0.0", image(Target::Esp32c3, "1.0.0"), &[])
        .await
        .problem(409);
    // A leading v names the same version.
    upload(&srv, "dup", "v1.0.0", image(Target::Esp32c3, "1.0.0"), &[])
        .await
        .problem(409);
    let file = image(Target::Esp32c3, "1.0.0");
    for version in ["1.0.0", "v1.0.0", "1.0.0+build.5"] {
        create_firmware(
            &srv,
            json!({"device_type": "dup", "version": version,
                   "file_size": file.len(), "file_hash": sha256_hex(&file)}),
        )
        .await
        .problem(409);
    }
    assert_eq!(
        firmware_ids(&srv, &[]).await,
        vec![str_of(&first, "id").to_owned()]
    );
    // The same version of another device type is another release.
    publish(&srv, "dup_other", "1.0.0").await;

    // Racing creates of one new version: exactly one wins.
    let body = json!({"device_type": "dup", "version": "2.0.0",
                      "file_size": file.len(), "file_hash": sha256_hex(&file)});
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let req = srv
                .admin(Method::POST, "/api/ota/admin/firmware")
                .json(&body);
            tokio::spawn(req.go())
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
}

#[tokio::test]
async fn declared_version_other_than_the_image_is_422_and_registers_nothing() {
    let srv = Server::start().await;
    let p = upload(
        &srv,
        "vcheck",
        "1.0.1",
        image(Target::Esp32c3, "1.0.0"),
        &[],
    )
    .await
    .problem(422);
    assert_eq!(codes(&p), vec!["file:version_mismatch"]);
    assert!(firmware_ids(&srv, &[]).await.is_empty());
    srv.admin(Method::GET, "/api/ota/admin/device-types/vcheck")
        .go()
        .await
        .problem(404);
    // The version is not burnt by the refusal.
    publish(&srv, "vcheck", "1.0.1").await;
}

#[tokio::test]
async fn image_for_another_chip_than_the_device_type_is_422() {
    let srv = Server::start().await;
    publish(&srv, "chipped", "1.0.0").await;
    let p = upload(&srv, "chipped", "1.1.0", image(Target::Esp32, "1.1.0"), &[])
        .await
        .problem(422);
    assert_eq!(codes(&p), vec!["file:chip_mismatch"]);

    // A policy set up front fixes the chip before any image.
    srv.admin(Method::PUT, "/api/ota/admin/device-types/s3_line")
        .json(&json!({"chip": "esp32s3"}))
        .go()
        .await
        .expect(200);
    let p = upload(
        &srv,
        "s3_line",
        "1.0.0",
        image(Target::Esp32c3, "1.0.0"),
        &[],
    )
    .await
    .problem(422);
    assert_eq!(codes(&p), vec!["file:chip_mismatch"]);
    publish_with(
        &srv,
        "s3_line",
        "1.0.0",
        image(Target::Esp32s3, "1.0.0"),
        &[],
    )
    .await;
    // The chip of an existing type never changes; unknown chips are refused.
    srv.admin(Method::PUT, "/api/ota/admin/device-types/s3_line")
        .json(&json!({"chip": "esp32c3"}))
        .go()
        .await
        .problem(409);
    srv.admin(Method::PUT, "/api/ota/admin/device-types/s3_line")
        .json(&json!({"chip": "esp8266"}))
        .go()
        .await
        .problem(400);
    assert_eq!(
        firmware_ids(&srv, &[("device_type", "s3_line")])
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn image_larger_than_max_image_size_is_422() {
    let srv = Server::start().await;
    let policy = srv
        .admin(Method::PUT, "/api/ota/admin/device-types/small")
        .json(&json!({"chip": "esp32c3", "max_image_size": 32768}))
        .go()
        .await
        .expect(200);
    assert_eq!(policy["max_image_size"], 32768);
    let got = srv
        .admin(Method::GET, "/api/ota/admin/device-types/small")
        .go()
        .await
        .expect(200);
    assert_eq!(got, policy);

    let big = image_of_size(Target::Esp32c3, "1.0.0", 64 * 1024);
    let p = upload(&srv, "small", "1.0.0", big.clone(), &[])
        .await
        .problem(422);
    assert_eq!(codes(&p), vec!["file:image_too_large"]);
    create_firmware(
        &srv,
        json!({"device_type": "small", "version": "1.0.0",
               "file_size": big.len(), "file_hash": sha256_hex(&big)}),
    )
    .await
    .problem(422);
    assert!(firmware_ids(&srv, &[]).await.is_empty());
    let fits = image_of_size(Target::Esp32c3, "1.0.0", 32 * 1024);
    assert_eq!(
        publish_with(&srv, "small", "1.0.0", fits, &[]).await["state"],
        "ready"
    );
}

#[tokio::test]
async fn signature_policy_pins_trusted_keys() {
    let srv = Server::start().await;
    let trusted = SigningKey::from_seed(Scheme::EcdsaP256, 1);
    let other = SigningKey::from_seed(Scheme::EcdsaP256, 2);
    // require_signature without a key is refused.
    srv.admin(Method::PUT, "/api/ota/admin/device-types/signed")
        .json(&json!({"chip": "esp32c6", "require_signature": true}))
        .go()
        .await
        .problem(400);
    srv.admin(Method::PUT, "/api/ota/admin/device-types/signed")
        .json(&json!({"chip": "esp32c6", "require_signature": true,
                      "signing_key_digests": [hex::encode(trusted.key_digest())]}))
        .go()
        .await
        .expect(200);
    let signed = |key: Option<SigningKey>, v: &str| {
        ImageSpec {
            signing: key,
            ..ImageSpec::new(Target::Esp32c6, v)
        }
        .build()
    };
    let p = upload(&srv, "signed", "1.0.0", signed(None, "1.0.0"), &[])
        .await
        .problem(422);
    assert_eq!(codes(&p), vec!["file:signature_missing"]);
    let p = upload(&srv, "signed", "1.0.0", signed(Some(other), "1.0.0"), &[])
        .await
        .problem(422);
    assert_eq!(codes(&p), vec!["file:signature_untrusted"]);
    let fw = publish_with(&srv, "signed", "1.0.0", signed(Some(trusted), "1.0.0"), &[]).await;
    assert_eq!(fw["chip"], "esp32c6");
}

fn corrupt(kind: &str) -> (Vec<u8>, &'static str) {
    match kind {
        "checksum" => {
            let mut f = ImageSpec {
                hash_appended: false,
                ..ImageSpec::new(Target::Esp32c3, "1.0.0")
            }
            .build();
            let last = f.len() - 1;
            f[last] ^= 0x01;
            (f, "file:checksum_mismatch")
        }
        "magic" => {
            let mut f = image(Target::Esp32c3, "1.0.0");
            f[0] = 0x00;
            (f, "file:bad_magic")
        }
        "truncated" => {
            let f = image(Target::Esp32c3, "1.0.0");
            (f[..f.len() / 2].to_vec(), "file:truncated")
        }
        "trailing" => {
            let mut f = image(Target::Esp32c3, "1.0.0");
            f.extend([0xAB; 100]);
            (f, "file:trailing_data")
        }
        other => unreachable!("{other}"),
    }
}

#[tokio::test]
async fn corrupt_images_are_422_and_leave_nothing_half_registered() {
    let srv = Server::start().await;
    for kind in ["checksum", "magic", "truncated", "trailing"] {
        let (file, code) = corrupt(kind);
        let p = upload(&srv, "corrupt", "1.0.0", file, &[])
            .await
            .problem(422);
        assert!(codes(&p).contains(&code.to_owned()), "{kind}: {p}");
        assert!(
            firmware_ids(&srv, &[]).await.is_empty(),
            "{kind} registered a release"
        );
        assert!(
            srv.stored_blobs().await.is_empty(),
            "{kind} left {:?}",
            srv.stored_blobs().await
        );
    }
    srv.admin(Method::GET, "/api/ota/admin/device-types/corrupt")
        .go()
        .await
        .problem(404);
    // The version is still free for a good image.
    publish(&srv, "corrupt", "1.0.0").await;
    assert_eq!(srv.stored_blobs().await.len(), 1);
}

#[tokio::test]
async fn uploads_over_the_limit_are_413() {
    let srv = Server::builder()
        .env("OTA_MAX_UPLOAD_BYTES", "100000")
        .start()
        .await;
    let big = image_of_size(Target::Esp32c3, "1.0.0", 256 * 1024);
    let r = upload(&srv, "capped", "1.0.0", big.clone(), &[]).await;
    r.problem(413);
    create_firmware(
        &srv,
        json!({"device_type": "capped", "version": "1.0.0",
               "file_size": big.len(), "file_hash": sha256_hex(&big)}),
    )
    .await
    .problem(413);
    assert!(firmware_ids(&srv, &[]).await.is_empty());
    assert!(
        srv.stored_blobs().await.is_empty(),
        "left {:?}",
        srv.stored_blobs().await
    );
    publish(&srv, "capped", "1.0.0").await; // 64 KB fits
}

/// Every part of the upload form counts, not only the file: a text part of megabytes is 413
/// (naming it) once it passes its 64 KiB, long before the client is done sending it, and
/// nothing is stored.
#[tokio::test]
async fn every_part_of_the_upload_form_counts() {
    use std::sync::Arc;
    if server_only(
        "API Gateway hands a function the body whole and caps it itself (10 MB, its own 413); \
         the emulator cuts it short instead",
    ) {
        return;
    }
    use std::sync::atomic::{AtomicUsize, Ordering};

    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 256; // 16 MiB of release notes
    let srv = Server::start().await;
    let boundary = "edge-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"device_type\"\r\n\r\nnotes\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"release_notes\"\r\n\r\n"
    );
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = sent.clone();
    let chunks = std::iter::once(head.into_bytes())
        .chain(std::iter::repeat_n(vec![b'n'; CHUNK], CHUNKS))
        .map(move |c| {
            counted.fetch_add(c.len(), Ordering::Relaxed);
            Ok::<_, std::io::Error>(c)
        });
    let r = srv
        .admin(Method::POST, "/api/ota/admin/upload")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .go()
        .await;
    let p = r.problem(413);
    assert_eq!(r.error_fields(), ["release_notes"], "{p}");
    assert!(
        sent.load(Ordering::Relaxed) < CHUNK * CHUNKS / 2,
        "the server read {} bytes of a refused form",
        sent.load(Ordering::Relaxed)
    );
    assert!(
        srv.stored_blobs().await.is_empty(),
        "{:?}",
        srv.stored_blobs().await
    );
}

#[tokio::test]
async fn list_is_newest_semver_first_paginated_and_filtered() {
    let srv = Server::start().await;
    // Published out of order; SemVer precedence, not text or time, decides the order.
    let versions = [
        ("1.0.0", "stable"),
        ("0.9.0", "stable"),
        ("1.10.0", "stable"),
        ("2.0.0-rc.2", "beta"),
        ("1.2.0", "stable"),
        ("2.0.0", "stable"),
        ("2.0.0-rc.10", "beta"),
        ("2.0.0-rc.1", "beta"),
    ];
    for (v, channel) in versions {
        publish_with(
            &srv,
            "lister",
            v,
            image(Target::Esp32c3, v),
            &[("channel", channel)],
        )
        .await;
    }
    publish(&srv, "other_type", "3.0.0").await;
    let file = image(Target::Esp32c3, "5.0.0");
    let pending = create_firmware(
        &srv,
        json!({"device_type": "lister", "version": "5.0.0",
               "file_size": file.len(), "file_hash": sha256_hex(&file)}),
    )
    .await
    .expect(201);

    let order = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|f| str_of(f, "version").to_owned())
            .collect()
    };
    let ready = list_all(
        &srv,
        "/api/ota/admin/firmware",
        &[("device_type", "lister"), ("state", "ready")],
        500,
    )
    .await;
    assert_eq!(
        order(&ready),
        [
            "2.0.0",
            "2.0.0-rc.10",
            "2.0.0-rc.2",
            "2.0.0-rc.1",
            "1.10.0",
            "1.2.0",
            "1.0.0",
            "0.9.0"
        ]
    );
    // Pages of 3 give the same sequence, with no item lost or repeated.
    for limit in [1, 3, 8] {
        let paged = list_all(
            &srv,
            "/api/ota/admin/firmware",
            &[("device_type", "lister"), ("state", "ready")],
            limit,
        )
        .await;
        assert_eq!(order(&paged), order(&ready), "limit {limit}");
    }
    let first = srv
        .admin(
            Method::GET,
            "/api/ota/admin/firmware?device_type=lister&limit=3",
        )
        .go()
        .await
        .expect(200);
    assert_eq!(first["items"].as_array().unwrap().len(), 3);
    assert!(first["next_cursor"].is_string());
    assert_eq!(
        first["items"][0]["version"], "5.0.0",
        "pending releases are listed too"
    );

    let everything = list_all(&srv, "/api/ota/admin/firmware", &[], 500).await;
    assert_eq!(
        order(&everything)[..2],
        ["5.0.0".to_owned(), "3.0.0".to_owned()]
    );
    assert_eq!(everything.len(), 10);
    let beta = list_all(&srv, "/api/ota/admin/firmware", &[("channel", "beta")], 500).await;
    assert_eq!(order(&beta), ["2.0.0-rc.10", "2.0.0-rc.2", "2.0.0-rc.1"]);
    let pend = list_all(
        &srv,
        "/api/ota/admin/firmware",
        &[("state", "pending_upload")],
        500,
    )
    .await;
    assert_eq!(pend.len(), 1);
    assert_eq!(pend[0]["id"], pending["id"]);
    let other = list_all(
        &srv,
        "/api/ota/admin/firmware",
        &[("device_type", "other_type")],
        500,
    )
    .await;
    assert_eq!(order(&other), ["3.0.0"]);
    assert!(
        list_all(
            &srv,
            "/api/ota/admin/firmware",
            &[("state", "rejected")],
            500
        )
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn get_patch_and_deactivate() {
    let srv = Server::start().await;
    let fw = publish_with(
        &srv,
        "editable",
        "1.1.0",
        image(Target::Esp32c3, "1.1.0"),
        &[("description", "first"), ("release_notes", "notes")],
    )
    .await;
    let id = str_of(&fw, "id").to_owned();
    let path = format!("/api/ota/admin/firmware/{id}");
    srv.admin(Method::GET, "/api/ota/admin/firmware/no-such-id")
        .go()
        .await
        .problem(404);

    let patched = srv
        .admin(Method::PATCH, &path)
        .json(
            &json!({"description": "second", "release_notes": null, "channel": "beta",
                      "min_current_version": "1.0.0"}),
        )
        .go()
        .await
        .expect(200);
    assert_eq!(patched["description"], "second");
    assert!(patched["release_notes"].is_null());
    assert_eq!(patched["channel"], "beta");
    assert_eq!(patched["min_current_version"], "1.0.0");
    assert_eq!(patched["version"], "1.1.0");
    assert_eq!(patched["file_hash"], fw["file_hash"]);
    let mut got = get_release(&srv, &id).await;
    got.as_object_mut().unwrap().remove("health");
    assert_eq!(got, patched);
    // What is immutable cannot be patched.
    let r = srv
        .admin(Method::PATCH, &path)
        .json(&json!({"version": "9.9.9"}))
        .go()
        .await;
    r.problem(400);
    assert!(
        r.error_fields().iter().any(|f| f.contains("version")),
        "{}",
        r.text()
    );
    srv.admin(Method::PATCH, "/api/ota/admin/firmware/no-such-id")
        .json(&json!({"description": "x"}))
        .go()
        .await
        .problem(404);

    // Back to stable, rolled out: offered.
    srv.admin(Method::PATCH, &path)
        .json(&json!({"channel": "stable", "min_current_version": null}))
        .go()
        .await
        .expect(200);
    rollout_all(&srv, &id).await;
    assert_eq!(
        check(&srv, "dev-1", "editable", "1.0.0").await["update_available"],
        true
    );
    let download = format!("/api/ota/download/{id}");
    let r = srv
        .device(Method::GET, &download, "dev-1", "editable")
        .go()
        .await;
    assert_eq!(r.status, 302);

    // DELETE deactivates: kept, listed, never offered or downloadable again.
    let gone = srv.admin(Method::DELETE, &path).go().await.expect(200);
    assert_eq!(gone["is_active"], false);
    let kept = srv.admin(Method::GET, &path).go().await.expect(200);
    assert_eq!(kept["is_active"], false);
    assert_eq!(kept["state"], "ready");
    assert_eq!(firmware_ids(&srv, &[]).await, vec![id.clone()]);
    assert_eq!(
        check(&srv, "dev-1", "editable", "1.0.0").await["update_available"],
        false
    );
    srv.device(Method::GET, &download, "dev-1", "editable")
        .go()
        .await
        .problem(404);
    srv.device(Method::HEAD, &download, "dev-1", "editable")
        .go()
        .await;
    let head = srv
        .device(Method::HEAD, &download, "dev-1", "editable")
        .go()
        .await;
    assert_eq!(head.status, 404);
    create_rollout(
        &srv,
        json!({"name": "again", "firmware_id": id, "target_type": "all"}),
    )
    .await
    .problem(422);
    srv.admin(Method::DELETE, "/api/ota/admin/firmware/no-such-id")
        .go()
        .await
        .problem(404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_finalizes_all_answer_with_the_stored_outcome() {
    let srv = Server::start().await;
    let good = image_of_size(Target::Esp32c3, "1.0.0", 512 * 1024);
    let mut bad = image(Target::Esp32c3, "1.1.0");
    bad[0x400] ^= 0x55;
    for (version, file, want) in [("1.0.0", good, 200), ("1.1.0", bad, 422)] {
        let created = create_firmware(
            &srv,
            json!({"device_type": "racing", "version": version,
                   "file_size": file.len(), "file_hash": sha256_hex(&file)}),
        )
        .await
        .expect(201);
        put_upload(&srv, &created["upload"], file).await.expect(200);
        let path = format!(
            "/api/ota/admin/firmware/{}/finalize",
            str_of(&created, "id")
        );
        let tasks: Vec<_> = (0..6)
            .map(|_| tokio::spawn(srv.admin(Method::POST, &path).go()))
            .collect();
        let mut bodies = Vec::new();
        for t in tasks {
            let r = t.await.unwrap();
            assert_eq!(r.status, want, "{version}: {}", r.text());
            bodies.push(r.json());
        }
        if want == 200 {
            // Every caller sees the one stored release.
            assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
        } else {
            assert!(
                bodies.windows(2).all(|w| w[0]["errors"] == w[1]["errors"]),
                "{bodies:?}"
            );
        }
        // The finalize that settled the release is the one audit event of them all.
        let audit = srv
            .admin(
                Method::GET,
                &format!(
                    "/api/ota/admin/audit?action=firmware.finalize&target_id={}",
                    str_of(&created, "id")
                ),
            )
            .go()
            .await
            .expect(200);
        assert_eq!(
            audit["items"].as_array().unwrap().len(),
            1,
            "{version}: {audit}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deactivation_is_never_undone_by_a_concurrent_edit() {
    let srv = Server::start().await;
    for round in 0..10 {
        let fw = publish(&srv, "edited", &format!("1.0.{round}")).await;
        let path = format!("/api/ota/admin/firmware/{}", str_of(&fw, "id"));
        let mut edits = Vec::new();
        for i in 0..8 {
            let req = srv
                .admin(Method::PATCH, &path)
                .json(&json!({"description": format!("edit {i}")}));
            edits.push(tokio::spawn(req.go()));
        }
        let delete = tokio::spawn(srv.admin(Method::DELETE, &path).go());
        let mut described = Vec::new();
        for (i, t) in edits.into_iter().enumerate() {
            let r = t.await.unwrap();
            assert_eq!(r.status, 200, "round {round}: {}", r.text());
            described.push(format!("edit {i}"));
        }
        let deleted = delete.await.unwrap();
        assert_eq!(deleted.status, 200, "round {round}: {}", deleted.text());
        assert_eq!(deleted.json()["is_active"], false);
        let now = srv.admin(Method::GET, &path).go().await.expect(200);
        assert_eq!(
            now["is_active"], false,
            "round {round}: the DELETE was undone"
        );
        assert!(described.contains(&now["description"].as_str().unwrap().to_owned()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_images_of_a_new_type_agree_on_one_chip() {
    let srv = Server::start().await;
    let mut tasks = Vec::new();
    for (i, target) in [
        Target::Esp32c3,
        Target::Esp32,
        Target::Esp32c3,
        Target::Esp32,
    ]
    .into_iter()
    .enumerate()
    {
        let version = format!("1.0.{i}");
        let form = upload_form("fresh_type", &version, image(target, &version), &[]);
        let req = srv
            .admin(Method::POST, "/api/ota/admin/upload")
            .multipart(form);
        tasks.push((target, tokio::spawn(req.go())));
    }
    let mut outcomes = Vec::new();
    for (target, t) in tasks {
        outcomes.push((target, t.await.unwrap()));
    }
    let dt = srv
        .admin(Method::GET, "/api/ota/admin/device-types/fresh_type")
        .go()
        .await
        .expect(200);
    let chip = str_of(&dt, "chip").to_owned();
    for (target, r) in outcomes {
        if target.name() == chip {
            assert_eq!(r.status, 201, "{target}: {}", r.text());
        } else {
            let p = r.problem(422);
            assert_eq!(codes(&p), vec!["file:chip_mismatch"]);
        }
    }
    assert_eq!(firmware_ids(&srv, &[]).await.len(), 2);
}

#[tokio::test]
async fn multipart_fields_are_validated() {
    let srv = Server::start().await;
    let file = || image(Target::Esp32c3, "1.0.0");
    for (field, value) in [
        ("build_number", "abc".to_owned()),
        ("build_number", "-1".to_owned()),
        ("channel", "has space".to_owned()),
        ("min_current_version", "1.0".to_owned()),
        ("description", "d".repeat(4097)),
        ("release_notes", "n".repeat(4097)),
    ] {
        let r = upload(&srv, "fields", "1.0.0", file(), &[(field, value.as_str())]).await;
        r.problem(400);
        assert_eq!(r.error_fields(), [field], "{field}: {}", r.text());
    }
    // Without the file, or without the required fields.
    let no_file = reqwest::multipart::Form::new()
        .text("device_type", "fields")
        .text("version", "1.0.0");
    let r = srv
        .admin(Method::POST, "/api/ota/admin/upload")
        .multipart(no_file)
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["file"]);
    let part = reqwest::multipart::Part::bytes(file()).file_name("f.bin");
    let no_version = reqwest::multipart::Form::new()
        .text("device_type", "fields")
        .part("file", part);
    let r = srv
        .admin(Method::POST, "/api/ota/admin/upload")
        .multipart(no_version)
        .go()
        .await;
    r.problem(400);
    assert_eq!(r.error_fields(), ["version"]);
    assert!(firmware_ids(&srv, &[]).await.is_empty());
    assert!(
        srv.stored_blobs().await.is_empty(),
        "left {:?}",
        srv.stored_blobs().await
    );
}

#[tokio::test]
async fn a_16_mib_image_goes_through_both_flows() {
    let srv = Server::start().await;
    let size = 16 * 1024 * 1024;
    let one_shot = image_of_size(Target::Esp32s3, "1.0.0", size);
    let fw = publish_with(&srv, "big_s3", "1.0.0", one_shot.clone(), &[]).await;
    assert_eq!(fw["file_size"], one_shot.len());
    let two_step = publish_two_step(
        &srv,
        "big_s3",
        "1.1.0",
        image_of_size(Target::Esp32s3, "1.1.0", size),
    )
    .await;
    assert_eq!(two_step["state"], "ready");
    rollout_all(&srv, str_of(&two_step, "id")).await;
    let offer = check_with(&srv, "big-1", "big_s3", "1.0.0", json!({})).await;
    let url = str_of(&offer, "download_url");
    let tail = srv.get(url).header("Range", "bytes=-4096").go().await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body.len(), 4096);
    let whole = srv.get(url).go().await;
    assert_eq!(sha256_hex(&whole.body), str_of(&two_step, "file_hash"));
}
