//! Secure Boot V2 signatures made by the independent generator (the esptool cross-check lives
//! in `firmware-samples/tests/esptool_oracle.rs`).

use esp_image::{Chip, Finish, SignatureScheme, Validator, code, validate};
use firmware_samples::{ImageSpec, RSA3072_SEED1_PEM, Scheme, SigningKey, Target};
use sha2::{Digest, Sha256, Sha384};

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
fn p384_is_checked_from_the_digest_the_caller_supplies() {
    // A stream is hashed with SHA-256 only: when a P-384 block follows, `finish` asks for the
    // SHA-384 of the signed range, which the caller computes by reading those bytes again.
    let good = signed(
        Target::Esp32c5,
        &SigningKey::from_seed(Scheme::EcdsaP384, 4),
        false,
    );
    let sector = good.len() - 4096;
    let mut tampered = good.clone();
    tampered[0x30] ^= 1;
    for bytes in [&good, &tampered] {
        let mut v = Validator::new();
        for chunk in bytes.chunks(4093) {
            v.push(chunk);
        }
        assert_eq!(v.file_sha256(), <[u8; 32]>::from(Sha256::digest(bytes)));
        let Finish::NeedsSha384(needs) = v.finish() else {
            panic!("a P-384 signature needs the SHA-384");
        };
        assert_eq!(needs.range(), 0..sector as u64);
        let deferred = needs.finish(Sha384::digest(&bytes[..sector]).into());
        assert_eq!(deferred, validate(bytes));
    }

    let info = validate(&good).unwrap_or_else(|r| panic!("{r}"));
    let block = &info.signature.unwrap_or_else(|| panic!("unsigned?")).blocks[0];
    assert!(block.image_digest_matches && block.signature_valid);
    // The digest the rejection prints is the SHA-384 of the signed range.
    let rejection = validate(&tampered).err();
    let mismatch = rejection.as_ref().and_then(|r| {
        r.reasons
            .iter()
            .find(|r| r.code == code::SIGNATURE_DIGEST_MISMATCH)
    });
    let expected = hex(&Sha384::digest(&tampered[..sector]));
    assert!(
        mismatch.is_some_and(|r| r
            .message
            .ends_with(&format!("the image's digest is {expected}"))),
        "{rejection:?}"
    );
}

#[test]
fn only_an_intact_p384_block_asks_for_the_sha384() {
    let finish = |bytes: &[u8]| {
        let mut v = Validator::new();
        v.push(bytes);
        v.finish()
    };
    let p384 = signed(
        Target::Esp32c5,
        &SigningKey::from_seed(Scheme::EcdsaP384, 4),
        true,
    );
    assert!(matches!(finish(&p384), Finish::NeedsSha384(_)));
    let p256 = signed(
        Target::Esp32c6,
        &SigningKey::from_seed(Scheme::EcdsaP256, 1),
        true,
    );
    let unsigned = ImageSpec::new(Target::Esp32c5, "4.0.0").build();
    let mut bad_crc = p384.clone();
    let sector = bad_crc.len() - 4096;
    bad_crc[sector + 100] ^= 1;
    let mut trailing = p384.clone();
    trailing.push(0xFF);
    for bytes in [p256, unsigned, bad_crc, trailing] {
        assert!(matches!(finish(&bytes), Finish::Done(_)));
    }
}
