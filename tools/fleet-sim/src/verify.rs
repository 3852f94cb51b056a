//! Whether the run proves the flow: what the service acknowledged against what its OTA log,
//! rollout counters and metrics show afterwards, and every other reason to fail the run.

use std::collections::HashSet;

use crate::admin::{LogEntry, Rollout, StatusCounts};
use crate::cli::Args;
use crate::device::AckedReport;
use crate::report::{self, DeviceCounts, PhaseSummary, ReportCheck, StagedSummary};

/// Compares what the service acknowledged with what it shows afterwards.
pub fn check_reports(
    acked: &[AckedReport],
    log: &[LogEntry],
    before: &StatusCounts,
    after: &StatusCounts,
    rollout: &Rollout,
    devices: &DeviceCounts,
) -> ReportCheck {
    let mut acknowledged = StatusCounts::default();
    for a in acked {
        if let Some(n) = report::slot(&mut acknowledged, a.status) {
            *n += 1;
        }
    }
    let mut in_log = StatusCounts::default();
    let mut logged: HashSet<(&str, &str)> = HashSet::new();
    for e in log {
        if let Some(n) = report::slot(&mut in_log, &e.status) {
            *n += 1;
        }
        // The server writes `timed_out` itself (docs/api.md §9.7): no device sends it.
        if e.status != "timed_out" {
            logged.insert((e.device_id.as_str(), e.event_id.as_str()));
        }
    }
    let sent: HashSet<(&str, &str)> = acked
        .iter()
        .map(|a| (a.device_id.as_str(), a.event_id.as_str()))
        .collect();
    let lost = sent.difference(&logged).count() as u64;
    let unexpected_in_log = logged.difference(&sent).count() as u64;
    let p = &rollout.progress;
    let rollout_counters_match = p.success_reports == acknowledged.success
        && p.failure_reports
            == acknowledged.failed + acknowledged.rolled_back + p.devices.timed_out
        && p.devices.success == devices.updated as u64
        && p.devices.failed == devices.failed as u64
        && p.devices.rolled_back == devices.rolled_back as u64;
    ReportCheck {
        acknowledged_total: report::total(&acknowledged),
        acknowledged,
        in_log,
        lost,
        unexpected_in_log,
        metrics_delta: report::delta(after, before),
        rollout_counters_match,
    }
}

/// Every reason the run does not prove the flow, one sentence each.
pub fn judge(
    d: &DeviceCounts,
    r: &ReportCheck,
    phases: &[PhaseSummary],
    rollout: &Rollout,
    staged: Option<&StagedSummary>,
    args: &Args,
) -> Vec<String> {
    let mut problems = Vec::new();
    // Losses and miscounts first: they matter whatever else happened.
    if r.lost > 0 {
        problems.push(format!(
            "{} acknowledged status reports are missing from the OTA log",
            r.lost
        ));
    }
    if r.unexpected_in_log > 0 {
        problems.push(format!(
            "{} OTA log entries of the release were not sent by the simulator",
            r.unexpected_in_log
        ));
    }
    if !r.rollout_counters_match {
        problems.push(
            "the rollout's progress counters differ from the reports the simulator sent".to_owned(),
        );
    }
    let (m, a) = (&r.metrics_delta, &r.acknowledged);
    if m.downloading < a.downloading
        || m.installing < a.installing
        || m.success < a.success
        || m.failed < a.failed
        || m.rolled_back < a.rolled_back
    {
        problems.push(
            "the metrics' outcomes_24h grew by less than the reports acknowledged".to_owned(),
        );
    }
    if d.errors > 0 {
        problems.push(format!(
            "{} devices ended in an error (see error_samples)",
            d.errors
        ));
    }
    let outside: usize = phases.iter().map(|p| p.offered_outside_canary).sum();
    if outside > 0 {
        problems.push(format!(
            "{outside} devices were offered the release outside their canary bucket"
        ));
    }
    if let Some(s) = staged {
        judge_staged(s, rollout, &mut problems);
        return problems;
    }
    if rollout.state == "paused" {
        problems.push(format!(
            "the service paused the rollout automatically: {} failure reports against {} successes exceed the threshold of {} % (min_reports {}); lower --failure-rate/--rollback-rate or raise --failure-threshold",
            rollout.progress.failure_reports,
            rollout.progress.success_reports,
            args.failure_threshold,
            args.min_reports
        ));
        // The rest follows from the pause: devices checking after it get no offer.
        return problems;
    }
    if rollout.state != "active" {
        problems.push(format!("the rollout ended {}", rollout.state));
    }
    let inside: usize = phases.iter().map(|p| p.not_offered_inside_canary).sum();
    if inside > 0 {
        problems.push(format!(
            "{inside} devices inside their canary bucket were not offered the release"
        ));
    }
    if d.not_updated > 0 {
        problems.push(format!(
            "{} devices were never offered the release",
            d.not_updated
        ));
    }
    if d.failed != d.failed_injected || d.rolled_back != d.rolled_back_injected {
        problems.push(format!(
            "{} failed and {} rolled back, {} and {} were injected",
            d.failed, d.rolled_back, d.failed_injected, d.rolled_back_injected
        ));
    }
    problems
}

/// A staged run proves the flow when the server took it to its last stage by itself and timed
/// out every silent device; a pause is reported with the limit it went over. The injected
/// failures are not compared: a pause or a stage leaves devices unoffered.
fn judge_staged(s: &StagedSummary, rollout: &Rollout, problems: &mut Vec<String>) {
    if s.offered_outside_reached_stage > 0 {
        problems.push(format!(
            "{} devices were offered the release outside the share of stage {}",
            s.offered_outside_reached_stage,
            s.stage_index + 1
        ));
    }
    if s.timed_out < s.silent as u64 {
        problems.push(format!(
            "{} devices went silent, the server timed out {}",
            s.silent, s.timed_out
        ));
    }
    if rollout.state == "paused" {
        let limit = s.decisions.iter().rev().find_map(|d| d.limit).map_or_else(
            || "a limit".to_owned(),
            |l| serde_json::to_value(l).map_or_else(|_| format!("{l:?}"), |v| v.to_string()),
        );
        let n = rollout
            .health
            .as_ref()
            .map(|h| h.numbers)
            .unwrap_or_default();
        problems.push(format!(
            "the service paused the staged rollout in stage {} of {} over {limit}: {} of {} devices on the release crashed, {} of {} final outcomes were failures",
            s.stage_index + 1,
            s.stages.len(),
            n.crashed_devices,
            n.devices_on_release,
            n.failures,
            n.final_outcomes
        ));
    } else if rollout.state != "active" {
        problems.push(format!("the rollout ended {}", rollout.state));
    } else if s.stage_index as usize + 1 < s.stages.len() {
        problems.push(format!(
            "the rollout stayed in stage {} of {} (see --max-wait)",
            s.stage_index + 1,
            s.stages.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::admin::{Progress, Staging};

    fn acked(device: &str, event: &str, status: &'static str) -> AckedReport {
        AckedReport {
            device_id: device.to_owned(),
            event_id: event.to_owned(),
            status,
        }
    }

    fn logged(device: &str, event: &str, status: &str) -> LogEntry {
        LogEntry {
            device_id: device.to_owned(),
            event_id: event.to_owned(),
            status: status.to_owned(),
        }
    }

    fn one_device_updated() -> (Vec<AckedReport>, Vec<LogEntry>, Rollout, DeviceCounts) {
        let sent = vec![
            acked("d1", "e1", "downloading"),
            acked("d1", "e2", "installing"),
            acked("d1", "e3", "success"),
        ];
        let log = sent
            .iter()
            .map(|a| logged(&a.device_id, &a.event_id, a.status))
            .collect();
        let rollout = Rollout {
            id: "r".to_owned(),
            state: "active".to_owned(),
            rollout_percentage: 100.0,
            progress: Progress {
                devices: StatusCounts {
                    success: 1,
                    ..StatusCounts::default()
                },
                success_reports: 1,
                failure_reports: 0,
            },
            staging: Staging::default(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            health: None,
        };
        let devices = DeviceCounts {
            total: 1,
            updated: 1,
            failed: 0,
            rolled_back: 0,
            failed_injected: 0,
            rolled_back_injected: 0,
            not_updated: 0,
            errors: 0,
        };
        (sent, log, rollout, devices)
    }

    fn metrics_of(sent: &[AckedReport]) -> StatusCounts {
        let mut c = StatusCounts::default();
        for a in sent {
            *report::slot(&mut c, a.status).expect("a known status") += 1;
        }
        c
    }

    fn checked(
        sent: &[AckedReport],
        log: &[LogEntry],
        metrics_after: &StatusCounts,
        rollout: &Rollout,
        devices: &DeviceCounts,
    ) -> ReportCheck {
        let before = StatusCounts::default();
        check_reports(sent, log, &before, metrics_after, rollout, devices)
    }

    fn args() -> Args {
        Args::parse_from(["fleet-sim", "--base-url", "x", "--admin-token-file", "t"])
    }

    #[test]
    fn everything_found_is_ok() {
        let (sent, log, rollout, devices) = one_device_updated();
        let after = metrics_of(&sent);
        let r = checked(&sent, &log, &after, &rollout, &devices);
        assert_eq!((r.lost, r.unexpected_in_log), (0, 0));
        assert!(r.rollout_counters_match);
        assert!(judge(&devices, &r, &[], &rollout, None, &args()).is_empty());
    }

    #[test]
    fn an_acknowledged_report_missing_from_the_log_fails_the_run() {
        let (sent, mut log, rollout, devices) = one_device_updated();
        let after = metrics_of(&sent);
        log.remove(1);
        let r = checked(&sent, &log, &after, &rollout, &devices);
        assert_eq!(r.lost, 1);
        let problems = judge(&devices, &r, &[], &rollout, None, &args());
        assert!(
            problems[0].contains("1 acknowledged status reports are missing"),
            "{problems:?}"
        );
    }

    #[test]
    fn counters_or_metrics_short_of_the_reports_fail_the_run() {
        let (sent, log, mut rollout, devices) = one_device_updated();
        let mut after = metrics_of(&sent);
        after.installing -= 1;
        rollout.progress.success_reports = 0;
        let r = checked(&sent, &log, &after, &rollout, &devices);
        assert!(!r.rollout_counters_match);
        let problems = judge(&devices, &r, &[], &rollout, None, &args());
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn a_paused_rollout_is_named_as_the_reason() {
        let (sent, log, mut rollout, mut devices) = one_device_updated();
        rollout.state = "paused".to_owned();
        devices.not_updated = 5;
        let after = metrics_of(&sent);
        let r = checked(&sent, &log, &after, &rollout, &devices);
        let problems = judge(&devices, &r, &[], &rollout, None, &args());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("paused the rollout automatically"));
    }
}
