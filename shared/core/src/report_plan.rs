//! What one status report does (docs/api.md §Status reports and §Automatic pause (rule 4)),
//! decided once for every store. A store records a report in one atomic step (a SQLite
//! transaction; a DynamoDB transaction each of whose writes is conditioned on the version it was
//! computed from, planned again from fresh reads when another writer won the race) and reads
//! what the report touches in three rounds:
//!
//! 1. the entry already stored under the report's (device, event id): the report is a repeat,
//!    answered with that entry and stored no more ([`duplicate`]);
//! 2. the device's attempt at the release and its last offer ([`Seen`]): [`Seen::attribute`]
//!    runs the state machine, decides which rollout the attempt counts toward, and names the
//!    rollouts whose counters move ([`Attribution::counters`]) and the rollout rule 4 reads
//!    ([`Attribution::pause_candidate`]);
//! 3. those counters and that rollout: [`Attribution::plan`] returns every write
//!    ([`ReportPlan`]): the log entry, the attempt, the counters and the pause with its audit
//!    event.

use time::OffsetDateTime;

use crate::auto_pause::{self, Pause};
use crate::device::{LogEntry, Offer};
use crate::ids::{DeviceId, DeviceType, Version, new_id};
use crate::progress::RolloutProgress;
use crate::rollout::Rollout;
use crate::status::{BackwardMove, OtaStatus, Transition, transition};

/// A status report, already checked against the release it names.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub event_id: String,
    pub device_id: DeviceId,
    pub device_type: DeviceType,
    pub firmware_id: String,
    pub version: Version,
    pub status: OtaStatus,
    pub bytes_downloaded: Option<u64>,
    pub progress_percent: Option<u8>,
    pub error_message: Option<String>,
    pub at: OffsetDateTime,
    /// Only for the server's `timed_out` (`install_timeout`): the attempt must still be open
    /// with its last report at or before this time, else the device spoke since and the
    /// timeout is not written ([`NotApplied::SpokeSince`]).
    pub silent_since: Option<OffsetDateTime>,
}

/// Why a report is not applied: the store answers Conflict with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotApplied {
    #[error(transparent)]
    Backward(#[from] BackwardMove),
    #[error("the device reported since it went silent: no timeout")]
    SpokeSince,
}

/// Outcome of recording a status report.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusOutcome {
    /// The stored entry: the new one, or for a repeated event id the one stored the first time.
    pub entry: LogEntry,
    /// The event id had been seen before; nothing was written.
    pub duplicate: bool,
    /// The report moved the attempt's state (false for the same final state reported again).
    pub changed: bool,
    /// The rollout this report paused by rule 4, if it did.
    pub paused_rollout: Option<String>,
}

/// The answer to a report whose event id this device used before: the entry stored the first
/// time, byte for byte, and nothing written.
pub fn duplicate(stored: LogEntry) -> StatusOutcome {
    StatusOutcome {
        entry: stored,
        duplicate: true,
        changed: false,
        paused_rollout: None,
    }
}

/// One device's attempt at one release, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub status: OtaStatus,
    /// Attempts that ended in `failed` or `rolled_back` (update rule 3 offers no more after 3).
    pub failures: u32,
    /// The rollout whose counters hold this attempt.
    pub rollout_id: Option<String>,
    /// When the attempt's last report was made (None for attempts stored before this was
    /// kept): while the attempt is open, what its silence is measured from.
    pub last_report_at: Option<OffsetDateTime>,
}

impl Attempt {
    /// When an open attempt's silence began: its last report's time. None when it is not open
    /// (or was stored without the time): nothing to time out.
    pub fn silent_since(&self) -> Option<OffsetDateTime> {
        self.last_report_at.filter(|_| self.status.is_open())
    }
}

/// What the store read of the device for the report (round 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub attempt: Option<Attempt>,
    /// The rollout of the device's last offer, when that offer was of the reported release.
    pub offered_by: Option<String>,
}

impl Seen {
    pub fn new(attempt: Option<Attempt>, last_offer: Option<&Offer>, firmware_id: &str) -> Self {
        Self {
            attempt,
            offered_by: last_offer
                .filter(|o| o.firmware_id == firmware_id)
                .map(|o| o.rollout_id.clone()),
        }
    }

    /// Runs the state machine on the report and attributes the attempt to a rollout. Reports
    /// within an attempt (open, or its final state again) stay with the rollout that counted it.
    /// A new attempt (the first, or a retry after a failure) belongs to the rollout of the
    /// device's last offer of this release; a retry without a new offer stays where it was. An
    /// attempt begun before any offer joins the rollout that offers the release later.
    pub fn attribute(self, report: &StatusReport) -> Result<Attribution, NotApplied> {
        if let Some(limit) = report.silent_since {
            let silent = self.attempt.as_ref().and_then(Attempt::silent_since);
            if silent.is_none_or(|since| since > limit) {
                return Err(NotApplied::SpokeSince);
            }
        }
        let from = self.attempt.as_ref().map(|a| a.status);
        let step = transition(from, report.status)?;
        let counted_in = self.attempt.as_ref().and_then(|a| a.rollout_id.clone());
        let new_attempt = step == Transition::Apply && from.is_none_or(OtaStatus::is_final);
        let rollout_id = if new_attempt || counted_in.is_none() {
            self.offered_by.or_else(|| counted_in.clone())
        } else {
            counted_in.clone()
        };
        Ok(Attribution {
            step,
            from,
            failures: self.attempt.map_or(0, |a| a.failures),
            counted_in,
            rollout_id,
        })
    }
}

/// A report the state machine accepted, with the rollout its attempt counts toward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    step: Transition,
    from: Option<OtaStatus>,
    failures: u32,
    counted_in: Option<String>,
    rollout_id: Option<String>,
}

impl Attribution {
    /// Whether the report moves the attempt (false for its final state reported again, which
    /// is logged and changes nothing).
    pub fn changed(&self) -> bool {
        self.step == Transition::Apply
    }

    /// The rollout that counted the attempt until now, when the report takes the attempt to
    /// another one (a retry another rollout offered): the attempt leaves its counters, while
    /// its failure stays counted where it happened.
    fn left(&self) -> Option<(&str, OtaStatus)> {
        let old = self.counted_in.as_deref()?;
        let from = self.from?;
        (self.changed() && self.rollout_id.as_deref() != Some(old)).then_some((old, from))
    }

    /// The rollouts whose counters the report moves, to read before [`Self::plan`].
    pub fn counters(&self) -> Vec<&str> {
        let moved = self.rollout_id.as_deref().filter(|_| self.changed());
        moved
            .into_iter()
            .chain(self.left().map(|(old, _)| old))
            .collect()
    }

    /// The rollout whose pause rule 4 decides after this report, to read before [`Self::plan`]:
    /// only a final report that moved its counters can change the numbers the rule reads
    /// (progress reports never pause, so a rollout re-activated over its threshold runs until
    /// its next final report).
    pub fn pause_candidate(&self, report: &StatusReport) -> Option<&str> {
        self.rollout_id
            .as_deref()
            .filter(|_| self.changed() && report.status.is_final())
    }

    /// Every write of the report, from the counters of [`Self::counters`] as read (`progress`)
    /// and the rollout of [`Self::pause_candidate`] as read (`rollout`, None when it was not
    /// asked for or does not exist).
    pub fn plan(
        self,
        report: &StatusReport,
        progress: impl Fn(&str) -> RolloutProgress,
        rollout: Option<&Rollout>,
    ) -> ReportPlan {
        let entry = LogEntry {
            id: new_id(),
            event_id: report.event_id.clone(),
            device_id: report.device_id.clone(),
            device_type: report.device_type.clone(),
            firmware_id: report.firmware_id.clone(),
            version: report.version.clone(),
            rollout_id: self.rollout_id.clone(),
            status: report.status,
            bytes_downloaded: report.bytes_downloaded,
            progress_percent: report.progress_percent,
            error_message: report.error_message.clone(),
            created_at: report.at,
        };
        if !self.changed() {
            return ReportPlan {
                entry,
                attempt: None,
                progress: Vec::new(),
                pause: None,
            };
        }
        let mut counters = Vec::new();
        if let Some((old, from)) = self.left() {
            let mut p = progress(old);
            p.attempt_left(from);
            counters.push((old.to_owned(), p));
        }
        let mut pause = None;
        if let Some(id) = &self.rollout_id {
            // Only the rollout that counted the attempt so far has it in a status to leave.
            let from = self.from.filter(|_| self.counted_in.as_ref() == Some(id));
            let mut p = progress(id);
            p.attempt_moved(from, report.status);
            pause = self
                .pause_candidate(report)
                .and(rollout)
                .filter(|r| r.id == *id)
                .and_then(|r| auto_pause::after_final_report(r, &p, &report.event_id, report.at));
            counters.push((id.clone(), p));
        }
        ReportPlan {
            entry,
            attempt: Some(Attempt {
                status: report.status,
                // A late failure of an attempt timed out is the failure already counted.
                failures: self.failures
                    + u32::from(
                        report.status.is_failure() && self.from != Some(OtaStatus::TimedOut),
                    ),
                rollout_id: self.rollout_id,
                last_report_at: Some(report.at),
            }),
            progress: counters,
            pause,
        }
    }
}

/// Everything a report writes, in the store's one atomic step. Besides these, every stored
/// report counts once in the hour's outcome counter of its status.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPlan {
    pub entry: LogEntry,
    /// The attempt after the report; None when the report changes nothing.
    pub attempt: Option<Attempt>,
    /// The counters of each rollout the report moves, after the report.
    pub progress: Vec<(String, RolloutProgress)>,
    /// The rollout this report pauses (rule 4), with its audit event.
    pub pause: Option<Pause>,
}

impl ReportPlan {
    /// The answer once the plan is committed.
    pub fn outcome(&self) -> StatusOutcome {
        StatusOutcome {
            entry: self.entry.clone(),
            duplicate: false,
            changed: self.attempt.is_some(),
            paused_rollout: self.pause.as_ref().map(|p| p.rollout.id.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::OtaStatus::*;
    use super::*;
    use crate::rollout::{RolloutState, Staging, TargetFilter, TargetType};

    fn report(status: OtaStatus) -> StatusReport {
        StatusReport {
            event_id: "ev".into(),
            device_id: DeviceId::parse("d1").unwrap(),
            device_type: DeviceType::parse("demo").unwrap(),
            firmware_id: "fw".into(),
            version: Version::parse("1.0.0").unwrap(),
            status,
            bytes_downloaded: Some(10),
            progress_percent: Some(5),
            error_message: None,
            at: OffsetDateTime::UNIX_EPOCH,
            silent_since: None,
        }
    }

    fn attempt(status: OtaStatus, failures: u32, rollout: &str) -> Attempt {
        Attempt {
            status,
            failures,
            rollout_id: Some(rollout.into()),
            last_report_at: Some(OffsetDateTime::UNIX_EPOCH),
        }
    }

    fn offer(rollout: &str) -> Offer {
        Offer {
            firmware_id: "fw".into(),
            version: Version::parse("1.0.0").unwrap(),
            rollout_id: rollout.into(),
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn rollout(id: &str, threshold: f64, min_reports: u32) -> Rollout {
        Rollout {
            id: id.into(),
            name: "r".into(),
            firmware_id: "fw".into(),
            device_type: DeviceType::parse("demo").unwrap(),
            target_type: TargetType::All,
            rollout_percentage: 100.0,
            target_filter: TargetFilter::default(),
            named_devices: 0,
            failure_threshold_percent: Some(threshold),
            min_reports,
            allow_downgrade: false,
            state: RolloutState::Active,
            staging: Staging::default(),
            revision: 3,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// Counters with one device in `status` (as if this device's attempt was counted there).
    fn one_in(status: OtaStatus) -> RolloutProgress {
        let mut p = RolloutProgress::default();
        p.attempt_moved(None, status);
        p
    }

    fn plan_of(seen: Seen, status: OtaStatus) -> Result<ReportPlan, NotApplied> {
        let r = report(status);
        let a = seen.attribute(&r)?;
        let counted = a
            .counters()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        let before = a.from;
        Ok(a.plan(
            &r,
            |id| match before {
                Some(s) if counted.first().map(String::as_str) == Some(id) => one_in(s),
                _ => RolloutProgress::default(),
            },
            None,
        ))
    }

    /// Every (stored status, reported status) pair, the first report included: what the
    /// state machine decides, and what the plan writes for it.
    #[test]
    fn every_status_pair() {
        let currents = std::iter::once(None).chain(OtaStatus::ALL.into_iter().map(Some));
        for current in currents {
            for next in OtaStatus::ALL {
                let seen = Seen {
                    attempt: current.map(|s| attempt(s, 1, "r1")),
                    offered_by: Some("r1".into()),
                };
                let refused = matches!(
                    (current, next),
                    (
                        Some(Success),
                        Pending | Downloading | Installing | Failed | RolledBack | TimedOut
                    ) | (Some(Failed), Success | RolledBack | TimedOut)
                        | (Some(RolledBack), Success | Failed | TimedOut)
                );
                let unchanged = matches!(
                    (current, next),
                    (Some(Success), Success)
                        | (Some(Failed), Failed)
                        | (Some(RolledBack), RolledBack)
                        | (Some(TimedOut), TimedOut)
                );
                let plan = plan_of(seen, next);
                let case = format!("{current:?} -> {next:?}");
                if refused {
                    assert!(plan.is_err(), "{case} is refused");
                    continue;
                }
                let plan = plan.unwrap_or_else(|e| panic!("{case}: {e}"));
                assert_eq!(plan.entry.status, next, "{case}");
                assert_eq!(plan.entry.rollout_id.as_deref(), Some("r1"), "{case}");
                if unchanged {
                    assert_eq!(plan.attempt, None, "{case} writes no attempt");
                    assert!(plan.progress.is_empty(), "{case} moves no counter");
                    assert!(!plan.outcome().changed, "{case}");
                    continue;
                }
                let attempt = plan.attempt.as_ref().expect("a changed attempt");
                assert_eq!(attempt.status, next, "{case}");
                let failures = u32::from(current.is_some())
                    + u32::from(next.is_failure() && current != Some(TimedOut));
                assert_eq!(attempt.failures, failures, "{case} counts failures");
                assert_eq!(plan.progress.len(), 1, "{case}");
                let (id, p) = &plan.progress[0];
                assert_eq!(id, "r1");
                // The device moved from its old status (counted in r1) to the new one.
                let mut expect = match current {
                    Some(c) => one_in(c),
                    None => RolloutProgress::default(),
                };
                expect.attempt_moved(current, next);
                assert_eq!(*p, expect, "{case}");
                assert_eq!(p.devices.get(next), 1, "{case}");
            }
        }
    }

    #[test]
    fn a_first_report_joins_the_rollout_of_the_last_offer_of_that_release() {
        let r = report(Downloading);
        let offered = Seen::new(None, Some(&offer("r1")), "fw");
        assert_eq!(
            offered.clone().attribute(&r).unwrap().rollout_id.as_deref(),
            Some("r1")
        );
        let other_release = Seen::new(None, Some(&offer("r1")), "another");
        let a = other_release.attribute(&r).unwrap();
        assert_eq!(a.rollout_id.as_deref(), None);
        assert!(
            a.counters().is_empty(),
            "a report no rollout offered counts nowhere"
        );
        let plan = a.plan(&r, |_| unreachable!("no counters read"), None);
        assert_eq!(plan.attempt.unwrap().rollout_id, None);
    }

    #[test]
    fn reports_within_an_attempt_stay_with_the_rollout_that_counted_it() {
        // A newer offer from r2 does not take an open attempt away from r1.
        let seen = Seen {
            attempt: Some(attempt(Downloading, 0, "r1")),
            offered_by: Some("r2".into()),
        };
        let a = seen.attribute(&report(Installing)).unwrap();
        assert_eq!(a.rollout_id.as_deref(), Some("r1"));
        assert_eq!(a.counters(), ["r1"]);
    }

    #[test]
    fn a_retry_offered_by_another_rollout_moves_there_and_leaves_its_failure_behind() {
        let seen = Seen {
            attempt: Some(attempt(Failed, 1, "r1")),
            offered_by: Some("r2".into()),
        };
        let r = report(Downloading);
        let a = seen.attribute(&r).unwrap();
        assert_eq!(a.rollout_id.as_deref(), Some("r2"));
        assert_eq!(a.counters(), ["r2", "r1"]);
        let mut r1 = RolloutProgress::default();
        r1.attempt_moved(None, Failed);
        let plan = a.plan(
            &r,
            |id| {
                if id == "r1" {
                    r1
                } else {
                    RolloutProgress::default()
                }
            },
            None,
        );
        let by_id = |id: &str| plan.progress.iter().find(|(r, _)| r == id).unwrap().1;
        assert_eq!(by_id("r1").devices.failed, 0, "the device left r1");
        assert_eq!(
            by_id("r1").failure_reports,
            1,
            "its failure stays counted in r1"
        );
        assert_eq!(by_id("r2").devices.downloading, 1);
        assert_eq!(by_id("r2").failure_reports, 0);
        assert_eq!(plan.attempt.unwrap().failures, 1);
    }

    #[test]
    fn a_retry_without_a_new_offer_stays_where_it_was() {
        let seen = Seen {
            attempt: Some(attempt(RolledBack, 2, "r1")),
            offered_by: None,
        };
        let a = seen.attribute(&report(Pending)).unwrap();
        assert_eq!(a.rollout_id.as_deref(), Some("r1"));
        assert_eq!(a.counters(), ["r1"]);
    }

    #[test]
    fn an_attempt_begun_before_any_offer_joins_the_rollout_that_offers_it_later() {
        let seen = Seen {
            attempt: Some(Attempt {
                status: Downloading,
                failures: 0,
                rollout_id: None,
                last_report_at: None,
            }),
            offered_by: Some("r9".into()),
        };
        let a = seen.attribute(&report(Installing)).unwrap();
        assert_eq!(a.rollout_id.as_deref(), Some("r9"));
        // r9 never counted the attempt: it gains a device, nothing leaves anywhere.
        let plan = a.plan(&report(Installing), |_| RolloutProgress::default(), None);
        assert_eq!(plan.progress.len(), 1);
        assert_eq!(plan.progress[0].1.devices.installing, 1);
        assert_eq!(plan.progress[0].1.devices.downloading, 0);
    }

    #[test]
    fn only_a_final_report_that_moved_the_counters_asks_for_the_pause() {
        let open = Seen {
            attempt: Some(attempt(Downloading, 0, "r1")),
            offered_by: None,
        };
        let progress = open.clone().attribute(&report(Installing)).unwrap();
        assert_eq!(progress.pause_candidate(&report(Installing)), None);
        let last = open.attribute(&report(Failed)).unwrap();
        assert_eq!(last.pause_candidate(&report(Failed)), Some("r1"));
        let again = Seen {
            attempt: Some(attempt(Failed, 1, "r1")),
            offered_by: None,
        }
        .attribute(&report(Failed))
        .unwrap();
        assert_eq!(again.pause_candidate(&report(Failed)), None, "a repeat");
    }

    #[test]
    fn the_crossing_report_plans_the_pause_and_its_audit_event() {
        let r1 = rollout("r1", 25.0, 4);
        // Three final reports so far, one failed: the fourth, a failure, makes 2 of 4 = 50 %.
        let before = RolloutProgress {
            success_reports: 2,
            failure_reports: 1,
            ..RolloutProgress::default()
        };
        let seen = Seen {
            attempt: Some(attempt(Installing, 0, "r1")),
            offered_by: Some("r1".into()),
        };
        let r = report(Failed);
        let a = seen.attribute(&r).unwrap();
        let plan = a.plan(&r, |_| before, Some(&r1));
        let pause = plan.pause.as_ref().expect("paused");
        assert_eq!(pause.expect_revision, 3);
        assert_eq!(pause.rollout.revision, 4);
        assert_eq!(pause.audit.details["trigger_event_id"], "ev");
        assert_eq!(plan.outcome().paused_rollout.as_deref(), Some("r1"));
        // The same report one success earlier (1 of 4 = 25 %, not over) does not pause.
        let seen = Seen {
            attempt: Some(attempt(Installing, 0, "r1")),
            offered_by: Some("r1".into()),
        };
        let a = seen.attribute(&report(Success)).unwrap();
        let plan = a.plan(&report(Success), |_| before, Some(&r1));
        assert_eq!(plan.pause, None);
        // Another rollout read by mistake is never paused.
        let seen = Seen {
            attempt: Some(attempt(Installing, 0, "r1")),
            offered_by: Some("r1".into()),
        };
        let other = rollout("r2", 0.0, 1);
        let plan = seen
            .attribute(&r)
            .unwrap()
            .plan(&r, |_| before, Some(&other));
        assert_eq!(plan.pause, None);
    }

    /// The server's timeout of an attempt silent since `since`.
    fn timeout(since: OffsetDateTime) -> StatusReport {
        StatusReport {
            silent_since: Some(since),
            at: since + time::Duration::hours(2),
            ..report(TimedOut)
        }
    }

    #[test]
    fn a_timeout_is_written_only_over_the_silence_it_judged() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let silent = |status| Seen {
            attempt: Some(attempt(status, 0, "r1")),
            offered_by: Some("r1".into()),
        };
        // Silent since t0 (the attempt's last report): timed out.
        let plan = silent(Installing).attribute(&timeout(t0)).unwrap();
        assert_eq!(plan.counters(), ["r1"]);
        // The device reported after the silence the sweep saw began: no timeout.
        let later = timeout(t0 - time::Duration::seconds(1));
        assert_eq!(
            silent(Downloading).attribute(&later).unwrap_err(),
            NotApplied::SpokeSince
        );
        // Not open any more (a final report came in), or never timed: no timeout.
        for status in [Success, Failed, Pending, TimedOut] {
            let err = silent(status).attribute(&timeout(t0)).unwrap_err();
            assert_eq!(err, NotApplied::SpokeSince, "{status:?}");
        }
        let unknown = Seen {
            attempt: None,
            offered_by: None,
        };
        assert!(unknown.attribute(&timeout(t0)).is_err());
    }

    #[test]
    fn a_timeout_is_a_failure_a_late_outcome_replaces() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let seen = Seen {
            attempt: Some(attempt(Installing, 1, "r1")),
            offered_by: Some("r1".into()),
        };
        let r = timeout(t0);
        let plan = seen
            .attribute(&r)
            .unwrap()
            .plan(&r, |_| one_in(Installing), None);
        let after = plan.attempt.unwrap();
        assert_eq!((after.status, after.failures), (TimedOut, 2));
        assert_eq!(plan.progress[0].1.failure_reports, 1);
        // The device's own failure, late: the same attempt, not a second strike.
        let late = Seen {
            attempt: Some(after),
            offered_by: Some("r1".into()),
        };
        let plan = plan_of(late, Failed).unwrap();
        assert_eq!(plan.attempt.unwrap().failures, 2);
    }
}
