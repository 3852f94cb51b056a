//! The 24-byte image header (docs/esp-image.md §1).

use serde::Serialize;

use crate::chip::Chip;
use crate::reason::{Reason, code};

pub const HEADER_LEN: usize = 24;
pub const IMAGE_MAGIC: u8 = 0xE9;
/// The bootloader refuses images with more segments than this.
pub const MAX_SEGMENTS: u8 = 16;
/// Highest SPI mode value (`SLOW_READ`).
const MAX_SPI_MODE: u8 = 5;
/// Indexed by the header's flash size nibble.
const FLASH_SIZES: [&str; 8] = ["1MB", "2MB", "4MB", "8MB", "16MB", "32MB", "64MB", "128MB"];

/// Raw header fields, kept as found so a rejection can show what was there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub magic: u8,
    pub segment_count: u8,
    pub spi_mode: u8,
    /// Low nibble of byte 3; its meaning differs per chip.
    pub spi_speed: u8,
    /// High nibble of byte 3 (0 = 1MB ... 7 = 128MB).
    pub flash_size_code: u8,
    pub entry: u32,
    pub wp_pin: u8,
    pub spi_pin_drv: [u8; 3],
    pub chip_id: u16,
    pub min_chip_rev: u8,
    pub min_chip_rev_full: u16,
    pub max_chip_rev_full: u16,
    pub reserved: [u8; 4],
    pub hash_appended: u8,
}

impl Header {
    pub fn parse(b: &[u8; HEADER_LEN]) -> Header {
        Header {
            magic: b[0],
            segment_count: b[1],
            spi_mode: b[2],
            spi_speed: b[3] & 0x0F,
            flash_size_code: b[3] >> 4,
            entry: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            wp_pin: b[8],
            spi_pin_drv: [b[9], b[10], b[11]],
            chip_id: u16::from_le_bytes([b[12], b[13]]),
            min_chip_rev: b[14],
            min_chip_rev_full: u16::from_le_bytes([b[15], b[16]]),
            max_chip_rev_full: u16::from_le_bytes([b[17], b[18]]),
            reserved: [b[19], b[20], b[21], b[22]],
            hash_appended: b[23],
        }
    }

    pub fn chip(&self) -> Option<Chip> {
        Chip::from_id(self.chip_id)
    }

    /// `None` for the nibble values 8..15, which no chip defines.
    pub fn flash_size(&self) -> Option<&'static str> {
        FLASH_SIZES.get(usize::from(self.flash_size_code)).copied()
    }

    /// An out-of-range hash flag is still read as "appended" when not 0, so that the rest of
    /// the image is parsed the way a one-bit corruption of a hashed image would expect.
    pub fn has_hash(&self) -> bool {
        self.hash_appended != 0
    }

    /// 0 and 0xFFFF both mean "no maximum" to the bootloader.
    pub fn max_chip_rev_is_set(&self) -> bool {
        self.max_chip_rev_full != 0 && self.max_chip_rev_full != 0xFFFF
    }

    /// Problems visible in the header alone.
    pub(crate) fn check(&self, reasons: &mut Vec<Reason>) {
        if self.magic != IMAGE_MAGIC {
            reasons.push(Reason::new(
                code::BAD_MAGIC,
                format!(
                    "first byte is {:#04x}, an app image starts with {IMAGE_MAGIC:#04x}",
                    self.magic
                ),
            ));
        }
        if self.segment_count > MAX_SEGMENTS {
            reasons.push(Reason::new(
                code::TOO_MANY_SEGMENTS,
                format!(
                    "header declares {} segments, the bootloader accepts at most {MAX_SEGMENTS}",
                    self.segment_count
                ),
            ));
        }
        if self.spi_mode > MAX_SPI_MODE {
            reasons.push(Reason::new(
                code::BAD_SPI_MODE,
                format!(
                    "SPI mode {} is not one of 0 (QIO) .. 5 (SLOW_READ)",
                    self.spi_mode
                ),
            ));
        }
        if self.hash_appended > 1 {
            reasons.push(Reason::new(
                code::BAD_HASH_FLAG,
                format!(
                    "hash-appended byte is {:#04x}, must be 0 or 1",
                    self.hash_appended
                ),
            ));
        }
        if self.chip().is_none() {
            reasons.push(Reason::new(
                code::UNKNOWN_CHIP,
                format!(
                    "chip id {:#06x} is not a known ESP32-family chip",
                    self.chip_id
                ),
            ));
        }
        if self.max_chip_rev_is_set() && self.min_chip_rev_full > self.max_chip_rev_full {
            reasons.push(Reason::new(
                code::BAD_CHIP_REVISION_RANGE,
                format!(
                    "minimum chip revision {} is above the maximum {}: no chip can run it",
                    rev(self.min_chip_rev_full),
                    rev(self.max_chip_rev_full)
                ),
            ));
        }
    }
}

fn rev(full: u16) -> String {
    format!("v{}.{}", full / 100, full % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = 0xE9;
        b[1] = 3;
        b[2] = 2;
        b[3] = 0x2F;
        b[4..8].copy_from_slice(&0x4038_0000u32.to_le_bytes());
        b[8] = 0xEE;
        b[12..14].copy_from_slice(&5u16.to_le_bytes());
        b[15..17].copy_from_slice(&3u16.to_le_bytes());
        b[17..19].copy_from_slice(&199u16.to_le_bytes());
        b[23] = 1;
        b
    }

    fn codes(h: &Header) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        h.check(&mut reasons);
        reasons.into_iter().map(|r| r.code).collect()
    }

    #[test]
    fn parses_fields_little_endian() {
        let h = Header::parse(&sample());
        assert_eq!(h.segment_count, 3);
        assert_eq!(h.spi_mode, 2);
        assert_eq!(h.spi_speed, 0xF);
        assert_eq!(h.flash_size(), Some("4MB"));
        assert_eq!(h.entry, 0x4038_0000);
        assert_eq!(h.chip(), Some(Chip::Esp32c3));
        assert_eq!(h.min_chip_rev_full, 3);
        assert_eq!(h.max_chip_rev_full, 199);
        assert!(h.has_hash());
        assert!(codes(&h).is_empty());
    }

    #[test]
    fn flags_every_header_problem_at_once() {
        let mut b = sample();
        b[0] = 0xE8;
        b[1] = 17;
        b[2] = 6;
        b[3] = 0x8F;
        b[12] = 0xFF;
        b[13] = 0xFF;
        b[15..17].copy_from_slice(&300u16.to_le_bytes());
        b[23] = 2;
        let h = Header::parse(&b);
        assert_eq!(h.flash_size(), None);
        assert_eq!(
            codes(&h),
            vec![
                code::BAD_MAGIC,
                code::TOO_MANY_SEGMENTS,
                code::BAD_SPI_MODE,
                code::BAD_HASH_FLAG,
                code::UNKNOWN_CHIP,
                code::BAD_CHIP_REVISION_RANGE,
            ]
        );
    }

    #[test]
    fn unset_max_revision_allows_any_minimum() {
        for max in [0u16, 0xFFFF] {
            let mut b = sample();
            b[15..17].copy_from_slice(&300u16.to_le_bytes());
            b[17..19].copy_from_slice(&max.to_le_bytes());
            assert!(codes(&Header::parse(&b)).is_empty());
        }
    }

    #[test]
    fn sixteen_segments_is_the_limit() {
        let mut b = sample();
        b[1] = 16;
        assert!(codes(&Header::parse(&b)).is_empty());
    }
}
