//! The device registry and the OTA log.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::ids::{DeviceId, DeviceType, Version};
use crate::report_plan::Attempt;
use crate::status::OtaStatus;

/// What a device said about itself on its last check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckIn {
    pub device_id: DeviceId,
    pub device_type: DeviceType,
    pub current_version: Version,
    pub current_build: Option<u64>,
    pub secure_version: u32,
    pub channel: String,
    pub at: OffsetDateTime,
}

/// The release a check last offered a device, remembered so that a later check-in running that
/// version completes the update (docs/api.md §Update rules, rule 5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Offer {
    pub firmware_id: String,
    pub version: Version,
    pub rollout_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub device_id: DeviceId,
    pub device_type: DeviceType,
    pub current_version: Version,
    pub current_build: Option<u64>,
    pub secure_version: u32,
    pub channel: String,
    pub groups: Vec<String>,
    pub last_offer: Option<Offer>,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

impl Device {
    /// The registry entry after a check-in: `before` refreshed, or a new device.
    pub fn checked_in(before: Option<Device>, c: &CheckIn) -> Device {
        match before {
            Some(mut d) => {
                d.device_type = c.device_type.clone();
                d.current_version = c.current_version.clone();
                d.current_build = c.current_build;
                d.secure_version = c.secure_version;
                d.channel = c.channel.clone();
                d.last_seen = c.at;
                d
            }
            None => Device {
                device_id: c.device_id.clone(),
                device_type: c.device_type.clone(),
                current_version: c.current_version.clone(),
                current_build: c.current_build,
                secure_version: c.secure_version,
                channel: c.channel.clone(),
                groups: Vec::new(),
                last_offer: None,
                first_seen: c.at,
                last_seen: c.at,
            },
        }
    }
}

/// A device as a check sees it: the registry entry after the check-in, plus its failure counts
/// per release (for the 3-strikes rule) and the state of its attempt at the last offer.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnapshot {
    pub device: Device,
    pub failures: Vec<(String, u32)>,
    pub last_offer_status: Option<OtaStatus>,
}

impl DeviceSnapshot {
    /// `device` with what its attempts (release id, attempt) say about it: the releases it
    /// failed, by failure count, and the state of its attempt at the release last offered.
    pub fn new<'a>(
        device: Device,
        attempts: impl IntoIterator<Item = (&'a str, &'a Attempt)>,
    ) -> Self {
        let offered = device.last_offer.as_ref().map(|o| o.firmware_id.as_str());
        let mut failures = Vec::new();
        let mut last_offer_status = None;
        for (release, attempt) in attempts {
            if attempt.failures > 0 {
                failures.push((release.to_owned(), attempt.failures));
            }
            if offered == Some(release) {
                last_offer_status = Some(attempt.status);
            }
        }
        failures.sort();
        Self {
            device,
            failures,
            last_offer_status,
        }
    }

    pub fn failures_of(&self, firmware_id: &str) -> u32 {
        self.failures
            .iter()
            .find(|(id, _)| id == firmware_id)
            .map_or(0, |(_, n)| *n)
    }
}

/// One accepted status report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LogEntry {
    pub id: String,
    pub event_id: String,
    pub device_id: DeviceId,
    pub device_type: DeviceType,
    pub firmware_id: String,
    pub version: Version,
    pub rollout_id: Option<String>,
    pub status: OtaStatus,
    pub bytes_downloaded: Option<u64>,
    pub progress_percent: Option<u8>,
    pub error_message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A device as the admin API shows it: the registry entry and its newest OTA log entries.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    /// The newest OTA log entries of this device.
    pub recent_log: Vec<LogEntry>,
}

/// Filters of `GET /api/ota/admin/logs`.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub device_id: Option<DeviceId>,
    pub firmware_id: Option<String>,
    pub status: Option<OtaStatus>,
    pub since: Option<OffsetDateTime>,
}

impl LogFilter {
    /// Whether `e` passes every filter given but `since`, which each store reads as a range of
    /// the order its log is kept in.
    pub fn matches(&self, e: &LogEntry) -> bool {
        self.device_id.as_ref().is_none_or(|d| *d == e.device_id)
            && self
                .firmware_id
                .as_ref()
                .is_none_or(|f| *f == e.firmware_id)
            && self.status.is_none_or(|st| st == e.status)
    }
}

/// Filters of `GET /api/ota/admin/devices`.
#[derive(Debug, Clone, Default)]
pub struct DeviceFilter {
    pub device_type: Option<DeviceType>,
    pub version: Option<Version>,
    pub group: Option<String>,
}

impl DeviceFilter {
    /// Whether `d` passes every filter given.
    pub fn matches(&self, d: &Device) -> bool {
        self.device_type
            .as_ref()
            .is_none_or(|t| *t == d.device_type)
            && self
                .version
                .as_ref()
                .is_none_or(|v| *v == d.current_version)
            && self.group.as_ref().is_none_or(|g| d.groups.contains(g))
    }
}
