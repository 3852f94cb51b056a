//! The device registry and the OTA log.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::device_health::{self, BootReport, HealthDelta, LastBoot};
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
    /// The validation hash of the running app (lowercase hex), when the device sent it.
    pub running_image_sha256: Option<String>,
    pub boot: Option<BootReport>,
    pub at: OffsetDateTime,
}

impl CheckIn {
    /// The running image's hash when the store must look up the release it belongs to (one
    /// keyed read of the releases of `device_type`): the device reports a hash its record does
    /// not hold yet, or reports it as another type. Otherwise the stored match stands, so that a
    /// device polling with the same image costs no lookup. (The device type's release view,
    /// which the check reads anyway, holds only the releases of active rollouts, so it misses
    /// a device that runs the release of a finished rollout or a factory image.)
    pub fn image_to_match(&self, before: Option<&Device>) -> Option<&str> {
        let hash = self.running_image_sha256.as_deref()?;
        let matched = before.is_some_and(|d| {
            d.running_image_sha256.as_deref() == Some(hash) && d.device_type == self.device_type
        });
        (!matched).then_some(hash)
    }
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
    /// The validation hash of the app the device runs, as of its last check.
    // `default`: records stored before devices reported these read as null.
    #[serde(default)]
    pub running_image_sha256: Option<String>,
    /// The release of the device's type whose image has that hash: which known release the
    /// device really runs; null when none has.
    #[serde(default)]
    pub running_firmware_id: Option<String>,
    /// The last `boot` a check sent, with when it was received; a later report of the same boot
    /// without a crash is stored as `last_seen` is (docs/api.md §5.5).
    #[serde(default)]
    pub last_boot: Option<LastBoot>,
    /// The device reported a crash while running `running_firmware_id` (it is counted once
    /// among that release's `crashed_devices`).
    #[serde(default)]
    pub running_crashed: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    /// The device's last check: exact as read on SQLite storage (durable within five seconds),
    /// to within `OTA_LAST_SEEN_PRECISION_S` (6 hours unless configured) on DynamoDB storage,
    /// where a check that changes nothing else is stored only that often (docs/api.md §5.5).
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// What a check-in writes: the registry entry, and what it adds to the counters of the release
/// the device runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub device: Device,
    pub health: Option<HealthDelta>,
}

impl Device {
    /// The registry entry after a check-in: `before` refreshed, or a new device. `matched` is
    /// the release the store found for `c.image_to_match(before)`, when that asked for a
    /// lookup (otherwise it is not read).
    pub fn checked_in(
        before: Option<Device>,
        c: &CheckIn,
        matched: Option<String>,
    ) -> Registration {
        let running_firmware_id = match (c.image_to_match(before.as_ref()), &before) {
            (Some(_), _) => matched,
            (None, Some(d)) if c.running_image_sha256.is_some() => d.running_firmware_id.clone(),
            (None, _) => None,
        };
        let mut device = before.unwrap_or_else(|| Device {
            device_id: c.device_id.clone(),
            device_type: c.device_type.clone(),
            current_version: c.current_version.clone(),
            current_build: c.current_build,
            secure_version: c.secure_version,
            channel: c.channel.clone(),
            groups: Vec::new(),
            last_offer: None,
            running_image_sha256: None,
            running_firmware_id: None,
            last_boot: None,
            running_crashed: false,
            first_seen: c.at,
            last_seen: c.at,
        });
        let health = device_health::health_delta(
            running_firmware_id.as_deref(),
            c.boot.as_ref(),
            device.last_boot.as_ref(),
            c.running_image_sha256.is_some()
                && device.running_image_sha256 != c.running_image_sha256,
            c.at,
        );
        // A check already recorded (the same time as the stored boot) counts nothing again.
        let repeat = device
            .last_boot
            .as_ref()
            .is_some_and(|l| l.received_at == c.at);
        let moved_in = !repeat
            && running_firmware_id.is_some()
            && running_firmware_id != device.running_firmware_id;
        let (health, running_crashed) = device_health::counted_on_release(
            health,
            running_firmware_id.as_deref(),
            moved_in,
            device.running_crashed && !moved_in,
        );
        device.running_crashed = running_crashed;
        device.device_type = c.device_type.clone();
        device.current_version = c.current_version.clone();
        device.current_build = c.current_build;
        device.secure_version = c.secure_version;
        device.channel = c.channel.clone();
        device.running_image_sha256 = c.running_image_sha256.clone();
        device.running_firmware_id = running_firmware_id;
        // A check without `boot` leaves the last one as it was: it says when it was received.
        if let Some(report) = &c.boot {
            device.last_boot = Some(LastBoot {
                report: report.clone(),
                received_at: c.at,
            });
        }
        device.last_seen = c.at;
        Registration { device, health }
    }
}

/// A device as a check sees it: the registry entry after the check-in, plus its failure counts
/// per release (for the 3-strikes rule) and the state of its attempt at the last offer.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnapshot {
    pub device: Device,
    pub failures: Vec<(String, u32)>,
    pub last_offer_status: Option<OtaStatus>,
    /// The ids of the `specific` rollouts that name the device, read with it.
    pub named_in: Vec<String>,
}

impl DeviceSnapshot {
    /// `device` with what its attempts (release id, attempt) say about it: the releases it
    /// failed, by failure count, and the state of its attempt at the release last offered; and
    /// the rollouts that name it.
    pub fn new<'a>(
        device: Device,
        attempts: impl IntoIterator<Item = (&'a str, &'a Attempt)>,
        named_in: Vec<String>,
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
            named_in,
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

#[cfg(test)]
mod tests {
    use super::*;

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    fn check_in(hash: Option<&str>, boot: Option<BootReport>, minute: i64) -> CheckIn {
        CheckIn {
            device_id: DeviceId::parse("d1").unwrap(),
            device_type: DeviceType::parse("demo").unwrap(),
            current_version: Version::parse("1.1.0").unwrap(),
            current_build: None,
            secure_version: 0,
            channel: "stable".into(),
            running_image_sha256: hash.map(str::to_owned),
            boot,
            at: T0 + time::Duration::minutes(minute),
        }
    }

    fn boot(reason: &str, boots: u32, crashes: u32, uptime: u64) -> Option<BootReport> {
        Some(BootReport {
            reset_reason: Some(reason.into()),
            boots_since_update: Some(boots),
            crashes_since_last_check: Some(crashes),
            uptime_s: Some(uptime),
        })
    }

    const A: &str = "aa";
    const B: &str = "bb";

    #[test]
    fn a_hash_is_looked_up_when_the_record_does_not_hold_it_yet() {
        let first = check_in(Some(A), None, 0);
        assert_eq!(first.image_to_match(None), Some(A), "a new device");
        let d = Device::checked_in(None, &first, Some("fw-a".into())).device;
        assert_eq!(d.running_firmware_id.as_deref(), Some("fw-a"));
        assert_eq!(
            check_in(Some(A), None, 1).image_to_match(Some(&d)),
            None,
            "the same image again: no lookup"
        );
        assert_eq!(check_in(Some(B), None, 1).image_to_match(Some(&d)), Some(B));
        assert_eq!(check_in(None, None, 1).image_to_match(Some(&d)), None);
        let mut other_type = check_in(Some(A), None, 1);
        other_type.device_type = DeviceType::parse("other").unwrap();
        assert_eq!(other_type.image_to_match(Some(&d)), Some(A));
    }

    #[test]
    fn the_match_stands_while_the_hash_does_and_goes_with_it() {
        let d = Device::checked_in(None, &check_in(Some(A), None, 0), Some("fw-a".into())).device;
        // `matched` is not read when no lookup was asked for.
        let again = Device::checked_in(Some(d.clone()), &check_in(Some(A), None, 1), None).device;
        assert_eq!(again.running_firmware_id.as_deref(), Some("fw-a"));
        let unknown = Device::checked_in(Some(d.clone()), &check_in(Some(B), None, 1), None).device;
        assert_eq!(unknown.running_image_sha256.as_deref(), Some(B));
        assert_eq!(unknown.running_firmware_id, None, "no release has B");
        let silent = Device::checked_in(Some(d), &check_in(None, None, 1), None).device;
        assert_eq!(
            (silent.running_image_sha256, silent.running_firmware_id),
            (None, None),
            "a check without the hash says nothing of the image"
        );
    }

    #[test]
    fn boots_are_kept_and_counted_for_the_release_the_device_runs() {
        let first = Device::checked_in(
            None,
            &check_in(Some(A), boot("poweron", 1, 0, 5), 0),
            Some("fw-a".into()),
        );
        assert_eq!(
            first
                .health
                .as_ref()
                .and_then(|h| h.reset_reason.as_deref()),
            Some("poweron")
        );
        assert!(
            first.health.as_ref().is_some_and(|h| h.new_device),
            "one more device on fw-a"
        );
        let poll = Device::checked_in(
            Some(first.device.clone()),
            &check_in(Some(A), boot("poweron", 1, 0, 65), 1),
            None,
        );
        assert_eq!(poll.health, None, "the same boot: no counter moves");
        let last = poll.device.last_boot.clone().unwrap();
        assert_eq!(last.report.uptime_s, Some(65), "the latest uptime is kept");
        assert_eq!(last.received_at, T0 + time::Duration::minutes(1));
        let without =
            Device::checked_in(Some(poll.device.clone()), &check_in(Some(A), None, 2), None);
        assert_eq!(
            without.device.last_boot,
            Some(last),
            "a check without boot keeps the last one"
        );
        let crash = Device::checked_in(
            Some(without.device),
            &check_in(Some(A), boot("panic", 2, 1, 3), 3),
            None,
        );
        assert_eq!(
            crash.health,
            Some(HealthDelta {
                firmware_id: "fw-a".into(),
                reset_reason: Some("panic".into()),
                crashes: 1,
                new_device: false,
                new_crashed_device: true,
            })
        );
        assert!(crash.device.running_crashed);
        let again = Device::checked_in(
            Some(crash.device.clone()),
            &check_in(Some(A), boot("task_wdt", 3, 0, 3), 4),
            None,
        );
        assert!(
            again.health.as_ref().is_some_and(|h| !h.new_crashed_device),
            "a device crashes once on a release, as the counters go"
        );
        let unmatched = Device::checked_in(
            Some(crash.device),
            &check_in(Some(B), boot("panic", 1, 1, 3), 4),
            None,
        );
        assert_eq!(
            unmatched.health, None,
            "no known release: nothing per release"
        );
        assert!(unmatched.device.last_boot.is_some());
        assert!(
            !unmatched.device.running_crashed,
            "off the release it crashed on"
        );
        // Back onto fw-a: one more device there, whose first crash counts again.
        let back = Device::checked_in(
            Some(unmatched.device),
            &check_in(Some(A), boot("wdt", 1, 0, 3), 5),
            Some("fw-a".into()),
        );
        let h = back.health.unwrap();
        assert!(h.new_device && h.new_crashed_device, "{h:?}");
    }

    #[test]
    fn a_device_is_counted_on_a_release_without_a_boot_report() {
        let first = Device::checked_in(None, &check_in(Some(A), None, 0), Some("fw-a".into()));
        let h = first.health.expect("a device on fw-a");
        assert!(h.new_device && !h.new_crashed_device);
        assert_eq!((h.reset_reason, h.crashes), (None, 0));
        let again = Device::checked_in(Some(first.device), &check_in(Some(A), None, 1), None);
        assert_eq!(again.health, None, "counted once");
    }
}
