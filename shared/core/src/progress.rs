//! A rollout's progress: counters kept on write by the store, moved as `report_plan` says.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
    /// Counters stored before timeouts existed have none.
    #[serde(default)]
    pub timed_out: u64,
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
            OtaStatus::TimedOut => self.timed_out,
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
            OtaStatus::TimedOut => &mut self.timed_out,
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
    /// Final reports that count toward the failure rate: `failed`, `rolled_back` and the
    /// server's `timed_out`.
    pub failure_reports: u64,
}

impl RolloutProgress {
    /// One device's attempt moved from `from` (None: not counted here yet) to `to`. A final
    /// `to` is also one more final report, except that the outcome of an attempt the server
    /// had timed out replaces the timeout: the device spoke after all.
    pub fn attempt_moved(&mut self, from: Option<OtaStatus>, to: OtaStatus) {
        if let Some(from) = from {
            self.attempt_left(from);
            if from == OtaStatus::TimedOut && to.is_final() {
                self.failure_reports = self.failure_reports.saturating_sub(1);
            }
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

    /// `other`'s counters added to these: the whole of a store's sharded counters (each
    /// device's attempt is counted in one shard only).
    pub fn add(&mut self, other: &RolloutProgress) {
        for status in OtaStatus::ALL {
            *self.devices.slot(status) += other.devices.get(status);
        }
        self.success_reports += other.success_reports;
        self.failure_reports += other.failure_reports;
    }

    /// failed / (failed + success), in percent; None before any final report.
    pub fn failure_rate_percent(&self) -> Option<f64> {
        crate::percent_limit::percent(
            self.failure_reports,
            self.success_reports + self.failure_reports,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_add_up_to_the_counters_of_one() {
        let moves = [
            (None, OtaStatus::Downloading),
            (Some(OtaStatus::Downloading), OtaStatus::Success),
            (None, OtaStatus::Installing),
            (Some(OtaStatus::Installing), OtaStatus::Failed),
            (None, OtaStatus::RolledBack),
        ];
        let mut whole = RolloutProgress::default();
        let mut shards = [RolloutProgress::default(); 2];
        for (i, (from, to)) in moves.into_iter().enumerate() {
            whole.attempt_moved(from, to);
            // A device's moves stay in its shard: the pairs above are one device each.
            shards[(i / 2) % 2].attempt_moved(from, to);
        }
        let mut sum = RolloutProgress::default();
        for s in &shards {
            sum.add(s);
        }
        assert_eq!(sum, whole);
        assert_eq!(sum.failure_reports, 2);
    }

    #[test]
    fn a_late_outcome_replaces_its_timeout() {
        let mut p = RolloutProgress::default();
        p.attempt_moved(None, OtaStatus::Downloading);
        p.attempt_moved(Some(OtaStatus::Downloading), OtaStatus::TimedOut);
        assert_eq!((p.devices.timed_out, p.failure_reports), (1, 1));
        p.attempt_moved(Some(OtaStatus::TimedOut), OtaStatus::Success);
        assert_eq!(p.devices.timed_out, 0);
        assert_eq!((p.success_reports, p.failure_reports), (1, 0));

        let mut q = RolloutProgress::default();
        q.attempt_moved(None, OtaStatus::Installing);
        q.attempt_moved(Some(OtaStatus::Installing), OtaStatus::TimedOut);
        q.attempt_moved(Some(OtaStatus::TimedOut), OtaStatus::Failed);
        assert_eq!((q.devices.failed, q.failure_reports), (1, 1));
        // A retry after the timeout is a new attempt: the timeout stays a failure.
        let mut r = RolloutProgress::default();
        r.attempt_moved(None, OtaStatus::Downloading);
        r.attempt_moved(Some(OtaStatus::Downloading), OtaStatus::TimedOut);
        r.attempt_moved(Some(OtaStatus::TimedOut), OtaStatus::Downloading);
        assert_eq!((r.devices.downloading, r.failure_reports), (1, 1));
    }
}
