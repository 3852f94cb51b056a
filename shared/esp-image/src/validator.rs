//! Streaming validation: the image goes through a small state machine one chunk at a time,
//! so memory stays bounded (a few KB plus one entry per segment) whatever the file size.
//!
//! # What may follow the image
//! After the image (checksum, then the appended hash if any) the only bytes accepted are one
//! Secure Boot V2 signature sector: `0xFF` up to the next 4 KB boundary, then exactly 4096
//! bytes whose first block has magic `0xE7`. That is where the bootloader looks for the
//! signature and what `espsecure sign-data` writes. Anything else after the image (extra
//! padding, a second image, a tarball) is never read by the device, so it is rejected as
//! `trailing_data` rather than stored, served and billed for: whatever the server keeps is
//! either checked by the device or by this validator. Non-zero bytes in the zero padding
//! before the checksum are *not* a reason: neither the bootloader nor esptool reads them, and
//! the appended hash, when present, covers them.
//!
//! # Hashing
//! Bytes are hashed once, with SHA-256: a prefix of that stream is the appended hash, the part
//! before the signature sector is what RSA and P-192/P-256 blocks sign, and the whole is the
//! file's SHA-256 ([`Validator::file_sha256`]) callers bind uploads to. P-384 blocks sign a
//! SHA-384 instead, which costs about three times as much per byte (SHA-NI speeds up SHA-256
//! only), and whether one follows is known only after the image, when streamed bytes are gone:
//! so it is not computed as the bytes go by. [`Validator::finish`] asks for it instead, in a
//! continuation ([`NeedsSha384`]) the caller answers by hashing the signed range again.

use std::ops::Range;

use sha2::{Digest, Sha256, Sha384};

use crate::app_desc::{APP_DESC_LEN, AppDesc};
use crate::header::{HEADER_LEN, Header, IMAGE_MAGIC};
use crate::info::{ImageInfo, PartialInfo};
use crate::reason::{Reason, Rejection, code};
use crate::segments::{SEGMENT_HEADER_LEN, Segment};
use crate::signature::{self, ImageDigests, SECTOR_SIZE};

/// The seed of the checksum, an XOR over all segment data.
const CHECKSUM_SEED: u8 = 0xEF;
const HASH_LEN: usize = 32;
const SHA384_LEN: usize = 48;
/// Size of the scratch buffer for fixed-size fields (the largest being the hash).
const SCRATCH_LEN: usize = HASH_LEN;

/// Where in the image the next byte belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    SegmentHeader {
        index: usize,
    },
    SegmentData {
        index: usize,
        remaining: u32,
    },
    /// Zero padding before the checksum byte, which sits at `checksum_at`.
    Padding {
        checksum_at: u64,
    },
    Checksum,
    Hash,
    /// After the image: a 0xFF gap until `sector_start`, then the signature sector.
    Trailer {
        sector_start: u64,
    },
}

/// Streaming validator: feed the file in chunks of any size, in order, then call
/// [`Validator::finish`]. Feeding the same bytes in any chunking gives the same result, and
/// the same as [`validate`] on the whole file.
#[derive(Debug, Clone)]
pub struct Validator {
    pos: u64,
    stage: Stage,
    scratch: [u8; SCRATCH_LEN],
    scratch_len: usize,
    header: Option<Header>,
    segments: Vec<Segment>,
    checksum: u8,
    /// Start of the first segment's data, where the app description lives.
    app: Vec<u8>,
    /// Over every byte pushed: its prefix up to the checksum is the appended hash, up to the
    /// signature sector the digest a signature covers, the whole the file's SHA-256.
    sha256: Sha256,
    computed_hash: Option<[u8; HASH_LEN]>,
    /// SHA-256 of the bytes before the signature sector, once a byte of the sector came in.
    signed_sha256: Option<[u8; HASH_LEN]>,
    stored_checksum: Option<u8>,
    stored_hash: Option<[u8; HASH_LEN]>,
    image_len: Option<u64>,
    /// Bytes other than 0xFF between the image end and the signature sector.
    gap_stray: u64,
    sector: Vec<u8>,
    reasons: Vec<Reason>,
}

impl Default for Validator {
    fn default() -> Self {
        Validator::new()
    }
}

impl Validator {
    pub fn new() -> Self {
        Validator {
            pos: 0,
            stage: Stage::Header,
            scratch: [0; SCRATCH_LEN],
            scratch_len: 0,
            header: None,
            segments: Vec::new(),
            checksum: CHECKSUM_SEED,
            app: Vec::new(),
            sha256: Sha256::new(),
            computed_hash: None,
            signed_sha256: None,
            stored_checksum: None,
            stored_hash: None,
            image_len: None,
            gap_stray: 0,
            sector: Vec::new(),
            reasons: Vec::new(),
        }
    }

    /// The header, once the first 24 bytes are in: lets an upload be refused early (wrong
    /// magic or chip) without waiting for the rest. The full verdict is still `finish`'s.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    pub fn push(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            let n = self.step(chunk);
            chunk = chunk.get(n..).unwrap_or_default();
        }
    }

    /// Consumes what the current stage can take from `chunk` (at least one byte).
    fn step(&mut self, chunk: &[u8]) -> usize {
        let wanted = self.wanted().max(1);
        let n = usize::try_from(wanted).map_or(chunk.len(), |w| w.min(chunk.len()));
        let piece = chunk.get(..n).unwrap_or_default();
        // Pieces stop at the sector start (`wanted`), so the first byte of the sector begins a
        // piece, and the hash holds exactly the signed bytes here.
        if matches!(self.stage, Stage::Trailer { sector_start } if sector_start == self.pos) {
            self.signed_sha256 = Some(self.sha256.clone().finalize().into());
        }
        self.sha256.update(piece);
        self.consume(piece);
        n
    }

    /// SHA-256 of every byte pushed so far: the whole file's once it all went in, so that
    /// callers need no hash of their own beside the validator.
    pub fn file_sha256(&self) -> [u8; HASH_LEN] {
        self.sha256.clone().finalize().into()
    }

    /// How many bytes the current stage still expects (`u64::MAX` for "any number").
    fn wanted(&self) -> u64 {
        let scratch_left = |len: usize| len.saturating_sub(self.scratch_len) as u64;
        match self.stage {
            Stage::Header => scratch_left(HEADER_LEN),
            Stage::SegmentHeader { .. } => scratch_left(SEGMENT_HEADER_LEN),
            Stage::SegmentData { remaining, .. } => u64::from(remaining),
            Stage::Padding { checksum_at } => checksum_at.saturating_sub(self.pos),
            Stage::Checksum => 1,
            Stage::Hash => scratch_left(HASH_LEN),
            Stage::Trailer { sector_start } if self.pos < sector_start => sector_start - self.pos,
            Stage::Trailer { .. } => u64::MAX,
        }
    }

    /// Takes in `piece`, which the current stage asked for, then moves to the next stage.
    fn consume(&mut self, piece: &[u8]) {
        let n = piece.len() as u64;
        let start = self.pos;
        self.pos = self.pos.saturating_add(n);
        match self.stage {
            Stage::Header => {
                self.collect(piece);
                if self.scratch_len == HEADER_LEN {
                    self.on_header();
                }
            }
            Stage::SegmentHeader { index } => {
                self.collect(piece);
                if self.scratch_len == SEGMENT_HEADER_LEN {
                    self.on_segment_header(index);
                }
            }
            Stage::SegmentData { index, remaining } => {
                self.checksum = piece.iter().fold(self.checksum, |acc, b| acc ^ b);
                if index == 0 {
                    let room = APP_DESC_LEN.saturating_sub(self.app.len());
                    self.app.extend(piece.iter().take(room));
                }
                let remaining = remaining.saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
                if remaining == 0 {
                    self.after_segment(index);
                } else {
                    self.stage = Stage::SegmentData { index, remaining };
                }
            }
            Stage::Padding { checksum_at } => {
                if self.pos >= checksum_at {
                    self.stage = Stage::Checksum;
                }
            }
            Stage::Checksum => {
                self.stored_checksum = piece.first().copied();
                self.computed_hash = Some(self.sha256.clone().finalize().into());
                if self.header.as_ref().is_some_and(Header::has_hash) {
                    self.scratch_len = 0;
                    self.stage = Stage::Hash;
                } else {
                    self.enter_trailer();
                }
            }
            Stage::Hash => {
                self.collect(piece);
                if self.scratch_len == HASH_LEN {
                    self.stored_hash = Some(self.scratch);
                    self.enter_trailer();
                }
            }
            Stage::Trailer { sector_start } => {
                if start < sector_start {
                    let stray = piece.iter().filter(|&&b| b != 0xFF).count() as u64;
                    self.gap_stray = self.gap_stray.saturating_add(stray);
                } else {
                    let room = SECTOR_SIZE.saturating_sub(self.sector.len());
                    self.sector.extend(piece.iter().take(room));
                }
            }
        }
    }

    fn collect(&mut self, piece: &[u8]) {
        for (dst, src) in self.scratch.iter_mut().skip(self.scratch_len).zip(piece) {
            *dst = *src;
        }
        self.scratch_len = (self.scratch_len + piece.len()).min(SCRATCH_LEN);
    }

    fn on_header(&mut self) {
        let Some(bytes) = self.scratch.first_chunk::<HEADER_LEN>() else {
            return;
        };
        let header = Header::parse(bytes);
        header.check(&mut self.reasons);
        let count = header.segment_count;
        self.header = Some(header);
        self.scratch_len = 0;
        if count == 0 {
            self.after_segments();
        } else {
            self.stage = Stage::SegmentHeader { index: 0 };
        }
    }

    fn on_segment_header(&mut self, index: usize) {
        let Some(bytes) = self.scratch.first_chunk::<SEGMENT_HEADER_LEN>() else {
            return;
        };
        let offset = u32::try_from(self.pos).unwrap_or(u32::MAX);
        let segment = Segment::parse(*bytes, offset);
        segment.check_len(index, &mut self.reasons);
        self.segments.push(segment);
        self.scratch_len = 0;
        if segment.len == 0 {
            self.after_segment(index);
        } else {
            self.stage = Stage::SegmentData {
                index,
                remaining: segment.len,
            };
        }
    }

    fn after_segment(&mut self, index: usize) {
        let count = self
            .header
            .as_ref()
            .map_or(0, |h| usize::from(h.segment_count));
        if index + 1 < count {
            self.stage = Stage::SegmentHeader { index: index + 1 };
        } else {
            self.after_segments();
        }
    }

    /// The checksum is the last byte of a 16-byte block.
    fn after_segments(&mut self) {
        let checksum_at = self.pos | 0xF;
        self.stage = if self.pos == checksum_at {
            Stage::Checksum
        } else {
            Stage::Padding { checksum_at }
        };
    }

    fn enter_trailer(&mut self) {
        self.image_len = Some(self.pos);
        let sector_start = self
            .pos
            .div_ceil(SECTOR_SIZE as u64)
            .saturating_mul(SECTOR_SIZE as u64);
        self.stage = Stage::Trailer { sector_start };
    }

    /// The verdict, once every byte was pushed; or, when a P-384 signature block must be checked,
    /// a continuation that gives it for the SHA-384 of the signed range.
    pub fn finish(self) -> Finish {
        match self.p384_signed_range() {
            Some(range) => Finish::NeedsSha384(NeedsSha384 {
                validator: self,
                range,
            }),
            None => Finish::Done(self.conclude(None)),
        }
    }

    /// The bytes a P-384 block signs, when `conclude` will check one: the file ends with exactly
    /// one signature sector after the image, holding an intact P-384 block.
    fn p384_signed_range(&self) -> Option<Range<u64>> {
        let Stage::Trailer { sector_start } = self.stage else {
            return None;
        };
        let sector = self.sector.first_chunk::<SECTOR_SIZE>()?;
        let sector_is_last = self.pos == sector_start + SECTOR_SIZE as u64;
        (sector_is_last && signature::needs_sha384(sector)).then_some(0..sector_start)
    }

    /// The verdict; `sha384` is the SHA-384 of the signed range, given whenever
    /// `p384_signed_range` asks for it.
    fn conclude(self, sha384: Option<[u8; SHA384_LEN]>) -> Result<ImageInfo, Rejection> {
        let mut reasons = self.reasons;
        let file_len = self.pos;
        let Some(header) = self.header else {
            if file_len > 0 && self.scratch[0] != IMAGE_MAGIC {
                reasons.push(Reason::new(
                    code::BAD_MAGIC,
                    format!(
                        "first byte is {:#04x}, an app image starts with {IMAGE_MAGIC:#04x}",
                        self.scratch[0]
                    ),
                ));
            }
            reasons.push(Reason::new(
                code::TRUNCATED,
                format!("file is {file_len} bytes, shorter than the {HEADER_LEN}-byte header"),
            ));
            return Err(Rejection {
                reasons,
                partial: None,
            });
        };
        let chip = header.chip();

        match self.stage {
            Stage::Header | Stage::Trailer { .. } => {}
            Stage::SegmentHeader { index } => reasons.push(Reason::new(
                code::TRUNCATED,
                format!(
                    "file ends at {file_len} inside the header of segment {index} (of {})",
                    header.segment_count
                ),
            )),
            Stage::SegmentData { index, .. } => {
                reasons.push(Reason::new(
                    code::TRUNCATED,
                    format!("file ends at {file_len} inside the data of segment {index}"),
                ));
                if let Some(s) = self.segments.get(index) {
                    reasons.push(Reason::new(
                        code::SEGMENT_OUT_OF_BOUNDS,
                        format!(
                            "segment {index} declares {} bytes at offset {:#x}, past the end of \
                             the {file_len}-byte file",
                            s.len, s.offset
                        ),
                    ));
                }
            }
            Stage::Padding { checksum_at } => reasons.push(Reason::new(
                code::TRUNCATED,
                format!("file ends at {file_len}, before the checksum byte at {checksum_at:#x}"),
            )),
            Stage::Checksum => reasons.push(Reason::new(
                code::TRUNCATED,
                format!("file ends at {file_len}, just before the checksum byte"),
            )),
            Stage::Hash => reasons.push(Reason::new(
                code::TRUNCATED,
                format!(
                    "file ends at {file_len}, {} bytes into the 32-byte appended SHA-256",
                    self.scratch_len
                ),
            )),
        }

        let app_bytes = self.app.first_chunk::<APP_DESC_LEN>();
        let app = app_bytes.map(AppDesc::parse);
        if let Some(bytes) = app_bytes {
            AppDesc::check(bytes, &mut reasons);
        } else {
            match self.segments.first() {
                None if header.segment_count == 0 => reasons.push(Reason::new(
                    code::APP_DESC_MISSING,
                    "image has no segments, so no app description",
                )),
                Some(first) if (first.len as usize) < APP_DESC_LEN => reasons.push(Reason::new(
                    code::APP_DESC_MISSING,
                    format!(
                        "first segment is {} bytes, too short for the {APP_DESC_LEN}-byte app \
                         description",
                        first.len
                    ),
                )),
                // Cut short before the description was complete: already `truncated`.
                _ => {}
            }
        }

        if let Some(chip) = chip {
            let page = chip.mmu_page_size(app.as_ref().map_or(0, |a| a.mmu_page_size_log2));
            for (index, segment) in self.segments.iter().enumerate() {
                segment.check_mmu_alignment(index, chip, page, &mut reasons);
            }
        }

        if let Some(stored) = self.stored_checksum
            && stored != self.checksum
        {
            reasons.push(Reason::new(
                code::CHECKSUM_MISMATCH,
                format!(
                    "stored checksum {stored:#04x}, computed {:#04x}",
                    self.checksum
                ),
            ));
        }
        if let (Some(stored), Some(computed)) = (self.stored_hash, self.computed_hash)
            && stored != computed
        {
            reasons.push(Reason::new(
                code::HASH_MISMATCH,
                format!(
                    "appended SHA-256 is {}, the image hashes to {}",
                    hex::encode(stored),
                    hex::encode(computed)
                ),
            ));
        }

        let mut signature = None;
        if let (Some(image_len), Stage::Trailer { sector_start }) = (self.image_len, self.stage) {
            let trailing = file_len - image_len;
            let expected = (sector_start - image_len) + SECTOR_SIZE as u64;
            if trailing != 0 && trailing != expected {
                reasons.push(Reason::new(
                    code::TRAILING_DATA,
                    format!(
                        "{trailing} bytes follow the {image_len}-byte image; only a Secure Boot V2 \
                         signature sector may (0xFF up to {sector_start:#x}, then 4096 bytes: \
                         {expected} bytes in all)"
                    ),
                ));
            } else if trailing == expected {
                if self.gap_stray > 0 {
                    reasons.push(Reason::new(
                        code::BAD_SIGNATURE_PADDING,
                        format!(
                            "{} byte(s) between the image end ({image_len:#x}) and the signature \
                             sector ({sector_start:#x}) are not 0xFF",
                            self.gap_stray
                        ),
                    ));
                }
                if let (Some(sector), Some(sha256)) =
                    (self.sector.first_chunk::<SECTOR_SIZE>(), self.signed_sha256)
                {
                    let digests = ImageDigests { sha256, sha384 };
                    signature = Some(signature::check_sector(
                        sector,
                        sector_start,
                        chip,
                        &digests,
                        &mut reasons,
                    ));
                }
            }
        }

        if reasons.is_empty()
            && let (Some(chip), Some(app), Some(checksum), Some(image_len)) =
                (chip, app.clone(), self.stored_checksum, self.image_len)
        {
            return Ok(ImageInfo {
                chip,
                chip_id: header.chip_id,
                min_chip_rev_full: header.min_chip_rev_full,
                max_chip_rev_full: header.max_chip_rev_full,
                spi_mode: header.spi_mode,
                flash_size: header.flash_size(),
                entry: header.entry,
                segments: self.segments,
                hash_appended: header.has_hash(),
                checksum,
                validation_hash: self.stored_hash.map(hex::encode),
                image_len,
                file_len,
                app,
                signature,
            });
        }
        if reasons.is_empty() {
            // Every path that leaves a field unset pushes a reason; this keeps `reasons`
            // non-empty even if that ever stops being true.
            reasons.push(Reason::new(code::TRUNCATED, "image is incomplete"));
        }
        Err(Rejection {
            reasons,
            partial: Some(Box::new(PartialInfo {
                header,
                chip,
                segments: self.segments,
                checksum: self.stored_checksum,
                image_len: self.image_len,
                file_len,
                app,
                signature,
            })),
        })
    }
}

/// What [`Validator::finish`] gives. Only [`NeedsSha384::finish`] turns the second case into
/// a verdict, so a caller cannot skip the P-384 check.
#[derive(Debug)]
#[must_use = "the verdict, or the SHA-384 it still needs"]
pub enum Finish {
    Done(Result<ImageInfo, Rejection>),
    NeedsSha384(NeedsSha384),
}

impl Finish {
    /// The verdict, for callers that hold the `file` that was pushed: its signed range is
    /// hashed when asked.
    pub fn with_file(self, file: &[u8]) -> Result<ImageInfo, Rejection> {
        match self {
            Finish::Done(verdict) => verdict,
            Finish::NeedsSha384(needs) => {
                // The range ends before the signature sector that was pushed, so within `file`.
                let end = usize::try_from(needs.range.end).ok();
                let signed = end.and_then(|end| file.get(..end)).unwrap_or_default();
                needs.finish(Sha384::digest(signed).into())
            }
        }
    }
}

/// A validation waiting for the SHA-384 of [`NeedsSha384::range`], which a P-384 signature
/// block signs: the caller reads those bytes again (they are the file's first
/// `range().end`) and hands the digest to [`NeedsSha384::finish`].
#[derive(Debug)]
#[must_use = "the verdict needs the SHA-384 of the signed range"]
pub struct NeedsSha384 {
    validator: Validator,
    range: Range<u64>,
}

impl NeedsSha384 {
    /// The signed bytes: from the start of the file to the signature sector.
    pub fn range(&self) -> Range<u64> {
        self.range.clone()
    }

    /// The verdict, given the SHA-384 of the bytes in [`NeedsSha384::range`].
    pub fn finish(self, sha384: [u8; SHA384_LEN]) -> Result<ImageInfo, Rejection> {
        self.validator.conclude(Some(sha384))
    }
}

/// Validates a whole file held in memory; same result as streaming it through [`Validator`].
pub fn validate(bytes: &[u8]) -> Result<ImageInfo, Rejection> {
    let mut v = Validator::new();
    v.push(bytes);
    v.finish().with_file(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chip::Chip;

    const C3: u16 = 0x0005;
    const DROM: u32 = 0x3C00_0020;

    fn app_desc(version: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; APP_DESC_LEN];
        d[..4].copy_from_slice(&0xABCD_5432u32.to_le_bytes());
        d[0x10..0x10 + version.len()].copy_from_slice(version);
        d[0x30..0x34].copy_from_slice(b"demo");
        d
    }

    /// A minimal image assembled by hand, independent of the `firmware-samples` generator.
    fn build(chip_id: u16, segments: &[(u32, Vec<u8>)], hash: bool) -> Vec<u8> {
        let mut out = vec![0xE9, u8::try_from(segments.len()).unwrap(), 2, 0x20];
        out.extend(0x4038_0000u32.to_le_bytes());
        out.extend([0xEE, 0, 0, 0]);
        out.extend(chip_id.to_le_bytes());
        out.extend([0u8; 9]);
        out.push(u8::from(hash));
        let mut checksum = 0xEF;
        for (addr, data) in segments {
            out.extend(addr.to_le_bytes());
            out.extend(u32::try_from(data.len()).unwrap().to_le_bytes());
            out.extend(data);
            checksum = data.iter().fold(checksum, |a, b| a ^ b);
        }
        while out.len() % 16 != 15 {
            out.push(0);
        }
        out.push(checksum);
        if hash {
            let digest = Sha256::digest(&out);
            out.extend(digest);
        }
        out
    }

    fn segments(version: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut drom = app_desc(version);
        drom.extend((0..64u8).map(|i| i.wrapping_mul(37)));
        vec![
            (DROM, drom),
            (0x3FC8_8000, vec![0x11; 16]),
            (0x4038_0000, vec![0x22; 32]),
        ]
    }

    fn valid(hash: bool) -> Vec<u8> {
        build(C3, &segments(b"1.0.0"), hash)
    }

    fn codes(bytes: &[u8]) -> Vec<&'static str> {
        match validate(bytes) {
            Ok(_) => Vec::new(),
            Err(r) => r.codes(),
        }
    }

    #[test]
    fn accepts_a_minimal_image_with_and_without_hash() {
        for hash in [true, false] {
            let bytes = valid(hash);
            let info = validate(&bytes).unwrap_or_else(|r| panic!("{r}"));
            assert_eq!(info.chip, Chip::Esp32c3);
            assert_eq!(info.hash_appended, hash);
            assert_eq!(info.validation_hash.is_some(), hash);
            assert_eq!(info.file_len, bytes.len() as u64);
            assert_eq!(info.image_len, bytes.len() as u64);
            assert_eq!(info.app.version, "1.0.0");
            assert_eq!(info.app.project_name, "demo");
            assert_eq!(info.flash_size, Some("4MB"));
            assert_eq!(info.segments.len(), 3);
            assert_eq!(info.segments[0].offset, 0x20);
            assert_eq!(info.segments[0].load_addr, DROM);
            assert_eq!(info.segments[1].offset, 0x20 + 320 + 8);
            assert!(info.signature.is_none());
        }
    }

    #[test]
    fn any_chunking_gives_the_same_result() {
        let mut corrupt = valid(true);
        corrupt[0x100] ^= 0x40;
        for bytes in [valid(true), valid(false), corrupt] {
            let whole = validate(&bytes);
            for size in 1..=67 {
                let mut v = Validator::new();
                for chunk in bytes.chunks(size) {
                    v.push(chunk);
                    v.push(&[]);
                }
                assert_eq!(v.file_sha256(), <[u8; 32]>::from(Sha256::digest(&bytes)));
                let streamed = v.finish().with_file(&bytes);
                assert_eq!(streamed, whole, "chunk size {size}");
            }
        }
    }

    #[test]
    fn reports_every_problem_together() {
        let mut bytes = valid(true);
        bytes[12] = 0x77; // unknown chip (header is not checksummed, only hashed)
        bytes[0x100] ^= 1; // segment data: checksum and hash
        assert_eq!(
            codes(&bytes),
            vec![
                code::UNKNOWN_CHIP,
                code::CHECKSUM_MISMATCH,
                code::HASH_MISMATCH
            ]
        );
    }

    #[test]
    fn hash_mismatch_alone_when_only_the_header_changes() {
        let mut bytes = valid(true);
        bytes[4] ^= 1; // entry point: covered by the hash only
        assert_eq!(codes(&bytes), vec![code::HASH_MISMATCH]);
        let last = bytes.len() - 1;
        let mut bytes = valid(true);
        bytes[last] ^= 1;
        assert_eq!(codes(&bytes), vec![code::HASH_MISMATCH]);
    }

    #[test]
    fn truncation_at_every_length_is_reported() {
        let bytes = valid(true);
        for len in 0..bytes.len() {
            let found = codes(&bytes[..len]);
            assert!(found.contains(&code::TRUNCATED), "len {len}: {found:?}");
        }
    }

    #[test]
    fn truncation_inside_a_segment_is_also_out_of_bounds() {
        let bytes = valid(false);
        let found = codes(&bytes[..0x40]);
        assert_eq!(found, vec![code::TRUNCATED, code::SEGMENT_OUT_OF_BOUNDS]);
        let err = validate(&bytes[..0x40]).err();
        let partial = err.and_then(|r| r.partial);
        assert_eq!(partial.map(|p| p.segments.len()), Some(1));
    }

    #[test]
    fn short_files() {
        assert_eq!(codes(&[]), vec![code::TRUNCATED]);
        assert_eq!(codes(&[0xE9]), vec![code::TRUNCATED]);
        assert_eq!(
            codes(&[0x7F, b'E', b'L', b'F']),
            vec![code::BAD_MAGIC, code::TRUNCATED]
        );
    }

    #[test]
    fn segment_length_that_overflows_the_file() {
        let mut bytes = valid(false);
        bytes[0x1C..0x20].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert_eq!(
            codes(&bytes),
            vec![
                code::SEGMENT_TOO_LARGE,
                code::TRUNCATED,
                code::SEGMENT_OUT_OF_BOUNDS
            ]
        );
    }

    #[test]
    fn unaligned_segment_length() {
        let mut segs = segments(b"1.0.0");
        segs[1].1.push(0);
        assert_eq!(
            codes(&build(C3, &segs, true)),
            vec![code::SEGMENT_LEN_UNALIGNED]
        );
    }

    #[test]
    fn too_many_segments() {
        let mut segs = segments(b"1.0.0");
        for i in 0..14u8 {
            segs.push((0x3FC9_0000 + u32::from(i) * 16, vec![i; 16]));
        }
        assert_eq!(segs.len(), 17);
        assert_eq!(
            codes(&build(C3, &segs, true)),
            vec![code::TOO_MANY_SEGMENTS]
        );
        segs.pop();
        assert!(codes(&build(C3, &segs, true)).is_empty());
    }

    #[test]
    fn app_description_problems() {
        assert_eq!(codes(&build(C3, &[], true)), vec![code::APP_DESC_MISSING]);
        let short = vec![(DROM, app_desc(b"1")[..128].to_vec())];
        assert_eq!(
            codes(&build(C3, &short, true)),
            vec![code::APP_DESC_MISSING]
        );
        let mut segs = segments(b"1.0\x07");
        segs[0].1[0] = 0;
        assert_eq!(
            codes(&build(C3, &segs, true)),
            vec![code::BAD_APP_DESC_MAGIC, code::INVALID_VERSION_STRING]
        );
    }

    #[test]
    fn mapped_segment_must_match_its_file_offset() {
        let mut segs = segments(b"1.0.0");
        segs[0].0 = 0x3C00_0040;
        assert_eq!(
            codes(&build(C3, &segs, true)),
            vec![code::SEGMENT_MMU_MISALIGNED]
        );
    }

    #[test]
    fn trailing_bytes_that_are_not_a_signature_sector() {
        let base = valid(true);
        let mut one_more = base.clone();
        one_more.push(0xFF);
        assert_eq!(codes(&one_more), vec![code::TRAILING_DATA]);

        let sector_start = base.len().div_ceil(4096) * 4096;
        let mut erased = base.clone();
        erased.resize(sector_start + 4096, 0xFF);
        assert_eq!(codes(&erased), vec![code::BAD_SIGNATURE_MAGIC]);

        let mut too_long = erased.clone();
        too_long.extend([0xFF; 4096]);
        assert_eq!(codes(&too_long), vec![code::TRAILING_DATA]);

        let mut dirty_gap = erased;
        dirty_gap[base.len()] = 0;
        assert_eq!(
            codes(&dirty_gap),
            vec![code::BAD_SIGNATURE_PADDING, code::BAD_SIGNATURE_MAGIC]
        );
    }

    #[test]
    fn padding_before_the_checksum_is_not_checked() {
        let mut bytes = valid(false);
        let checksum_at = bytes.len() - 1;
        bytes[checksum_at - 1] = 0xAA;
        assert!(codes(&bytes).is_empty());
    }

    #[test]
    fn header_is_available_as_soon_as_it_is_complete() {
        let bytes = valid(true);
        let mut v = Validator::new();
        v.push(&bytes[..23]);
        assert!(v.header().is_none());
        v.push(&bytes[23..24]);
        assert_eq!(v.header().and_then(Header::chip), Some(Chip::Esp32c3));
    }

    #[test]
    fn results_serialize_to_json() {
        let info = validate(&valid(true)).ok();
        let json = serde_json::to_value(&info).unwrap_or_default();
        assert_eq!(json["chip"], "esp32c3");
        assert_eq!(json["flash_size"], "4MB");
        assert_eq!(json["app"]["version"], "1.0.0");
        assert_eq!(json["segments"][0]["offset"], 0x20);
        assert_eq!(json["signature"], serde_json::Value::Null);

        let mut bad = valid(true);
        bad[0] = 0;
        let rejection = validate(&bad).err();
        let json = serde_json::to_value(&rejection).unwrap_or_default();
        assert_eq!(json["reasons"][0]["code"], "bad_magic");
        assert_eq!(json["partial"]["header"]["magic"], 0);
        assert_eq!(json["partial"]["chip"], "esp32c3");
    }
}
