//! What every handler shares: the service the commands run on, and what only the HTTP edge
//! needs (credentials, capability URLs, manifest keys, the device throttle), built once per process (or once
//! per Lambda instance).

use std::sync::Arc;

use ota_core::capability::CapabilitySigner;
use ota_core::ids::DeviceId;
use ota_core::manifest_keys::ManifestKeys;
use ota_core::service::Service;

use crate::auth::AuthConfig;
use crate::problem::Problem;
use crate::throttle::DeviceThrottle;

pub use ota_core::service::Settings;

/// Cloned by every extractor of every request: one reference count to move, not one for
/// each part (each a cache line the two cores of a busy server would pass back and forth).
#[derive(Clone)]
pub struct AppState(Arc<AppShared>);

impl AppState {
    pub fn new(shared: AppShared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppShared;

    fn deref(&self) -> &AppShared {
        &self.0
    }
}

pub struct AppShared {
    pub ota: Service,
    pub auth: Arc<AuthConfig>,
    /// Present when this process serves its own capability URLs (the embedded default).
    pub capability: Option<CapabilitySigner>,
    /// Signs the manifests of check answers; published at `GET /api/ota/keys`.
    pub manifest_keys: Arc<ManifestKeys>,
    pub throttle: Arc<DeviceThrottle>,
}

impl AppState {
    /// Counts a device request against its budget: 429 with `Retry-After` when over.
    pub fn admit_device(&self, device: &DeviceId) -> Result<(), Problem> {
        self.throttle
            .admit(device.as_str(), self.ota.now().unix_timestamp())
            .map_err(Problem::throttled)
    }
}
