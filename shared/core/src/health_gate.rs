//! A rollout's health gate (docs/api.md §9.5): the limits on its devices' failures and on the
//! crashes of the devices running its release, over which the rollout pauses itself whatever
//! its stage, and under which a stage may pass. Decided in integers (`percent_limit`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::device_health::HealthCounts;
use crate::error::OpError;
use crate::fields;
use crate::percent_limit;
use crate::progress::RolloutProgress;

/// Final outcomes a gate needs before it judges, unless it says otherwise.
pub const DEFAULT_GATE_MIN_REPORTS: u32 = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthGate {
    /// Over this share of failed, rolled back and timed out final outcomes: pause.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub max_failure_percent: Option<f64>,
    /// Over this share of crashing devices among those that checked in on the release: pause.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100)]
    pub max_crash_percent: Option<f64>,
    /// Final outcomes of the rollout before the gate judges (default 10; 0 acts as 1).
    #[serde(default = "default_min_reports")]
    pub min_reports: u32,
}

fn default_min_reports() -> u32 {
    DEFAULT_GATE_MIN_REPORTS
}

/// What a gate reads: counters kept on write, of the rollout and of its release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GateNumbers {
    /// The rollout's final outcomes: `success`, `failed`, `rolled_back`, `timed_out`.
    pub final_outcomes: u64,
    /// Of those, `failed`, `rolled_back` and `timed_out`.
    pub failures: u64,
    /// Devices of the rollout whose attempt reached `success`.
    pub completed_devices: u64,
    /// Devices that checked in running the release since updating to it.
    pub devices_on_release: u64,
    /// Of those, the devices that reported a crash on it (a crash counted since their last
    /// check, or a boot reset by panic, watchdog or brownout).
    pub crashed_devices: u64,
    /// Devices of the rollout whose attempt is `timed_out` now (among the failures; numbers
    /// recorded before timeouts existed read 0).
    #[serde(default)]
    pub timed_out: u64,
}

impl GateNumbers {
    /// The numbers of a rollout with counters `progress`, whose release has counters `release`.
    pub fn of(progress: &RolloutProgress, release: &HealthCounts) -> Self {
        Self {
            final_outcomes: progress.success_reports + progress.failure_reports,
            failures: progress.failure_reports,
            completed_devices: progress.devices.success,
            devices_on_release: release.devices,
            crashed_devices: release.crashed_devices,
            timed_out: progress.devices.timed_out,
        }
    }

    /// failures / final outcomes, in percent, for display.
    pub fn failure_percent(&self) -> Option<f64> {
        percent_limit::percent(self.failures, self.final_outcomes)
    }

    /// crashed devices / devices on the release, in percent, for display.
    pub fn crash_percent(&self) -> Option<f64> {
        percent_limit::percent(self.crashed_devices, self.devices_on_release)
    }
}

/// Which limit a rollout went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GateLimit {
    MaxFailurePercent,
    MaxCrashPercent,
}

/// How the gate stands on some numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Fewer final outcomes than `min_reports`: no judgement yet.
    TooFewReports,
    /// Within every limit.
    Holds,
    /// Over this limit (the failure limit first, when over both).
    Over(GateLimit),
}

impl HealthGate {
    /// The gate of a create, refused (naming the member) when it limits nothing.
    pub fn validated(self) -> Result<Self, OpError> {
        let limit = |field: &str, p: Option<f64>| {
            p.map(|p| fields::percentage(&format!("health_gate.{field}"), p))
                .transpose()
        };
        let gate = Self {
            max_failure_percent: limit("max_failure_percent", self.max_failure_percent)?,
            max_crash_percent: limit("max_crash_percent", self.max_crash_percent)?,
            min_reports: self.min_reports,
        };
        if gate.max_failure_percent.is_none() && gate.max_crash_percent.is_none() {
            return Err(OpError::invalid(
                "health_gate",
                "set max_failure_percent, max_crash_percent or both",
            ));
        }
        Ok(gate)
    }

    /// The gate on `n`: each limit is over when its share exceeds it (exactly at a limit is
    /// within it); a crash share of no devices on the release is within any limit.
    pub fn verdict(&self, n: &GateNumbers) -> Verdict {
        if n.final_outcomes < u64::from(self.min_reports.max(1)) {
            return Verdict::TooFewReports;
        }
        if self
            .max_failure_percent
            .is_some_and(|l| percent_limit::exceeds(n.failures, n.final_outcomes, l))
        {
            return Verdict::Over(GateLimit::MaxFailurePercent);
        }
        if self
            .max_crash_percent
            .is_some_and(|l| percent_limit::exceeds(n.crashed_devices, n.devices_on_release, l))
        {
            return Verdict::Over(GateLimit::MaxCrashPercent);
        }
        Verdict::Holds
    }
}

/// Gates and numbers for the rule tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub fn gate(failure: Option<f64>, crash: Option<f64>, min_reports: u32) -> HealthGate {
        HealthGate {
            max_failure_percent: failure,
            max_crash_percent: crash,
            min_reports,
        }
    }

    /// `finals` final outcomes of which `failures` failed (the others completed), and
    /// `crashed` of `on_release` devices crashed.
    pub fn numbers(finals: u64, failures: u64, on_release: u64, crashed: u64) -> GateNumbers {
        GateNumbers {
            final_outcomes: finals,
            failures,
            completed_devices: finals - failures,
            devices_on_release: on_release,
            crashed_devices: crashed,
            timed_out: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{gate, numbers};
    use super::*;

    #[test]
    fn no_judgement_before_min_reports() {
        let g = gate(Some(5.0), Some(2.0), 10);
        assert_eq!(g.verdict(&numbers(9, 9, 9, 9)), Verdict::TooFewReports);
        assert_eq!(
            g.verdict(&numbers(10, 10, 10, 10)),
            Verdict::Over(GateLimit::MaxFailurePercent)
        );
        let g0 = gate(Some(5.0), None, 0);
        assert_eq!(
            g0.verdict(&numbers(0, 0, 0, 0)),
            Verdict::TooFewReports,
            "0 acts as 1"
        );
        assert_eq!(
            g0.verdict(&numbers(1, 1, 0, 0)),
            Verdict::Over(GateLimit::MaxFailurePercent)
        );
    }

    #[test]
    fn the_failure_limit_at_its_boundary() {
        let g = gate(Some(5.0), None, 10);
        assert_eq!(
            g.verdict(&numbers(20, 1, 0, 0)),
            Verdict::Holds,
            "exactly 5 %"
        );
        assert_eq!(
            g.verdict(&numbers(19, 1, 0, 0)),
            Verdict::Over(GateLimit::MaxFailurePercent),
            "5.26 %"
        );
        // A decimal limit exactly met is within it, whatever f64 makes of the product.
        let g = gate(Some(18.4), None, 1);
        assert_eq!(g.verdict(&numbers(375, 69, 0, 0)), Verdict::Holds);
        assert_eq!(
            g.verdict(&numbers(375, 70, 0, 0)),
            Verdict::Over(GateLimit::MaxFailurePercent)
        );
    }

    #[test]
    fn the_crash_limit_at_its_boundary() {
        let g = gate(None, Some(2.0), 10);
        assert_eq!(
            g.verdict(&numbers(10, 0, 100, 2)),
            Verdict::Holds,
            "exactly 2 %"
        );
        assert_eq!(
            g.verdict(&numbers(10, 0, 100, 3)),
            Verdict::Over(GateLimit::MaxCrashPercent)
        );
        assert_eq!(
            g.verdict(&numbers(10, 0, 0, 0)),
            Verdict::Holds,
            "no device on the release yet"
        );
        // Over both: the failure limit is named.
        let both = gate(Some(0.0), Some(0.0), 1);
        assert_eq!(
            both.verdict(&numbers(2, 1, 2, 1)),
            Verdict::Over(GateLimit::MaxFailurePercent)
        );
        assert_eq!(
            both.verdict(&numbers(2, 0, 2, 1)),
            Verdict::Over(GateLimit::MaxCrashPercent)
        );
    }

    #[test]
    fn a_gate_limits_something_within_0_to_100() {
        let field = |g: HealthGate| match g.validated() {
            Err(OpError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(gate(None, None, 10)), "health_gate");
        assert_eq!(
            field(gate(Some(100.5), None, 10)),
            "health_gate.max_failure_percent"
        );
        assert_eq!(
            field(gate(None, Some(f64::NAN), 10)),
            "health_gate.max_crash_percent"
        );
        assert!(gate(None, Some(0.0), 0).validated().is_ok());
        let read: HealthGate = serde_json::from_str(r#"{"max_crash_percent": 2}"#).unwrap();
        assert_eq!(read.min_reports, DEFAULT_GATE_MIN_REPORTS);
        assert!(serde_json::from_str::<HealthGate>(r#"{"max_crash": 2}"#).is_err());
    }

    #[test]
    fn shares_for_display() {
        let n = numbers(8, 2, 50, 1);
        assert_eq!(n.failure_percent(), Some(25.0));
        assert_eq!(n.crash_percent(), Some(2.0));
        assert_eq!(GateNumbers::default().crash_percent(), None);
    }
}
