//! An admin's edit of a rollout (docs/api.md §Rollouts): its percentage, its state, as the
//! lifecycle allows, or its promotion to the next stage, over the revision the admin read (a stale one is a Conflict, so two admins
//! never overwrite each other silently, nor an admin the automatic pause).

use crate::access::{Admin, Role};
use crate::error::OpError;
use crate::fields;
use crate::metrics::RolloutWithProgress;
use crate::rollout::RolloutState;
use crate::rollout_evaluation;
use crate::rollout_lifecycle::{check_move, check_percentage_change};
use crate::service::Service;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutEdit {
    pub rollout_percentage: Option<f64>,
    pub state: Option<RolloutState>,
    /// The revision the edit is based on; absent: the stored one (last writer wins).
    pub revision: Option<u64>,
    /// Start the next stage now (docs/api.md §9.5), before any state change of the edit.
    pub promote: bool,
}

impl Service {
    pub async fn update_rollout(
        &self,
        admin: &Admin,
        id: &str,
        edit: RolloutEdit,
    ) -> Result<RolloutWithProgress, OpError> {
        admin.require(Role::Admin)?;
        let mut r = self.load_rollout(id).await?;
        let before = serde_json::json!({
            "state": r.state, "rollout_percentage": r.rollout_percentage, "revision": r.revision,
        });
        let expected = edit.revision.unwrap_or(r.revision);
        if expected != r.revision {
            return Err(OpError::Conflict(format!(
                "rollout {id} is at revision {}, not {expected}: reload and retry",
                r.revision
            )));
        }
        if let Some(p) = edit.rollout_percentage {
            let p = fields::percentage("rollout_percentage", p)?;
            check_percentage_change(id, r.state).map_err(|e| OpError::Conflict(e.to_string()))?;
            if !r.staging.stages.is_empty() {
                return Err(OpError::Conflict(format!(
                    "rollout {id} is staged: its percentage follows its stages (promote it)"
                )));
            }
            r.rollout_percentage = p;
        }
        let promotion = if edit.promote {
            let numbers = self.gate_numbers(&r).await?;
            let change = rollout_evaluation::promote(&r, &numbers, &admin.actor, self.now())
                .map_err(|e| OpError::Conflict(e.to_string()))?;
            r = change.rollout.clone();
            Some(change)
        } else {
            None
        };
        if let Some(next) = edit.state {
            check_move(r.state, next).map_err(|e| OpError::Conflict(e.to_string()))?;
            r.state = next;
        }
        r.revision = expected + 1;
        r.updated_at = self.now();
        match promotion {
            // The promotion and its audit event both or neither; a state change with it is
            // in the same write, audited below.
            Some(mut change) => {
                change.rollout = r.clone();
                self.meta.decide_rollout(&change).await?;
                if edit.state.is_none() {
                    return self.one_rollout(r).await;
                }
            }
            None => self.meta.update_rollout(&r, expected).await?,
        }
        let after = serde_json::json!({
            "state": r.state, "rollout_percentage": r.rollout_percentage, "revision": r.revision,
        });
        self.audit(
            admin,
            "rollout.update",
            "rollout",
            &r.id,
            serde_json::json!({"before": before, "after": after}),
        )
        .await?;
        self.one_rollout(r).await
    }
}
