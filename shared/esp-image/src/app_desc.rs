//! The application description (`esp_app_desc_t`) at the start of the first segment
//! (docs/esp-image.md §3).

use serde::Serialize;

use crate::reason::{Reason, code};

pub const APP_DESC_LEN: usize = 256;
pub const APP_DESC_MAGIC: u32 = 0xABCD_5432;

const VERSION: (usize, usize) = (0x10, 32);
const PROJECT_NAME: (usize, usize) = (0x30, 32);
const TIME: (usize, usize) = (0x50, 16);
const DATE: (usize, usize) = (0x60, 16);
const IDF_VERSION: (usize, usize) = (0x70, 32);
const ELF_SHA256: (usize, usize) = (0x90, 32);

/// The app description, decoded defensively: every string stops at its first NUL (or at the
/// end of its field when there is none) and is decoded lossily.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppDesc {
    pub magic_ok: bool,
    /// Anti-rollback counter.
    pub secure_version: u32,
    pub version: String,
    pub project_name: String,
    pub time: String,
    pub date: String,
    pub idf_version: String,
    /// Lowercase hex of the ELF's SHA-256.
    pub elf_sha256: String,
    /// major * 100 + minor; 0 in images older than ESP-IDF 5.4.
    pub min_efuse_blk_rev_full: u16,
    pub max_efuse_blk_rev_full: u16,
    /// log2 of the MMU page size the app was built for; 0 when not recorded.
    pub mmu_page_size_log2: u8,
}

impl AppDesc {
    pub fn parse(b: &[u8; APP_DESC_LEN]) -> AppDesc {
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        AppDesc {
            magic_ok: magic == APP_DESC_MAGIC,
            secure_version: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            version: text(field(b, VERSION)),
            project_name: text(field(b, PROJECT_NAME)),
            time: text(field(b, TIME)),
            date: text(field(b, DATE)),
            idf_version: text(field(b, IDF_VERSION)),
            elf_sha256: hex::encode(field(b, ELF_SHA256)),
            min_efuse_blk_rev_full: u16::from_le_bytes([b[0xB0], b[0xB1]]),
            max_efuse_blk_rev_full: u16::from_le_bytes([b[0xB2], b[0xB3]]),
            mmu_page_size_log2: b[0xB4],
        }
    }

    /// Problems in the description: its magic word, and a version string the server could not
    /// show or compare.
    pub(crate) fn check(b: &[u8; APP_DESC_LEN], reasons: &mut Vec<Reason>) {
        let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if magic != APP_DESC_MAGIC {
            reasons.push(Reason::new(
                code::BAD_APP_DESC_MAGIC,
                format!(
                    "app description at file offset 0x20 has magic {magic:#010x}, \
                     expected {APP_DESC_MAGIC:#010x}"
                ),
            ));
        }
        if let Err(why) = check_version(until_nul(field(b, VERSION))) {
            reasons.push(Reason::new(code::INVALID_VERSION_STRING, why));
        }
    }
}

fn check_version(raw: &[u8]) -> Result<(), String> {
    let version = std::str::from_utf8(raw)
        .map_err(|_| format!("version string {:?} is not valid UTF-8", lossy(raw)))?;
    if version.is_empty() {
        return Err("version string is empty".to_owned());
    }
    if version.chars().any(char::is_control) {
        return Err(format!(
            "version string {version:?} contains control characters"
        ));
    }
    Ok(())
}

/// `(offset, len)` pairs are constants inside the 256-byte description, so the fallback to an
/// empty slice is never taken; it only avoids a panicking index.
fn field(b: &[u8; APP_DESC_LEN], (offset, len): (usize, usize)) -> &[u8] {
    b.get(offset..offset + len).unwrap_or_default()
}

fn until_nul(raw: &[u8]) -> &[u8] {
    raw.split(|&c| c == 0).next().unwrap_or_default()
}

fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn text(raw: &[u8]) -> String {
    lossy(until_nul(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(b: &mut [u8; APP_DESC_LEN], (offset, len): (usize, usize), s: &[u8]) {
        let n = s.len().min(len);
        b[offset..offset + n].copy_from_slice(&s[..n]);
    }

    fn sample() -> [u8; APP_DESC_LEN] {
        let mut b = [0u8; APP_DESC_LEN];
        b[0..4].copy_from_slice(&APP_DESC_MAGIC.to_le_bytes());
        b[4..8].copy_from_slice(&7u32.to_le_bytes());
        put(&mut b, VERSION, b"1.2.3");
        put(&mut b, PROJECT_NAME, b"demo");
        put(&mut b, TIME, b"12:00:00");
        put(&mut b, DATE, b"Jan  1 2026");
        put(&mut b, IDF_VERSION, b"v5.4");
        b[0x90..0xB0].copy_from_slice(&[0xAB; 32]);
        b[0xB0..0xB2].copy_from_slice(&1u16.to_le_bytes());
        b[0xB2..0xB4].copy_from_slice(&199u16.to_le_bytes());
        b[0xB4] = 16;
        b
    }

    fn codes(b: &[u8; APP_DESC_LEN]) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        AppDesc::check(b, &mut reasons);
        reasons.into_iter().map(|r| r.code).collect()
    }

    #[test]
    fn parses_all_fields() {
        let d = AppDesc::parse(&sample());
        assert!(d.magic_ok);
        assert_eq!(d.secure_version, 7);
        assert_eq!(d.version, "1.2.3");
        assert_eq!(d.project_name, "demo");
        assert_eq!(d.time, "12:00:00");
        assert_eq!(d.date, "Jan  1 2026");
        assert_eq!(d.idf_version, "v5.4");
        assert_eq!(d.elf_sha256, "ab".repeat(32));
        assert_eq!(d.min_efuse_blk_rev_full, 1);
        assert_eq!(d.max_efuse_blk_rev_full, 199);
        assert_eq!(d.mmu_page_size_log2, 16);
        assert!(codes(&sample()).is_empty());
    }

    #[test]
    fn field_offsets_match_the_file_offsets_in_the_spec() {
        // The spec gives file offsets; the description starts at file offset 0x20.
        assert_eq!(VERSION.0 + 0x20, 0x30);
        assert_eq!(PROJECT_NAME.0 + 0x20, 0x50);
        assert_eq!(TIME.0 + 0x20, 0x70);
        assert_eq!(DATE.0 + 0x20, 0x80);
        assert_eq!(IDF_VERSION.0 + 0x20, 0x90);
        assert_eq!(ELF_SHA256.0 + 0x20, 0xB0);
    }

    #[test]
    fn unterminated_strings_stop_at_the_field_end() {
        let mut b = sample();
        put(&mut b, PROJECT_NAME, &[b'x'; 32]);
        put(&mut b, VERSION, &[b'9'; 32]);
        let d = AppDesc::parse(&b);
        assert_eq!(d.project_name, "x".repeat(32));
        assert_eq!(d.version, "9".repeat(32));
        assert!(codes(&b).is_empty());
    }

    #[test]
    fn garbage_after_the_nul_is_ignored() {
        let mut b = sample();
        put(&mut b, VERSION, b"2.0\0\xff\xfe garbage");
        assert_eq!(AppDesc::parse(&b).version, "2.0");
        assert!(codes(&b).is_empty());
    }

    #[test]
    fn bad_version_strings_are_reasons_but_still_decoded() {
        for bad in [&b"1.0\xff"[..], b"1.0\n", b"\x1b[31m1.0", b""] {
            let mut b = sample();
            b[VERSION.0..VERSION.0 + VERSION.1].fill(0);
            put(&mut b, VERSION, bad);
            assert_eq!(codes(&b), vec![code::INVALID_VERSION_STRING], "{bad:?}");
            let d = AppDesc::parse(&b);
            assert_eq!(d.version, String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn bad_magic_is_reported() {
        let mut b = sample();
        b[0] ^= 1;
        assert!(!AppDesc::parse(&b).magic_ok);
        assert_eq!(codes(&b), vec![code::BAD_APP_DESC_MAGIC]);
    }
}
