//! A release: one image for one device type, immutable once its bytes are stored. The API
//! calls it `firmware` in paths and field names (`firmware_id`, `/api/ota/admin/firmware`), which
//! stay as devices and scripts know them; everywhere else it is a release.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::device_health::HealthCounts;
use crate::ids::{DeviceType, Version};
use crate::image_policy::ImageProblem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    /// Metadata registered, bytes not yet uploaded or not yet validated.
    PendingUpload,
    /// Bytes stored and the image validated: it may be offered.
    Ready,
    /// Finalize found the bytes or the image wanting; kept for the record, never offered.
    Rejected,
}

impl ReleaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingUpload => "pending_upload",
            Self::Ready => "ready",
            Self::Rejected => "rejected",
        }
    }
}

/// The channel a device follows unless it names another.
pub const DEFAULT_CHANNEL: &str = "stable";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Release {
    pub id: String,
    pub device_type: DeviceType,
    pub version: Version,
    pub build_number: u64,
    pub channel: String,
    /// Declared size in bytes (checked against the stored object at finalize).
    pub file_size: u64,
    /// Declared SHA-256 of the whole file, lowercase hex.
    pub file_hash: String,
    /// Read from the image at validation; 0 until then.
    pub secure_version: u32,
    pub chip: Option<String>,
    pub project_name: Option<String>,
    pub idf_version: Option<String>,
    /// The image's validation hash: the SHA-256 appended to it (lowercase hex), which a device
    /// running it reports as `running_image_sha256` (`esp_partition_get_sha256`). Set at
    /// validation; null before, for an image without one, and for releases validated before
    /// releases kept it.
    // `default`: records stored before then read as null.
    #[serde(default)]
    pub image_sha256: Option<String>,
    pub min_current_version: Option<Version>,
    pub description: Option<String>,
    pub release_notes: Option<String>,
    pub state: ReleaseState,
    pub is_active: bool,
    /// Why finalize rejected the image, when it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejection_reasons: Vec<ImageProblem>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub released_at: Option<OffsetDateTime>,
}

impl Release {
    /// Where the bytes live in the blob store; derived from the id so that no two releases can
    /// ever share (and overwrite) an object.
    pub fn blob_key(&self) -> String {
        blob_key(&self.id)
    }

    pub fn is_offerable(&self) -> bool {
        self.state == ReleaseState::Ready && self.is_active
    }

    /// Records a change made at `now`. `updated_at` is also the version writers check
    /// (`MetaStore::update_release`), so it strictly increases even if the clock does not.
    pub fn touch(&mut self, now: OffsetDateTime) {
        self.updated_at = if now > self.updated_at {
            now
        } else {
            self.updated_at + time::Duration::microseconds(1)
        };
    }
}

/// A release as its admin view shows it: the record and its devices' health counters
/// (docs/api.md §5.2).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReleaseDetail {
    #[serde(flatten)]
    pub release: Release,
    /// The resets and crashes reported by devices running it (§3.1).
    pub health: HealthCounts,
}

pub fn blob_key(release_id: &str) -> String {
    format!("firmware/{release_id}.bin")
}

/// Filters of `GET /api/ota/admin/firmware`.
#[derive(Debug, Clone, Default)]
pub struct ReleaseFilter {
    pub device_type: Option<DeviceType>,
    pub channel: Option<String>,
    pub state: Option<ReleaseState>,
}

impl ReleaseFilter {
    /// Whether `r` passes every filter given.
    pub fn matches(&self, r: &Release) -> bool {
        self.device_type
            .as_ref()
            .is_none_or(|t| *t == r.device_type)
            && self.channel.as_ref().is_none_or(|c| *c == r.channel)
            && self.state.is_none_or(|st| st == r.state)
    }
}
