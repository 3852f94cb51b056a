//! Publishing on the in-memory stores: the one-shot upload, the two-step flow, edits and
//! device-type policies, with real (generated) ESP images.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use firmware_samples::{ImageSpec, Scheme, SigningKey, Target};
use ota_core::access::Role;
use ota_core::cmd::NewRelease;
use ota_core::cmd::create_release::CreateRelease;
use ota_core::cmd::edit_release::ReleaseChanges;
use ota_core::cmd::put_device_type::PutDeviceType;
use ota_core::cmd::upload_release::{MAX_TEXT_PART_BYTES, UploadForm, UploadPart};
use ota_core::error::OpError;
use ota_core::ids::{DeviceType, Version};
use ota_core::ports::{BlobMeta, BlobStore, MetaStore};
use ota_core::release::ReleaseState;
use sha2::{Digest, Sha256, Sha384};
use support::{Parts, World, admin, caller, form, invalid};

fn image(chip: Target, version: &str) -> Vec<u8> {
    ImageSpec::new(chip, version).build()
}

fn problem_codes(r: Result<impl std::fmt::Debug, OpError>) -> Vec<String> {
    match r {
        Err(OpError::ImageRejected(p)) => p.into_iter().map(|p| p.code).collect(),
        other => panic!("expected a rejected image, got {other:?}"),
    }
}

#[tokio::test]
async fn the_first_upload_creates_its_device_type_and_a_ready_release() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    assert_eq!(fw.state, ReleaseState::Ready);
    assert_eq!(fw.chip.as_deref(), Some("esp32c3"));
    assert_eq!(fw.released_at, Some(fw.created_at));
    let policy = w
        .meta
        .get_device_type(&DeviceType::parse("demo").unwrap())
        .await
        .unwrap();
    assert_eq!(policy.unwrap().chip, "esp32c3");
    assert_eq!(w.blobs.size(&fw.blob_key()).await.unwrap(), Some(64 * 1024));
    assert_eq!(w.audit_actions().await, ["firmware.upload"]);
}

#[tokio::test]
async fn a_refused_upload_registers_nothing_and_keeps_no_bytes() {
    let w = World::new();
    w.publish("demo", "1.0.0").await;
    // Another chip for the same type, a version other than the image's, and a duplicate.
    let rejected = w
        .ota
        .upload_release(
            &admin(),
            &mut form("demo", "1.1.0", image(Target::Esp32, "1.1.0")),
        )
        .await;
    assert_eq!(problem_codes(rejected), ["chip_mismatch"]);
    let mismatched = w
        .ota
        .upload_release(
            &admin(),
            &mut form("demo", "1.2.0", image(Target::Esp32c3, "1.3.0")),
        )
        .await;
    assert_eq!(problem_codes(mismatched), ["version_mismatch"]);
    let duplicate = w
        .ota
        .upload_release(
            &admin(),
            &mut form("demo", "1.0.0", image(Target::Esp32c3, "1.0.0")),
        )
        .await;
    assert_eq!(
        duplicate,
        Err(OpError::Conflict(
            "version 1.0.0 of device type demo already exists".into()
        ))
    );
    let releases = w
        .meta
        .list_releases(&Default::default(), &Default::default())
        .await
        .unwrap();
    assert_eq!(releases.items.len(), 1, "only the first");
    assert_eq!(w.audit_actions().await, ["firmware.upload"]);
}

#[tokio::test]
async fn upload_forms_are_checked_field_by_field() {
    let w = World::new();
    let file = || ("file".to_owned(), image(Target::Esp32c3, "1.0.0"));
    let text = |k: &str, v: &str| (k.to_owned(), v.as_bytes().to_vec());
    let cases = [
        (
            vec![text("device_type", "demo"), text("version", "1.0.0")],
            "file",
        ),
        (vec![file(), text("version", "1.0.0")], "device_type"),
        (vec![file(), text("device_type", "demo")], "version"),
        (
            vec![
                file(),
                text("device_type", "Demo!"),
                text("version", "1.0.0"),
            ],
            "device_type",
        ),
        (
            vec![file(), text("device_type", "demo"), text("version", "1.0")],
            "version",
        ),
        (
            vec![
                file(),
                text("device_type", "demo"),
                text("version", "1.0.0"),
                text("build_number", "-1"),
            ],
            "build_number",
        ),
        (
            vec![
                file(),
                text("device_type", "demo"),
                text("version", "1.0.0"),
                text("colour", "red"),
            ],
            "colour",
        ),
        (
            vec![
                file(),
                file(),
                text("device_type", "demo"),
                text("version", "1.0.0"),
            ],
            "file",
        ),
        (
            vec![
                file(),
                text("device_type", "demo"),
                text("version", "1.0.0"),
                text("channel", "a b"),
            ],
            "channel",
        ),
    ];
    for (parts, field) in cases {
        invalid(
            w.ota.upload_release(&admin(), &mut Parts(parts)).await,
            field,
        );
    }
    assert!(matches!(
        w.ota
            .upload_release(
                &caller(Role::Viewer),
                &mut form("demo", "1.0.0", image(Target::Esp32c3, "1.0.0"))
            )
            .await,
        Err(OpError::Forbidden(_))
    ));
}

/// A form whose one text part never ends (a client sending hundreds of megabytes as a
/// description), counting what was pulled from it.
struct EndlessText {
    before: Vec<(String, Vec<u8>)>,
    name: &'static str,
    pulled: Arc<AtomicUsize>,
}

#[async_trait]
impl UploadForm for EndlessText {
    async fn next_part(&mut self) -> Result<Option<UploadPart<'_>>, OpError> {
        if !self.before.is_empty() {
            let (name, value) = self.before.remove(0);
            let bytes = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(value))]));
            return Ok(Some(if name == "file" {
                UploadPart::File(bytes)
            } else {
                UploadPart::Text { name, value: bytes }
            }));
        }
        let pulled = self.pulled.clone();
        let endless = futures_util::stream::repeat_with(move || {
            pulled.fetch_add(1, Ordering::Relaxed);
            Ok(bytes::Bytes::from_static(&[b'a'; 1024]))
        });
        Ok(Some(UploadPart::Text {
            name: self.name.to_owned(),
            value: Box::pin(endless),
        }))
    }
}

/// Every part counts: a text part over its limit is 413 as soon as it is over (not once it has
/// been read), a field given twice is 400, and nothing of the refused form is stored.
#[tokio::test]
async fn text_parts_are_bounded_and_refused_as_soon_as_they_are_over() {
    let w = World::new();
    for before in [
        vec![],
        vec![("file".to_owned(), image(Target::Esp32c3, "1.0.0"))],
    ] {
        let pulled = Arc::new(AtomicUsize::new(0));
        let mut form = EndlessText {
            before,
            name: "description",
            pulled: pulled.clone(),
        };
        assert_eq!(
            w.ota.upload_release(&admin(), &mut form).await,
            Err(OpError::PartTooLarge {
                field: "description".into(),
                limit: MAX_TEXT_PART_BYTES,
            })
        );
        let limit_chunks = usize::try_from(MAX_TEXT_PART_BYTES / 1024).unwrap();
        assert_eq!(pulled.load(Ordering::Relaxed), limit_chunks + 1);
        assert!(w.blobs.keys().is_empty(), "{:?}", w.blobs.keys());
    }
    let text = |k: &str, v: &str| (k.to_owned(), v.as_bytes().to_vec());
    let twice = vec![
        ("file".to_owned(), image(Target::Esp32c3, "1.0.0")),
        text("device_type", "demo"),
        text("version", "1.0.0"),
        text("release_notes", "first"),
        text("release_notes", "second"),
    ];
    invalid(
        w.ota.upload_release(&admin(), &mut Parts(twice)).await,
        "release_notes",
    );
    assert!(w.blobs.keys().is_empty(), "{:?}", w.blobs.keys());
    // A text part of exactly the limit is read (and then judged by its field's own rule).
    let notes = "n".repeat(usize::try_from(MAX_TEXT_PART_BYTES).unwrap());
    let at_limit = vec![
        ("file".to_owned(), image(Target::Esp32c3, "1.0.0")),
        text("device_type", "demo"),
        text("version", "1.0.0"),
        text("release_notes", &notes),
    ];
    invalid(
        w.ota.upload_release(&admin(), &mut Parts(at_limit)).await,
        "release_notes",
    );
}

fn create(version: &str, bytes: &[u8]) -> CreateRelease {
    CreateRelease {
        release: NewRelease {
            device_type: DeviceType::parse("demo").unwrap(),
            version: Version::parse(version).unwrap(),
            build_number: None,
            channel: None,
            description: None,
            min_current_version: None,
            release_notes: None,
        },
        file_size: bytes.len() as u64,
        file_hash: hex::encode(Sha256::digest(bytes)),
    }
}

#[tokio::test]
async fn two_step_publishing_validates_at_finalize_and_is_idempotent() {
    let w = World::new();
    let bytes = image(Target::Esp32c3, "2.0.0");
    let publisher = caller(Role::Publisher);
    let (fw, target) = w
        .ota
        .create_release(&publisher, create("2.0.0", &bytes))
        .await
        .unwrap();
    assert_eq!(fw.state, ReleaseState::PendingUpload);
    assert_eq!(target.method, "PUT");
    assert!(matches!(
        w.ota.finalize_release(&publisher, &fw.id).await,
        Err(OpError::Conflict(m)) if m.contains("has no uploaded bytes yet")
    ));
    let expect = BlobMeta {
        size: bytes.len() as u64,
        sha256: Sha256::digest(&bytes).into(),
    };
    let body = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(
        bytes.clone(),
    ))]));
    w.blobs
        .put_exact(&fw.blob_key(), body, &expect)
        .await
        .unwrap();
    let ready = w.ota.finalize_release(&publisher, &fw.id).await.unwrap();
    assert_eq!(ready.state, ReleaseState::Ready);
    assert_eq!(
        w.ota.finalize_release(&publisher, &fw.id).await.unwrap(),
        ready
    );
    assert_eq!(
        w.ota
            .create_release(&publisher, create("2.0.0", &bytes))
            .await
            .map(|r| r.0.id),
        Err(OpError::Conflict(
            "version 2.0.0 of device type demo already exists".into()
        ))
    );
    // The repeated finalize answered the same without an event of its own.
    assert_eq!(
        w.audit_actions().await,
        ["firmware.create", "firmware.finalize"]
    );
}

/// Racing finalizes of one upload (a CI job retried while the first still runs) all answer the
/// ready release; the one that made it ready is the one audit event.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_finalizes_record_one_event() {
    let w = World::new();
    let bytes = image(Target::Esp32c3, "2.0.0");
    let (fw, _) = w
        .ota
        .create_release(&admin(), create("2.0.0", &bytes))
        .await
        .unwrap();
    let body = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(bytes))]));
    w.blobs.put(&fw.blob_key(), body, 1 << 20).await.unwrap();
    let finalizes: Vec<_> = (0..10)
        .map(|_| {
            let (ota, id) = (w.ota.clone(), fw.id.clone());
            tokio::spawn(async move { ota.finalize_release(&admin(), &id).await })
        })
        .collect();
    let mut answers = Vec::new();
    for f in finalizes {
        answers.push(f.await.unwrap().unwrap());
    }
    assert!(answers.iter().all(|r| *r == answers[0]), "{answers:?}");
    assert_eq!(answers[0].state, ReleaseState::Ready);
    assert_eq!(
        w.audit_actions().await,
        ["firmware.create", "firmware.finalize"]
    );
}

#[tokio::test]
async fn a_finalize_that_finds_other_bytes_rejects_the_release_for_good() {
    let w = World::new();
    let declared = image(Target::Esp32c3, "2.0.0");
    let (fw, _) = w
        .ota
        .create_release(&admin(), create("2.0.0", &declared))
        .await
        .unwrap();
    let other = image(Target::Esp32c3, "2.0.1");
    let body = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(other))]));
    w.blobs.put(&fw.blob_key(), body, 1 << 20).await.unwrap();
    let codes = problem_codes(w.ota.finalize_release(&admin(), &fw.id).await);
    assert!(
        codes.contains(&"file_hash_mismatch".to_owned()),
        "{codes:?}"
    );
    let stored = w.meta.get_release(&fw.id).await.unwrap().unwrap();
    assert_eq!(stored.state, ReleaseState::Rejected);
    // Asked again, it answers with the same reasons, and records nothing more.
    assert_eq!(
        problem_codes(w.ota.finalize_release(&admin(), &fw.id).await),
        codes
    );
    assert_eq!(
        w.meta_audit_details("firmware.finalize").await.len(),
        1,
        "one event for the finalize that rejected the release"
    );
}

#[tokio::test]
async fn create_checks_size_hash_and_the_types_limit() {
    let w = World::new();
    let bytes = image(Target::Esp32c3, "2.0.0");
    let mut bad_hash = create("2.0.0", &bytes);
    bad_hash.file_hash = "abc".into();
    invalid(w.ota.create_release(&admin(), bad_hash).await, "file_hash");
    let mut empty = create("2.0.0", &bytes);
    empty.file_size = 0;
    invalid(w.ota.create_release(&admin(), empty).await, "file_size");
    let mut huge = create("2.0.0", &bytes);
    huge.file_size = 1 << 40;
    assert_eq!(
        w.ota.create_release(&admin(), huge).await.map(|r| r.0.id),
        Err(OpError::TooLarge(64 * 1024 * 1024))
    );
    let policy = PutDeviceType {
        name: DeviceType::parse("demo").unwrap(),
        chip: "esp32c3".into(),
        max_image_size: Some(1000),
        require_signature: false,
        signing_key_digests: Vec::new(),
    };
    w.ota.put_device_type(&admin(), policy).await.unwrap();
    assert!(matches!(
        w.ota.create_release(&admin(), create("2.0.0", &bytes)).await,
        Err(OpError::Unprocessable(m)) if m.contains("max_image_size of 1000")
    ));
}

#[tokio::test]
async fn device_type_policies_keep_their_chip_and_need_a_key_to_require_signatures() {
    let w = World::new();
    let put = |chip: &str, require_signature: bool, digests: Vec<String>| PutDeviceType {
        name: DeviceType::parse("demo").unwrap(),
        chip: chip.into(),
        max_image_size: None,
        require_signature,
        signing_key_digests: digests,
    };
    invalid(
        w.ota
            .put_device_type(&admin(), put("esp99", false, vec![]))
            .await,
        "chip",
    );
    invalid(
        w.ota
            .put_device_type(&admin(), put("esp32c3", true, vec![]))
            .await,
        "signing_key_digests",
    );
    invalid(
        w.ota
            .put_device_type(&admin(), put("esp32c3", true, vec!["zz".into()]))
            .await,
        "signing_key_digests",
    );
    let first = w
        .ota
        .put_device_type(&admin(), put("esp32c3", false, vec![]))
        .await
        .unwrap();
    assert!(matches!(
        w.ota.put_device_type(&admin(), put("esp32", false, vec![])).await,
        Err(OpError::Conflict(m)) if m == "device type demo runs esp32c3; its chip cannot change"
    ));
    w.advance(time::Duration::minutes(1));
    let digest = "AB".repeat(32);
    let again = w
        .ota
        .put_device_type(&admin(), put("esp32c3", true, vec![digest]))
        .await
        .unwrap();
    assert_eq!(again.created_at, first.created_at);
    assert!(again.updated_at > first.updated_at);
    assert_eq!(again.signing_key_digests, ["ab".repeat(32)]);
    // An unsigned image is now refused.
    let unsigned = w
        .ota
        .upload_release(
            &admin(),
            &mut form("demo", "1.0.0", image(Target::Esp32c3, "1.0.0")),
        )
        .await;
    assert_eq!(problem_codes(unsigned), ["signature_missing"]);
    assert!(matches!(
        w.ota
            .put_device_type(&caller(Role::Publisher), put("esp32c3", false, vec![]))
            .await,
        Err(OpError::Forbidden(_))
    ));
}

/// The upload is read once with SHA-256 only; a P-384 block signs a SHA-384, which the use case
/// gets by reading the signed range of the stored object again.
#[tokio::test]
async fn a_p384_signature_is_checked_against_the_stored_bytes() {
    let w = World::new();
    let key = SigningKey::from_seed(Scheme::EcdsaP384, 4);
    let signed = |version: &str| {
        ImageSpec {
            hash_appended: false,
            signing: Some(key.clone()),
            ..ImageSpec::new(Target::Esp32c5, version)
        }
        .build()
    };
    let policy = PutDeviceType {
        name: DeviceType::parse("signed").unwrap(),
        chip: "esp32c5".into(),
        max_image_size: None,
        require_signature: true,
        signing_key_digests: vec![hex::encode(key.key_digest())],
    };
    w.ota.put_device_type(&admin(), policy).await.unwrap();
    let good = w
        .ota
        .upload_release(&admin(), &mut form("signed", "1.0.0", signed("1.0.0")))
        .await
        .unwrap();
    assert_eq!(good.state, ReleaseState::Ready);

    let mut tampered = signed("1.1.0");
    tampered[4] ^= 1; // the entry point: covered by the signature only
    let sector = tampered.len() - 4096;
    let expected = hex::encode(Sha384::digest(&tampered[..sector]));
    match w
        .ota
        .upload_release(&admin(), &mut form("signed", "1.1.0", tampered))
        .await
    {
        Err(OpError::ImageRejected(problems)) => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].code, "signature_digest_mismatch");
            assert!(
                problems[0]
                    .message
                    .ends_with(&format!("the image's digest is {expected}")),
                "{problems:?}"
            );
        }
        other => panic!("expected a rejected image, got {other:?}"),
    }
}

#[tokio::test]
async fn edits_change_what_may_change_and_are_audited() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    let changes = ReleaseChanges {
        release_notes: Some(Some("faster boot".into())),
        channel: Some("beta".into()),
        min_current_version: Some(Some(Version::parse("1.0.0").unwrap())),
        ..ReleaseChanges::default()
    };
    w.advance(time::Duration::seconds(1));
    let edited = w.ota.edit_release(&admin(), &fw.id, changes).await.unwrap();
    assert_eq!(edited.release_notes.as_deref(), Some("faster boot"));
    assert_eq!(edited.channel, "beta");
    assert!(edited.updated_at > fw.updated_at);
    let cleared = ReleaseChanges {
        release_notes: Some(None),
        ..ReleaseChanges::default()
    };
    let edited = w.ota.edit_release(&admin(), &fw.id, cleared).await.unwrap();
    assert_eq!(edited.release_notes, None);
    assert_eq!(edited.channel, "beta", "absent fields stay");
    let bad = ReleaseChanges {
        channel: Some("a b".into()),
        ..ReleaseChanges::default()
    };
    invalid(w.ota.edit_release(&admin(), &fw.id, bad).await, "channel");
    assert_eq!(
        w.ota
            .edit_release(&admin(), "nope", ReleaseChanges::default())
            .await,
        Err(OpError::NotFound("firmware nope does not exist".into()))
    );
    let off = w.ota.deactivate_release(&admin(), &fw.id).await.unwrap();
    assert!(!off.is_active);
    let audit = w
        .meta
        .list_audit(&Default::default(), &Default::default())
        .await
        .unwrap();
    let update = audit
        .items
        .iter()
        .rev()
        .find(|e| e.action == "firmware.update")
        .unwrap();
    assert_eq!(
        update.details,
        serde_json::json!({"release_notes": "faster boot", "channel": "beta",
                           "min_current_version": "1.0.0"})
    );
    assert_eq!(
        w.audit_actions().await,
        [
            "firmware.upload",
            "firmware.update",
            "firmware.update",
            "firmware.deactivate"
        ]
    );
}
