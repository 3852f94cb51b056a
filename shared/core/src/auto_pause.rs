//! Rule 4, the automatic pause (docs/api.md §Automatic pause (rule 4)): a rollout with a
//! `failure_threshold_percent` pauses itself on the final report after which it has at least
//! `min_reports` final reports and its failure rate exceeds the threshold. `report_plan`
//! evaluates it on the counters the report itself writes, inside the atomic step in which a
//! store records the report, so concurrent reports can neither skip the pause nor pause twice.
//! A store whose counters are sharded (DynamoDB) has no such step: it evaluates
//! [`after_final_report`] on the totals it reads after the report's commit and writes the
//! pause conditioned on the rollout's revision, still once (docs/aws-keys.md).

use time::OffsetDateTime;

use crate::audit::{AuditEvent, SYSTEM_ACTOR};
use crate::percent_limit;
use crate::progress::RolloutProgress;
use crate::rollout::{Rollout, RolloutState};

/// Whether `progress` is past `rollout`'s threshold: at least `min_reports` final reports and
/// failed / (failed + success) over `failure_threshold_percent` ("exceeds": exactly at the
/// threshold does not pause; `percent_limit`). A rollout without a threshold never pauses.
pub fn should_pause(rollout: &Rollout, progress: &RolloutProgress) -> bool {
    let Some(threshold) = rollout.failure_threshold_percent else {
        return false;
    };
    let finals = progress.success_reports + progress.failure_reports;
    finals >= u64::from(rollout.min_reports.max(1))
        && percent_limit::exceeds(progress.failure_reports, finals, threshold)
}

/// The pause a final report sets off: the rollout as it is to be stored, and its audit event.
#[derive(Debug, Clone, PartialEq)]
pub struct Pause {
    /// Paused, its revision bumped like any edit's, so an admin editing a stale copy gets 409.
    pub rollout: Rollout,
    /// The revision the rollout had when it was read: the pause is written only over it.
    pub expect_revision: u64,
    pub audit: AuditEvent,
}

/// Rule 4 after a final report counted toward `rollout`, with `progress` its counters after that
/// report: the pause, when this report crosses the threshold of an active rollout. A paused
/// rollout is never paused again, and a rollout an admin re-activated while still over its
/// threshold pauses again on its next final report.
pub fn after_final_report(
    rollout: &Rollout,
    progress: &RolloutProgress,
    trigger_event_id: &str,
    at: OffsetDateTime,
) -> Option<Pause> {
    if rollout.state != RolloutState::Active || !should_pause(rollout, progress) {
        return None;
    }
    let mut paused = rollout.clone();
    paused.state = RolloutState::Paused;
    paused.revision += 1;
    paused.updated_at = at;
    let audit = AuditEvent::new(
        SYSTEM_ACTOR,
        "rollout.auto_pause",
        "rollout",
        &paused.id,
        serde_json::json!({
            "failure_reports": progress.failure_reports,
            "success_reports": progress.success_reports,
            "failure_rate_percent": progress.failure_rate_percent(),
            "failure_threshold_percent": paused.failure_threshold_percent,
            "min_reports": paused.min_reports,
            "trigger_event_id": trigger_event_id,
            "revision": paused.revision,
        }),
        at,
    );
    Some(Pause {
        rollout: paused,
        expect_revision: rollout.revision,
        audit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeviceType, new_id};
    use crate::rollout::{Staging, TargetFilter, TargetType};

    fn rollout(threshold: Option<f64>, min_reports: u32) -> Rollout {
        let now = OffsetDateTime::UNIX_EPOCH;
        Rollout {
            id: new_id(),
            name: "r".into(),
            firmware_id: "f".into(),
            device_type: DeviceType::parse("t").unwrap(),
            target_type: TargetType::All,
            rollout_percentage: 100.0,
            target_filter: TargetFilter::default(),
            named_devices: 0,
            failure_threshold_percent: threshold,
            min_reports,
            allow_downgrade: false,
            state: RolloutState::Active,
            staging: Staging::default(),
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
        assert!(
            !should_pause(&rollout(Some(0.0), 1), &progress(100, 0)),
            "0 % is not exceeded without a failure"
        );
        assert!(!should_pause(&rollout(Some(100.0), 1), &progress(0, 5)));
    }

    #[test]
    fn min_reports_boundary() {
        let r = rollout(Some(10.0), 5);
        // All four failed, but four is one report short.
        assert!(!should_pause(&r, &progress(0, 4)));
        assert!(should_pause(&r, &progress(0, 5)));
        // Exactly the minimum, and the success that reaches it is what pauses.
        assert!(!should_pause(&r, &progress(3, 1)));
        assert!(should_pause(&r, &progress(4, 1)));
        // min_reports 0 means one final report.
        assert!(!should_pause(&rollout(Some(10.0), 0), &progress(0, 0)));
        assert!(should_pause(&rollout(Some(10.0), 0), &progress(0, 1)));
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

    #[test]
    fn the_pause_bumps_the_revision_and_records_its_numbers() {
        let r = rollout(Some(20.0), 4);
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        assert_eq!(after_final_report(&r, &progress(3, 0), "e", at), None);
        let pause = after_final_report(&r, &progress(2, 2), "e7", at).unwrap();
        assert_eq!(pause.expect_revision, 1);
        assert_eq!(pause.rollout.revision, 2);
        assert_eq!(pause.rollout.state, RolloutState::Paused);
        assert_eq!(pause.rollout.updated_at, at);
        assert_eq!(pause.audit.action, "rollout.auto_pause");
        assert_eq!(pause.audit.actor, "system");
        assert_eq!(pause.audit.target_id, r.id);
        assert_eq!(
            pause.audit.details,
            serde_json::json!({
                "failure_reports": 2, "success_reports": 2, "failure_rate_percent": 50.0,
                "failure_threshold_percent": 20.0, "min_reports": 4,
                "trigger_event_id": "e7", "revision": 2,
            })
        );
    }

    #[test]
    fn only_an_active_rollout_pauses() {
        for state in [
            RolloutState::Paused,
            RolloutState::Aborted,
            RolloutState::Completed,
        ] {
            let mut r = rollout(Some(1.0), 1);
            r.state = state;
            assert_eq!(
                after_final_report(&r, &progress(0, 10), "e", r.updated_at),
                None
            );
        }
    }
}
