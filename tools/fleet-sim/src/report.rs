//! The summary: a stable JSON document (keys in docs/fleet-sim.md; add keys, never rename)
//! and the same as a table for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::admin::StatusCounts;
use crate::latency::EndpointStats;
use ota_core::health_gate::GateLimit;
use ota_core::rollout_evaluation::DecisionKind;
use ota_core::stages::Stage;
use ota_core::status::OtaStatus;

/// Bumped only if a key changes meaning or disappears.
pub const SCHEMA: &str = "fleet-sim/1";

#[derive(Debug, Serialize)]
pub struct Summary {
    pub schema: &'static str,
    /// Exit 0 iff true.
    pub ok: bool,
    /// Why `ok` is false, one sentence each.
    pub problems: Vec<String>,
    pub config: Config,
    #[serde(rename = "firmware")]
    pub release: ReleaseSummary,
    pub rollout: RolloutSummary,
    pub devices: DeviceCounts,
    pub reports: ReportCheck,
    pub endpoints: BTreeMap<&'static str, EndpointStats>,
    pub requests_total: u64,
    pub requests_per_s: f64,
    pub retries: u64,
    pub bytes_served: u64,
    /// Seconds devices were running (both phases), the base of every rate.
    pub device_time_s: f64,
    /// Seconds from start to end, publishing and verification included.
    pub wall_time_s: f64,
    /// Up to 20 device errors, verbatim.
    pub error_samples: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Config {
    pub base_url: String,
    pub devices: usize,
    pub concurrency: usize,
    pub chunk_size: u64,
    pub via_download_endpoint: bool,
    pub failure_rate: f64,
    pub rollback_rate: f64,
    pub canary_percent: f64,
    pub seed: u64,
    pub device_type: String,
    pub from_version: String,
    pub failure_threshold_percent: f64,
    pub min_reports: u32,
    /// `signed` (--jwt-secret-file) or `minted` (admin API, one request per device).
    pub device_tokens: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ReleaseSummary {
    pub id: String,
    pub version: String,
    pub file_size: u64,
    pub file_hash: String,
    /// `generated`, `file` or `existing`.
    pub source: &'static str,
}

#[derive(Debug, Serialize)]
pub struct RolloutSummary {
    pub id: String,
    /// State right after the last phase (`active`, or `paused` after an automatic pause).
    pub state: String,
    pub auto_paused: bool,
    pub phases: Vec<PhaseSummary>,
    /// The rollout's counters at the end, as the service reports them.
    pub progress_devices: StatusCounts,
    pub success_reports: u64,
    pub failure_reports: u64,
    /// Whether the simulator marked it `completed` afterwards (keeps the next run clean).
    pub completed: bool,
    /// Staged runs (--stages) only: what the server decided by itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staged: Option<StagedSummary>,
}

/// A staged run as the server drove it (docs/api.md §9.5).
#[derive(Debug, Serialize)]
pub struct StagedSummary {
    pub stages: Vec<Stage>,
    /// The stage the rollout was in at the end, from 0.
    pub stage_index: u32,
    pub decisions: Vec<DecisionSummary>,
    /// Devices exposed to the release: offered it by a check.
    pub offered: usize,
    /// Offered although outside the first stage's canary share / the share of the stage
    /// reached at the end (the second must be 0; the first, once a pause held the rollout in
    /// stage 0).
    pub offered_outside_first_stage: usize,
    pub offered_outside_reached_stage: usize,
    /// Offered devices scripted to crash (--bad-release) that booted the release.
    pub crashed: usize,
    /// Offered devices that went silent after `downloading` (--silent).
    pub silent: usize,
    /// The rollout's devices whose attempt is `timed_out` at the end.
    pub timed_out: u64,
    /// From the rollout's creation to its automatic pause / to the start of its last stage.
    pub seconds_to_pause: Option<f64>,
    pub seconds_to_last_stage: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct DecisionSummary {
    pub kind: DecisionKind,
    /// RFC 3339, as the server wrote it.
    pub at: String,
    pub from_stage: u32,
    pub to_stage: u32,
    pub limit: Option<GateLimit>,
}

#[derive(Debug, Serialize)]
pub struct PhaseSummary {
    pub percentage: f64,
    /// Devices that checked in during the phase.
    pub devices: usize,
    /// Devices the check offered the release to.
    pub offered: usize,
    /// Offered the release although outside the canary bucket of docs/api.md's rule 2.
    pub offered_outside_canary: usize,
    /// Inside the bucket but offered nothing (expected only once the rollout paused).
    pub not_offered_inside_canary: usize,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct DeviceCounts {
    pub total: usize,
    pub updated: usize,
    pub failed: usize,
    pub rolled_back: usize,
    /// How many were scripted to fail / roll back (exact: round(devices × rate)).
    pub failed_injected: usize,
    pub rolled_back_injected: usize,
    /// Never offered the release by the end.
    pub not_updated: usize,
    /// Ended in an error (a refused request, a bad answer, a hash mismatch).
    pub errors: usize,
}

#[derive(Debug, Serialize)]
pub struct ReportCheck {
    /// Status reports the service acknowledged, by status.
    pub acknowledged: StatusCounts,
    pub acknowledged_total: u64,
    /// OTA log entries of the release found through `GET /api/ota/admin/logs`, by status.
    pub in_log: StatusCounts,
    /// Acknowledged reports whose event id is not in the OTA log.
    pub lost: u64,
    /// Log entries of the release the simulator did not send (another client, or a check-in
    /// recorded by rule 5).
    pub unexpected_in_log: u64,
    /// Growth of the metrics' `outcomes_24h` during the run; at least `acknowledged` unless
    /// reports were lost (other traffic may add to it).
    pub metrics_delta: StatusCounts,
    /// Whether the rollout's counters equal what the simulator reported.
    pub rollout_counters_match: bool,
}

impl Summary {
    pub fn table(&self) -> String {
        let mut t = String::new();
        let d = &self.devices;
        let r = &self.reports;
        let _ = writeln!(
            t,
            "fleet-sim: {} devices, release {} {} ({} bytes), rollout {} ({})",
            d.total,
            self.release.id,
            self.release.version,
            self.release.file_size,
            self.rollout.id,
            self.rollout.state
        );
        for p in &self.rollout.phases {
            let _ = writeln!(
                t,
                "  phase {:>5.1} %: {:>6} devices checked, {:>6} offered ({} outside / {} missed inside the canary bucket), {:.1} s",
                p.percentage,
                p.devices,
                p.offered,
                p.offered_outside_canary,
                p.not_offered_inside_canary,
                p.seconds
            );
        }
        if let Some(s) = &self.rollout.staged {
            let _ = writeln!(
                t,
                "  staged: stage {} of {}, {} decisions, {} offered ({} outside stage 1's share), {} timed out, {:.1} s to pause, {:.1} s to the last stage",
                s.stage_index + 1,
                s.stages.len(),
                s.decisions.len(),
                s.offered,
                s.offered_outside_first_stage,
                s.timed_out,
                s.seconds_to_pause.unwrap_or(f64::NAN),
                s.seconds_to_last_stage.unwrap_or(f64::NAN),
            );
        }
        let _ = writeln!(
            t,
            "devices: {} updated, {} failed ({} injected), {} rolled back ({} injected), {} not updated, {} errors",
            d.updated,
            d.failed,
            d.failed_injected,
            d.rolled_back,
            d.rolled_back_injected,
            d.not_updated,
            d.errors
        );
        let _ = writeln!(
            t,
            "reports: {} acknowledged, {} in the OTA log, {} lost, {} unexpected; rollout counters {}",
            r.acknowledged_total,
            r.in_log_total(),
            r.lost,
            r.unexpected_in_log,
            if r.rollout_counters_match {
                "match"
            } else {
                "DO NOT match"
            }
        );
        let _ = writeln!(
            t,
            "\n{:<11} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "endpoint", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for (name, e) in &self.endpoints {
            let _ = writeln!(
                t,
                "{:<11} {:>9} {:>7} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                name,
                e.requests,
                e.errors,
                e.requests_per_s,
                e.p50_ms,
                e.p95_ms,
                e.p99_ms,
                e.max_ms
            );
        }
        let _ = writeln!(
            t,
            "\n{} requests ({:.1}/s, {} retries), {:.1} MiB served, devices ran {:.1} s, wall time {:.1} s",
            self.requests_total,
            self.requests_per_s,
            self.retries,
            self.bytes_served as f64 / (1024.0 * 1024.0),
            self.device_time_s,
            self.wall_time_s
        );
        if self.ok {
            let _ = writeln!(t, "OK");
        } else {
            for p in &self.problems {
                let _ = writeln!(t, "FAILED: {p}");
            }
        }
        t
    }
}

impl ReportCheck {
    pub fn in_log_total(&self) -> u64 {
        total(&self.in_log)
    }
}

pub fn total(c: &StatusCounts) -> u64 {
    OtaStatus::ALL.into_iter().map(|st| c.get(st)).sum()
}

pub fn slot<'a>(c: &'a mut StatusCounts, status: &str) -> Option<&'a mut u64> {
    OtaStatus::parse(status).map(|st| c.slot(st))
}

/// `after - before`, per status (0 where it shrank).
pub fn delta(after: &StatusCounts, before: &StatusCounts) -> StatusCounts {
    let mut d = StatusCounts::default();
    for st in OtaStatus::ALL {
        *d.slot(st) = after.get(st).saturating_sub(before.get(st));
    }
    d
}
