//! Roll a release out (docs/api.md §Rollouts): to every device of its type, a canary percentage,
//! named devices or groups, in stages that widen by themselves, within a schedule, pausing
//! itself when too many fail (rule 4) or its health gate is crossed.

use crate::access::{Admin, Role};
use crate::error::OpError;
use crate::fields;
use crate::health_gate::HealthGate;
use crate::ids::{DeviceId, DeviceType, Version, new_id};
use crate::install_timeout;
use crate::metrics::RolloutWithProgress;
use crate::offer_budget;
use crate::offer_schedule::Schedule;
use crate::progress::RolloutProgress;
use crate::release::Release;
use crate::rollout::{MAX_NAMED_DEVICES, Rollout, RolloutState, Staging, TargetFilter, TargetType};
use crate::service::Service;
use crate::stages::{self, Stage};
use time::OffsetDateTime;

/// Final reports a rollout needs before rule 4 applies, unless it says otherwise.
pub const DEFAULT_MIN_REPORTS: u32 = 10;

/// The release a new rollout offers.
#[derive(Debug, Clone, PartialEq)]
pub enum RolloutOf {
    Id(String),
    /// The paku dialect names a version of a device model.
    Version {
        device_type: DeviceType,
        version: Version,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CreateRollout {
    pub name: String,
    pub release: RolloutOf,
    pub target_type: TargetType,
    /// 0–100, for `canary`; absent: 100.
    pub rollout_percentage: Option<f64>,
    pub target_filter: TargetFilter,
    pub failure_threshold_percent: Option<f64>,
    /// Absent: [`DEFAULT_MIN_REPORTS`].
    pub min_reports: Option<u32>,
    pub allow_downgrade: bool,
    /// Created paused (the paku dialect's `is_active: false`) rather than active.
    pub paused: bool,
    /// Empty: not staged.
    pub stages: Vec<Stage>,
    pub health_gate: Option<HealthGate>,
    pub schedule: Option<Schedule>,
    pub install_timeout_s: Option<u64>,
    pub max_offers_per_hour: Option<u32>,
}

impl Service {
    pub async fn create_rollout(
        &self,
        admin: &Admin,
        input: CreateRollout,
    ) -> Result<RolloutWithProgress, OpError> {
        admin.require(Role::Admin)?;
        let release = self.release_to_roll_out(&input.release).await?;
        let name = fields::rollout_name("name", &input.name)?;
        check_target(input.target_type, &input.target_filter)?;
        let (target_filter, named) = named_apart(input.target_filter)?;
        if !release.is_offerable() {
            return Err(OpError::ReleaseNotReady(format!(
                "firmware {} is {} and {}: only a ready, active release can be rolled out",
                release.id,
                release.state.as_str(),
                if release.is_active {
                    "active"
                } else {
                    "inactive"
                }
            )));
        }
        let now = self.now();
        let staging = Staging {
            install_timeout_s: install_timeout::validated(input.install_timeout_s)?,
            max_offers_per_hour: offer_budget::validated(input.max_offers_per_hour)?,
            ..staging(input.stages, input.health_gate, input.schedule, now)?
        };
        let rollout_percentage = match (staging.stages.first(), input.rollout_percentage) {
            (Some(_), Some(_)) => {
                return Err(OpError::invalid(
                    "rollout_percentage",
                    "a staged rollout offers its stages' percentages: leave it out",
                ));
            }
            (Some(first), None) => first.percent,
            (None, p) => fields::percentage("rollout_percentage", p.unwrap_or(100.0))?,
        };
        let rollout = Rollout {
            id: new_id(),
            name,
            firmware_id: release.id.clone(),
            device_type: release.device_type.clone(),
            target_type: input.target_type,
            rollout_percentage,
            target_filter,
            named_devices: u32::try_from(named.len()).unwrap_or(u32::MAX),
            failure_threshold_percent: input
                .failure_threshold_percent
                .map(|t| fields::percentage("failure_threshold_percent", t))
                .transpose()?,
            min_reports: input.min_reports.unwrap_or(DEFAULT_MIN_REPORTS),
            allow_downgrade: input.allow_downgrade,
            state: if input.paused {
                RolloutState::Paused
            } else {
                RolloutState::Active
            },
            staging,
            revision: 1,
            created_at: now,
            updated_at: now,
        };
        self.meta.insert_rollout(&rollout, &named).await?;
        self.audit(
            admin,
            "rollout.create",
            "rollout",
            &rollout.id,
            serde_json::to_value(&rollout).unwrap_or_default(),
        )
        .await?;
        Ok(RolloutWithProgress {
            health: self.rollout_health(&rollout).await?,
            rollout,
            progress: RolloutProgress::default(),
        })
    }

    async fn release_to_roll_out(&self, of: &RolloutOf) -> Result<Release, OpError> {
        match of {
            RolloutOf::Id(id) => self
                .meta
                .get_release(id)
                .await?
                .ok_or_else(|| OpError::UnknownRelease(format!("firmware {id} does not exist"))),
            RolloutOf::Version {
                device_type,
                version,
            } => self
                .meta
                .find_release(device_type, version)
                .await?
                .ok_or_else(|| {
                    OpError::UnknownRelease(format!(
                        "no firmware {version} for device model {device_type}"
                    ))
                }),
        }
    }
}

/// The stages, gate and schedule of a new rollout. Its first stage starts when it may first
/// offer: now, or the schedule's `start_at` when later.
fn staging(
    stages: Vec<Stage>,
    health_gate: Option<HealthGate>,
    schedule: Option<Schedule>,
    now: OffsetDateTime,
) -> Result<Staging, OpError> {
    let schedule = schedule.map(Schedule::validated).transpose()?;
    let stages = stages::validated(stages)?;
    let starts = schedule
        .as_ref()
        .and_then(|s| s.start_at)
        .map_or(now, |s| s.max(now));
    Ok(Staging {
        stage_started_at: (!stages.is_empty()).then_some(starts),
        stages,
        stage_index: 0,
        health_gate: health_gate.map(HealthGate::validated).transpose()?,
        schedule,
        ..Staging::default()
    })
}

/// The devices a `specific` rollout names, taken out of its filter (stores keep them apart, so
/// that no record grows with them), each once and in order, at most [`MAX_NAMED_DEVICES`].
fn named_apart(mut filter: TargetFilter) -> Result<(TargetFilter, Vec<DeviceId>), OpError> {
    let mut named = std::mem::take(&mut filter.device_ids);
    if named.len() > MAX_NAMED_DEVICES {
        return Err(OpError::invalid(
            "target_filter.device_ids",
            format!(
                "a rollout names at most {MAX_NAMED_DEVICES} devices ({} given): target more by group",
                named.len()
            ),
        ));
    }
    named.sort_unstable();
    named.dedup();
    Ok((filter, named))
}

/// A `specific` rollout names devices and a `group` rollout groups, each a name a device can
/// have; a rollout's filter holds nothing its type would ignore (`all` and `canary` take none),
/// so that what an admin sent is what targets.
fn check_target(target_type: TargetType, filter: &TargetFilter) -> Result<(), OpError> {
    let unused = |field: &str| {
        Err(OpError::invalid(
            field,
            format!(
                "a {} rollout does not use {field}: leave it out",
                target_type.as_str()
            ),
        ))
    };
    match target_type {
        TargetType::All | TargetType::Canary if !filter.device_ids.is_empty() => {
            unused("target_filter.device_ids")
        }
        TargetType::All | TargetType::Canary | TargetType::Specific
            if !filter.groups.is_empty() =>
        {
            unused("target_filter.groups")
        }
        TargetType::Group if !filter.device_ids.is_empty() => unused("target_filter.device_ids"),
        TargetType::Specific if filter.device_ids.is_empty() => Err(OpError::invalid(
            "target_filter.device_ids",
            "a specific rollout needs at least one device id",
        )),
        TargetType::Group if filter.groups.is_empty() => Err(OpError::invalid(
            "target_filter.groups",
            "a group rollout needs at least one group",
        )),
        TargetType::Group => filter
            .groups
            .iter()
            .enumerate()
            .try_for_each(|(i, g)| fields::group(&format!("target_filter.groups[{i}]"), g)),
        TargetType::All | TargetType::Canary | TargetType::Specific => Ok(()),
    }
}
