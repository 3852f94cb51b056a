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
}

impl OtaStatus {
    pub const ALL: [OtaStatus; 6] = [
        Self::Pending,
        Self::Downloading,
        Self::Installing,
        Self::Success,
        Self::Failed,
        Self::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Downloading => "downloading",
            Self::Installing => "installing",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::RolledBack)
    }

    /// A final report that counts against the release (for the 3-strikes rule and the
    /// rollout's failure rate).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::RolledBack)
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
/// to another final state without one.
pub fn transition(current: Option<OtaStatus>, next: OtaStatus) -> Result<Transition, BackwardMove> {
    let Some(cur) = current else {
        return Ok(Transition::Apply);
    };
    if !cur.is_final() {
        return Ok(Transition::Apply);
    }
    if cur == next {
        return Ok(Transition::Unchanged);
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
