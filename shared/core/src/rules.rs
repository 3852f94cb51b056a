//! What `check` decides (docs/api.md §Update rules, rules 1, 3 and 5). Pure functions over what the
//! store returned, so that both deployments decide identically.

use std::sync::Arc;

use crate::device::{CheckIn, DeviceSnapshot};
use crate::ports::{ReleaseOption, ReleaseView};
use crate::status::OtaStatus;

/// A device that failed a release this many times is not offered it again.
pub const MAX_FAILURES_PER_RELEASE: u32 = 3;

/// Why a release is not offered to a device; kept so tests can assert on the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excluded {
    NotOfferable,
    OtherDeviceType,
    RolloutNotActive,
    /// The rollout's schedule makes no offer now (docs/api.md §9.6).
    OutsideSchedule,
    NotTargeted,
    OtherChannel,
    NotNewer,
    SameVersion,
    BelowMinCurrentVersion,
    SecureVersionTooLow,
    OtherChip,
    FailedTooOften,
}

/// Checks one candidate against every rule; `Ok` when it may be offered.
pub fn eligibility(
    option: &ReleaseOption,
    check_in: &CheckIn,
    device: &DeviceSnapshot,
    type_chip: Option<&str>,
) -> Result<(), Excluded> {
    let fw = &option.release;
    let rollout = &option.rollout;
    if !fw.is_offerable() {
        return Err(Excluded::NotOfferable);
    }
    if fw.device_type != check_in.device_type {
        return Err(Excluded::OtherDeviceType);
    }
    if !rollout.state.offers() {
        return Err(Excluded::RolloutNotActive);
    }
    if !rollout.offers_at(check_in.at) {
        return Err(Excluded::OutsideSchedule);
    }
    if !rollout.targets(&check_in.device_id, &device.device.groups, &device.named_in) {
        return Err(Excluded::NotTargeted);
    }
    if fw.channel != check_in.channel {
        return Err(Excluded::OtherChannel);
    }
    let offered = (&fw.version, fw.build_number);
    let current = (
        &check_in.current_version,
        check_in.current_build.unwrap_or(0),
    );
    if offered == current
        || (check_in.current_build.is_none() && fw.version == check_in.current_version)
    {
        return Err(Excluded::SameVersion);
    }
    if offered < current && !rollout.allow_downgrade {
        return Err(Excluded::NotNewer);
    }
    if fw
        .min_current_version
        .as_ref()
        .is_some_and(|min| *min > check_in.current_version)
    {
        return Err(Excluded::BelowMinCurrentVersion);
    }
    if fw.secure_version < check_in.secure_version {
        return Err(Excluded::SecureVersionTooLow);
    }
    if let (Some(type_chip), Some(fw_chip)) = (type_chip, fw.chip.as_deref())
        && type_chip != fw_chip
    {
        return Err(Excluded::OtherChip);
    }
    if device.failures_of(&fw.id) >= MAX_FAILURES_PER_RELEASE {
        return Err(Excluded::FailedTooOften);
    }
    Ok(())
}

/// The release to offer: the highest (version, build) among the eligible ones.
pub fn decide<'a>(
    view: &'a ReleaseView,
    check_in: &CheckIn,
    device: &DeviceSnapshot,
) -> Option<&'a Arc<ReleaseOption>> {
    view.options
        .iter()
        .filter(|o| eligibility(o, check_in, device, view.chip.as_deref()).is_ok())
        .max_by(|a, b| {
            (&a.release.version, a.release.build_number)
                .cmp(&(&b.release.version, b.release.build_number))
                // Among rollouts of one release, the oldest rollout wins, for stable answers.
                .then_with(|| b.rollout.created_at.cmp(&a.rollout.created_at))
        })
}

/// Rule 5: the device now runs the release it was last offered, and that attempt is not yet
/// final (or only the server's `timed_out`: the device updated and never said so), so the
/// check-in itself completes the update. Returns the firmware id to complete.
pub fn completes_offer<'a>(check_in: &CheckIn, device: &'a DeviceSnapshot) -> Option<&'a str> {
    let offer = device.device.last_offer.as_ref()?;
    let open = device
        .last_offer_status
        .is_none_or(|s| !s.is_final() || s == OtaStatus::TimedOut);
    (offer.version == check_in.current_version && open).then_some(offer.firmware_id.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{Device, Offer};
    use crate::ids::{DeviceId, DeviceType, Version};
    use crate::release::{Release, ReleaseState};
    use crate::rollout::{Rollout, RolloutState, Staging, TargetFilter, TargetType};
    use time::OffsetDateTime;

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn release(version: &str) -> Release {
        Release {
            id: format!("fw-{version}"),
            device_type: DeviceType::parse("demo").unwrap(),
            version: v(version),
            build_number: 0,
            channel: "stable".into(),
            file_size: 1,
            file_hash: "00".repeat(32),
            secure_version: 1,
            chip: Some("esp32c3".into()),
            project_name: None,
            idf_version: None,
            image_sha256: None,
            min_current_version: None,
            description: None,
            release_notes: None,
            state: ReleaseState::Ready,
            is_active: true,
            rejection_reasons: Vec::new(),
            created_at: T0,
            updated_at: T0,
            released_at: Some(T0),
        }
    }

    fn option(version: &str) -> ReleaseOption {
        let release = release(version);
        ReleaseOption {
            rollout: Rollout {
                id: format!("r-{version}"),
                name: "r".into(),
                firmware_id: release.id.clone(),
                device_type: release.device_type.clone(),
                target_type: TargetType::All,
                rollout_percentage: 100.0,
                target_filter: TargetFilter::default(),
                named_devices: 0,
                failure_threshold_percent: None,
                min_reports: 10,
                allow_downgrade: false,
                state: RolloutState::Active,
                staging: Staging::default(),
                revision: 1,
                created_at: T0,
                updated_at: T0,
            },
            release,
        }
    }

    fn check_in(current: &str) -> CheckIn {
        CheckIn {
            device_id: DeviceId::parse("d1").unwrap(),
            device_type: DeviceType::parse("demo").unwrap(),
            current_version: v(current),
            current_build: None,
            secure_version: 1,
            channel: "stable".into(),
            running_image_sha256: None,
            boot: None,
            at: T0,
        }
    }

    fn device(c: &CheckIn) -> DeviceSnapshot {
        DeviceSnapshot {
            device: Device::checked_in(None, c, None).device,
            failures: Vec::new(),
            last_offer_status: None,
            named_in: Vec::new(),
        }
    }

    /// A change to the release option, the check-in or the device before eligibility runs.
    type Change = Box<dyn FnOnce(&mut ReleaseOption, &mut CheckIn, &mut DeviceSnapshot)>;

    /// The eligibility of 1.1.0 for a device on 1.0.0 after `change`, with the type's chip.
    fn excluded_by(
        change: impl FnOnce(&mut ReleaseOption, &mut CheckIn, &mut DeviceSnapshot),
    ) -> Result<(), Excluded> {
        let mut o = option("1.1.0");
        let mut c = check_in("1.0.0");
        let mut d = device(&c);
        change(&mut o, &mut c, &mut d);
        eligibility(&o, &c, &d, Some("esp32c3"))
    }

    #[test]
    fn a_newer_ready_release_in_an_active_rollout_is_offered() {
        assert_eq!(excluded_by(|_, _, _| {}), Ok(()));
    }

    #[test]
    fn a_specific_rollout_targets_the_devices_it_names() {
        let specific = |o: &mut ReleaseOption| o.rollout.target_type = TargetType::Specific;
        // Named by membership, read with the device.
        assert_eq!(
            excluded_by(|o, _, d| {
                specific(o);
                d.named_in = vec!["other".into(), o.rollout.id.clone()];
            }),
            Ok(())
        );
        // Named in the record itself, as rollouts stored before memberships were.
        assert_eq!(
            excluded_by(|o, c, _| {
                specific(o);
                o.rollout.target_filter.device_ids = vec![c.device_id.clone()];
            }),
            Ok(())
        );
    }

    #[test]
    fn each_exclusion_reason() {
        use Excluded::*;
        let cases: Vec<(Excluded, Change)> = vec![
            (
                NotOfferable,
                Box::new(|o, _, _| o.release.state = ReleaseState::PendingUpload),
            ),
            (
                NotOfferable,
                Box::new(|o, _, _| o.release.is_active = false),
            ),
            (
                OtherDeviceType,
                Box::new(|_, c, _| c.device_type = DeviceType::parse("other").unwrap()),
            ),
            (
                RolloutNotActive,
                Box::new(|o, _, _| o.rollout.state = RolloutState::Paused),
            ),
            (
                RolloutNotActive,
                Box::new(|o, _, _| o.rollout.state = RolloutState::Aborted),
            ),
            (
                RolloutNotActive,
                Box::new(|o, _, _| o.rollout.state = RolloutState::Completed),
            ),
            (
                OutsideSchedule,
                Box::new(|o, c, _| {
                    o.rollout.staging.schedule = Some(crate::offer_schedule::Schedule {
                        start_at: Some(c.at + time::Duration::seconds(1)),
                        ..Default::default()
                    });
                }),
            ),
            (
                NotTargeted,
                Box::new(|o, _, d| {
                    o.rollout.target_type = TargetType::Specific;
                    d.named_in = vec!["another rollout".into()];
                }),
            ),
            (
                NotTargeted,
                Box::new(|o, c, _| {
                    // A staged rollout of every device offers to its stage's share only.
                    o.rollout.staging.stages = vec![crate::stages::Stage {
                        percent: 1.0,
                        soak_s: 0,
                        min_devices: 1,
                    }];
                    o.rollout.rollout_percentage = 0.01;
                    assert!(crate::rollout::canary_bucket(&o.rollout.id, &c.device_id) >= 1);
                }),
            ),
            (
                NotTargeted,
                Box::new(|o, _, _| {
                    o.rollout.target_type = TargetType::Specific;
                    o.rollout.target_filter.device_ids = vec![DeviceId::parse("d2").unwrap()];
                }),
            ),
            (
                NotTargeted,
                Box::new(|o, _, _| {
                    o.rollout.target_type = TargetType::Group;
                    o.rollout.target_filter.groups = vec!["lab".into()];
                }),
            ),
            (
                NotTargeted,
                Box::new(|o, _, _| {
                    o.rollout.target_type = TargetType::Canary;
                    o.rollout.rollout_percentage = 0.0;
                }),
            ),
            (OtherChannel, Box::new(|_, c, _| c.channel = "beta".into())),
            (
                SameVersion,
                Box::new(|_, c, _| c.current_version = v("1.1.0")),
            ),
            (
                SameVersion,
                Box::new(|o, c, _| {
                    o.release.build_number = 7;
                    c.current_version = v("1.1.0");
                    c.current_build = Some(7);
                }),
            ),
            (NotNewer, Box::new(|_, c, _| c.current_version = v("2.0.0"))),
            (
                NotNewer,
                Box::new(|o, c, _| {
                    c.current_version = v("1.1.0");
                    c.current_build = Some(3);
                    o.release.build_number = 2;
                }),
            ),
            (
                BelowMinCurrentVersion,
                Box::new(|o, _, _| o.release.min_current_version = Some(v("1.0.1"))),
            ),
            (
                SecureVersionTooLow,
                Box::new(|_, c, _| c.secure_version = 2),
            ),
            (
                OtherChip,
                Box::new(|o, _, _| o.release.chip = Some("esp32".into())),
            ),
            (
                FailedTooOften,
                Box::new(|_, _, d| {
                    d.failures = vec![("fw-1.1.0".into(), MAX_FAILURES_PER_RELEASE)];
                }),
            ),
        ];
        for (i, (reason, change)) in cases.into_iter().enumerate() {
            assert_eq!(excluded_by(change), Err(reason), "case {i}");
        }
    }

    #[test]
    fn what_lifts_an_exclusion() {
        // A device in the group, the list, or a canary at 100 % is targeted.
        assert_eq!(
            excluded_by(|o, _, d| {
                o.rollout.target_type = TargetType::Group;
                o.rollout.target_filter.groups = vec!["lab".into()];
                d.device.groups = vec!["lab".into()];
            }),
            Ok(())
        );
        // A higher build of the same version is newer when the device sends its build.
        assert_eq!(
            excluded_by(|o, c, _| {
                c.current_version = v("1.1.0");
                c.current_build = Some(1);
                o.release.build_number = 2;
            }),
            Ok(())
        );
        // A downgrade rollout offers an older release, never below the secure version.
        assert_eq!(
            excluded_by(|o, c, _| {
                o.rollout.allow_downgrade = true;
                c.current_version = v("2.0.0");
            }),
            Ok(())
        );
        // Two failures are not three; an unknown chip on either side is not another chip.
        assert_eq!(
            excluded_by(|_, _, d| d.failures = vec![("fw-1.1.0".into(), 2)]),
            Ok(())
        );
        assert_eq!(excluded_by(|o, _, _| o.release.chip = None), Ok(()));
        let (o, c) = (option("1.1.0"), check_in("1.0.0"));
        assert_eq!(
            eligibility(&o, &c, &device(&c), None),
            Ok(()),
            "no type chip"
        );
        // A device exactly at the minimum current version may update.
        assert_eq!(
            excluded_by(|o, c, _| {
                o.release.min_current_version = Some(v("1.0.1"));
                c.current_version = v("1.0.1");
            }),
            Ok(())
        );
        // The same secure version is not lower.
        assert_eq!(excluded_by(|_, c, _| c.secure_version = 1), Ok(()));
    }

    #[test]
    fn the_highest_eligible_release_wins_and_the_oldest_rollout_among_equals() {
        let c = check_in("1.0.0");
        let d = device(&c);
        let mut newest_paused = option("3.0.0");
        newest_paused.rollout.state = RolloutState::Paused;
        let mut older_rollout = option("2.0.0");
        older_rollout.rollout.id = "r-old".into();
        older_rollout.rollout.created_at = T0 - time::Duration::hours(1);
        let view = ReleaseView {
            chip: Some("esp32c3".into()),
            options: [
                option("1.5.0"),
                option("2.0.0"),
                older_rollout,
                newest_paused,
            ]
            .into_iter()
            .map(Arc::new)
            .collect(),
        };
        let chosen = decide(&view, &c, &d).unwrap();
        assert_eq!(chosen.release.version, v("2.0.0"));
        assert_eq!(chosen.rollout.id, "r-old");
        assert!(decide(&view, &check_in("3.0.0"), &d).is_none());
    }

    #[test]
    fn a_check_on_the_offered_version_completes_an_open_attempt() {
        let c = check_in("1.1.0");
        let mut d = device(&c);
        assert_eq!(completes_offer(&c, &d), None, "nothing was offered");
        d.device.last_offer = Some(Offer {
            firmware_id: "fw-1.1.0".into(),
            version: v("1.1.0"),
            rollout_id: "r".into(),
            at: T0,
        });
        assert_eq!(completes_offer(&c, &d), Some("fw-1.1.0"));
        d.last_offer_status = Some(crate::status::OtaStatus::Installing);
        assert_eq!(completes_offer(&c, &d), Some("fw-1.1.0"));
        d.last_offer_status = Some(crate::status::OtaStatus::Failed);
        assert_eq!(completes_offer(&c, &d), None, "a final attempt stays final");
        d.last_offer_status = Some(crate::status::OtaStatus::TimedOut);
        assert_eq!(
            completes_offer(&c, &d),
            Some("fw-1.1.0"),
            "a device timed out that runs the release completed it"
        );
        d.last_offer_status = None;
        assert_eq!(
            completes_offer(&check_in("1.0.0"), &d),
            None,
            "still on the old version"
        );
    }
}
