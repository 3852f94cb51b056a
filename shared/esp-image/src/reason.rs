//! Why an image was rejected: stable machine codes plus human messages.

use std::fmt;

use serde::Serialize;

use crate::info::PartialInfo;

/// Stable machine codes of [`Reason`]s. Clients match on these, so they never change meaning;
/// new problems get new codes.
pub mod code {
    /// First byte is not `0xE9`.
    pub const BAD_MAGIC: &str = "bad_magic";
    /// The file ends before the image does (header, a segment, checksum or appended hash).
    pub const TRUNCATED: &str = "truncated";
    /// More than 16 segments: the bootloader refuses the image.
    pub const TOO_MANY_SEGMENTS: &str = "too_many_segments";
    /// SPI mode byte above 5 (`SLOW_READ`).
    pub const BAD_SPI_MODE: &str = "bad_spi_mode";
    /// Hash-appended byte other than 0 or 1.
    pub const BAD_HASH_FLAG: &str = "bad_hash_flag";
    /// Chip id not in the known table.
    pub const UNKNOWN_CHIP: &str = "unknown_chip";
    /// Minimum chip revision above a set maximum: no chip could run the image.
    pub const BAD_CHIP_REVISION_RANGE: &str = "bad_chip_revision_range";
    /// A segment's declared data runs past the end of the file.
    pub const SEGMENT_OUT_OF_BOUNDS: &str = "segment_out_of_bounds";
    /// A segment's length is not a multiple of 4.
    pub const SEGMENT_LEN_UNALIGNED: &str = "segment_len_unaligned";
    /// A segment of 16 MB or more, which the bootloader refuses.
    pub const SEGMENT_TOO_LARGE: &str = "segment_too_large";
    /// A flash-mapped segment whose file offset and load address differ modulo the MMU page.
    pub const SEGMENT_MMU_MISALIGNED: &str = "segment_mmu_misaligned";
    /// Stored XOR checksum differs from the computed one.
    pub const CHECKSUM_MISMATCH: &str = "checksum_mismatch";
    /// Appended SHA-256 differs from the computed one.
    pub const HASH_MISMATCH: &str = "hash_mismatch";
    /// No room for the 256-byte app description in the first segment.
    pub const APP_DESC_MISSING: &str = "app_desc_missing";
    /// App description magic word is not `0xABCD5432`.
    pub const BAD_APP_DESC_MAGIC: &str = "bad_app_desc_magic";
    /// Version string empty, not UTF-8, or holding control characters.
    pub const INVALID_VERSION_STRING: &str = "invalid_version_string";
    /// Bytes after the image that are not a Secure Boot V2 signature sector.
    pub const TRAILING_DATA: &str = "trailing_data";
    /// Bytes other than `0xFF` in the gap before the signature sector or in its unused tail,
    /// or other than zero where a signature block has no field: data no signature covers.
    pub const BAD_SIGNATURE_PADDING: &str = "bad_signature_padding";
    /// Signature sector whose first block does not start with `0xE7`.
    pub const BAD_SIGNATURE_MAGIC: &str = "bad_signature_magic";
    /// Signature block CRC-32 mismatch.
    pub const BAD_SIGNATURE_CRC: &str = "bad_signature_crc";
    /// Signature block version / curve combination this crate does not know.
    pub const UNKNOWN_SIGNATURE_SCHEME: &str = "unknown_signature_scheme";
    /// Signature scheme the target chip's ROM cannot verify.
    pub const SIGNATURE_SCHEME_NOT_ALLOWED: &str = "signature_scheme_not_allowed";
    /// Image digest stored in a signature block differs from the file's.
    pub const SIGNATURE_DIGEST_MISMATCH: &str = "signature_digest_mismatch";
    /// Public key in a signature block is malformed (point off the curve, RSA parameters
    /// inconsistent with the modulus, ...).
    pub const BAD_SIGNATURE_KEY: &str = "bad_signature_key";
    /// Signature does not verify against the block's own public key.
    pub const SIGNATURE_INVALID: &str = "signature_invalid";
}

/// One problem found in an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// One of the constants in [`code`].
    pub code: &'static str,
    pub message: String,
}

impl Reason {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Reason {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// An image that must not be offered to devices, with every reason found.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("invalid ESP app image: {}", join(.reasons))]
pub struct Rejection {
    /// Never empty.
    pub reasons: Vec<Reason>,
    /// What could be parsed, for diagnostics; `None` when the file is shorter than a header.
    pub partial: Option<Box<PartialInfo>>,
}

impl Rejection {
    /// Whether any reason has this code.
    pub fn has(&self, code: &str) -> bool {
        self.reasons.iter().any(|r| r.code == code)
    }

    /// The codes of all reasons, in the order found.
    pub fn codes(&self) -> Vec<&'static str> {
        self.reasons.iter().map(|r| r.code).collect()
    }
}

fn join(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(Reason::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_every_reason() {
        let rejection = Rejection {
            reasons: vec![
                Reason::new(code::BAD_MAGIC, "first byte is 0x00"),
                Reason::new(code::CHECKSUM_MISMATCH, "stored 0x01, computed 0x02"),
            ],
            partial: None,
        };
        assert_eq!(
            rejection.to_string(),
            "invalid ESP app image: bad_magic: first byte is 0x00; \
             checksum_mismatch: stored 0x01, computed 0x02"
        );
        assert!(rejection.has(code::BAD_MAGIC));
        assert!(!rejection.has(code::HASH_MISMATCH));
        assert_eq!(
            rejection.codes(),
            vec![code::BAD_MAGIC, code::CHECKSUM_MISMATCH]
        );
    }
}
