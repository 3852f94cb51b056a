//! Downloads a device asks for by release (docs/api.md §Device endpoints): the release, when it
//! may be offered and belongs to the device's type, and a fresh capability URL for its bytes.

use crate::access::DeviceGrant;
use crate::error::OpError;
use crate::ids::{DeviceType, Version};
use crate::ports::SignedUrl;
use crate::release::Release;
use crate::service::Service;

/// How a device names the release it wants.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    Id(String),
    /// The paku dialect: a version of a device type.
    Version {
        device_type: DeviceType,
        version: Version,
    },
}

impl Service {
    /// The release a device may fetch: it exists, may be offered (ready and active), and is of
    /// a type the credential reaches.
    pub async fn downloadable(
        &self,
        grant: &DeviceGrant,
        wanted: &Wanted,
    ) -> Result<Release, OpError> {
        let found = match wanted {
            Wanted::Id(id) => self.meta.get_release(id).await?,
            Wanted::Version {
                device_type,
                version,
            } => {
                grant.check_type(device_type)?;
                self.meta.find_release(device_type, version).await?
            }
        };
        let release = found
            .filter(Release::is_offerable)
            .ok_or_else(|| OpError::NotFound("no such active firmware".to_owned()))?;
        grant.check_type(&release.device_type)?;
        Ok(release)
    }

    /// [`Self::downloadable`] with a fresh capability URL for its bytes.
    pub async fn download(
        &self,
        grant: &DeviceGrant,
        wanted: &Wanted,
    ) -> Result<SignedUrl, OpError> {
        let release = self.downloadable(grant, wanted).await?;
        Ok(self
            .blobs
            .download_url(&release.blob_key(), self.settings.url_ttl)
            .await?)
    }
}
