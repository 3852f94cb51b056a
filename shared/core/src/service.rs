//! The service the edges drive: the ports and settings every command runs on, built once per
//! process (or once per Lambda instance). Each command is a method of [`Service`] in a file of
//! its own under `cmd/`.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::cmd::evaluate_rollouts::Evaluations;
use crate::ports::{BlobStore, Clock, MetaStore};

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
pub struct Service {
    pub meta: Arc<dyn MetaStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// When this process last evaluated each rollout on a request (`cmd::evaluate_rollouts`).
    pub evaluations: Arc<Evaluations>,
}

impl Service {
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}
