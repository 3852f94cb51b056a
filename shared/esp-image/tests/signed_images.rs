//! Secure Boot V2 signatures made by the independent generator (the esptool cross-check lives
//! in `firmware-samples/tests/esptool_oracle.rs`).

use esp_image::{Chip, SignatureScheme, Validator, code, validate};
use firmware_samples::{ImageSpec, RSA3072_SEED1_PEM, Scheme, SigningKey, Target};

fn rsa() -> SigningKey {
    SigningKey::from_pkcs8_pem(RSA3072_SEED1_PEM).unwrap_or_else(|e| panic!("{e}"))
}

fn signed(chip: Target, key: &SigningKey, hash_appended: bool) -> Vec<u8> {
    ImageSpec {
        hash_appended,
        signing: Some(key.clone()),
        ..ImageSpec::new(chip, "4.0.0")
    }
    .build()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_scheme_verifies_and_reports_the_key_digest() {
    let cases = [
        (
            SigningKey::from_seed(Scheme::EcdsaP256, 3),
            SignatureScheme::EcdsaP256,
        ),
        (
            SigningKey::from_seed(Scheme::EcdsaP384, 3),
            SignatureScheme::EcdsaP384,
        ),
        (rsa(), SignatureScheme::Rsa3072Pss),
    ];
    for (key, scheme) in cases {
        for hash in [true, false] {
            let bytes = signed(Target::Esp32c5, &key, hash);
            let info = validate(&bytes).unwrap_or_else(|r| panic!("{scheme:?}: {r}"));
            assert_eq!(info.chip, Chip::Esp32c5);
            assert_eq!(info.image_len % 0x1_0000, 0, "signed part ends on 64 KB");
            let signature = info
                .signature
                .unwrap_or_else(|| panic!("{scheme:?}: unsigned?"));
            assert_eq!(signature.sector_offset, info.image_len);
            assert_eq!(info.file_len, info.image_len + 4096);
            let block = &signature.blocks[0];
            assert_eq!(block.scheme, scheme);
            assert_eq!(block.key_digest, hex(&key.key_digest()));
            assert!(block.image_digest_matches && block.signature_valid);
        }
    }
}

#[test]
fn a_signature_by_another_key_over_the_same_image_is_still_valid() {
    // Validity is about the block being self-consistent and covering this image; whether the
    // key is trusted is the caller's decision, by comparing `key_digest` with pinned ones.
    let a = signed(
        Target::Esp32c6,
        &SigningKey::from_seed(Scheme::EcdsaP256, 1),
        true,
    );
    let b = signed(
        Target::Esp32c6,
        &SigningKey::from_seed(Scheme::EcdsaP256, 2),
        true,
    );
    let digest = |bytes: &[u8]| {
        validate(bytes)
            .ok()
            .and_then(|i| i.signature)
            .map(|s| s.blocks[0].key_digest.clone())
    };
    assert!(digest(&a).is_some());
    assert_ne!(digest(&a), digest(&b));
}

#[test]
fn schemes_the_chip_cannot_verify_are_rejected() {
    let p256 = SigningKey::from_seed(Scheme::EcdsaP256, 1);
    for (chip, key) in [
        (Target::Esp32c3, &p256),
        (Target::Esp32, &p256),
        (Target::Esp32c61, &rsa()),
    ] {
        let codes = validate(&signed(chip, key, true)).err().map(|r| r.codes());
        assert_eq!(
            codes,
            Some(vec![code::SIGNATURE_SCHEME_NOT_ALLOWED]),
            "{chip}"
        );
    }
}

#[test]
fn a_signature_moved_to_another_image_does_not_cover_it() {
    let key = SigningKey::from_seed(Scheme::EcdsaP256, 1);
    let v1 = signed(Target::Esp32h2, &key, true);
    let mut v2 = ImageSpec {
        signing: Some(key),
        ..ImageSpec::new(Target::Esp32h2, "4.0.1")
    }
    .build();
    let sector = v2.len() - 4096;
    v2[sector..].copy_from_slice(&v1[sector..]);
    let rejection = validate(&v2).err();
    assert_eq!(
        rejection.map(|r| r.codes()),
        Some(vec![code::SIGNATURE_DIGEST_MISMATCH])
    );
}

#[test]
fn p384_digests_agree_whole_and_streamed() {
    // `validate` hashes SHA-384 only once a P-384 block asks for it; a stream hashes as it goes.
    let good = signed(
        Target::Esp32c5,
        &SigningKey::from_seed(Scheme::EcdsaP384, 4),
        false,
    );
    let mut tampered = good.clone();
    tampered[0x30] ^= 1;
    for bytes in [&good, &tampered] {
        let mut v = Validator::new();
        for chunk in bytes.chunks(4093) {
            v.push(chunk);
        }
        assert_eq!(v.finish(), validate(bytes));
    }
    let codes = validate(&tampered).err().map(|r| r.codes());
    assert!(codes.is_some_and(|c| c.contains(&code::SIGNATURE_DIGEST_MISMATCH)));
}
