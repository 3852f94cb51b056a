//! Reading an image file once, streaming: its SHA-256 and size (what the server binds the upload
//! to) and the verdict of the same validator the server runs at finalize. A P-384-signed image
//! has its signed range read a second time, for the SHA-384 its signature covers (see
//! `esp_image::Finish`).

use std::ops::Range;
use std::path::Path;

use esp_image::{Finish, ImageInfo, Rejection, Validator};
use serde_json::{Value, json};
use sha2::{Digest, Sha384};
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

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
    let mut file = File::open(path)
        .await
        .map_err(|e| Error::failed(format!("cannot open {}: {e}", path.display())))?;
    let mut buf = vec![0u8; CHUNK];
    let mut validator = Validator::new();
    let mut size = 0u64;
    loop {
        let n = read_some(&mut file, &mut buf, path).await?;
        if n == 0 {
            break;
        }
        validator.push(buf.get(..n).unwrap_or_default());
        size += n as u64;
    }
    // The validator hashes every byte with SHA-256 anyway: no second hasher beside it.
    let sha256 = hex::encode(validator.file_sha256());
    let verdict = match validator.finish() {
        Finish::Done(verdict) => verdict,
        Finish::NeedsSha384(needs) => {
            let digest = sha384_of(&mut file, &mut buf, needs.range(), path).await?;
            needs.finish(digest)
        }
    };
    Ok(LocalImage {
        size,
        sha256,
        verdict,
    })
}

/// SHA-384 of `range` of the file, read again.
async fn sha384_of(
    file: &mut File,
    buf: &mut [u8],
    range: Range<u64>,
    path: &Path,
) -> Result<[u8; 48]> {
    file.seek(std::io::SeekFrom::Start(range.start))
        .await
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", path.display())))?;
    let mut hasher = Sha384::new();
    let mut left = range.end - range.start;
    while left > 0 {
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
        let n = read_some(file, buf.get_mut(..want).unwrap_or_default(), path).await?;
        if n == 0 {
            return Err(Error::failed(format!(
                "{} got shorter while it was being read",
                path.display()
            )));
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        left -= n as u64;
    }
    Ok(hasher.finalize().into())
}

async fn read_some(file: &mut File, buf: &mut [u8], path: &Path) -> Result<usize> {
    file.read(buf)
        .await
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", path.display())))
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

#[cfg(test)]
mod tests {
    use firmware_samples::{ImageSpec, Scheme, SigningKey, Target};
    use sha2::Sha256;

    use super::*;

    /// A P-384 signature needs the SHA-384 of the signed range, which `read` gets by reading the
    /// file again; the answer is the one of validating the bytes in memory.
    #[tokio::test]
    async fn a_p384_signed_file_reads_like_the_bytes_in_memory() {
        let good = ImageSpec {
            size: 3 * CHUNK + 100,
            signing: Some(SigningKey::from_seed(Scheme::EcdsaP384, 4)),
            ..ImageSpec::new(Target::Esp32c5, "1.0.0")
        }
        .build();
        let mut tampered = good.clone();
        tampered[4] ^= 1;
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("good.bin", good), ("tampered.bin", tampered)] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let local = read(&path).await.unwrap();
            assert_eq!(local.size, bytes.len() as u64);
            assert_eq!(local.sha256, hex::encode(Sha256::digest(&bytes)));
            assert_eq!(local.verdict.is_ok(), name == "good.bin");
            assert_eq!(local.verdict, esp_image::validate(&bytes), "{name}");
        }
    }
}
