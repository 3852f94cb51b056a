//! When a check must rewrite the device's record: the steady poll (same version, image, boot,
//! no new offer) changes only `last_seen` and the uptime of `last_boot`, and writing those on
//! every poll is most of what a poll costs on DynamoDB (a conditional put into the table and
//! two indexes). So they are written only once the stored `last_seen` is `precision` old:
//! `last_seen` is then true to within `precision` (docs/api.md §5.5), and a stored boot report up
//! to that old still tells a restart (`BootReport::is_new_boot` measures against its age).

use std::time::Duration;

use crate::device::Device;

/// Whether `after` (the record a check computed) must be written over `before` (the stored
/// one): it is new, anything but the refresh changed, or the refresh is `precision` old.
pub fn write_is_due(before: Option<&Device>, after: &Device, precision: Duration) -> bool {
    let Some(before) = before else {
        return true;
    };
    let boot_refreshed_only = match (&after.last_boot, &before.last_boot) {
        (None, None) => true,
        (Some(now), last @ Some(_)) => now.report.only_refreshes(now.received_at, last.as_ref()),
        _ => false,
    };
    let mut unrefreshed = after.clone();
    unrefreshed.last_seen = before.last_seen;
    unrefreshed.last_boot.clone_from(&before.last_boot);
    let age = after.last_seen - before.last_seen;
    !boot_refreshed_only || unrefreshed != *before || age >= precision
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
        assert!(write_is_due(None, &stored(), SIX_HOURS));
    }

    #[test]
    fn a_steady_poll_is_written_only_once_the_stored_one_is_as_old_as_the_precision() {
        let before = stored();
        let hour = Device::checked_in(Some(before.clone()), &check(60, 3660, 0), None).device;
        assert!(!write_is_due(Some(&before), &hour, SIX_HOURS));
        let six = Device::checked_in(Some(before.clone()), &check(360, 21_660, 0), None).device;
        assert!(write_is_due(Some(&before), &six, SIX_HOURS));
        assert!(
            write_is_due(Some(&before), &hour, Duration::ZERO),
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
            assert!(write_is_due(Some(&before), after, SIX_HOURS), "{after:?}");
        }
        // A check without `boot` keeps the stored report: nothing but `last_seen` moved.
        let kept = Device::checked_in(Some(before.clone()), &no_boot, None).device;
        assert!(!write_is_due(Some(&before), &kept, SIX_HOURS));
    }
}
