//! The OTA status state machine of one device's attempt at one release.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OtaStatus {
    Pending,
    Downloading,
    Installing,
    Success,
    Failed,
    RolledBack,
    /// Written by the server, never reported: the device said `downloading` or `installing`
    /// and then nothing for its rollout's `install_timeout_s` (`install_timeout`).
    TimedOut,
}

impl OtaStatus {
    pub const ALL: [OtaStatus; 7] = [
        Self::Pending,
        Self::Downloading,
        Self::Installing,
        Self::Success,
        Self::Failed,
        Self::RolledBack,
        Self::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Downloading => "downloading",
            Self::Installing => "installing",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::TimedOut => "timed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::RolledBack | Self::TimedOut
        )
    }

    /// A final report that counts against the release (for the 3-strikes rule and the
    /// rollout's failure rate).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::RolledBack | Self::TimedOut)
    }

    /// An attempt in this status is under way: the device owes a report, and its silence
    /// can time out.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Downloading | Self::Installing)
    }
}

/// What a report does to the attempt's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The report moves the attempt (or starts a new one after a failure).
    Apply,
    /// The same final state reported again: accepted, nothing changes.
    Unchanged,
}

/// Refusal of a report that would move an attempt backwards out of a final state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status '{to}' cannot follow the final status '{from}'")]
pub struct BackwardMove {
    pub from: &'static str,
    pub to: &'static str,
}

/// Decides whether `next` may follow `current`.
///
/// Non-final states move freely (a device may restart a download). `success` is final for good.
/// After `failed` or `rolled_back` a device may start a new attempt (`pending`, `downloading`,
/// `installing`), which is how the 3-strikes rule can count failures at all, but it may not jump
/// to another final state without one. `timed_out` is the server's verdict on a silence, not
/// the device's: whatever the device says next (even the outcome of the same attempt, late) is
/// taken.
pub fn transition(current: Option<OtaStatus>, next: OtaStatus) -> Result<Transition, BackwardMove> {
    let Some(cur) = current else {
        return Ok(Transition::Apply);
    };
    if cur == next && cur.is_final() {
        return Ok(Transition::Unchanged);
    }
    if !cur.is_final() || cur == OtaStatus::TimedOut {
        return Ok(Transition::Apply);
    }
    let new_attempt_after_failure = cur.is_failure() && !next.is_final();
    if new_attempt_after_failure {
        Ok(Transition::Apply)
    } else {
        Err(BackwardMove {
            from: cur.as_str(),
            to: next.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::OtaStatus::*;
    use super::*;

    #[test]
    fn success_is_final() {
        for next in [Pending, Downloading, Installing, Failed, RolledBack] {
            assert!(transition(Some(Success), next).is_err(), "{next:?}");
        }
        assert_eq!(
            transition(Some(Success), Success),
            Ok(Transition::Unchanged)
        );
    }

    #[test]
    fn retry_after_failure() {
        assert_eq!(transition(Some(Failed), Downloading), Ok(Transition::Apply));
        assert_eq!(transition(Some(RolledBack), Pending), Ok(Transition::Apply));
        assert!(transition(Some(Failed), Success).is_err());
        assert!(transition(Some(Failed), RolledBack).is_err());
        assert_eq!(transition(Some(Failed), Failed), Ok(Transition::Unchanged));
    }

    #[test]
    fn a_late_report_follows_a_timeout() {
        for next in [
            Pending,
            Downloading,
            Installing,
            Success,
            Failed,
            RolledBack,
        ] {
            assert_eq!(transition(Some(TimedOut), next), Ok(Transition::Apply));
        }
        assert_eq!(
            transition(Some(TimedOut), TimedOut),
            Ok(Transition::Unchanged)
        );
        assert!(transition(Some(Success), TimedOut).is_err());
        assert!(transition(Some(Failed), TimedOut).is_err());
        assert_eq!(
            transition(Some(Installing), TimedOut),
            Ok(Transition::Apply)
        );
    }

    #[test]
    fn non_final_moves_freely() {
        for cur in [Pending, Downloading, Installing] {
            for next in OtaStatus::ALL {
                assert_eq!(transition(Some(cur), next), Ok(Transition::Apply));
            }
        }
        for next in OtaStatus::ALL {
            assert_eq!(transition(None, next), Ok(Transition::Apply));
        }
    }
}
