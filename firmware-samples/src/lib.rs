//! Generator of structurally valid ESP32-family app images, for tests and demos.
//!
//! Images are assembled byte by byte (header, a DROM segment starting with the app
//! description, a DRAM and an IRAM segment, padding, checksum, SHA-256), optionally signed for
//! Secure Boot V2. They pass `esptool image-info` and `espsecure verify-signature` but hold no
//! runnable code. This crate does not use `esp-image`, so the two can check each other.
//!
//! ```
//! use firmware_samples::{ImageSpec, Scheme, SigningKey, Target};
//!
//! let unsigned = ImageSpec::new(Target::Esp32c3, "1.2.0").build();
//! assert_eq!(unsigned.len(), 64 * 1024);
//!
//! let signed = ImageSpec {
//!     signing: Some(SigningKey::from_seed(Scheme::EcdsaP256, 1)),
//!     ..ImageSpec::new(Target::Esp32c6, "1.2.0")
//! }
//! .build();
//! assert_eq!(signed.len() % 0x10000, 4096);
//! ```

mod image;
mod signing;
mod target;

pub use image::{ImageSpec, MIN_SIZE};
pub use signing::{BLOCK_LEN, RSA3072_SEED1_PEM, SECTOR_SIZE, Scheme, SigningKey, sign_image};
pub use target::Target;

/// Parses a size such as `4096`, `256K`, `256KB`, `1M` or `1MiB` (K and M are 1024-based).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(digits_end);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("size {s:?} does not start with a number"))?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1024,
        "M" | "MB" | "MIB" => 1024 * 1024,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// The images committed under `samples/`, by file name. A test checks the files still match
/// what the generator builds.
pub fn samples() -> Vec<(&'static str, ImageSpec)> {
    vec![
        (
            "demo-esp32c3-1.0.0.bin",
            ImageSpec::new(Target::Esp32c3, "1.0.0"),
        ),
        (
            "demo-esp32c3-1.1.0.bin",
            ImageSpec::new(Target::Esp32c3, "1.1.0"),
        ),
        (
            "demo-esp32-1.0.0.bin",
            ImageSpec::new(Target::Esp32, "1.0.0"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256K"), Ok(256 * 1024));
        assert_eq!(parse_size("256kb"), Ok(256 * 1024));
        assert_eq!(parse_size("1M"), Ok(1024 * 1024));
        assert_eq!(parse_size(" 2 MiB "), Ok(2 * 1024 * 1024));
        assert!(parse_size("K").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999999999999999999M").is_err());
    }
}
