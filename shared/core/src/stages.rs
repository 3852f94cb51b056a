//! A rollout's stages (docs/api.md §9.5): the share of its target it offers to, widened stage
//! by stage through the deterministic canary buckets (rule 2), so that a device offered in one
//! stage stays offered in the next. A stage passes when it has soaked long enough, enough
//! devices completed, and the health gate holds; the last stage never ends by itself.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::error::OpError;
use crate::fields;

/// The most stages one rollout has.
pub const MAX_STAGES: usize = 20;
/// The longest a stage may soak: 90 days.
pub const MAX_SOAK_S: u64 = 90 * 86_400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The share of the rollout's target offered in this stage, above 0 and up to 100.
    #[schema(exclusive_minimum = 0, maximum = 100)]
    pub percent: f64,
    /// How long the stage runs at least, in seconds (default 0, at most 90 days).
    #[serde(default)]
    #[schema(maximum = 7_776_000)]
    pub soak_s: u64,
    /// Devices of the rollout that must have reached `success` before the stage passes
    /// (default 1).
    #[serde(default = "one")]
    pub min_devices: u32,
}

fn one() -> u32 {
    1
}

/// Why the current stage has not passed yet, first reason first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// It is the last stage: it never passes by itself.
    LastStage,
    /// Soaking until then.
    Soak(OffsetDateTime),
    /// This many devices completed of the `min_devices` needed.
    Devices { completed: u64, needed: u32 },
}

impl Stage {
    /// When a stage started at `started_at` has soaked long enough.
    pub fn soaked_at(&self, started_at: OffsetDateTime) -> OffsetDateTime {
        started_at + Duration::seconds(i64::try_from(self.soak_s).unwrap_or(i64::MAX))
    }

    /// Whether this stage, started at `started_at` and followed by another (`last` is false),
    /// may pass at `now` with `completed` devices of the rollout in `success`. The gate is
    /// judged apart.
    pub fn passes(
        &self,
        last: bool,
        started_at: OffsetDateTime,
        completed: u64,
        now: OffsetDateTime,
    ) -> Result<(), Waiting> {
        if last {
            return Err(Waiting::LastStage);
        }
        let soaked = self.soaked_at(started_at);
        if now < soaked {
            return Err(Waiting::Soak(soaked));
        }
        if completed < u64::from(self.min_devices) {
            return Err(Waiting::Devices {
                completed,
                needed: self.min_devices,
            });
        }
        Ok(())
    }
}

/// The stages of a create, refused (naming the stage) unless each widens the one before.
pub fn validated(stages: Vec<Stage>) -> Result<Vec<Stage>, OpError> {
    if stages.len() > MAX_STAGES {
        return Err(OpError::invalid(
            "stages",
            format!("at most {MAX_STAGES} stages"),
        ));
    }
    let mut before = 0.0;
    for (i, s) in stages.iter().enumerate() {
        let field = |m: &str| format!("stages[{i}].{m}");
        let p = fields::percentage(&field("percent"), s.percent)?;
        if p <= before {
            return Err(OpError::invalid(
                &field("percent"),
                if i == 0 {
                    "must be above 0".to_owned()
                } else {
                    format!("must be above the stage before ({before})")
                },
            ));
        }
        before = p;
        if s.soak_s > MAX_SOAK_S {
            return Err(OpError::invalid(
                &field("soak_s"),
                format!("at most {MAX_SOAK_S} seconds (90 days)"),
            ));
        }
    }
    Ok(stages)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    fn stage(percent: f64, soak_s: u64, min_devices: u32) -> Stage {
        Stage {
            percent,
            soak_s,
            min_devices,
        }
    }

    #[test]
    fn a_stage_passes_once_soaked_with_enough_devices() {
        let s = stage(1.0, 3600, 20);
        let soaked = T0 + Duration::hours(1);
        assert_eq!(
            s.passes(false, T0, 20, soaked - Duration::seconds(1)),
            Err(Waiting::Soak(soaked))
        );
        assert_eq!(s.passes(false, T0, 20, soaked), Ok(()), "exactly soaked");
        assert_eq!(
            s.passes(false, T0, 19, soaked),
            Err(Waiting::Devices {
                completed: 19,
                needed: 20
            })
        );
        assert_eq!(s.passes(true, T0, 1000, soaked), Err(Waiting::LastStage));
        // No soak and no device needed: passes at once.
        assert_eq!(stage(10.0, 0, 0).passes(false, T0, 0, T0), Ok(()));
    }

    #[test]
    fn defaults_of_a_stage() {
        let s: Stage = serde_json::from_str(r#"{"percent": 100}"#).unwrap();
        assert_eq!(s, stage(100.0, 0, 1));
        assert!(serde_json::from_str::<Stage>(r#"{"percent": 1, "soak": 5}"#).is_err());
    }

    #[test]
    fn stages_widen_one_after_the_other() {
        let field = |stages: Vec<Stage>| match validated(stages) {
            Err(OpError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert!(
            validated(vec![
                stage(1.0, 3600, 20),
                stage(10.0, 0, 1),
                stage(100.0, 0, 1)
            ])
            .is_ok()
        );
        assert!(validated(Vec::new()).is_ok(), "no stages: not staged");
        assert_eq!(field(vec![stage(0.0, 0, 1)]), "stages[0].percent");
        assert_eq!(
            field(vec![stage(10.0, 0, 1), stage(10.0, 0, 1)]),
            "stages[1].percent"
        );
        assert_eq!(
            field(vec![stage(10.0, 0, 1), stage(5.0, 0, 1)]),
            "stages[1].percent"
        );
        assert_eq!(field(vec![stage(100.5, 0, 1)]), "stages[0].percent");
        assert_eq!(
            field(vec![stage(1.0, MAX_SOAK_S + 1, 1)]),
            "stages[0].soak_s"
        );
        assert!(validated(vec![stage(1.0, MAX_SOAK_S, 1)]).is_ok());
        let many = (1..=21).map(|p| stage(f64::from(p), 0, 1)).collect();
        assert_eq!(field(many), "stages");
    }
}
