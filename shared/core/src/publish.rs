//! Publishing use cases: validating stored bytes as an ESP image and turning a record into a
//! release, shared by the one-shot multipart upload and the two-step finalize.

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::device_type::DeviceTypePolicy;
use crate::error::OpError;
use crate::firmware::{Firmware, FirmwareState};
use crate::image_policy::{self, ImageProblem};
use crate::ports::{BlobStore, MetaStore, StoreError};
use esp_image::{ImageInfo, Validator};

/// Reads the stored object once, streaming, and checks it against the record and the device
/// type's policy. Returns the parsed image, or every problem found.
pub async fn inspect(
    blobs: &dyn BlobStore,
    firmware: &Firmware,
    policy: Option<&DeviceTypePolicy>,
) -> Result<Result<ImageInfo, Vec<ImageProblem>>, OpError> {
    let mut stream = blobs.get(&firmware.blob_key(), None).await?;
    let mut validator = Validator::new();
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            OpError::Store(crate::ports::StoreError::Unavailable(format!(
                "reading the stored image: {e}"
            )))
        })?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
        validator.push(&chunk);
    }
    let sha = hex::encode(hasher.finalize());
    let mut problems =
        image_policy::check_declared_bytes(firmware.file_size, &firmware.file_hash, size, &sha);
    match validator.finish() {
        Ok(info) => {
            problems.extend(image_policy::check_policy(&info, &firmware.version, policy));
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

/// Validates the bytes of `firmware` (in state `pending_upload`, bytes stored) and fills in
/// what the image says. On success the device type exists (created by this image if it was the
/// first) and the returned record is `ready`, not yet written.
pub async fn validate_release(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    firmware: &Firmware,
    now: OffsetDateTime,
) -> Result<Result<Firmware, Vec<ImageProblem>>, OpError> {
    let policy = meta.get_device_type(&firmware.device_type).await?;
    let info = match inspect(blobs, firmware, policy.as_ref()).await? {
        Ok(info) => info,
        Err(problems) => return Ok(Err(problems)),
    };
    if policy.is_none() {
        let created = meta
            .create_device_type_if_absent(&DeviceTypePolicy {
                name: firmware.device_type.clone(),
                chip: info.chip.name().to_owned(),
                max_image_size: None,
                require_signature: false,
                signing_key_digests: Vec::new(),
                created_at: now,
                updated_at: now,
            })
            .await?;
        // Another first image may have created the type for another chip meanwhile.
        let problems = image_policy::check_policy(&info, &firmware.version, Some(&created));
        if !problems.is_empty() {
            return Ok(Err(problems));
        }
    }
    let mut ready = firmware.clone();
    ready.state = FirmwareState::Ready;
    ready.secure_version = info.app.secure_version;
    ready.chip = Some(info.chip.name().to_owned());
    ready.project_name = Some(info.app.project_name.clone());
    ready.idf_version = Some(info.app.idf_version.clone());
    ready.rejection_reasons.clear();
    ready.touch(now);
    ready.released_at = Some(now);
    Ok(Ok(ready))
}

/// How often finalize looks again when the record changed under it (another finalize, an edit).
const FINALIZE_ATTEMPTS: usize = 3;

/// The two-step flow's last step. Idempotent: finalizing a ready release returns it again, and
/// racing finalizes all answer with the outcome the first one stored.
pub async fn finalize(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    id: &str,
    now: OffsetDateTime,
) -> Result<Firmware, OpError> {
    for _ in 0..FINALIZE_ATTEMPTS {
        let firmware = meta
            .get_firmware(id)
            .await?
            .ok_or_else(|| OpError::NotFound(format!("firmware {id} does not exist")))?;
        match firmware.state {
            FirmwareState::Ready => return Ok(firmware),
            FirmwareState::Rejected => {
                return Err(OpError::ImageRejected(firmware.rejection_reasons));
            }
            FirmwareState::PendingUpload => {}
        }
        if blobs.size(&firmware.blob_key()).await?.is_none() {
            return Err(OpError::Conflict(format!(
                "firmware {id} has no uploaded bytes yet: PUT them to the upload URL first"
            )));
        }
        let (next, outcome) = match validate_release(meta, blobs, &firmware, now).await? {
            Ok(ready) => (ready.clone(), Ok(ready)),
            Err(problems) => {
                let mut rejected = firmware.clone();
                rejected.state = FirmwareState::Rejected;
                rejected.rejection_reasons = problems.clone();
                rejected.touch(now);
                (rejected, Err(OpError::ImageRejected(problems)))
            }
        };
        match meta.update_firmware(&next, &firmware).await {
            Ok(()) => return outcome,
            // Another finalize or an edit got there first: look again.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(OpError::Conflict(format!(
        "firmware {id} kept changing while it was being finalized; retry"
    )))
}
