//! A rollout's install timeout (docs/api.md §9.7): a device that said `downloading` or
//! `installing` for the rollout and then nothing for `install_timeout_s` gets a `timed_out`
//! entry written by the server, a failure of its attempt like `failed` (the gate's failure
//! share, rule 3's strikes, rule 4). A device that speaks later is still heard: its outcome
//! replaces the timeout (`progress::RolloutProgress::attempt_moved`).

use time::{Duration, OffsetDateTime};

use crate::error::OpError;
use crate::ids::{DeviceId, Version};
use crate::report_plan::StatusReport;
use crate::rollout::Rollout;
use crate::status::OtaStatus;

/// The longest timeout a rollout may set: 30 days.
pub const MAX_INSTALL_TIMEOUT_S: u64 = 30 * 86_400;

/// The most timeouts one evaluation of a rollout writes (each is a status report's write);
/// more wait for the next evaluation.
pub const MAX_TIMEOUTS_AT_ONCE: u32 = 200;

/// An attempt a store found open and silent: counted in a rollout, in `status`, its last
/// report at `since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilentAttempt {
    pub device_id: DeviceId,
    pub firmware_id: String,
    pub status: OtaStatus,
    pub since: OffsetDateTime,
}

/// The timeout of a create: 1 second to [`MAX_INSTALL_TIMEOUT_S`].
pub fn validated(timeout_s: Option<u64>) -> Result<Option<u64>, OpError> {
    match timeout_s {
        Some(t) if t == 0 || t > MAX_INSTALL_TIMEOUT_S => Err(OpError::invalid(
            "install_timeout_s",
            format!("must be from 1 to {MAX_INSTALL_TIMEOUT_S} seconds (30 days)"),
        )),
        t => Ok(t),
    }
}

/// Attempts whose last report is at or before this time are silent at `now`.
pub fn silent_before(timeout_s: u64, now: OffsetDateTime) -> OffsetDateTime {
    now - Duration::seconds(i64::try_from(timeout_s).unwrap_or(i64::MAX))
}

/// The server's `timed_out` report of `a`, an attempt of `r` (whose release is `version`),
/// at `now`. Its event id names the silence: two evaluators timing out the same silence write
/// one entry (the second is a repeat), and a later silence of the same device is a new one. It
/// is written only if the attempt is still silent since then (`StatusReport::silent_since`).
pub fn report(
    r: &Rollout,
    version: &Version,
    a: &SilentAttempt,
    timeout_s: u64,
    now: OffsetDateTime,
) -> StatusReport {
    StatusReport {
        event_id: format!(
            "timeout:{}:{}",
            r.id,
            a.since.unix_timestamp_nanos() / 1_000
        ),
        device_id: a.device_id.clone(),
        device_type: r.device_type.clone(),
        firmware_id: a.firmware_id.clone(),
        version: version.clone(),
        status: OtaStatus::TimedOut,
        bytes_downloaded: None,
        progress_percent: None,
        error_message: Some(format!(
            "no report for {timeout_s} s after '{}' (install_timeout_s)",
            a.status.as_str()
        )),
        at: now,
        silent_since: Some(a.since),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report_plan::{NotApplied, Seen};
    use crate::rollout_evaluation::fixtures::staged;

    fn at(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn bounds() {
        assert_eq!(validated(None), Ok(None));
        assert_eq!(validated(Some(1)), Ok(Some(1)));
        assert_eq!(
            validated(Some(MAX_INSTALL_TIMEOUT_S)),
            Ok(Some(MAX_INSTALL_TIMEOUT_S))
        );
        for bad in [0, MAX_INSTALL_TIMEOUT_S + 1, u64::MAX] {
            assert!(validated(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn silent_from_the_last_report_plus_the_timeout_on() {
        let now = at(7200);
        assert_eq!(silent_before(7200, now), at(0));
        // Saturates instead of overflowing for the largest timeouts.
        assert!(silent_before(MAX_INSTALL_TIMEOUT_S, now) < now);
    }

    #[test]
    fn one_event_id_a_silence() {
        let r = staged(&[], None);
        let v = Version::parse("2.0.0").unwrap();
        let silent = |since| SilentAttempt {
            device_id: DeviceId::parse("d1").unwrap(),
            firmware_id: r.firmware_id.clone(),
            status: OtaStatus::Installing,
            since,
        };
        let a = report(&r, &v, &silent(at(0)), 60, at(60));
        let again = report(&r, &v, &silent(at(0)), 60, at(75));
        let next = report(&r, &v, &silent(at(30)), 60, at(95));
        assert_eq!(a.event_id, again.event_id);
        assert_ne!(a.event_id, next.event_id);
        assert_eq!(a.status, OtaStatus::TimedOut);
        assert_eq!(a.silent_since, Some(at(0)));
        // A device that reported after the silence began is not timed out.
        let spoke = Seen {
            attempt: Some(crate::report_plan::Attempt {
                status: OtaStatus::Downloading,
                failures: 0,
                rollout_id: Some(r.id.clone()),
                last_report_at: Some(at(1)),
            }),
            offered_by: None,
        };
        assert_eq!(spoke.attribute(&a).unwrap_err(), NotApplied::SpokeSince);
    }
}
