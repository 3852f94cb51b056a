//! What a device says on a check about the image it runs and its boots (docs/api.md §3.1), and
//! what the server keeps of it: the device's last boot and the release it really runs (on the
//! device record), and per release the resets and crashes its devices reported, counted on
//! write (never by reading the fleet).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::OpError;
use crate::fields;
use crate::ids::{DeviceType, Version};

/// The reason counted for a new boot whose report has none (ESP-IDF's `ESP_RST_UNKNOWN`).
pub const UNKNOWN_RESET_REASON: &str = "unknown";

/// The `boot` object of a check: what the device knows of its current boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BootReport {
    /// `esp_reset_reason()` of this boot, lowercased without `ESP_RST_` (`panic`, `poweron`).
    pub reset_reason: Option<String>,
    /// Boots since the device last installed an update.
    pub boots_since_update: Option<u32>,
    /// Crashes the device counted since its last successful check (it then starts again at 0).
    pub crashes_since_last_check: Option<u32>,
    /// Seconds since this boot.
    pub uptime_s: Option<u64>,
}

impl BootReport {
    /// The report as sent, refused (naming the member) when a value is out of its rule.
    pub fn validated(self) -> Result<Self, OpError> {
        fields::reset_reason("boot.reset_reason", self.reset_reason.as_deref())?;
        Ok(Self {
            uptime_s: fields::stored_integer("boot.uptime_s", self.uptime_s)?,
            ..self
        })
    }

    /// Whether this report, received at `at`, is of another boot than `last` (the device's
    /// last stored report): there is none; the uptime shows a restart, being lower than then,
    /// or lower than then plus the time since by more than [`UPTIME_SLACK_S`] and 1 % (the
    /// stored report may be hours old: the AWS store refreshes it only as often as `last_seen`,
    /// so a restart must show against its age, not only against its value); or
    /// `boots_since_update` or the reset reason changed (a restart the uptime cannot show, when
    /// the device checked late in the new boot; one boot has one reason).
    pub fn is_new_boot(&self, at: OffsetDateTime, last: Option<&LastBoot>) -> bool {
        let Some(last) = last else {
            return true;
        };
        let elapsed = u64::try_from((at - last.received_at).whole_seconds()).unwrap_or(0);
        let restarted = match (self.uptime_s, last.report.uptime_s) {
            (Some(now), Some(before)) => {
                now < before
                    || now + UPTIME_SLACK_S + elapsed / 100 < before.saturating_add(elapsed)
            }
            _ => false,
        };
        restarted
            || self.boots_since_update != last.report.boots_since_update
            || self.reset_reason != last.report.reset_reason
    }

    /// Whether the report shows a crash: crashes counted since the last check, or a boot reset
    /// by a crash (which the device reports again on each check of that boot).
    pub fn shows_crash(&self) -> bool {
        self.crashes_since_last_check.unwrap_or(0) > 0
            || self
                .reset_reason
                .as_deref()
                .is_some_and(|r| CRASH_RESETS.contains(&r))
    }

    /// The same boot as `last` says, with nothing to count: no crash since the last check.
    pub fn only_refreshes(&self, at: OffsetDateTime, last: Option<&LastBoot>) -> bool {
        self.crashes_since_last_check.unwrap_or(0) == 0
            && last.is_some()
            && !self.is_new_boot(at, last)
    }
}

/// How far a device's uptime may run behind the server's clock between two reports of one boot
/// (request latency, a check's retries) before the difference counts as a restart; 1 % of the
/// time between them is allowed on top for clock drift (crystals drift by tens of ppm).
pub const UPTIME_SLACK_S: u64 = 60;

/// The last boot report a device sent, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LastBoot {
    #[serde(flatten)]
    pub report: BootReport,
    /// When the check that sent it was received.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// The reset reasons of a crash (docs/api.md §3.1): ESP-IDF's `ESP_RST_PANIC`, its watchdogs,
/// `ESP_RST_BROWNOUT` and `ESP_RST_CPU_LOCKUP`, as a check reports them.
pub const CRASH_RESETS: [&str; 6] = [
    "panic",
    "int_wdt",
    "task_wdt",
    "wdt",
    "brownout",
    "cpu_lockup",
];

/// What one check adds to the counters of the release its device runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthDelta {
    pub firmware_id: String,
    /// The reset reason of a boot reported for the first time; None for a boot already counted.
    pub reset_reason: Option<String>,
    pub crashes: u64,
    /// The device checks in running the release for the first time since it updated to it:
    /// one more device on the release.
    pub new_device: bool,
    /// The device reports its first crash on the release: one more crashed device.
    pub new_crashed_device: bool,
}

impl HealthDelta {
    /// Whether the check reports a crash: crashes counted since the last check, or a new boot
    /// reset by a crash.
    pub fn shows_crash(&self) -> bool {
        self.crashes > 0
            || self
                .reset_reason
                .as_deref()
                .is_some_and(|r| CRASH_RESETS.contains(&r))
    }
}

/// `delta` with the device counted on the release it runs (`running`): as a device on its
/// first check running it since updating (`moved_in`), and as a crashed device on its first
/// crash there (`crashed_before`: it had reported one already). Returns what the check adds
/// (None: nothing) and whether the device has now crashed on the release, which its record
/// keeps so that it counts once.
pub fn counted_on_release(
    delta: Option<HealthDelta>,
    running: Option<&str>,
    moved_in: bool,
    crashed_before: bool,
) -> (Option<HealthDelta>, bool) {
    let Some(firmware_id) = running else {
        return (delta, false);
    };
    let crashed_now = delta.as_ref().is_some_and(HealthDelta::shows_crash);
    let new_crashed_device = crashed_now && !crashed_before;
    if !moved_in && !new_crashed_device {
        return (delta, crashed_before || crashed_now);
    }
    let mut d = delta.unwrap_or_else(|| HealthDelta {
        firmware_id: firmware_id.to_owned(),
        reset_reason: None,
        crashes: 0,
        new_device: false,
        new_crashed_device: false,
    });
    d.new_device = moved_in;
    d.new_crashed_device = new_crashed_device;
    (Some(d), crashed_before || crashed_now)
}

/// What a check-in reports of the device's health, given the device's last boot report: the
/// counters it moves for the release the device runs (`running`), if any. None when nothing is
/// new (the same boot and no crash), so that a steady poll writes no counter. `at` is the
/// check's time: a check-in already recorded (the stored report has its time, as when a check
/// writes the device twice) adds nothing again. `image_changed`: the device reports another
/// running image than its last check did, which it cannot do without restarting (a boot that
/// neither its uptime nor its boot count shows, as when an update resets the count to 1).
pub fn health_delta(
    running: Option<&str>,
    boot: Option<&BootReport>,
    last: Option<&LastBoot>,
    image_changed: bool,
    at: OffsetDateTime,
) -> Option<HealthDelta> {
    let (firmware_id, boot) = (running?, boot?);
    if last.is_some_and(|l| l.received_at == at) {
        return None;
    }
    let new_boot = image_changed || boot.is_new_boot(at, last);
    let reset_reason = new_boot.then(|| {
        boot.reset_reason
            .clone()
            .unwrap_or_else(|| UNKNOWN_RESET_REASON.to_owned())
    });
    let crashes = u64::from(boot.crashes_since_last_check.unwrap_or(0));
    (reset_reason.is_some() || crashes > 0).then(|| HealthDelta {
        firmware_id: firmware_id.to_owned(),
        reset_reason,
        crashes,
        new_device: false,
        new_crashed_device: false,
    })
}

/// The counters of one release (zero before any check moves them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthCounts {
    /// Reset reason -> new boots reported with it by devices running the release.
    pub resets_by_reason: BTreeMap<String, u64>,
    /// The sum of the `crashes_since_last_check` its devices reported.
    pub crashes: u64,
    /// Devices that checked in running the release since updating to it (each once per time
    /// it moved onto the release).
    #[serde(default)]
    pub devices: u64,
    /// Of those, the devices that reported a crash on it (each once per time on it): the
    /// crash-free devices are `devices - crashed_devices`.
    #[serde(default)]
    pub crashed_devices: u64,
}

impl HealthCounts {
    /// The counters after `delta` (whose release these are).
    pub fn add(&mut self, delta: &HealthDelta) {
        if let Some(reason) = &delta.reset_reason {
            *self.resets_by_reason.entry(reason.clone()).or_default() += 1;
        }
        self.crashes += delta.crashes;
        self.devices += u64::from(delta.new_device);
        self.crashed_devices += u64::from(delta.new_crashed_device);
    }
}

/// The counters of one release with what names it, as the metrics list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReleaseHealth {
    pub firmware_id: String,
    pub device_type: DeviceType,
    pub version: Version,
    #[serde(flatten)]
    pub counts: HealthCounts,
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    fn boot(reason: &str, boots: u32, crashes: u32, uptime: u64) -> BootReport {
        BootReport {
            reset_reason: Some(reason.to_owned()),
            boots_since_update: Some(boots),
            crashes_since_last_check: Some(crashes),
            uptime_s: Some(uptime),
        }
    }

    fn stored(report: BootReport, at: OffsetDateTime) -> LastBoot {
        LastBoot {
            report,
            received_at: at,
        }
    }

    #[test]
    fn a_boot_is_new_without_a_last_one_after_a_lower_uptime_or_another_boot_count() {
        let last = stored(boot("poweron", 1, 0, 600), T0);
        let hour = T0 + time::Duration::hours(1);
        assert!(boot("poweron", 1, 0, 600).is_new_boot(T0, None));
        assert!(!boot("poweron", 1, 0, 600).is_new_boot(T0, Some(&last)));
        assert!(
            !boot("poweron", 1, 0, 4200).is_new_boot(hour, Some(&last)),
            "the same boot, polling an hour later"
        );
        assert!(
            boot("panic", 1, 1, 30).is_new_boot(hour, Some(&last)),
            "uptime down"
        );
        assert!(
            boot("panic", 2, 1, 9000).is_new_boot(hour, Some(&last)),
            "a restart the device reported late in its new boot"
        );
        assert!(
            boot("brownout", 1, 0, 4200).is_new_boot(hour, Some(&last)),
            "one boot has one reset reason"
        );
        let bare = BootReport {
            reset_reason: None,
            boots_since_update: None,
            crashes_since_last_check: None,
            uptime_s: None,
        };
        assert!(
            !bare.is_new_boot(hour, Some(&stored(bare.clone(), T0))),
            "nothing says it restarted"
        );
        assert!(
            bare.is_new_boot(hour, Some(&last)),
            "the boot count is no longer sent"
        );
    }

    #[test]
    fn a_restart_shows_against_the_age_of_a_stale_report_within_the_slack() {
        // Stored six hours ago at an uptime of 600 s; the device restarted two hours ago and
        // does not send a boot count, so only the uptime can tell.
        let report = |uptime| BootReport {
            boots_since_update: None,
            ..boot("poweron", 1, 0, uptime)
        };
        let last = stored(report(600), T0);
        let six_hours = T0 + time::Duration::hours(6);
        assert!(report(7200).is_new_boot(six_hours, Some(&last)));
        // The same boot, its uptime up to the slack (60 s + 1 % of 6 h = 276 s) behind the
        // server's clock: not a restart; past it, one.
        let expected = 600 + 6 * 3600;
        assert!(!report(expected).is_new_boot(six_hours, Some(&last)));
        assert!(!report(expected - 276).is_new_boot(six_hours, Some(&last)));
        assert!(report(expected - 277).is_new_boot(six_hours, Some(&last)));
        // A clock ahead of the server's is the same boot.
        assert!(!report(expected + 500).is_new_boot(six_hours, Some(&last)));
    }

    #[test]
    fn a_report_only_refreshes_the_stored_one_when_it_is_the_same_boot_without_crashes() {
        let last = stored(boot("poweron", 1, 0, 600), T0);
        let hour = T0 + time::Duration::hours(1);
        assert!(boot("poweron", 1, 0, 4200).only_refreshes(hour, Some(&last)));
        assert!(!boot("poweron", 1, 0, 4200).only_refreshes(hour, None));
        assert!(
            !boot("poweron", 1, 1, 4200).only_refreshes(hour, Some(&last)),
            "a crash to count"
        );
        assert!(
            !boot("brownout", 1, 0, 4200).only_refreshes(hour, Some(&last)),
            "another reason"
        );
        assert!(!boot("poweron", 2, 0, 4200).only_refreshes(hour, Some(&last)));
    }

    #[test]
    fn a_new_boot_counts_its_reason_once_and_crashes_add_up() {
        let later = T0 + time::Duration::minutes(1);
        let first = boot("poweron", 1, 0, 5);
        assert_eq!(
            health_delta(Some("fw"), Some(&first), None, false, T0),
            Some(HealthDelta {
                firmware_id: "fw".into(),
                reset_reason: Some("poweron".into()),
                crashes: 0,
                new_device: false,
                new_crashed_device: false,
            }),
            "the first report of a boot"
        );
        let last = stored(first.clone(), T0);
        assert_eq!(
            health_delta(
                Some("fw"),
                Some(&boot("poweron", 1, 0, 65)),
                Some(&last),
                false,
                later
            ),
            None,
            "a steady poll moves nothing"
        );
        assert_eq!(
            health_delta(
                Some("fw"),
                Some(&boot("poweron", 1, 2, 65)),
                Some(&last),
                false,
                later
            ),
            Some(HealthDelta {
                firmware_id: "fw".into(),
                reset_reason: None,
                crashes: 2,
                new_device: false,
                new_crashed_device: false,
            }),
            "crashes of the same boot"
        );
        assert_eq!(
            health_delta(
                Some("fw"),
                Some(&boot("panic", 2, 1, 3)),
                Some(&last),
                false,
                later
            ),
            Some(HealthDelta {
                firmware_id: "fw".into(),
                reset_reason: Some("panic".into()),
                crashes: 1,
                new_device: false,
                new_crashed_device: false,
            })
        );
        let no_reason = BootReport {
            reset_reason: None,
            ..boot("x", 2, 0, 3)
        };
        assert_eq!(
            health_delta(Some("fw"), Some(&no_reason), Some(&last), false, later)
                .and_then(|d| d.reset_reason),
            Some(UNKNOWN_RESET_REASON.to_owned())
        );
    }

    #[test]
    fn another_running_image_is_another_boot_whatever_the_uptime_and_count_say() {
        // An update resets boots_since_update to 1: the same count and a higher uptime as the
        // old image's last report.
        let last = stored(boot("poweron", 1, 0, 5), T0);
        let later = T0 + time::Duration::minutes(1);
        let same_looking = boot("poweron", 1, 0, 9);
        assert_eq!(
            health_delta(Some("fw"), Some(&same_looking), Some(&last), false, later),
            None
        );
        assert_eq!(
            health_delta(Some("fw"), Some(&same_looking), Some(&last), true, later)
                .and_then(|d| d.reset_reason),
            Some("poweron".to_owned())
        );
    }

    #[test]
    fn nothing_is_counted_without_a_known_release_a_boot_or_twice_for_one_check() {
        let report = boot("panic", 2, 1, 3);
        assert_eq!(health_delta(None, Some(&report), None, false, T0), None);
        assert_eq!(health_delta(Some("fw"), None, None, false, T0), None);
        let recorded = stored(report.clone(), T0);
        assert_eq!(
            health_delta(Some("fw"), Some(&report), Some(&recorded), false, T0),
            None,
            "the same check-in written again"
        );
    }

    #[test]
    fn a_crash_is_a_crash_count_or_a_crash_reset() {
        let delta = |reason: Option<&str>, crashes| HealthDelta {
            firmware_id: "fw".into(),
            reset_reason: reason.map(str::to_owned),
            crashes,
            new_device: false,
            new_crashed_device: false,
        };
        for reason in CRASH_RESETS {
            assert!(delta(Some(reason), 0).shows_crash(), "{reason}");
        }
        for reason in ["poweron", "sw", "deepsleep", "unknown", "ext"] {
            assert!(!delta(Some(reason), 0).shows_crash(), "{reason}");
        }
        assert!(delta(None, 1).shows_crash());
        assert!(!delta(None, 0).shows_crash());
        // Counted once on a release, as a device and as a crashed one.
        let (d, crashed) = counted_on_release(Some(delta(None, 2)), Some("fw"), false, true);
        assert!(crashed && !d.unwrap().new_crashed_device);
        let (d, crashed) = counted_on_release(None, Some("fw"), false, false);
        assert_eq!((d, crashed), (None, false));
        let (d, _) = counted_on_release(None, None, true, false);
        assert_eq!(d, None, "no known release");
    }

    #[test]
    fn counters_add_deltas() {
        let mut h = HealthCounts::default();
        for (reason, crashes) in [(Some("panic"), 1), (None, 2), (Some("panic"), 0)] {
            h.add(&HealthDelta {
                firmware_id: "fw".into(),
                reset_reason: reason.map(str::to_owned),
                crashes,
                new_device: crashes == 0,
                new_crashed_device: crashes == 1,
            });
        }
        assert_eq!(h.resets_by_reason, BTreeMap::from([("panic".into(), 2)]));
        assert_eq!(h.crashes, 3);
        assert_eq!((h.devices, h.crashed_devices), (1, 1));
    }

    #[test]
    fn reports_are_validated_naming_the_member() {
        let ok = boot("pwr_glitch", 1, 0, crate::fields::MAX_STORED_INTEGER);
        assert_eq!(ok.clone().validated(), Ok(ok));
        for (bad, field) in [
            (boot("ESP_RST_PANIC", 1, 0, 1), "boot.reset_reason"),
            (boot("panic", 1, 0, u64::MAX), "boot.uptime_s"),
        ] {
            match bad.validated() {
                Err(OpError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
