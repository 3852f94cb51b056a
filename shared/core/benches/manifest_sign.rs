//! Signing an update manifest (ES256: ECDSA P-256 over SHA-256, with the claims' JSON and
//! base64url): once per check that offers an update or carries a nonce, on every deployment.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ota_core::manifest::{ManifestClaims, OfferedImage};
use ota_core::manifest_keys::ManifestKeys;

fn manifest(c: &mut Criterion) {
    // A fixed P-256 scalar, so runs compare.
    let keys = ManifestKeys::parse(&"11".repeat(32)).expect("a P-256 private key");
    let claims = ManifestClaims {
        iss: "esp32-ota",
        aud: "a4cf12b3c4d5".into(),
        device_type: "demo".into(),
        iat: 1_900_000_000,
        exp: 1_900_000_900,
        nonce: Some("00112233445566778899aabbccddeeff".into()),
        update_available: true,
        offer: Some(OfferedImage {
            firmware_id: "0192f5a0-7b1c-7d4e-9a3b-5c6d7e8f9a0b".into(),
            version: "1.2.0".into(),
            build_number: 7,
            file_size: 1_572_864,
            sha256: "ab".repeat(32),
            secure_version: 3,
            chip: Some("esp32c3".into()),
            rollout_id: "0192f5a0-7b1c-7d4e-9a3b-5c6d7e8f9a0c".into(),
        }),
    };
    let mut group = c.benchmark_group("manifest");
    group.sample_size(50);
    group.bench_function("sign_offer", |b| {
        b.iter(|| keys.sign(black_box(&claims)));
    });
    group.finish();
}

criterion_group!(benches, manifest);
criterion_main!(benches);
