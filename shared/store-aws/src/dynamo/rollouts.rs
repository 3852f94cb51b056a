//! Rollouts: the canonical item (conditioned on its revision) and its entry in the release view
//! of its type, always written together.

use aws_sdk_dynamodb::types::TransactWriteItem;
use ota_core::ports::{Page, PageRequest, StoreError, StoreResult};
use ota_core::rollout::{Rollout, RolloutFilter};

use ota_core::retry;

use super::DynamoMeta;
use super::catalog::StoredView;
use super::item::{Item, doc, get_s, item, n, s};
use super::keys;
use super::ops::{Query, Range, Take, TxFail, put};

pub fn rollout_item(r: &Rollout) -> StoreResult<Item> {
    let mut it = item(
        keys::rollout(&r.id),
        keys::ROLLOUT_SK,
        r,
        [
            ("rev", n(r.revision)),
            ("GSI1PK", s(keys::ALL_ROLLOUTS)),
            ("GSI1SK", s(&r.id)),
            ("GSI2PK", s(keys::rollouts_of_type(r.device_type.as_str()))),
            ("GSI2SK", s(&r.id)),
        ],
    )?;
    // A sparse index of the active ones, for metrics.
    if r.state == ota_core::rollout::RolloutState::Active {
        it.insert("GSI3PK".into(), s(keys::ACTIVE_ROLLOUTS));
        it.insert("GSI3SK".into(), s(&r.id));
    }
    Ok(it)
}

/// How a rollout write is conditioned.
#[derive(Clone, Copy)]
pub enum Expect {
    New,
    Revision(u64),
}

impl DynamoMeta {
    /// The writes that store `r` and bring its type's view in line, from the view as read.
    pub(super) async fn rollout_writes(
        &self,
        r: &Rollout,
        expect: Expect,
        view: &StoredView,
    ) -> StoreResult<Vec<TransactWriteItem>> {
        let canonical = match expect {
            Expect::New => put(
                rollout_item(r)?,
                Some("attribute_not_exists(PK)"),
                &[],
                &self.table,
            )?,
            Expect::Revision(rev) => put(
                rollout_item(r)?,
                Some("rev = :rev"),
                &[(":rev", n(rev))],
                &self.table,
            )?,
        };
        let mut writes = vec![canonical];
        let in_view = view.doc.options.iter().any(|(o, _)| o.id == r.id);
        let firmware = if in_view {
            None
        } else {
            self.release_doc(&r.firmware_id).await?
        };
        if let Some(new_view) = view.with_rollout(r, firmware.as_ref())
            && (in_view || new_view.options.len() != view.doc.options.len())
        {
            writes.push(self.view_write(r.device_type.as_str(), view, &new_view)?);
        }
        Ok(writes)
    }

    pub(super) async fn write_rollout(&self, r: &Rollout, expect: Expect) -> StoreResult<()> {
        for round in 0..retry::ROUNDS {
            let view = self.read_view(r.device_type.as_str()).await?;
            let writes = self.rollout_writes(r, expect, &view).await?;
            match self.transact(writes).await {
                Ok(()) => {
                    self.invalidate_view(&r.device_type);
                    return Ok(());
                }
                Err(TxFail::Cancelled(reasons)) if TxFail::condition_failed(&reasons, 0) => {
                    return Err(match (expect, self.get_rollout_doc(&r.id).await?) {
                        (Expect::New, _) => {
                            StoreError::Conflict(format!("rollout {} already exists", r.id))
                        }
                        (Expect::Revision(_), None) => StoreError::NotFound,
                        (Expect::Revision(rev), Some(_)) => StoreError::Conflict(format!(
                            "rollout {} was changed by someone else (expected revision {rev})",
                            r.id
                        )),
                    });
                }
                Err(TxFail::Cancelled(_)) => retry::backoff(round).await,
                Err(TxFail::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "the release view is too busy; retry".into(),
        ))
    }

    pub(super) async fn get_rollout_doc(&self, id: &str) -> StoreResult<Option<Rollout>> {
        match self.get(&keys::rollout(id), keys::ROLLOUT_SK).await? {
            Some(it) => doc(&it).map(Some),
            None => Ok(None),
        }
    }

    pub(super) async fn list_rollout_docs(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Rollout>> {
        let (index, pk) = match &filter.device_type {
            Some(dt) => ("GSI2", keys::rollouts_of_type(dt.as_str())),
            None => ("GSI1", keys::ALL_ROLLOUTS.to_owned()),
        };
        // Ids are UUIDv7: descending id order is newest first.
        self.newest_first(index, pk, None, page, |r: &Rollout| filter.matches(r))
            .await
    }

    /// The active rollouts (sparse index), for metrics.
    pub(super) async fn active_rollouts(&self) -> StoreResult<Vec<Rollout>> {
        let items = self
            .query(
                &Query {
                    index: Some("GSI3"),
                    pk: keys::ACTIVE_ROLLOUTS.to_owned(),
                    range: Range::All,
                    descending: false,
                },
                usize::MAX,
                |_| Take::Keep,
            )
            .await?;
        let mut out = Vec::new();
        for it in &items {
            // The index is eventually consistent: confirm each from its item.
            if let Some(id) = get_s(it, "GSI3SK")
                && let Some(r) = self.get_rollout_doc(id).await?
                && r.state == ota_core::rollout::RolloutState::Active
            {
                out.push(r);
            }
        }
        Ok(out)
    }
}
