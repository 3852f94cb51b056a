//! Parser and validator of ESP32-family application images (the `.bin` an ESP-IDF build
//! flashes to an OTA slot), written for bytes from untrusted uploads: it never panics, keeps
//! memory bounded while streaming, and reports every problem it finds rather than the first.
//!
//! The format is described in `docs/esp-image.md`; esptool 5.6's
//! `image-info` and `espsecure verify-signature` are the reference behaviour, checked by the
//! `firmware-samples` crate's oracle tests.
//!
//! ```
//! # fn upload_chunks() -> Vec<Vec<u8>> { Vec::new() }
//! # fn sha384_of_stored(range: std::ops::Range<u64>) -> [u8; 48] { [0; 48] }
//! use esp_image::Finish;
//!
//! let mut validator = esp_image::Validator::new();
//! for chunk in upload_chunks() {
//!     validator.push(&chunk);
//! }
//! let file_sha256 = hex::encode(validator.file_sha256());
//! let verdict = match validator.finish() {
//!     Finish::Done(verdict) => verdict,
//!     // A P-384 signature signs the SHA-384 of the bytes before it: read them again.
//!     Finish::NeedsSha384(needs) => {
//!         let digest = sha384_of_stored(needs.range());
//!         needs.finish(digest)
//!     }
//! };
//! println!("sha256 {file_sha256}");
//! match verdict {
//!     Ok(info) => println!("{} {} for {}", info.app.project_name, info.app.version, info.chip),
//!     Err(rejection) => {
//!         for reason in &rejection.reasons {
//!             println!("{}: {}", reason.code, reason.message);
//!         }
//!     }
//! }
//! ```

// Hostile input must not be able to panic the parser; these make clippy hold the line.
// (Arithmetic on input-derived values saturates where it could ever overflow; lengths are u32
// and positions u64, so plain adds of bounded values are left plain.)
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]

mod app_desc;
mod chip;
mod header;
mod info;
mod reason;
mod segments;
mod signature;
mod validator;

pub use app_desc::AppDesc;
pub use chip::Chip;
pub use header::Header;
pub use info::{ImageInfo, PartialInfo};
pub use reason::{Reason, Rejection, code};
pub use segments::Segment;
pub use signature::{SignatureBlock, SignatureInfo, SignatureScheme};
pub use validator::{Finish, NeedsSha384, Validator, validate};
