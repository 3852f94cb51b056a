//! Assembling an app image byte by byte (docs/esp-image.md §8 (a)).

use sha2::{Digest, Sha256};

use crate::signing::{SECTOR_SIZE, SigningKey, sign_image};
use crate::target::Target;

const HEADER_LEN: usize = 24;
const SEGMENT_HEADER_LEN: usize = 8;
const APP_DESC_LEN: usize = 256;
const HASH_LEN: usize = 32;
/// Smallest image: `esp_https_ota_get_img_desc` reads the first 1024 bytes.
pub const MIN_SIZE: usize = 1024;
/// ESP-IDF pads signed apps so the signed part ends on an MMU page (64 KB) boundary.
const SECURE_PAD_ALIGN: usize = 0x1_0000;
const DRAM_LEN: usize = 64;
const IRAM_LEN: usize = 128;
const EXTRA_SEGMENT_LEN: u8 = 16;

/// What to generate. Every field has a sensible default ([`ImageSpec::new`]); the output is a
/// pure function of the spec, so the same spec always gives the same bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    pub chip: Target,
    /// Longer strings are cut to fit their field with a terminating NUL, as ESP-IDF does.
    pub version: String,
    pub project_name: String,
    pub secure_version: u32,
    pub idf_version: String,
    /// Approximate file size in bytes (at least [`MIN_SIZE`]); reached by growing the first
    /// segment. Unsigned images hit it exactly when it is a multiple of 16; signed ones are
    /// N × 64 KB + 4 KB (the signature sector), the largest such size not above it (N ≥ 1).
    pub size: usize,
    pub hash_appended: bool,
    pub signing: Option<SigningKey>,
    /// `__TIME__`/`__DATE__` of the build: fixed by default so builds are reproducible.
    pub build_time: String,
    pub build_date: String,
    pub min_chip_rev_full: u16,
    /// 0xFFFF: no maximum.
    pub max_chip_rev_full: u16,
    /// Small DRAM segments added after the usual three, to reach segment counts the
    /// bootloader refuses (more than 16) in negative tests.
    pub extra_segments: u8,
}

impl ImageSpec {
    pub fn new(chip: Target, version: &str) -> ImageSpec {
        ImageSpec {
            chip,
            version: version.to_owned(),
            project_name: "demo".to_owned(),
            secure_version: 0,
            idf_version: "v5.4".to_owned(),
            size: 64 * 1024,
            hash_appended: true,
            signing: None,
            build_time: "00:00:00".to_owned(),
            build_date: "Jan  1 2026".to_owned(),
            min_chip_rev_full: 0,
            max_chip_rev_full: 0xFFFF,
            extra_segments: 0,
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let ram_segments = self.ram_segments();
        let pad_segment = usize::from(self.signing.is_some());
        let segment_count = 1 + ram_segments.len() + pad_segment;

        // File offset where the segments end, and so the first segment's filler length.
        let fixed = HEADER_LEN
            + SEGMENT_HEADER_LEN
            + APP_DESC_LEN
            + ram_segments
                .iter()
                .map(|(_, d)| SEGMENT_HEADER_LEN + d.len())
                .sum::<usize>();
        let tail = 16 + if self.hash_appended { HASH_LEN } else { 0 };
        let target = if self.signing.is_some() {
            // Aim the signed part at the 64 KB boundary below `size` less the signature
            // sector, minus the padding segment's header, so the padding segment is empty.
            let signed = (self.size.saturating_sub(SECTOR_SIZE) / SECURE_PAD_ALIGN).max(1);
            signed * SECURE_PAD_ALIGN - SEGMENT_HEADER_LEN
        } else {
            self.size.max(MIN_SIZE) / 16 * 16
        };
        let filler_len = target.saturating_sub(fixed + tail) / 4 * 4;

        let mut drom = self.app_desc();
        drom.extend(self.filler(filler_len));

        let mut segments = vec![(self.chip.drom_addr(), drom)];
        segments.extend(ram_segments);

        let mut out = Vec::with_capacity(target + 2 * SECURE_PAD_ALIGN);
        out.extend(self.header(segment_count));
        for (addr, data) in &segments {
            push_segment(&mut out, *addr, data);
        }
        if self.signing.is_some() {
            // As esptool's --secure-pad-v2: a zero segment loaded at address 0 so that, after
            // its header, the checksum block and the hash, the image ends on a 64 KB boundary.
            let after = 16 + if self.hash_appended { HASH_LEN } else { 0 };
            let used = (out.len() + SEGMENT_HEADER_LEN + after) % SECURE_PAD_ALIGN;
            let pad_len = (SECURE_PAD_ALIGN - used) % SECURE_PAD_ALIGN;
            let pad = vec![0u8; pad_len];
            push_segment(&mut out, 0, &pad);
            segments.push((0, pad));
        }

        let checksum = segments
            .iter()
            .flat_map(|(_, d)| d.iter())
            .fold(0xEF, |acc, b| acc ^ b);
        while out.len() % 16 != 15 {
            out.push(0);
        }
        out.push(checksum);
        if self.hash_appended {
            let digest = Sha256::digest(&out);
            out.extend(digest);
        }
        match &self.signing {
            Some(key) => sign_image(&out, std::slice::from_ref(key)),
            None => out,
        }
    }

    fn header(&self, segment_count: usize) -> Vec<u8> {
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.push(0xE9);
        h.push(u8::try_from(segment_count).unwrap_or(u8::MAX));
        h.push(2); // DIO
        h.push(0x20); // 4MB flash, speed code 0 (valid on every chip)
        h.extend(self.chip.iram_addr().to_le_bytes()); // entry point
        h.push(0xEE); // WP pin disabled
        h.extend([0, 0, 0]); // SPI pin drive
        h.extend(self.chip.chip_id().to_le_bytes());
        h.push(u8::try_from(self.min_chip_rev_full / 100).unwrap_or(u8::MAX));
        h.extend(self.min_chip_rev_full.to_le_bytes());
        h.extend(self.max_chip_rev_full.to_le_bytes());
        h.extend([0, 0, 0, 0]);
        h.push(u8::from(self.hash_appended));
        h
    }

    fn app_desc(&self) -> Vec<u8> {
        let mut d = Vec::with_capacity(APP_DESC_LEN);
        d.extend(0xABCD_5432u32.to_le_bytes());
        d.extend(self.secure_version.to_le_bytes());
        d.extend([0u8; 8]);
        d.extend(c_string(&self.version, 32));
        d.extend(c_string(&self.project_name, 32));
        d.extend(c_string(&self.build_time, 16));
        d.extend(c_string(&self.build_date, 16));
        d.extend(c_string(&self.idf_version, 32));
        d.extend(self.elf_sha256());
        d.extend(0u16.to_le_bytes()); // min eFuse block revision
        d.extend(99u16.to_le_bytes()); // max eFuse block revision (v0.99)
        d.push(16); // log2(64 KB MMU page)
        d.resize(APP_DESC_LEN, 0);
        d
    }

    /// Stands in for the ELF's SHA-256: a digest of everything that defines the build.
    fn elf_sha256(&self) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.chip.name())
            .chain_update([0])
            .chain_update(&self.project_name)
            .chain_update([0])
            .chain_update(&self.version)
            .chain_update([0])
            .chain_update(&self.idf_version)
            .chain_update(self.secure_version.to_le_bytes())
            .chain_update((self.size as u64).to_le_bytes())
            .finalize()
            .into()
    }

    /// Pseudo-random "rodata" that depends on the project only, with the version stamped every
    /// 4 KB: two versions of a project differ in a few places, as real builds of a small
    /// change do, which keeps delta patches between samples small.
    fn filler(&self, len: usize) -> Vec<u8> {
        let seed = Sha256::digest(self.project_name.as_bytes());
        let mut state = u64::from_le_bytes([
            seed[0], seed[1], seed[2], seed[3], seed[4], seed[5], seed[6], seed[7],
        ]) | 1;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            // xorshift64*
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            out.extend(state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(len);
        let stamp = self.version.as_bytes();
        for start in (0..len).step_by(4096) {
            for (dst, src) in out.iter_mut().skip(start).zip(stamp) {
                *dst = *src;
            }
        }
        out
    }

    fn ram_segments(&self) -> Vec<(u32, Vec<u8>)> {
        let dram: Vec<u8> = Sha256::digest(self.version.as_bytes())
            .iter()
            .cycle()
            .take(DRAM_LEN)
            .copied()
            .collect();
        // `nop` on RISC-V (0x00000013) fills IRAM; its exact content is irrelevant.
        let iram: Vec<u8> = [0x13, 0, 0, 0].into_iter().cycle().take(IRAM_LEN).collect();
        let mut segments = vec![(self.chip.dram_addr(), dram), (self.chip.iram_addr(), iram)];
        for i in 0..self.extra_segments {
            let addr = self.chip.dram_addr() + 0x100 + u32::from(i) * u32::from(EXTRA_SEGMENT_LEN);
            segments.push((addr, vec![i; usize::from(EXTRA_SEGMENT_LEN)]));
        }
        segments
    }
}

fn push_segment(out: &mut Vec<u8>, addr: u32, data: &[u8]) {
    out.extend(addr.to_le_bytes());
    out.extend(u32::try_from(data.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend(data);
}

/// `s` cut to `len - 1` bytes (at a character boundary) and NUL-padded to `len`.
fn c_string(s: &str, len: usize) -> Vec<u8> {
    let mut end = s.len().min(len - 1);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = s.as_bytes()[..end].to_vec();
    out.resize(len, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_sizes_are_exact_for_multiples_of_16() {
        for hash in [true, false] {
            for size in [1024, 4096, 65536, 100_000] {
                let spec = ImageSpec {
                    size,
                    hash_appended: hash,
                    ..ImageSpec::new(Target::Esp32c3, "1.0.0")
                };
                assert_eq!(spec.build().len(), size / 16 * 16, "{size} {hash}");
            }
        }
    }

    #[test]
    fn tiny_sizes_are_raised_to_the_minimum() {
        let spec = ImageSpec {
            size: 10,
            ..ImageSpec::new(Target::Esp32, "1")
        };
        assert_eq!(spec.build().len(), MIN_SIZE);
    }

    #[test]
    fn c_strings_are_cut_and_terminated() {
        assert_eq!(c_string("abc", 5), b"abc\0\0");
        assert_eq!(c_string("abcdef", 5), b"abcd\0");
        assert_eq!(
            c_string("ééé", 5),
            "éé"
                .as_bytes()
                .iter()
                .copied()
                .chain([0])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn versions_of_one_project_share_most_bytes() {
        let a = ImageSpec::new(Target::Esp32c3, "1.0.0").build();
        let b = ImageSpec::new(Target::Esp32c3, "1.1.0").build();
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!(same * 100 / a.len() > 95, "{same} of {}", a.len());
    }
}
