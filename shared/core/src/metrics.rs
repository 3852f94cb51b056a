//! Fleet metrics, assembled from counters kept on write (never by reading the fleet).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::device_health::ReleaseHealth;
use crate::health_gate::GateNumbers;
use crate::progress::{RolloutProgress, StatusCounts};
use crate::rollout::Rollout;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolloutWithProgress {
    #[serde(flatten)]
    pub rollout: Rollout,
    pub progress: RolloutProgress,
    /// Where a rollout with stages or a health gate stands: in the answers about one rollout
    /// (get, create, edit), absent from lists and for other rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<RolloutHealth>,
}

/// The live numbers of a rollout's gate and stage (docs/api.md §9.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolloutHealth {
    #[serde(flatten)]
    pub numbers: GateNumbers,
    /// failures / final outcomes, in percent (null before any).
    pub failure_percent: Option<f64>,
    /// crashed devices / devices on the release, in percent (null before any device).
    pub crash_percent: Option<f64>,
    /// The earliest time the current stage can pass (its soak's end); null in the last stage
    /// or when not active.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_evaluation_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FleetMetrics {
    pub devices_total: u64,
    pub devices_by_type: BTreeMap<String, u64>,
    /// device type -> version -> devices running it.
    pub versions_by_type: BTreeMap<String, BTreeMap<String, u64>>,
    /// Status reports of the last 24 hours (hourly buckets), by status.
    pub outcomes_24h: StatusCounts,
    pub active_rollouts: Vec<RolloutWithProgress>,
    /// The resets and crashes reported by devices running each release, for the releases with
    /// any, by `firmware_id`.
    pub release_health: Vec<ReleaseHealth>,
}

/// Seconds in an hour.
const HOUR_S: i64 = 3600;

/// The hour (since the Unix epoch) a status report stored at `at` is counted in: stores keep a
/// counter per (hour, status), and `outcomes_24h` sums a window of them.
pub fn outcome_hour(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().div_euclid(HOUR_S)
}

/// The first hour of the window `outcomes_24h` sums at `now`: the current hour and the 23
/// before it, so that it agrees with the OTA log entries of that window.
pub fn first_outcome_hour(now: OffsetDateTime) -> i64 {
    outcome_hour(now) - 23
}

/// How long an hour's counters are kept: past this no window reads them again.
pub const OUTCOME_HOURS_KEPT: time::Duration = time::Duration::days(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_the_current_hour_and_the_23_before() {
        let now = OffsetDateTime::from_unix_timestamp(10 * 3600 + 59).unwrap();
        assert_eq!(outcome_hour(now), 10);
        assert_eq!(first_outcome_hour(now), -13);
        let before_epoch = OffsetDateTime::from_unix_timestamp(-1).unwrap();
        assert_eq!(
            outcome_hour(before_epoch),
            -1,
            "hours round down, not toward zero"
        );
        assert!(OUTCOME_HOURS_KEPT > time::Duration::hours(24));
    }
}
