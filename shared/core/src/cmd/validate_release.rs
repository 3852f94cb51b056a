//! The step both ways of publishing share (the one-shot upload and the two-step finalize):
//! reading the stored bytes once, streaming, as an ESP image (docs/esp-image.md), checking them
//! against what the release declared and its device type's policy, and turning the record into
//! a ready release. A P-384-signed image has its signed range read a second time, for the
//! SHA-384 its signature covers (see `esp_image::Finish`).

use std::ops::Range;

use futures_util::StreamExt;
use sha2::{Digest, Sha384};
use time::OffsetDateTime;

use crate::device_type::DeviceTypePolicy;
use crate::error::OpError;
use crate::image_policy::{self, ImageProblem};
use crate::ports::{ByteRange, StoreError};
use crate::release::{Release, ReleaseState};
use crate::service::Service;
use esp_image::{Finish, ImageInfo, Validator};

/// Reads the stored object once, streaming, and checks it against the record and the device
/// type's policy. Returns the parsed image, or every problem found.
async fn inspect(
    service: &Service,
    release: &Release,
    policy: Option<&DeviceTypePolicy>,
) -> Result<Result<ImageInfo, Vec<ImageProblem>>, OpError> {
    let key = release.blob_key();
    let mut stream = service.blobs.get(&key, None).await?;
    let mut validator = Validator::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| reading_failed(&e))?;
        size += chunk.len() as u64;
        validator.push(&chunk);
    }
    // The validator hashes every byte with SHA-256 anyway: no second hasher beside it.
    let sha = hex::encode(validator.file_sha256());
    let mut problems =
        image_policy::check_declared_bytes(release.file_size, &release.file_hash, size, &sha);
    let verdict = match validator.finish() {
        Finish::Done(verdict) => verdict,
        Finish::NeedsSha384(needs) => {
            let digest = sha384_of_stored(service, &key, needs.range()).await?;
            needs.finish(digest)
        }
    };
    match verdict {
        Ok(info) => {
            problems.extend(image_policy::check_policy(&info, &release.version, policy));
            Ok(if problems.is_empty() {
                Ok(info)
            } else {
                Err(problems)
            })
        }
        Err(rejection) => {
            problems.extend(image_policy::rejection_problems(&rejection));
            Ok(Err(problems))
        }
    }
}

/// SHA-384 of `range` of the stored object, read again. The bytes are the ones the first read
/// saw: an object is only ever stored whole, under a key of its own release, and an upload URL
/// accepts only bytes of the declared size and SHA-256.
async fn sha384_of_stored(
    service: &Service,
    key: &str,
    range: Range<u64>,
) -> Result<[u8; 48], OpError> {
    // The range starts at 0 and ends at the signature sector, after at least one image byte.
    let bytes = ByteRange {
        start: range.start,
        end: range.end.saturating_sub(1),
    };
    let mut stream = service.blobs.get(key, Some(bytes)).await?;
    let mut hasher = Sha384::new();
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| reading_failed(&e))?;
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    if read != range.end - range.start {
        return Err(OpError::Store(StoreError::Unavailable(format!(
            "reading the stored image again gave {read} bytes of the {} signed ones",
            range.end - range.start
        ))));
    }
    Ok(hasher.finalize().into())
}

fn reading_failed(e: &std::io::Error) -> OpError {
    OpError::Store(StoreError::Unavailable(format!(
        "reading the stored image: {e}"
    )))
}

impl Service {
    /// Validates the bytes of `release` (in state `pending_upload`, bytes stored) and fills in
    /// what the image says. On success the device type exists (created by this image if it was the
    /// first) and the returned record is `ready`, not yet written.
    pub(super) async fn validate_release(
        &self,
        release: &Release,
        now: OffsetDateTime,
    ) -> Result<Result<Release, Vec<ImageProblem>>, OpError> {
        let policy = self.meta.get_device_type(&release.device_type).await?;
        let info = match inspect(self, release, policy.as_ref()).await? {
            Ok(info) => info,
            Err(problems) => return Ok(Err(problems)),
        };
        if policy.is_none() {
            let created = self
                .meta
                .create_device_type_if_absent(&DeviceTypePolicy {
                    name: release.device_type.clone(),
                    chip: info.chip.name().to_owned(),
                    max_image_size: None,
                    require_signature: false,
                    signing_key_digests: Vec::new(),
                    created_at: now,
                    updated_at: now,
                })
                .await?;
            // Another first image may have created the type for another chip meanwhile.
            let problems = image_policy::check_policy(&info, &release.version, Some(&created));
            if !problems.is_empty() {
                return Ok(Err(problems));
            }
        }
        let mut ready = release.clone();
        ready.state = ReleaseState::Ready;
        ready.secure_version = info.app.secure_version;
        ready.chip = Some(info.chip.name().to_owned());
        ready.project_name = Some(info.app.project_name.clone());
        ready.idf_version = Some(info.app.idf_version.clone());
        ready.image_sha256 = info.validation_hash;
        ready.rejection_reasons.clear();
        ready.touch(now);
        ready.released_at = Some(now);
        Ok(Ok(ready))
    }
}
