//! What every handler shares: the ports, credentials and settings, built once per process (or
//! once per Lambda instance).

use std::sync::Arc;
use std::time::Duration;

use ota_core::capability::CapabilitySigner;
use ota_core::ports::{BlobStore, Clock, MetaStore};

use crate::auth::AuthConfig;
use crate::throttle::DeviceThrottle;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Lifetime of capability and presigned URLs (`OTA_URL_TTL_S`).
    pub url_ttl: Duration,
    /// What devices are told about when to ask again.
    pub poll_interval_s: u64,
    /// Largest accepted upload (`OTA_MAX_UPLOAD_BYTES`).
    pub max_upload_bytes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            url_ttl: Duration::from_secs(900),
            poll_interval_s: 86_400,
            max_upload_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub auth: Arc<AuthConfig>,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    /// Present when this process serves its own capability URLs (the embedded default).
    pub capability: Option<CapabilitySigner>,
    pub throttle: Arc<DeviceThrottle>,
}

impl AppState {
    /// Counts a device request against its budget: 429 with `Retry-After` when over.
    pub fn admit_device(
        &self,
        device: &ota_core::ids::DeviceId,
    ) -> Result<(), crate::problem::Problem> {
        self.throttle
            .admit(device.as_str(), self.clock.now().unix_timestamp())
            .map_err(crate::problem::Problem::throttled)
    }
}
