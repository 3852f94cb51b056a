//! The Secure Boot V2 signature sector appended to signed apps (docs/esp-image.md §4).
//!
//! Block layouts follow espsecure 5.6 byte for byte, which is what the ROM and the bootloader
//! read: RSA-3072-PSS (version 2) and ECDSA (version 3) over P-192, P-256 (both SHA-256) or
//! P-384 (SHA-384). All big numbers are stored little-endian.

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use rsa::BigUint;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::chip::Chip;
use crate::reason::{Reason, code};

pub const SECTOR_SIZE: usize = 4096;
pub const BLOCK_LEN: usize = 1216;
pub const MAX_BLOCKS: usize = 3;
pub const BLOCK_MAGIC: u8 = 0xE7;
const VERSION_RSA: u8 = 0x02;
const VERSION_ECDSA: u8 = 0x03;
/// The CRC covers bytes `0..CRC_OFFSET`, and is stored right after them.
const CRC_OFFSET: usize = 1196;
/// The block ends with 16 zero bytes that neither the CRC nor anything else covers.
const ZERO_PAD: usize = 1200;
const RSA_BITS: usize = 3072;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureScheme {
    Rsa3072Pss,
    /// Legacy curve espsecure still signs with; ESP-IDF marks it "not recommended".
    EcdsaP192,
    EcdsaP256,
    EcdsaP384,
}

impl SignatureScheme {
    fn is_rsa(self) -> bool {
        self == SignatureScheme::Rsa3072Pss
    }

    /// Bytes of the block that hold the public key, whose SHA-256 is the key digest burnt
    /// into eFuses and printed by `espsecure digest-sbv2-public-key`.
    fn key_range(self) -> (usize, usize) {
        match self {
            SignatureScheme::Rsa3072Pss => (36, 812),
            // Curve id then X‖Y; espsecure packs the 48-byte P-192 point into the same 64-byte
            // field as P-256 and hashes the whole field.
            SignatureScheme::EcdsaP192 | SignatureScheme::EcdsaP256 => (36, 101),
            SignatureScheme::EcdsaP384 => (52, 149),
        }
    }

    /// Bytes espsecure leaves zero: the CRC covers them but nothing reads them, so anything
    /// else there is data no signature vouches for.
    fn reserved_ranges(self) -> &'static [(usize, usize)] {
        match self {
            SignatureScheme::Rsa3072Pss => &[(2, 4)],
            // The 48-byte point and signature sit in 64-byte fields.
            SignatureScheme::EcdsaP192 => &[(3, 4), (85, 101), (149, CRC_OFFSET)],
            SignatureScheme::EcdsaP256 => &[(3, 4), (165, CRC_OFFSET)],
            SignatureScheme::EcdsaP384 => &[(3, 4), (245, CRC_OFFSET)],
        }
    }

    /// Where the image digest is stored; SHA-384 for P-384, SHA-256 for everything else.
    fn digest_range(self) -> (usize, usize) {
        match self {
            SignatureScheme::EcdsaP384 => (4, 52),
            _ => (4, 36),
        }
    }
}

/// The signature sector of a signed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureInfo {
    /// File offset of the 4 KB sector; also the length of the signed data.
    pub sector_offset: u64,
    /// Blocks whose magic and CRC are good, in sector order.
    pub blocks: Vec<SignatureBlock>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureBlock {
    /// Position in the sector (0..3).
    pub index: u8,
    pub scheme: SignatureScheme,
    /// Lowercase hex SHA-256 of the public key as the ROM sees it: compare with a pinned
    /// `espsecure digest-sbv2-public-key` output to decide whether to trust the signer.
    pub key_digest: String,
    /// The digest stored in the block is the digest of `file[0..sector_offset]`.
    pub image_digest_matches: bool,
    /// The signature verifies against the block's own key *and* covers this image.
    pub signature_valid: bool,
}

/// Digests of `file[0..sector_offset]`. Only a P-384 block reads the SHA-384, which costs about
/// three times the SHA-256 on x86 (SHA-NI speeds up SHA-256 only): it is `None` when
/// [`needs_sha384`] says no block will.
pub(crate) struct ImageDigests {
    pub sha256: [u8; 32],
    pub sha384: Option<[u8; 48]>,
}

/// Whether [`check_sector`] compares the image's SHA-384 with a block: one of the blocks it
/// reads is intact (good CRC) and P-384.
pub(crate) fn needs_sha384(sector: &[u8; SECTOR_SIZE]) -> bool {
    blocks(sector).any(|block| {
        let (stored, computed) = crcs(block);
        stored == computed && scheme_of(block) == Some(SignatureScheme::EcdsaP384)
    })
}

/// The blocks the bootloader reads: from the start of the sector, while they have the magic.
fn blocks(sector: &[u8; SECTOR_SIZE]) -> impl Iterator<Item = &[u8; BLOCK_LEN]> {
    sector
        .chunks_exact(BLOCK_LEN)
        .take(MAX_BLOCKS)
        .filter_map(|block| <&[u8; BLOCK_LEN]>::try_from(block).ok())
        .take_while(|block| block[0] == BLOCK_MAGIC)
}

/// The CRC-32 stored in the block, and the one its bytes give.
fn crcs(block: &[u8; BLOCK_LEN]) -> (u32, u32) {
    let stored = u32::from_le_bytes(array(block, CRC_OFFSET));
    (stored, crc32fast::hash(slice(block, 0, CRC_OFFSET)))
}

/// Parses and verifies every block of `sector`, pushing a reason for each problem.
pub(crate) fn check_sector(
    sector: &[u8; SECTOR_SIZE],
    sector_offset: u64,
    chip: Option<Chip>,
    digests: &ImageDigests,
    reasons: &mut Vec<Reason>,
) -> SignatureInfo {
    let mut checked = Vec::new();
    if sector[0] != BLOCK_MAGIC {
        reasons.push(Reason::new(
            code::BAD_SIGNATURE_MAGIC,
            format!(
                "the 4 KB after the image (at {sector_offset:#x}) should be a Secure Boot V2 \
                 signature sector but starts with {:#04x}, not {BLOCK_MAGIC:#04x}",
                sector[0]
            ),
        ));
        return SignatureInfo {
            sector_offset,
            blocks: checked,
        };
    }
    let mut used = 0;
    for (index, block) in blocks(sector).enumerate() {
        used = (index + 1) * BLOCK_LEN;
        if let Some(b) = check_block(index, block, chip, digests, reasons) {
            checked.push(b);
        }
    }
    // Nothing reads the rest of the sector, so anything but erased flash there is data that
    // no signature or CRC covers.
    let tail = sector.get(used..).unwrap_or_default();
    let stray = tail.iter().filter(|&&b| b != 0xFF).count();
    if stray > 0 {
        reasons.push(Reason::new(
            code::BAD_SIGNATURE_PADDING,
            format!("{stray} byte(s) after the last signature block are not 0xFF (erased flash)"),
        ));
    }
    SignatureInfo {
        sector_offset,
        blocks: checked,
    }
}

fn check_block(
    index: usize,
    block: &[u8; BLOCK_LEN],
    chip: Option<Chip>,
    digests: &ImageDigests,
    reasons: &mut Vec<Reason>,
) -> Option<SignatureBlock> {
    if slice(block, ZERO_PAD, BLOCK_LEN).iter().any(|&b| b != 0) {
        reasons.push(Reason::new(
            code::BAD_SIGNATURE_PADDING,
            format!("signature block {index}: its last 16 bytes must be zero"),
        ));
    }
    let (stored_crc, crc) = crcs(block);
    if crc != stored_crc {
        reasons.push(Reason::new(
            code::BAD_SIGNATURE_CRC,
            format!(
                "signature block {index}: stored CRC-32 {stored_crc:#010x}, computed {crc:#010x}"
            ),
        ));
        return None;
    }
    let Some(scheme) = scheme_of(block) else {
        reasons.push(Reason::new(
            code::UNKNOWN_SIGNATURE_SCHEME,
            format!(
                "signature block {index}: version {:#04x} with SHA/curve bytes {:#04x}/{:#04x}/{:#04x} \
                 is not RSA-3072-PSS or ECDSA P-192/P-256/P-384",
                block[1], block[2], block[36], block[52]
            ),
        ));
        return None;
    };
    let reserved_dirty = scheme
        .reserved_ranges()
        .iter()
        .any(|&(start, end)| slice(block, start, end).iter().any(|&b| b != 0));
    if reserved_dirty {
        reasons.push(Reason::new(
            code::BAD_SIGNATURE_PADDING,
            format!("signature block {index}: bytes {scheme:?} blocks leave zero are not zero"),
        ));
    }
    if let Some(chip) = chip {
        let allowed = if scheme.is_rsa() {
            chip.supports_rsa_signatures()
        } else {
            chip.supports_ecdsa_signatures()
        };
        if !allowed {
            reasons.push(Reason::new(
                code::SIGNATURE_SCHEME_NOT_ALLOWED,
                format!(
                    "signature block {index}: {scheme:?} signatures cannot be verified by {chip}"
                ),
            ));
        }
    }

    let (d0, d1) = scheme.digest_range();
    let stored_digest = slice(block, d0, d1);
    let actual: &[u8] = match (scheme, &digests.sha384) {
        (SignatureScheme::EcdsaP384, Some(sha384)) => sha384,
        // `needs_sha384` walks the same blocks, so a P-384 block that gets here always has its
        // digest; should they ever disagree, an empty digest fails the block instead of passing it.
        (SignatureScheme::EcdsaP384, None) => &[],
        _ => &digests.sha256,
    };
    let image_digest_matches = stored_digest == actual;
    if !image_digest_matches {
        reasons.push(Reason::new(
            code::SIGNATURE_DIGEST_MISMATCH,
            format!(
                "signature block {index} signs digest {}, but the image's digest is {}",
                hex::encode(stored_digest),
                hex::encode(actual)
            ),
        ));
    }

    let (k0, k1) = scheme.key_range();
    let key_digest = hex::encode(Sha256::digest(slice(block, k0, k1)));

    // Verified against the block's own digest, so that a stale digest and a forged signature
    // are reported as two separate problems.
    let verified = match scheme {
        SignatureScheme::Rsa3072Pss => verify_rsa(block, stored_digest),
        SignatureScheme::EcdsaP192 => {
            verify_p192(slice(block, 37, 85), slice(block, 101, 149), stored_digest)
        }
        SignatureScheme::EcdsaP256 => {
            verify_p256(slice(block, 37, 101), slice(block, 101, 165), stored_digest)
        }
        SignatureScheme::EcdsaP384 => {
            verify_p384(slice(block, 53, 149), slice(block, 149, 245), stored_digest)
        }
    };
    let signature_ok = match verified {
        Ok(true) => true,
        Ok(false) => {
            reasons.push(Reason::new(
                code::SIGNATURE_INVALID,
                format!("signature block {index}: {scheme:?} signature does not verify with the block's public key"),
            ));
            false
        }
        Err(why) => {
            reasons.push(Reason::new(
                code::BAD_SIGNATURE_KEY,
                format!("signature block {index}: {why}"),
            ));
            false
        }
    };
    Some(SignatureBlock {
        index: u8::try_from(index).unwrap_or(u8::MAX),
        scheme,
        key_digest,
        image_digest_matches,
        signature_valid: signature_ok && image_digest_matches,
    })
}

fn scheme_of(block: &[u8; BLOCK_LEN]) -> Option<SignatureScheme> {
    match (block[1], block[2]) {
        (VERSION_RSA, _) => Some(SignatureScheme::Rsa3072Pss),
        (VERSION_ECDSA, 0) => match block[36] {
            1 => Some(SignatureScheme::EcdsaP192),
            2 => Some(SignatureScheme::EcdsaP256),
            _ => None,
        },
        (VERSION_ECDSA, 1) => match block[52] {
            3 => Some(SignatureScheme::EcdsaP384),
            _ => None,
        },
        _ => None,
    }
}

/// `Ok(verified)`, or `Err` when the key material itself is unusable.
fn verify_rsa(block: &[u8; BLOCK_LEN], digest: &[u8]) -> Result<bool, String> {
    let n = BigUint::from_bytes_le(slice(block, 36, 420));
    let e = u32::from_le_bytes(array(block, 420));
    let rinv = BigUint::from_bytes_le(slice(block, 424, 808));
    let m_prime = u32::from_le_bytes(array(block, 808));

    if n.bits() != RSA_BITS {
        return Err(format!("RSA modulus has {} bits, not {RSA_BITS}", n.bits()));
    }
    let n_low = u32::from_le_bytes(array(block, 36));
    if n_low % 2 == 0 {
        return Err("RSA modulus is even".to_owned());
    }
    // The ROM's RSA peripheral takes R⁻¹ and M′ from the block instead of deriving them from
    // n; values that disagree with n make the device reject a signature this check accepts.
    let expected_rinv = (BigUint::from(1u8) << (2 * RSA_BITS)) % &n;
    if rinv != expected_rinv {
        return Err("RSA R^-1 field does not match the modulus".to_owned());
    }
    let expected_m_prime = inverse_mod_2_32(n_low).wrapping_neg();
    if m_prime != expected_m_prime {
        return Err(format!(
            "RSA M' field is {m_prime:#010x}, the modulus needs {expected_m_prime:#010x}"
        ));
    }
    let key = rsa::RsaPublicKey::new(n, BigUint::from(e))
        .map_err(|err| format!("RSA public key rejected: {err}"))?;
    let mut signature = slice(block, 812, 1196).to_vec();
    signature.reverse();
    let Ok(signature) = rsa::pss::Signature::try_from(signature.as_slice()) else {
        return Ok(false);
    };
    // PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt: the VerifyingKey default for SHA-256.
    let verifier = rsa::pss::VerifyingKey::<Sha256>::new(key);
    Ok(verifier.verify_prehash(digest, &signature).is_ok())
}

/// Inverse of an odd `a` modulo 2³² by Newton's iteration: each step doubles the number of
/// correct low bits, starting from 3 (a·a ≡ 1 mod 8 for odd a).
fn inverse_mod_2_32(a: u32) -> u32 {
    let mut x = a;
    for _ in 0..4 {
        x = x.wrapping_mul(2u32.wrapping_sub(a.wrapping_mul(x)));
    }
    x
}

/// Concatenates two little-endian halves as big-endian halves, the layout the RustCrypto
/// crates expect for both points (X‖Y) and signatures (r‖s).
fn halves_to_be(le: &[u8]) -> Vec<u8> {
    let half = le.len() / 2;
    let (a, b) = le.split_at_checked(half).unwrap_or((le, &[]));
    a.iter().rev().chain(b.iter().rev()).copied().collect()
}

macro_rules! ecdsa_verifier {
    ($name:ident, $curve:ident, $label:literal) => {
        fn $name(point_le: &[u8], signature_le: &[u8], digest: &[u8]) -> Result<bool, String> {
            let mut sec1 = vec![0x04];
            sec1.extend(halves_to_be(point_le));
            let key = $curve::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map_err(|_| concat!("ECDSA public key is not a point on ", $label).to_owned())?;
            // r or s out of range is a bad signature, not a bad key.
            let Ok(signature) = $curve::ecdsa::Signature::from_slice(&halves_to_be(signature_le))
            else {
                return Ok(false);
            };
            Ok(key.verify_prehash(digest, &signature).is_ok())
        }
    };
}

ecdsa_verifier!(verify_p192, p192, "P-192");
ecdsa_verifier!(verify_p256, p256, "P-256");
ecdsa_verifier!(verify_p384, p384, "P-384");

/// Sub-slice at constant offsets inside a block; empty (never a panic) if ever out of range.
fn slice(block: &[u8; BLOCK_LEN], start: usize, end: usize) -> &[u8] {
    block.get(start..end).unwrap_or_default()
}

fn array<const N: usize>(block: &[u8; BLOCK_LEN], start: usize) -> [u8; N] {
    block
        .get(start..start + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newton_inverse() {
        for a in [1u32, 3, 0xFFFF_FFFF, 0x1234_5677, 0xDEAD_BEEF] {
            assert_eq!(a.wrapping_mul(inverse_mod_2_32(a)), 1, "{a:#x}");
        }
    }

    #[test]
    fn halves_are_reversed_independently() {
        assert_eq!(halves_to_be(&[1, 2, 3, 4, 5, 6]), vec![3, 2, 1, 6, 5, 4]);
        assert_eq!(halves_to_be(&[]), Vec::<u8>::new());
    }

    fn blank_sector() -> [u8; SECTOR_SIZE] {
        [0xFF; SECTOR_SIZE]
    }

    fn digests() -> ImageDigests {
        ImageDigests {
            sha256: [0; 32],
            sha384: Some([0; 48]),
        }
    }

    fn run(sector: &[u8; SECTOR_SIZE], chip: Option<Chip>) -> (SignatureInfo, Vec<&'static str>) {
        let mut reasons = Vec::new();
        let info = check_sector(sector, 0x10000, chip, &digests(), &mut reasons);
        (info, reasons.into_iter().map(|r| r.code).collect())
    }

    fn seal(block: &mut [u8]) {
        let crc = crc32fast::hash(&block[..CRC_OFFSET]);
        block[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        block[1200..BLOCK_LEN].fill(0);
    }

    #[test]
    fn erased_sector_is_not_a_signature() {
        let (info, codes) = run(&blank_sector(), Some(Chip::Esp32c3));
        assert!(info.blocks.is_empty());
        assert_eq!(codes, vec![code::BAD_SIGNATURE_MAGIC]);
    }

    #[test]
    fn crc_is_checked() {
        let mut s = blank_sector();
        s[0] = BLOCK_MAGIC;
        s[1] = VERSION_ECDSA;
        s[2] = 0;
        s[36] = 2;
        seal(&mut s[..BLOCK_LEN]);
        s[40] ^= 1;
        let (info, codes) = run(&s, Some(Chip::Esp32c6));
        assert!(info.blocks.is_empty());
        assert_eq!(codes, vec![code::BAD_SIGNATURE_CRC]);
    }

    #[test]
    fn garbage_block_with_good_crc_reports_key_and_scheme_problems() {
        let mut s = blank_sector();
        s[..BLOCK_LEN].fill(0);
        s[0] = BLOCK_MAGIC;
        s[1] = VERSION_ECDSA;
        s[36] = 2;
        seal(&mut s[..BLOCK_LEN]);
        let (info, codes) = run(&s, Some(Chip::Esp32c3));
        assert_eq!(info.blocks.len(), 1);
        assert_eq!(info.blocks[0].scheme, SignatureScheme::EcdsaP256);
        assert!(info.blocks[0].image_digest_matches);
        assert!(!info.blocks[0].signature_valid);
        assert_eq!(
            codes,
            vec![code::SIGNATURE_SCHEME_NOT_ALLOWED, code::BAD_SIGNATURE_KEY]
        );
    }

    #[test]
    fn unknown_versions_and_curves() {
        for (version, sha, curve_at_36, curve_at_52) in [
            (0x01, 0, 2, 0),
            (VERSION_ECDSA, 0, 3, 0),
            (VERSION_ECDSA, 1, 0, 2),
            (VERSION_ECDSA, 2, 2, 3),
        ] {
            let mut s = blank_sector();
            s[..BLOCK_LEN].fill(0);
            s[0] = BLOCK_MAGIC;
            s[1] = version;
            s[2] = sha;
            s[36] = curve_at_36;
            s[52] = curve_at_52;
            seal(&mut s[..BLOCK_LEN]);
            let (_, codes) = run(&s, None);
            assert_eq!(codes, vec![code::UNKNOWN_SIGNATURE_SCHEME]);
        }
    }

    #[test]
    fn block_zero_padding_is_checked() {
        let mut s = blank_sector();
        s[..BLOCK_LEN].fill(0);
        s[0] = BLOCK_MAGIC;
        s[1] = 0x09;
        seal(&mut s[..BLOCK_LEN]);
        s[BLOCK_LEN - 1] = 1;
        let (_, codes) = run(&s, None);
        assert_eq!(
            codes,
            vec![code::BAD_SIGNATURE_PADDING, code::UNKNOWN_SIGNATURE_SCHEME]
        );
    }

    #[test]
    fn stray_bytes_after_the_blocks() {
        let mut s = blank_sector();
        s[..BLOCK_LEN].fill(0);
        s[0] = BLOCK_MAGIC;
        s[1] = 0x09;
        seal(&mut s[..BLOCK_LEN]);
        s[SECTOR_SIZE - 1] = 0;
        let (_, codes) = run(&s, None);
        assert_eq!(
            codes,
            vec![code::UNKNOWN_SIGNATURE_SCHEME, code::BAD_SIGNATURE_PADDING]
        );
    }

    #[test]
    fn rsa_block_with_bogus_modulus_is_a_key_problem() {
        let mut s = blank_sector();
        s[..BLOCK_LEN].fill(0);
        s[0] = BLOCK_MAGIC;
        s[1] = VERSION_RSA;
        s[36..420].fill(0xFF);
        s[420..424].copy_from_slice(&65537u32.to_le_bytes());
        seal(&mut s[..BLOCK_LEN]);
        let (info, codes) = run(&s, Some(Chip::Esp32s3));
        assert_eq!(info.blocks[0].scheme, SignatureScheme::Rsa3072Pss);
        assert_eq!(codes, vec![code::BAD_SIGNATURE_KEY]);
    }
}
