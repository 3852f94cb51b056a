//! A rollout's automatic decisions (docs/api.md §9.5): on the numbers of its health gate, an
//! active rollout over a limit pauses, whatever its stage; one whose stage passed moves to the
//! next stage at once. An admin's promotion makes the same move by hand. Each decision is a
//! change of the rollout over the revision it was decided on, written with its audit event
//! both or neither (`MetaStore::decide_rollout`), so two evaluators deciding together make one
//! decision: the other's write is refused.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::audit::{AuditEvent, SYSTEM_ACTOR};
use crate::health_gate::{GateLimit, GateNumbers, Verdict};
use crate::rollout::{Rollout, RolloutState};
use crate::stages::Waiting;

/// The most decisions a rollout record keeps, the newest (the audit log keeps them all).
pub const MAX_DECISIONS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// The stage passed: the next one started.
    StageAdvance,
    /// An admin started the next stage.
    Promote,
    /// The health gate was over a limit: the rollout paused.
    AutoPause,
}

impl DecisionKind {
    /// The action of its audit event.
    pub fn audit_action(self) -> &'static str {
        match self {
            Self::StageAdvance => "rollout.stage_advance",
            Self::Promote => "rollout.promote",
            Self::AutoPause => "rollout.auto_pause",
        }
    }
}

/// One decision, as the rollout record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    pub kind: DecisionKind,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `system`, or the admin who promoted.
    pub actor: String,
    pub from_stage: u32,
    /// The stage after the decision (the same for a pause).
    pub to_stage: u32,
    /// The limit a pause went over.
    pub limit: Option<GateLimit>,
    /// The numbers the decision was made on.
    pub numbers: GateNumbers,
}

/// A decision to store: the rollout after it (revision bumped) and its audit event, to be
/// written only over `expect_revision`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub rollout: Rollout,
    pub expect_revision: u64,
    pub audit: AuditEvent,
}

/// Whether the rollout decides anything by itself: it has stages, a health gate or an install
/// timeout.
pub fn decides_itself(r: &Rollout) -> bool {
    !r.staging.stages.is_empty()
        || r.staging.health_gate.is_some()
        || r.staging.install_timeout_s.is_some()
}

/// The decision an active rollout makes at `now` on `n`, if any: a pause when the gate is over
/// a limit, else the next stage when the current one passed and the gate holds (a gate that
/// has too few reports to judge does not hold yet).
pub fn evaluate(r: &Rollout, n: &GateNumbers, now: OffsetDateTime) -> Option<Change> {
    if r.state != RolloutState::Active {
        return None;
    }
    let verdict = r.staging.health_gate.as_ref().map(|g| g.verdict(n));
    if let Some(Verdict::Over(limit)) = verdict {
        return Some(decided(
            r,
            DecisionKind::AutoPause,
            SYSTEM_ACTOR,
            Some(limit),
            n,
            now,
        ));
    }
    if r.staging.stages.is_empty()
        || waiting(r, n, now).is_some()
        || verdict == Some(Verdict::TooFewReports)
    {
        return None;
    }
    Some(decided(
        r,
        DecisionKind::StageAdvance,
        SYSTEM_ACTOR,
        None,
        n,
        now,
    ))
}

/// Why a rollout's current stage has not passed at `now` (None: it has, or it has no stage);
/// the gate apart.
pub fn waiting(r: &Rollout, n: &GateNumbers, now: OffsetDateTime) -> Option<Waiting> {
    let stages = &r.staging.stages;
    let i = usize::try_from(r.staging.stage_index).ok()?;
    let stage = stages.get(i)?;
    stage
        .passes(
            i + 1 == stages.len(),
            stage_started_at(r),
            n.completed_devices,
            now,
        )
        .err()
}

/// The earliest time the current stage can pass (its soak's end), for a rollout that is
/// active and not in its last stage.
pub fn next_evaluation_at(r: &Rollout) -> Option<OffsetDateTime> {
    let stages = &r.staging.stages;
    let i = usize::try_from(r.staging.stage_index).ok()?;
    (r.state == RolloutState::Active && i + 1 < stages.len())
        .then(|| stages[i].soaked_at(stage_started_at(r)))
}

fn stage_started_at(r: &Rollout) -> OffsetDateTime {
    r.staging.stage_started_at.unwrap_or(r.created_at)
}

/// Why an admin may not promote a rollout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoPromotion {
    #[error("rollout {0} has no stages to promote")]
    NotStaged(String),
    #[error("rollout {0} is in its last stage")]
    LastStage(String),
    #[error("rollout {id} is {state}: it can no longer change", state = .state.as_str())]
    Finished { id: String, state: RolloutState },
}

/// An admin's promotion of `r` to its next stage now, by `actor`; an active or a paused
/// rollout (which stays paused) may be promoted.
pub fn promote(
    r: &Rollout,
    n: &GateNumbers,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Change, NoPromotion> {
    if r.state.is_final() {
        return Err(NoPromotion::Finished {
            id: r.id.clone(),
            state: r.state,
        });
    }
    let len = r.staging.stages.len();
    if len == 0 {
        return Err(NoPromotion::NotStaged(r.id.clone()));
    }
    if usize::try_from(r.staging.stage_index).is_ok_and(|i| i + 1 >= len) {
        return Err(NoPromotion::LastStage(r.id.clone()));
    }
    Ok(decided(r, DecisionKind::Promote, actor, None, n, now))
}

/// `r` after the decision `kind`, with its audit event.
fn decided(
    r: &Rollout,
    kind: DecisionKind,
    actor: &str,
    limit: Option<GateLimit>,
    n: &GateNumbers,
    now: OffsetDateTime,
) -> Change {
    let mut next = r.clone();
    let from = r.staging.stage_index;
    if kind == DecisionKind::AutoPause {
        next.state = RolloutState::Paused;
    } else {
        let to = from + 1;
        next.staging.stage_index = to;
        next.staging.stage_started_at = Some(now);
        if let Some(stage) = usize::try_from(to)
            .ok()
            .and_then(|i| r.staging.stages.get(i))
        {
            next.rollout_percentage = stage.percent;
        }
    }
    let decision = Decision {
        kind,
        at: now,
        actor: actor.to_owned(),
        from_stage: from,
        to_stage: next.staging.stage_index,
        limit,
        numbers: *n,
    };
    let decisions = &mut next.staging.decisions;
    decisions.push(decision.clone());
    if decisions.len() > MAX_DECISIONS {
        decisions.drain(..decisions.len() - MAX_DECISIONS);
    }
    next.revision += 1;
    next.updated_at = now;
    let audit = AuditEvent::new(
        actor,
        kind.audit_action(),
        "rollout",
        &next.id,
        serde_json::json!({
            "from_stage": decision.from_stage,
            "to_stage": decision.to_stage,
            "rollout_percentage": next.rollout_percentage,
            "limit": limit,
            "numbers": n,
            "failure_percent": n.failure_percent(),
            "crash_percent": n.crash_percent(),
            "health_gate": r.staging.health_gate,
            "revision": next.revision,
        }),
        now,
    );
    Change {
        rollout: next,
        expect_revision: r.revision,
        audit,
    }
}

/// Rollouts for the rule tests of this module and of those built on it.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::health_gate::HealthGate;
    use crate::ids::DeviceType;
    use crate::rollout::{Staging, TargetFilter, TargetType};
    use crate::stages::Stage;

    pub const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    pub fn staged(stages: &[(f64, u64, u32)], gate: Option<HealthGate>) -> Rollout {
        let stages: Vec<Stage> = stages
            .iter()
            .map(|&(percent, soak_s, min_devices)| Stage {
                percent,
                soak_s,
                min_devices,
            })
            .collect();
        Rollout {
            id: "r".into(),
            name: "r".into(),
            firmware_id: "fw".into(),
            device_type: DeviceType::parse("demo").unwrap(),
            target_type: TargetType::All,
            rollout_percentage: stages.first().map_or(100.0, |s| s.percent),
            target_filter: TargetFilter::default(),
            named_devices: 0,
            failure_threshold_percent: None,
            min_reports: 10,
            allow_downgrade: false,
            state: RolloutState::Active,
            staging: Staging {
                stage_started_at: (!stages.is_empty()).then_some(T0),
                stages,
                health_gate: gate,
                ..Staging::default()
            },
            revision: 4,
            created_at: T0,
            updated_at: T0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{T0, staged};
    use super::*;
    use crate::health_gate::HealthGate;
    use crate::health_gate::fixtures::{self, numbers};
    use time::Duration;

    fn gate(failure: f64, crash: f64, min_reports: u32) -> Option<HealthGate> {
        Some(fixtures::gate(Some(failure), Some(crash), min_reports))
    }

    #[test]
    fn a_healthy_rollout_moves_through_its_stages_alone() {
        let mut r = staged(
            &[(1.0, 3600, 20), (10.0, 14_400, 1), (100.0, 0, 1)],
            gate(5.0, 2.0, 10),
        );
        let healthy = numbers(20, 0, 20, 0);
        let hour = T0 + Duration::hours(1);
        assert_eq!(
            evaluate(&r, &healthy, hour - Duration::seconds(1)),
            None,
            "soaking"
        );
        assert_eq!(
            evaluate(&r, &numbers(19, 0, 19, 0), hour),
            None,
            "19 of 20 devices"
        );
        let c = evaluate(&r, &healthy, hour).expect("the first stage passed");
        assert_eq!(c.expect_revision, 4);
        assert_eq!(c.rollout.revision, 5);
        assert_eq!(c.rollout.staging.stage_index, 1);
        assert_eq!(c.rollout.staging.stage_started_at, Some(hour));
        assert_eq!(c.rollout.rollout_percentage, 10.0);
        assert_eq!(c.rollout.updated_at, hour);
        assert_eq!(c.audit.action, "rollout.stage_advance");
        assert_eq!(c.audit.actor, "system");
        assert_eq!(c.audit.details["numbers"]["completed_devices"], 20);
        let d = &c.rollout.staging.decisions[0];
        assert_eq!(
            (d.kind, d.from_stage, d.to_stage, d.limit),
            (DecisionKind::StageAdvance, 0, 1, None)
        );
        r = c.rollout;
        assert_eq!(next_evaluation_at(&r), Some(hour + Duration::hours(4)));
        let later = hour + Duration::hours(4);
        r = evaluate(&r, &healthy, later)
            .expect("second stage passed")
            .rollout;
        assert_eq!((r.staging.stage_index, r.rollout_percentage), (2, 100.0));
        assert_eq!(next_evaluation_at(&r), None, "the last stage");
        assert_eq!(
            evaluate(&r, &healthy, later + Duration::days(30)),
            None,
            "never ends itself"
        );
        assert_eq!(waiting(&r, &healthy, later), Some(Waiting::LastStage));
    }

    #[test]
    fn a_gate_over_a_limit_pauses_in_any_stage() {
        let r = staged(&[(1.0, 3600, 1), (100.0, 0, 1)], gate(5.0, 2.0, 10));
        // Soaking, and already over the crash limit: 3 of 100 devices crashed.
        let c = evaluate(&r, &numbers(10, 0, 100, 3), T0).expect("a pause");
        assert_eq!(c.rollout.state, RolloutState::Paused);
        assert_eq!(c.rollout.staging.stage_index, 0, "a pause keeps the stage");
        assert_eq!(c.audit.action, "rollout.auto_pause");
        assert_eq!(c.audit.details["limit"], "max_crash_percent");
        assert_eq!(c.audit.details["crash_percent"], 3.0);
        assert_eq!(
            c.rollout.staging.decisions[0].limit,
            Some(GateLimit::MaxCrashPercent)
        );
        // Exactly at the limits: within them, and the stage may pass.
        let at_limits = numbers(20, 1, 100, 2);
        let passed = evaluate(&r, &at_limits, T0 + Duration::hours(1)).unwrap();
        assert_eq!(passed.audit.action, "rollout.stage_advance");
        // Paused: no decision at all.
        assert_eq!(evaluate(&c.rollout, &numbers(10, 10, 10, 10), T0), None);
        // The failure limit, on a rollout without stages.
        let unstaged = staged(&[], gate(5.0, 100.0, 10));
        assert_eq!(evaluate(&unstaged, &numbers(20, 1, 0, 0), T0), None);
        let c = evaluate(&unstaged, &numbers(19, 1, 0, 0), T0).unwrap();
        assert_eq!(
            c.rollout.staging.decisions[0].limit,
            Some(GateLimit::MaxFailurePercent)
        );
    }

    #[test]
    fn a_gate_without_enough_reports_holds_a_stage_back() {
        let r = staged(&[(1.0, 0, 1), (100.0, 0, 1)], gate(5.0, 2.0, 10));
        assert_eq!(
            evaluate(&r, &numbers(9, 0, 9, 0), T0),
            None,
            "9 of 10 reports"
        );
        assert!(evaluate(&r, &numbers(10, 0, 9, 0), T0).is_some());
        // Without a gate, the stage needs only its soak and devices.
        let ungated = staged(&[(1.0, 0, 1), (100.0, 0, 1)], None);
        assert!(evaluate(&ungated, &numbers(1, 0, 0, 0), T0).is_some());
        assert_eq!(evaluate(&ungated, &numbers(0, 0, 0, 0), T0), None);
    }

    #[test]
    fn an_admin_promotes_an_open_staged_rollout_but_its_last_stage() {
        let r = staged(&[(1.0, 3600, 20), (100.0, 0, 1)], None);
        let c = promote(&r, &numbers(0, 0, 0, 0), "alice", T0).unwrap();
        assert_eq!(
            (c.rollout.staging.stage_index, c.rollout.rollout_percentage),
            (1, 100.0)
        );
        assert_eq!(c.audit.action, "rollout.promote");
        assert_eq!(c.audit.actor, "alice");
        assert_eq!(c.rollout.staging.decisions[0].actor, "alice");
        assert!(matches!(
            promote(&c.rollout, &GateNumbers::default(), "alice", T0),
            Err(NoPromotion::LastStage(_))
        ));
        let mut paused = r.clone();
        paused.state = RolloutState::Paused;
        let c = promote(&paused, &GateNumbers::default(), "alice", T0).unwrap();
        assert_eq!(c.rollout.state, RolloutState::Paused, "stays paused");
        let mut aborted = r.clone();
        aborted.state = RolloutState::Aborted;
        assert!(matches!(
            promote(&aborted, &GateNumbers::default(), "a", T0),
            Err(NoPromotion::Finished { .. })
        ));
        assert!(matches!(
            promote(&staged(&[], None), &GateNumbers::default(), "a", T0),
            Err(NoPromotion::NotStaged(_))
        ));
    }

    #[test]
    fn the_record_keeps_the_newest_decisions() {
        let mut r = staged(&[(1.0, 0, 0), (100.0, 0, 0)], None);
        for i in 0..(MAX_DECISIONS + 5) {
            let at = T0 + Duration::seconds(i64::try_from(i).unwrap());
            let mut c = promote(&r, &GateNumbers::default(), "a", at).unwrap();
            // Back to the first stage, to promote again.
            c.rollout.staging.stage_index = 0;
            r = c.rollout;
        }
        let d = &r.staging.decisions;
        assert_eq!(d.len(), MAX_DECISIONS);
        assert_eq!(d.last().unwrap().at, T0 + Duration::seconds(54));
        assert_eq!(d[0].at, T0 + Duration::seconds(5));
    }
}
