//! A rollout's progress and the automatic pause (API.md §Update rules 4).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::rollout::Rollout;
use crate::status::OtaStatus;

/// How many of something are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusCounts {
    pub pending: u64,
    pub downloading: u64,
    pub installing: u64,
    pub success: u64,
    pub failed: u64,
    pub rolled_back: u64,
}

impl StatusCounts {
    pub fn get(&self, s: OtaStatus) -> u64 {
        match s {
            OtaStatus::Pending => self.pending,
            OtaStatus::Downloading => self.downloading,
            OtaStatus::Installing => self.installing,
            OtaStatus::Success => self.success,
            OtaStatus::Failed => self.failed,
            OtaStatus::RolledBack => self.rolled_back,
        }
    }

    pub fn slot(&mut self, s: OtaStatus) -> &mut u64 {
        match s {
            OtaStatus::Pending => &mut self.pending,
            OtaStatus::Downloading => &mut self.downloading,
            OtaStatus::Installing => &mut self.installing,
            OtaStatus::Success => &mut self.success,
            OtaStatus::Failed => &mut self.failed,
            OtaStatus::RolledBack => &mut self.rolled_back,
        }
    }
}

/// Counters kept on write for one rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RolloutProgress {
    /// Devices whose current attempt at the release is in each status.
    pub devices: StatusCounts,
    /// Final reports that count toward the failure rate: `success`.
    pub success_reports: u64,
    /// Final reports that count toward the failure rate: `failed` and `rolled_back`.
    pub failure_reports: u64,
}

impl RolloutProgress {
    /// One device's attempt moved from `from` (None: not counted here yet) to `to`. A final
    /// `to` is also one more final report.
    pub fn attempt_moved(&mut self, from: Option<OtaStatus>, to: OtaStatus) {
        if let Some(from) = from {
            self.attempt_left(from);
        }
        *self.devices.slot(to) += 1;
        if to == OtaStatus::Success {
            self.success_reports += 1;
        } else if to.is_failure() {
            self.failure_reports += 1;
        }
    }

    /// A device's attempt, last counted in `status`, now counts toward another rollout. Its
    /// final reports stay counted here.
    pub fn attempt_left(&mut self, status: OtaStatus) {
        let slot = self.devices.slot(status);
        *slot = slot.saturating_sub(1);
    }

    /// failed / (failed + success), in percent; None before any final report.
    pub fn failure_rate_percent(&self) -> Option<f64> {
        let total = self.success_reports + self.failure_reports;
        (total > 0).then(|| self.failure_reports as f64 * 100.0 / total as f64)
    }
}

/// Millionths of a percent in a percent.
const MICRO: u128 = 1_000_000;

/// Rule 4: pause as soon as there are at least `min_reports` final reports and the failure rate
/// exceeds the threshold.
pub fn should_pause(rollout: &Rollout, progress: &RolloutProgress) -> bool {
    let Some(threshold) = rollout.failure_threshold_percent else {
        return false;
    };
    let finals = progress.success_reports + progress.failure_reports;
    // Compare in integers, with the threshold in millionths of a percent (exact for any threshold
    // written with up to six decimals), so that a rate exactly at the threshold never exceeds it
    // by rounding: 69 of 375 is 18.4 %, but 18.4 * 375 is 6899.999999999999 in f64.
    let threshold = (threshold * MICRO as f64).round() as u128;
    finals >= u64::from(rollout.min_reports.max(1))
        && u128::from(progress.failure_reports) * 100 * MICRO > threshold * u128::from(finals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeviceType, new_id};
    use crate::rollout::{RolloutState, TargetFilter, TargetType};

    fn rollout(threshold: Option<f64>, min_reports: u32) -> Rollout {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        Rollout {
            id: new_id(),
            name: "r".into(),
            firmware_id: "f".into(),
            device_type: DeviceType::parse("t").unwrap(),
            target_type: TargetType::All,
            rollout_percentage: 100.0,
            target_filter: TargetFilter::default(),
            failure_threshold_percent: threshold,
            min_reports,
            allow_downgrade: false,
            state: RolloutState::Active,
            revision: 1,
            created_at: now,
            updated_at: now,
        }
    }

    fn progress(success: u64, failure: u64) -> RolloutProgress {
        RolloutProgress {
            success_reports: success,
            failure_reports: failure,
            ..RolloutProgress::default()
        }
    }

    #[test]
    fn pauses_only_past_threshold_with_enough_reports() {
        let r = rollout(Some(20.0), 10);
        assert!(
            !should_pause(&r, &progress(0, 9)),
            "9 reports < min_reports"
        );
        assert!(should_pause(&r, &progress(0, 10)));
        assert!(
            !should_pause(&r, &progress(8, 2)),
            "exactly 20 % does not exceed 20 %"
        );
        assert!(should_pause(&r, &progress(7, 3)));
        assert!(!should_pause(&rollout(None, 0), &progress(0, 100)));
        assert!(should_pause(&rollout(Some(0.0), 1), &progress(99, 1)));
        assert!(!should_pause(&rollout(Some(100.0), 1), &progress(0, 5)));
    }

    #[test]
    fn exactly_at_a_decimal_threshold_does_not_pause() {
        // Each rate is exactly the threshold; in f64, threshold * finals falls just below.
        for (threshold, success, failure) in [(18.4, 306, 69), (9.2, 681, 69), (4.6, 1431, 69)] {
            let r = rollout(Some(threshold), 1);
            assert!(
                !should_pause(&r, &progress(success, failure)),
                "{threshold} %"
            );
            assert!(should_pause(&r, &progress(success, failure + 1)));
        }
        assert!(!should_pause(&rollout(Some(12.5), 8), &progress(7, 1)));
        assert!(should_pause(
            &rollout(Some(0.000001), 1),
            &progress(1_000_000, 1)
        ));
    }
}
