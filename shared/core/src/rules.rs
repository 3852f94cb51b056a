//! What `check` decides (API.md §Update rules 1, 3 and 5). Pure functions over what the store
//! returned, so that both deployments decide identically.

use std::sync::Arc;

use crate::device::{CheckIn, DeviceSnapshot};
use crate::ports::{ReleaseOption, ReleaseView};

/// A device that failed a release this many times is not offered it again.
pub const MAX_FAILURES_PER_RELEASE: u32 = 3;

/// Why a release is not offered to a device; kept so tests can assert on the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excluded {
    NotOfferable,
    OtherDeviceType,
    RolloutNotActive,
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
    if !rollout.targets(&check_in.device_id, &device.device.groups) {
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
/// final, so the check-in itself completes the update. Returns the firmware id to complete.
pub fn completes_offer<'a>(check_in: &CheckIn, device: &'a DeviceSnapshot) -> Option<&'a str> {
    let offer = device.device.last_offer.as_ref()?;
    let open = device.last_offer_status.is_none_or(|s| !s.is_final());
    (offer.version == check_in.current_version && open).then_some(offer.firmware_id.as_str())
}
