//! Step one of the two-step publishing flow (docs/api.md §Publishing): register a release's
//! metadata and hand out an upload URL bound to its declared size and SHA-256.

use crate::access::{Admin, Role};
use crate::error::OpError;
use crate::fields;
use crate::ids::new_id;
use crate::ports::UploadTarget;
use crate::release::Release;
use crate::service::Service;

use super::{NewRelease, release_summary};

#[derive(Debug, Clone, PartialEq)]
pub struct CreateRelease {
    pub release: NewRelease,
    pub file_size: u64,
    /// SHA-256 of the whole file, hex.
    pub file_hash: String,
}

impl Service {
    pub async fn create_release(
        &self,
        admin: &Admin,
        input: CreateRelease,
    ) -> Result<(Release, UploadTarget), OpError> {
        admin.require(Role::Publisher)?;
        let hash = fields::sha256_hex("file_hash", &input.file_hash)?;
        let limit = self.settings.max_upload_bytes;
        if input.file_size > limit {
            return Err(OpError::TooLarge(limit));
        }
        if input.file_size == 0 {
            return Err(OpError::invalid("file_size", "must be greater than 0"));
        }
        let device_type = &input.release.device_type;
        if let Some(policy) = self.meta.get_device_type(device_type).await?
            && let Some(max) = policy.max_image_size
            && input.file_size > max
        {
            return Err(OpError::Unprocessable(format!(
                "file_size {} is over device type {device_type}'s max_image_size of {max}",
                input.file_size
            )));
        }
        let release = input
            .release
            .record(new_id(), input.file_size, hash.clone(), self.now())?;
        self.refuse_duplicate(&release).await?;
        self.meta.insert_release(&release).await?;
        self.audit(
            admin,
            "firmware.create",
            "firmware",
            &release.id,
            release_summary(&release),
        )
        .await?;
        let target = self
            .blobs
            .upload_url(
                &release.blob_key(),
                input.file_size,
                &hash,
                self.settings.url_ttl,
            )
            .await?;
        Ok((release, target))
    }
}
