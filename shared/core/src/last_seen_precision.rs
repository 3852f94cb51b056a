//! What a check must write of the device's record: the steady poll (same version, image, boot,
//! no new offer) changes only `last_seen` and the uptime of `last_boot`, and writing those on
//! every poll is most of what a poll costs on DynamoDB. So they are written only once the stored
//! `last_seen` is `precision` old: `last_seen` is then true to within `precision` (docs/api.md
//! §5.5), and a stored boot report up to that old still tells a restart
//! (`BootReport::is_new_boot` measures against its age). And when that refresh is all there is
//! to write, a store may write it apart from the record (DynamoDB: a small item outside the
//! indexes, 1 write unit where the record takes 3).

use std::time::Duration;

use crate::device::Device;

/// What a check writes of the device record it computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Nothing: the steady poll within the precision.
    Nothing,
    /// Only `last_seen` and `last_boot` moved, and the stored ones are `precision` old.
    Refresh,
    /// The record: it is new, or more than the refresh changed.
    Record,
}

/// What of `after` (the record a check computed) must be written over `before` (the stored
/// one, with any refresh written apart from it applied).
pub fn write_due(before: Option<&Device>, after: &Device, precision: Duration) -> Due {
    let Some(before) = before else {
        return Due::Record;
    };
    let boot_refreshed_only = match (&after.last_boot, &before.last_boot) {
        (None, None) => true,
        (Some(now), last @ Some(_)) => now.report.only_refreshes(now.received_at, last.as_ref()),
        _ => false,
    };
    let mut unrefreshed = after.clone();
    unrefreshed.last_seen = before.last_seen;
    unrefreshed.last_boot.clone_from(&before.last_boot);
    if !boot_refreshed_only || unrefreshed != *before {
        Due::Record
    } else if after.last_seen - before.last_seen >= precision {
        Due::Refresh
    } else {
        Due::Nothing
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::device::{CheckIn, Offer};
    use crate::device_health::BootReport;
    use crate::ids::{DeviceId, DeviceType, Version};

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;
    const SIX_HOURS: Duration = Duration::from_secs(6 * 3600);

    fn check(minutes: i64, uptime: u64, crashes: u32) -> CheckIn {
        CheckIn {
            device_id: DeviceId::parse("dev-1").unwrap(),
            device_type: DeviceType::parse("sensor").unwrap(),
            current_version: Version::parse("1.0.0").unwrap(),
            current_build: None,
            secure_version: 0,
            channel: "stable".into(),
            running_image_sha256: Some("ab".repeat(32)),
            boot: Some(BootReport {
                reset_reason: Some("poweron".into()),
                boots_since_update: Some(1),
                crashes_since_last_check: Some(crashes),
                uptime_s: Some(uptime),
            }),
            at: T0 + time::Duration::minutes(minutes),
        }
    }

    fn stored() -> Device {
        Device::checked_in(None, &check(0, 60, 0), None).device
    }

    #[test]
    fn a_new_device_is_written() {
        assert_eq!(write_due(None, &stored(), SIX_HOURS), Due::Record);
    }

    #[test]
    fn a_steady_poll_is_written_only_once_the_stored_one_is_as_old_as_the_precision() {
        let before = stored();
        let hour = Device::checked_in(Some(before.clone()), &check(60, 3660, 0), None).device;
        assert_eq!(write_due(Some(&before), &hour, SIX_HOURS), Due::Nothing);
        let six = Device::checked_in(Some(before.clone()), &check(360, 21_660, 0), None).device;
        assert_eq!(write_due(Some(&before), &six, SIX_HOURS), Due::Refresh);
        assert_eq!(
            write_due(Some(&before), &hour, Duration::ZERO),
            Due::Refresh,
            "precision 0 writes every check"
        );
    }

    #[test]
    fn any_other_change_is_written_at_once() {
        let before = stored();
        let mut version = check(1, 120, 0);
        version.current_version = Version::parse("1.1.0").unwrap();
        let mut image = check(1, 120, 0);
        image.running_image_sha256 = Some("cd".repeat(32));
        let mut no_boot = check(1, 120, 0);
        no_boot.boot = None;
        let mut changed = vec![
            Device::checked_in(Some(before.clone()), &version, None).device,
            Device::checked_in(Some(before.clone()), &image, None).device,
            // A restart (the uptime went down) and a crash.
            Device::checked_in(Some(before.clone()), &check(1, 5, 0), None).device,
            Device::checked_in(Some(before.clone()), &check(1, 120, 2), None).device,
        ];
        let mut offered = Device::checked_in(Some(before.clone()), &check(1, 120, 0), None).device;
        offered.last_offer = Some(Offer {
            firmware_id: "fw".into(),
            version: Version::parse("1.1.0").unwrap(),
            rollout_id: "ro".into(),
            at: T0,
        });
        changed.push(offered);
        for after in &changed {
            assert_eq!(
                write_due(Some(&before), after, SIX_HOURS),
                Due::Record,
                "{after:?}"
            );
        }
        // A check without `boot` keeps the stored report: nothing but `last_seen` moved.
        let kept = Device::checked_in(Some(before.clone()), &no_boot, None).device;
        assert_eq!(write_due(Some(&before), &kept, SIX_HOURS), Due::Nothing);
    }
}
