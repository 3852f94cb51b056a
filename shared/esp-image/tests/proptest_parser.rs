//! Property tests of the validator on hostile input: arbitrary bytes and mutated valid images
//! (from the independent `firmware-samples` generator). Nothing may panic, the chunking of the
//! stream must never change the answer, and corrupted segment data must always be caught.
//!
//! Case counts are kept small enough for the whole file to run in a few seconds in debug.

use std::sync::OnceLock;

use esp_image::{ImageInfo, Rejection, Validator, code, validate};
use firmware_samples::{
    BLOCK_LEN, ImageSpec, RSA3072_SEED1_PEM, SECTOR_SIZE, Scheme, SigningKey, Target,
};
use proptest::prelude::*;

/// Feeds `bytes` cut at `cuts` (positions taken modulo the length, in any order).
fn validate_chunked(bytes: &[u8], cuts: &[usize]) -> Result<ImageInfo, Rejection> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| if bytes.is_empty() { 0 } else { c % bytes.len() })
        .collect();
    points.push(0);
    points.push(bytes.len());
    points.sort_unstable();
    let mut v = Validator::new();
    for pair in points.windows(2) {
        v.push(&bytes[pair[0]..pair[1]]);
    }
    v.finish().with_file(bytes)
}

struct Base {
    label: String,
    bytes: Vec<u8>,
    hashed: bool,
    signed: bool,
}

/// The label is enough to rebuild a failing case; printing the bytes would drown it.
impl std::fmt::Debug for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} bytes)", self.label, self.bytes.len())
    }
}

/// Valid images to mutate: every chip, with and without hash, a few sizes, two signed ones.
fn bases() -> &'static [Base] {
    static BASES: OnceLock<Vec<Base>> = OnceLock::new();
    BASES.get_or_init(|| {
        let mut out = Vec::new();
        for (i, chip) in Target::ALL.into_iter().enumerate() {
            for hash_appended in [true, false] {
                let spec = ImageSpec {
                    hash_appended,
                    size: 1024 + 512 * i,
                    secure_version: u32::try_from(i).unwrap(),
                    ..ImageSpec::new(chip, "1.0.0")
                };
                out.push(Base {
                    label: format!("{chip} hash={hash_appended} size={}", spec.size),
                    bytes: spec.build(),
                    hashed: hash_appended,
                    signed: false,
                });
            }
        }
        let rsa = SigningKey::from_pkcs8_pem(RSA3072_SEED1_PEM).ok();
        for (chip, key, hash_appended) in [
            (
                Target::Esp32c6,
                SigningKey::from_seed(Scheme::EcdsaP256, 1),
                true,
            ),
            (
                Target::Esp32h2,
                SigningKey::from_seed(Scheme::EcdsaP384, 1),
                false,
            ),
        ]
        .into_iter()
        .chain(rsa.map(|k| (Target::Esp32c3, k, true)))
        {
            let label = format!("{chip} hash={hash_appended} signed {}", key.scheme().name());
            let spec = ImageSpec {
                hash_appended,
                signing: Some(key),
                ..ImageSpec::new(chip, "2.0.0")
            };
            out.push(Base {
                label,
                bytes: spec.build(),
                hashed: hash_appended,
                signed: true,
            });
        }
        out
    })
}

fn base() -> impl Strategy<Value = &'static Base> {
    (0..bases().len()).prop_map(|i| &bases()[i])
}

fn unsigned_base() -> impl Strategy<Value = &'static Base> {
    base().prop_filter("unsigned", |b| !b.signed)
}

fn signed_base() -> impl Strategy<Value = &'static Base> {
    base().prop_filter("signed", |b| b.signed)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Set { at: usize, value: u8 },
    Truncate { keep: usize },
    Extend { bytes: Vec<u8> },
    Remove { at: usize, len: usize },
    Insert { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
        prop::collection::vec(any::<u8>(), 1..5000).prop_map(|bytes| Mutation::Extend { bytes }),
        (any::<usize>(), 1..64usize).prop_map(|(at, len)| Mutation::Remove { at, len }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

/// Header bytes get extra attention: that is where parsing decisions are made.
fn header_mutation() -> impl Strategy<Value = Mutation> {
    (0..32usize, any::<u8>()).prop_map(|(at, value)| Mutation::Set { at, value })
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match m {
        Mutation::Flip { at, xor } => {
            if let Some(b) = bytes.get_mut(at % len) {
                *b ^= xor;
            }
        }
        Mutation::Set { at, value } => {
            if let Some(b) = bytes.get_mut(at % len) {
                *b = *value;
            }
        }
        Mutation::Truncate { keep } => bytes.truncate(keep % len),
        Mutation::Extend { bytes: extra } => bytes.extend(extra),
        Mutation::Remove { at, len: n } => {
            let start = at % len;
            let end = (start + n).min(bytes.len());
            bytes.drain(start.min(end)..end);
        }
        Mutation::Insert { at, bytes: extra } => {
            let at = at % len;
            bytes.splice(at..at, extra.iter().copied());
        }
    }
}

/// Validates whole and chunked, checks both agree, and returns the result.
fn check_consistent(
    bytes: &[u8],
    cuts: &[usize],
) -> Result<Result<ImageInfo, Rejection>, TestCaseError> {
    let whole = validate(bytes);
    if let Err(r) = &whole {
        prop_assert!(!r.reasons.is_empty());
    }
    prop_assert_eq!(&validate_chunked(bytes, cuts), &whole);
    Ok(whole)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let result = check_consistent(&bytes, &cuts)?;
        prop_assert!(result.is_err() || bytes.first() == Some(&0xE9));
    }

    #[test]
    fn arbitrary_bytes_behind_a_plausible_header_never_panic(
        segment_count in 0..20u8,
        chip_id in prop_oneof![Just(5u16), Just(0u16), Just(0x0D_u16), any::<u16>()],
        flag in prop_oneof![Just(0u8), Just(1u8), any::<u8>()],
        rest in prop::collection::vec(any::<u8>(), 0..3000),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = vec![0xE9, segment_count, 2, 0x20, 0, 0, 0, 0, 0xEE, 0, 0, 0];
        bytes.extend(chip_id.to_le_bytes());
        bytes.extend([0u8; 9]);
        bytes.push(flag);
        bytes.extend(rest);
        let _verdict_is_irrelevant = check_consistent(&bytes, &cuts)?;
    }

    #[test]
    fn valid_images_pass_in_any_chunking(
        base in base(),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let result = check_consistent(&base.bytes, &cuts)?;
        prop_assert!(result.is_ok(), "{:?}", result.err().map(|r| r.to_string()));
    }

    #[test]
    fn mutated_images_never_panic_and_chunking_never_matters(
        base in base(),
        mutations in prop::collection::vec(mutation(), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = base.bytes.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _verdict_is_irrelevant = check_consistent(&bytes, &cuts)?;
    }

    #[test]
    fn mutated_headers_never_panic(
        base in unsigned_base(),
        mutations in prop::collection::vec(header_mutation(), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut bytes = base.bytes.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _verdict_is_irrelevant = check_consistent(&bytes, &cuts)?;
    }

    #[test]
    fn a_flipped_byte_in_segment_data_is_always_caught(
        base in base(),
        segment_pick in any::<usize>(),
        offset_pick in any::<usize>(),
        xor in 1..=255u8,
    ) {
        let info = validate(&base.bytes).map_err(|r| TestCaseError::fail(r.to_string()))?;
        let segments: Vec<_> = info.segments.iter().filter(|s| s.len > 0).collect();
        let segment = segments[segment_pick % segments.len()];
        let at = segment.offset as usize + offset_pick % segment.len as usize;
        let mut bytes = base.bytes.clone();
        bytes[at] ^= xor;
        let Err(rejection) = validate(&bytes) else {
            return Err(TestCaseError::fail(format!("flip at {at:#x} accepted")));
        };
        prop_assert!(rejection.has(code::CHECKSUM_MISMATCH), "{}", rejection);
        prop_assert_eq!(rejection.has(code::HASH_MISMATCH), base.hashed);
        if base.signed {
            prop_assert!(rejection.has(code::SIGNATURE_DIGEST_MISMATCH), "{}", rejection);
        }
    }

    #[test]
    fn any_flipped_byte_in_a_hashed_or_signed_image_is_caught(
        base in base().prop_filter("hashed or signed", |b| b.hashed || b.signed),
        at in any::<usize>(),
        xor in 1..=255u8,
    ) {
        let mut bytes = base.bytes.clone();
        let at = at % bytes.len();
        bytes[at] ^= xor;
        prop_assert!(validate(&bytes).is_err(), "flip at {at:#x} accepted");
    }
}

proptest! {
    // Each case verifies signatures twice (RSA included), which is slow in debug builds.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn hostile_signature_blocks_with_a_valid_crc_are_rejected(
        base in signed_base(),
        edits in prop::collection::vec((0..1196usize, any::<u8>()), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..4),
    ) {
        // Resealing the CRC gets the edits past the cheap check into scheme parsing, key
        // decoding and signature verification.
        let mut bytes = base.bytes.clone();
        let sector = bytes.len() - SECTOR_SIZE;
        let mut changed = false;
        for (at, value) in &edits {
            let b = &mut bytes[sector + at];
            changed |= *b != *value;
            *b = *value;
        }
        let crc = crc32fast::hash(&bytes[sector..sector + 1196]);
        bytes[sector + 1196..sector + 1200].copy_from_slice(&crc.to_le_bytes());
        let result = check_consistent(&bytes, &cuts)?;
        prop_assert_eq!(result.is_ok(), !changed);
        prop_assert!(bytes.len() > sector + BLOCK_LEN);
    }
}
