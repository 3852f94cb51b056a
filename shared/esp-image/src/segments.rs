//! Segment headers and the checks the bootloader applies to each segment (docs/esp-image.md §2).

use serde::Serialize;

use crate::chip::Chip;
use crate::reason::{Reason, code};

pub const SEGMENT_HEADER_LEN: usize = 8;
/// The bootloader refuses a segment this long or longer.
const SIXTEEN_MB: u32 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub load_addr: u32,
    /// File offset of the segment's data (its 8-byte header sits just before), as the
    /// bootloader's `segment_data_offs`.
    pub offset: u32,
    /// Data length as declared in the segment header.
    pub len: u32,
}

impl Segment {
    /// `offset` is where the data starts; it is a `u32` because segments only exist in the
    /// first 4 GB of a file (bigger files are rejected long before, as truncated or trailing).
    pub(crate) fn parse(h: [u8; SEGMENT_HEADER_LEN], offset: u32) -> Segment {
        Segment {
            load_addr: u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
            len: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
            offset,
        }
    }

    /// Checks that need only the segment header, run as soon as it is read.
    pub(crate) fn check_len(&self, index: usize, reasons: &mut Vec<Reason>) {
        if !self.len.is_multiple_of(4) {
            reasons.push(Reason::new(
                code::SEGMENT_LEN_UNALIGNED,
                format!(
                    "segment {index} is {} bytes long, not a multiple of 4",
                    self.len
                ),
            ));
        }
        if self.len >= SIXTEEN_MB {
            reasons.push(Reason::new(
                code::SEGMENT_TOO_LARGE,
                format!(
                    "segment {index} is {} bytes long, the bootloader refuses 16 MB or more",
                    self.len
                ),
            ));
        }
    }

    /// The bootloader maps flash segments page by page, so a mapped segment's data must sit at
    /// the same offset within an MMU page in the file as its load address does in memory
    /// (partitions start on a 64 KB boundary, so the file offset stands for the flash offset).
    pub(crate) fn check_mmu_alignment(
        &self,
        index: usize,
        chip: Chip,
        page: u32,
        reasons: &mut Vec<Reason>,
    ) {
        if !chip.is_flash_mapped(self.load_addr) || page == 0 {
            return;
        }
        if self.offset % page != self.load_addr % page {
            reasons.push(Reason::new(
                code::SEGMENT_MMU_MISALIGNED,
                format!(
                    "segment {index} is mapped from flash at {:#010x} but its data sits at file \
                     offset {:#x}: they must agree modulo the {} KB MMU page",
                    self.load_addr,
                    self.offset,
                    page / 1024
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(f: impl FnOnce(&mut Vec<Reason>)) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        f(&mut reasons);
        reasons.into_iter().map(|r| r.code).collect()
    }

    #[test]
    fn parses_little_endian() {
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&0x3C00_0020u32.to_le_bytes());
        h[4..].copy_from_slice(&0x100u32.to_le_bytes());
        let s = Segment::parse(h, 0x20);
        assert_eq!(
            s,
            Segment {
                load_addr: 0x3C00_0020,
                offset: 0x20,
                len: 0x100
            }
        );
    }

    #[test]
    fn length_checks() {
        let seg = |len| Segment {
            load_addr: 0,
            offset: 0x20,
            len,
        };
        assert!(codes(|r| seg(4).check_len(0, r)).is_empty());
        assert!(codes(|r| seg(0).check_len(0, r)).is_empty());
        assert_eq!(
            codes(|r| seg(6).check_len(0, r)),
            vec![code::SEGMENT_LEN_UNALIGNED]
        );
        assert_eq!(
            codes(|r| seg(SIXTEEN_MB).check_len(0, r)),
            vec![code::SEGMENT_TOO_LARGE]
        );
        assert_eq!(
            codes(|r| seg(u32::MAX).check_len(0, r)),
            vec![code::SEGMENT_LEN_UNALIGNED, code::SEGMENT_TOO_LARGE]
        );
    }

    #[test]
    fn mmu_alignment_applies_to_mapped_segments_only() {
        let chip = Chip::Esp32c3;
        let page = chip.mmu_page_size(0);
        let aligned = Segment {
            load_addr: 0x3C00_0020,
            offset: 0x20,
            len: 256,
        };
        assert!(codes(|r| aligned.check_mmu_alignment(0, chip, page, r)).is_empty());
        let misaligned = Segment {
            offset: 0x30,
            ..aligned
        };
        assert_eq!(
            codes(|r| misaligned.check_mmu_alignment(0, chip, page, r)),
            vec![code::SEGMENT_MMU_MISALIGNED]
        );
        let dram = Segment {
            load_addr: 0x3FC8_8000,
            offset: 0x1234,
            len: 16,
        };
        assert!(codes(|r| dram.check_mmu_alignment(1, chip, page, r)).is_empty());
    }
}
