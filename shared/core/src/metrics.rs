//! Fleet metrics, assembled from counters kept on write (never by reading the fleet).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::progress::{RolloutProgress, StatusCounts};
use crate::rollout::Rollout;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolloutWithProgress {
    #[serde(flatten)]
    pub rollout: Rollout,
    pub progress: RolloutProgress,
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
}
