//! What validation reports about an image.

use serde::Serialize;

use crate::app_desc::AppDesc;
use crate::chip::Chip;
use crate::header::Header;
use crate::segments::Segment;
use crate::signature::SignatureInfo;

/// A valid image, as the device will see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    pub chip: Chip,
    pub chip_id: u16,
    /// major * 100 + minor.
    pub min_chip_rev_full: u16,
    /// major * 100 + minor; 0 or 0xFFFF when the image sets no maximum.
    pub max_chip_rev_full: u16,
    pub spi_mode: u8,
    /// `"4MB"` etc.; `None` for a size code no chip defines (the bootloader ignores the app's
    /// value, so it is not a reason to reject).
    pub flash_size: Option<&'static str>,
    pub entry: u32,
    pub segments: Vec<Segment>,
    pub hash_appended: bool,
    pub checksum: u8,
    /// Lowercase hex of the appended SHA-256 (the "validation hash" delta patches name their
    /// base image by), when the image has one.
    pub validation_hash: Option<String>,
    /// Checksum offset + 1, + 32 with the appended hash.
    pub image_len: u64,
    /// Bytes fed in total: `image_len`, or the end of the signature sector.
    pub file_len: u64,
    pub app: AppDesc,
    /// The Secure Boot V2 sector, when the image is signed.
    pub signature: Option<SignatureInfo>,
}

/// Everything that could be parsed from a rejected image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartialInfo {
    pub header: Header,
    pub chip: Option<Chip>,
    /// The segments whose headers were read, even those whose data is cut short.
    pub segments: Vec<Segment>,
    /// Stored checksum, when the file reaches it.
    pub checksum: Option<u8>,
    /// When the file reaches the end of the image.
    pub image_len: Option<u64>,
    pub file_len: u64,
    /// When the first segment holds a full description, whatever its magic.
    pub app: Option<AppDesc>,
    pub signature: Option<SignatureInfo>,
}
