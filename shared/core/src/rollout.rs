//! Rollouts: which devices are offered which release, and in what stage.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::health_gate::HealthGate;
use crate::ids::{DeviceId, DeviceType};
use crate::map_only::MapOnly;
use crate::offer_schedule::Schedule;
use crate::rollout_evaluation::Decision;
pub use crate::rollout_lifecycle::RolloutState;
use crate::stages::Stage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    All,
    Canary,
    Specific,
    Group,
}

impl TargetType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Canary => "canary",
            Self::Specific => "specific",
            Self::Group => "group",
        }
    }
}

/// The most devices one `specific` rollout may name (docs/api.md §5.4).
pub const MAX_NAMED_DEVICES: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetFilter {
    /// On a create, the devices a `specific` rollout names. A stored rollout keeps them apart
    /// (each store's membership of a device in the rollouts that name it, read with the
    /// device), so that no record grows with the list; only rollouts stored before that keep
    /// them here, as they were written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 100_000)]
    pub device_ids: Vec<DeviceId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl<'de> Deserialize<'de> for TargetFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename = "TargetFilter")]
        struct Fields {
            #[serde(default)]
            device_ids: Vec<DeviceId>,
            #[serde(default)]
            groups: Vec<String>,
        }
        // Only from an object: see `map_only`.
        let f = Fields::deserialize(MapOnly(d))?;
        Ok(Self {
            device_ids: f.device_ids,
            groups: f.groups,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rollout {
    pub id: String,
    pub name: String,
    pub firmware_id: String,
    /// Copied from the firmware so that a device type's rollouts are found without a join.
    pub device_type: DeviceType,
    pub target_type: TargetType,
    /// 0–100: the share of a `canary` rollout's devices offered, and of any staged rollout's
    /// target (its current stage's `percent`).
    pub rollout_percentage: f64,
    pub target_filter: TargetFilter,
    /// How many devices a `specific` rollout names (0 for the other target types); they are
    /// listed by `GET /api/ota/admin/rollouts/{id}/devices`.
    #[serde(default)]
    pub named_devices: u32,
    pub failure_threshold_percent: Option<f64>,
    pub min_reports: u32,
    pub allow_downgrade: bool,
    pub state: RolloutState,
    /// How the rollout widens and stops itself; empty for a rollout without stages or gate.
    #[serde(flatten)]
    pub staging: Staging,
    /// Optimistic-concurrency revision: bumped by every change, checked by every edit.
    pub revision: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// A rollout's stages, health gate and schedule (docs/api.md §9.5, §9.6), with where its
/// stages stand and the decisions made so far. Records stored before stages existed read as
/// the default: no stages, no gate, no schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Staging {
    /// The stages, each widening the one before (empty: the rollout is not staged).
    #[serde(default)]
    pub stages: Vec<Stage>,
    /// The current stage, from 0 (0 for a rollout without stages).
    #[serde(default)]
    pub stage_index: u32,
    /// When the current stage started (null without stages).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub stage_started_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub health_gate: Option<HealthGate>,
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// Seconds of silence after `downloading` or `installing` before the server writes
    /// `timed_out` (`install_timeout`); null: never.
    #[serde(default)]
    pub install_timeout_s: Option<u64>,
    /// Devices that may get their first offer of this rollout in any rolling hour
    /// (`offer_budget`); null: no limit.
    #[serde(default)]
    pub max_offers_per_hour: Option<u32>,
    /// The automatic decisions and promotions, oldest first (the newest
    /// `rollout_evaluation::MAX_DECISIONS`; the audit log keeps them all).
    #[serde(default)]
    pub decisions: Vec<Decision>,
}

/// The canary bucket of a device in a rollout, 0..10000, as docs/api.md §Update rules (rule 2)
/// fixes it:
/// `u32_be(sha256(rollout_id + ":" + device_id)[0..4]) % 10000`.
pub fn canary_bucket(rollout_id: &str, device_id: &DeviceId) -> u32 {
    let mut h = Sha256::new();
    h.update(rollout_id.as_bytes());
    h.update(b":");
    h.update(device_id.as_str().as_bytes());
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 10_000
}

/// Whether a canary at `percentage` includes the device. Monotonic in `percentage` because the
/// bucket does not depend on it.
pub fn in_canary(rollout_id: &str, device_id: &DeviceId, percentage: f64) -> bool {
    f64::from(canary_bucket(rollout_id, device_id)) < percentage * 100.0
}

impl Rollout {
    /// Whether this rollout's target includes the device (ignoring state), given its groups
    /// and the ids of the rollouts that name it. A `canary` rollout, and a staged rollout of
    /// any type, offers only to the devices of its target whose canary bucket is within its
    /// percentage.
    pub fn targets(
        &self,
        device_id: &DeviceId,
        device_groups: &[String],
        named_in: &[String],
    ) -> bool {
        let in_target = match self.target_type {
            TargetType::All | TargetType::Canary => true,
            TargetType::Specific => {
                named_in.contains(&self.id) || self.target_filter.device_ids.contains(device_id)
            }
            TargetType::Group => self
                .target_filter
                .groups
                .iter()
                .any(|g| device_groups.contains(g)),
        };
        let by_share = self.target_type == TargetType::Canary || !self.staging.stages.is_empty();
        in_target && (!by_share || in_canary(&self.id, device_id, self.rollout_percentage))
    }

    /// Whether the rollout's schedule lets it make a new offer at `at` (no schedule: always).
    pub fn offers_at(&self, at: OffsetDateTime) -> bool {
        self.staging
            .schedule
            .as_ref()
            .is_none_or(|s| s.offers_at(at))
    }
}

/// Filters of `GET /api/ota/admin/rollouts`.
#[derive(Debug, Clone, Default)]
pub struct RolloutFilter {
    pub device_type: Option<DeviceType>,
    pub firmware_id: Option<String>,
    pub state: Option<RolloutState>,
}

impl RolloutFilter {
    /// Whether `r` passes every filter given.
    pub fn matches(&self, r: &Rollout) -> bool {
        self.device_type
            .as_ref()
            .is_none_or(|t| *t == r.device_type)
            && self
                .firmware_id
                .as_ref()
                .is_none_or(|f| *f == r.firmware_id)
            && self.state.is_none_or(|st| st == r.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_matches_formula() {
        let id = DeviceId::parse("a4cf12b3c4d5").unwrap();
        let d = Sha256::digest(b"r1:a4cf12b3c4d5");
        let expect = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 10_000;
        assert_eq!(canary_bucket("r1", &id), expect);
    }

    #[test]
    fn canary_grows_monotonically() {
        let ids: Vec<DeviceId> = (0..2000)
            .map(|i| DeviceId::parse(&format!("dev{i}")).unwrap())
            .collect();
        let mut prev = 0;
        for p in [0.0, 1.0, 10.0, 10.5, 50.0, 99.99, 100.0] {
            let n = ids.iter().filter(|d| in_canary("r", d, p)).count();
            assert!(n >= prev);
            prev = n;
        }
        assert_eq!(prev, ids.len());
        assert_eq!(ids.iter().filter(|d| in_canary("r", d, 0.0)).count(), 0);
    }
}
