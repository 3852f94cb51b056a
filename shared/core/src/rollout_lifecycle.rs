//! The lifecycle of a rollout (docs/api.md §Rollouts): which states offer a release, which are
//! final, and which moves an admin's edit may make. The automatic pause (`auto_pause`) makes
//! the one move it needs, active to paused, which these rules allow. Every change also bumps the
//! rollout's revision, so that a writer holding a stale copy is refused instead of undoing
//! another's change.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Offers its release to the devices it targets.
    Active,
    /// Offers nothing; may be resumed.
    Paused,
    /// Stopped for good.
    Aborted,
    /// Done, in the admin's judgement; offers nothing.
    Completed,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused => "paused",
            Self::Aborted => "aborted",
            Self::Completed => "completed",
        }
    }

    /// Aborted and completed rollouts never change again, percentage included.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Aborted | Self::Completed)
    }

    /// Only an active rollout offers its release (update rule 1).
    pub fn offers(self) -> bool {
        self == Self::Active
    }
}

/// Why an edit may not change a rollout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("rollout {id} is {state}: it can no longer change", state = .state.as_str())]
    Finished { id: String, state: RolloutState },
    #[error("a rollout cannot move from {} to {}", .from.as_str(), .to.as_str())]
    Move {
        from: RolloutState,
        to: RolloutState,
    },
}

/// Whether a rollout in state `from` may be put in state `to`: any move between the states
/// that are not final, and a final state only to itself (an idempotent repeat).
pub fn check_move(from: RolloutState, to: RolloutState) -> Result<(), Refused> {
    if from.is_final() && to != from {
        return Err(Refused::Move { from, to });
    }
    Ok(())
}

/// Whether the percentage of rollout `id`, now in `state`, may change.
pub fn check_percentage_change(id: &str, state: RolloutState) -> Result<(), Refused> {
    if state.is_final() {
        return Err(Refused::Finished {
            id: id.to_owned(),
            state,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::RolloutState::*;
    use super::*;

    const ALL: [RolloutState; 4] = [Active, Paused, Aborted, Completed];

    #[test]
    fn every_move_between_open_states_is_allowed() {
        for from in [Active, Paused] {
            for to in ALL {
                assert_eq!(check_move(from, to), Ok(()), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn final_states_move_only_to_themselves() {
        for from in [Aborted, Completed] {
            for to in ALL {
                assert_eq!(
                    check_move(from, to).is_ok(),
                    to == from,
                    "{from:?} -> {to:?}"
                );
            }
        }
        assert_eq!(
            check_move(Aborted, Active).unwrap_err().to_string(),
            "a rollout cannot move from aborted to active"
        );
    }

    #[test]
    fn only_open_rollouts_change_percentage() {
        assert!(check_percentage_change("r", Active).is_ok());
        assert!(check_percentage_change("r", Paused).is_ok());
        assert_eq!(
            check_percentage_change("r", Completed)
                .unwrap_err()
                .to_string(),
            "rollout r is completed: it can no longer change"
        );
    }

    #[test]
    fn only_active_offers() {
        assert_eq!(
            ALL.into_iter().filter(|s| s.offers()).collect::<Vec<_>>(),
            [Active]
        );
        assert_eq!(
            ALL.into_iter().filter(|s| s.is_final()).collect::<Vec<_>>(),
            [Aborted, Completed]
        );
    }
}
