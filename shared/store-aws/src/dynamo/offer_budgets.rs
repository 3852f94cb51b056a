//! A rollout's offer budget (`offer_budget`): one item beside the rollout's record, `RO#{id}` /
//! `BUDGET`, its minutes in `doc` and a revision `rev` that each take is conditioned on, so
//! that of racing takers one wins a round and the others read again: never more than the
//! budget granted. Only first offers of a rollout with a budget take from it (once per device),
//! and a full budget is answered without a write.

use ota_core::offer_budget::{OfferBudget, Taken};
use ota_core::ports::{StoreError, StoreResult};
use ota_core::retry;
use time::OffsetDateTime;

use super::DynamoMeta;
use super::item::{doc, get_n, item, n};
use super::keys;

impl DynamoMeta {
    pub(super) async fn take_from_budget(
        &self,
        rollout_id: &str,
        limit: u32,
        at: OffsetDateTime,
    ) -> StoreResult<Taken> {
        let pk = keys::rollout(rollout_id);
        for round in 0..retry::ROUNDS {
            let stored = self.get(&pk, keys::BUDGET_SK).await?;
            let (mut budget, revision): (OfferBudget, Option<i64>) = match &stored {
                Some(it) => (doc(it)?, get_n(it, "rev")),
                None => (OfferBudget::default(), None),
            };
            let taken = budget.take(limit, at);
            if taken != Taken::Granted {
                return Ok(taken);
            }
            let next = item(
                pk.clone(),
                keys::BUDGET_SK,
                &budget,
                [("rev", n(revision.unwrap_or(0) + 1))],
            )?;
            let written = match revision {
                Some(r) => {
                    self.put_item(next, Some("rev = :rev"), &[(":rev", n(r))])
                        .await
                }
                None => {
                    self.put_item(next, Some("attribute_not_exists(PK)"), &[])
                        .await
                }
            };
            match written {
                Ok(()) => return Ok(Taken::Granted),
                Err(StoreError::Conflict(_)) => retry::backoff(round).await,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "the offer budget of rollout {rollout_id} is contended; retry"
        )))
    }
}
