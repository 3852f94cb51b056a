//! Reading an image file once, streaming: its SHA-256 and size (what the server binds the upload
//! to) and the verdict of the same validator the server runs at finalize.

use std::path::Path;

use esp_image::{ImageInfo, Rejection, Validator};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::error::{Error, Result};
use crate::table::fields;

/// Read size: big enough to keep syscalls few, small enough that memory does not follow the
/// file's size.
pub const CHUNK: usize = 64 * 1024;

pub struct LocalImage {
    pub size: u64,
    pub sha256: String,
    pub verdict: std::result::Result<ImageInfo, Rejection>,
}

pub async fn read(path: &Path) -> Result<LocalImage> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::failed(format!("cannot open {}: {e}", path.display())))?;
    let mut buf = vec![0u8; CHUNK];
    let mut hasher = Sha256::new();
    let mut validator = Validator::new();
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| Error::failed(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        validator.push(chunk);
        size += n as u64;
    }
    Ok(LocalImage {
        size,
        sha256: hex::encode(hasher.finalize()),
        verdict: validator.finish(),
    })
}

impl LocalImage {
    /// The refusal, on one line, when the image is not valid.
    pub fn refusal(&self, path: &Path) -> Option<Error> {
        let rejection = self.verdict.as_ref().err()?;
        let reasons: Vec<String> = rejection.reasons.iter().map(ToString::to_string).collect();
        Some(Error::failed(format!(
            "{} is not a valid ESP app image (checked locally, nothing was sent): {}",
            path.display(),
            reasons.join("; ")
        )))
    }

    pub fn to_json(&self, path: &Path) -> Value {
        match &self.verdict {
            Ok(info) => json!({
                "file": path.display().to_string(),
                "file_size": self.size,
                "file_hash": self.sha256,
                "valid": true,
                "image": info,
            }),
            Err(rejection) => json!({
                "file": path.display().to_string(),
                "file_size": self.size,
                "file_hash": self.sha256,
                "valid": false,
                "reasons": rejection.reasons,
                "partial": rejection.partial,
            }),
        }
    }

    pub fn render(&self, path: &Path) -> String {
        let mut pairs = vec![
            ("file", path.display().to_string()),
            ("size", self.size.to_string()),
            ("sha256", self.sha256.clone()),
        ];
        match &self.verdict {
            Ok(info) => {
                pairs.extend([
                    ("valid", "yes".to_owned()),
                    ("chip", info.chip.to_string()),
                    ("version", info.app.version.clone()),
                    ("project", info.app.project_name.clone()),
                    ("idf", info.app.idf_version.clone()),
                    ("secure version", info.app.secure_version.to_string()),
                    ("built", format!("{} {}", info.app.date, info.app.time)),
                    ("segments", info.segments.len().to_string()),
                    ("flash size", info.flash_size.unwrap_or("-").to_owned()),
                    (
                        "signed",
                        info.signature
                            .as_ref()
                            .map_or("no".to_owned(), |_| "yes (Secure Boot V2)".to_owned()),
                    ),
                    ("elf sha256", info.app.elf_sha256.clone()),
                ]);
            }
            Err(rejection) => {
                pairs.push(("valid", "no".to_owned()));
                for r in &rejection.reasons {
                    pairs.push(("reason", r.to_string()));
                }
            }
        }
        fields(&pairs)
    }
}
