//! Rollouts: the canonical item (conditioned on its revision) and its entry in the release view
//! of its type, always written together; and the devices a `specific` rollout names, kept out
//! of both (each a membership item in the device's partition, and sorted chunks of ids in the
//! rollout's partition to list them).

use aws_sdk_dynamodb::types::TransactWriteItem;
use ota_core::audit::AuditEvent;
use ota_core::cursor;
use ota_core::ids::DeviceId;
use ota_core::ports::{Page, PageRequest, StoreError, StoreResult};
use ota_core::rollout::{Rollout, RolloutFilter, RolloutState};

use ota_core::retry;

use super::DynamoMeta;
use super::catalog::StoredView;
use super::item::{Item, doc, get_n, get_s, item, key, n, s};
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
    // A sparse index of the active ones, for metrics and the rollout tick.
    if r.state == RolloutState::Active {
        it.insert("GSI3PK".into(), s(keys::ACTIVE_ROLLOUTS));
        it.insert("GSI3SK".into(), s(&r.id));
    }
    Ok(it)
}

/// The items that store the devices `rollout_id` names (`named` sorted, each once): one
/// membership per device, in the device's partition, and the sorted chunks of ids in the
/// rollout's partition, each with the number of chunks (`nchunks`), so that a listing knows
/// where they end without reading past the last. Each chunk follows the memberships of its
/// ids: the chunks, which share one partition (~1,000 write units a second) and are up to
/// ~262 write units each, are spread over the whole batch rather than sent together.
fn named_items(rollout_id: &str, named: &[DeviceId]) -> StoreResult<Vec<Item>> {
    let chunks = named.chunks(keys::NAMED_CHUNK_IDS);
    let count = u32::try_from(chunks.len())
        .map_err(|_| StoreError::Internal("too many chunks of named devices".into()))?;
    let mut items = Vec::with_capacity(named.len() + chunks.len());
    for (i, ids) in (0..count).zip(chunks) {
        items.extend(
            ids.iter()
                .map(|d| key(keys::device(d.as_str()), keys::named_in(rollout_id))),
        );
        items.push(item(
            keys::rollout(rollout_id),
            keys::named_chunk(i),
            &ids,
            [("nchunks", n(count))],
        )?);
    }
    Ok(items)
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

    /// Writes `r` as `expect` says, with its view and, when given, the audit event of the
    /// change (all or nothing).
    pub(super) async fn write_rollout(
        &self,
        r: &Rollout,
        expect: Expect,
        audit: Option<&AuditEvent>,
    ) -> StoreResult<()> {
        for round in 0..retry::ROUNDS {
            let view = self.read_view(r.device_type.as_str()).await?;
            let mut writes = self.rollout_writes(r, expect, &view).await?;
            if let Some(e) = audit {
                writes.push(self.audit_write(e)?);
            }
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

    /// A new rollout and the devices it names (docs/aws-keys.md §Access patterns): first every
    /// membership and chunk (`BatchWriteItem`s), then the rollout and its view (one
    /// transaction). A rollout is thus never visible, to a check or a listing, before all of
    /// its memberships are stored. A failure in between leaves memberships and chunks under a
    /// rollout id that no rollout has: harmless, since a membership only counts for a stored
    /// `specific` rollout of that id (`Rollout::targets`), ids are new (UUIDv7) so none is
    /// ever stored later, and the service lists the chunks of a rollout only once it has read
    /// the rollout. Nothing deletes them (nor the memberships of final rollouts).
    pub(super) async fn insert_rollout_naming(
        &self,
        r: &Rollout,
        named: &[DeviceId],
    ) -> StoreResult<()> {
        if !named.is_empty() {
            // The batch puts are unconditioned: a rollout already stored under this id keeps
            // the memberships it has (the transaction below would refuse it anyway).
            if self.get_rollout_doc(&r.id).await?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "rollout {} already exists",
                    r.id
                )));
            }
            // Sorted and each once, as the port promises; cheap to make sure of, and a key
            // twice in one batch request would fail it.
            let mut named = named.to_vec();
            named.sort_unstable();
            named.dedup();
            self.batch_put(named_items(&r.id, &named)?).await?;
        }
        self.write_rollout(r, Expect::New, None).await
    }

    /// A page of the devices a rollout names, by id: chunk by chunk (strongly consistent
    /// `GetItem`s, one or two a page), the cursor being the chunk and the last id returned.
    pub(super) async fn named_devices(
        &self,
        rollout_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<DeviceId>> {
        let (mut chunk, mut after) = match cursor::decode::<(u32, String)>(page.cursor.as_deref())?
        {
            Some((chunk, last)) => (chunk, Some(last)),
            None => (0, None),
        };
        let limit = page.limit as usize;
        let mut items: Vec<DeviceId> = Vec::new();
        if limit == 0 {
            return Ok(Page {
                items,
                next_cursor: None,
            });
        }
        let pk = keys::rollout(rollout_id);
        while let Some(it) = self.get(&pk, &keys::named_chunk(chunk)).await? {
            let ids: Vec<DeviceId> = doc(&it)?;
            let more_chunks = get_n(&it, "nchunks").is_some_and(|c| i64::from(chunk) + 1 < c);
            let start = after
                .as_deref()
                .map_or(0, |a| ids.partition_point(|d| d.as_str() <= a));
            let take = (ids.len() - start).min(limit - items.len());
            items.extend_from_slice(&ids[start..start + take]);
            let more_here = start + take < ids.len();
            if items.len() == limit {
                let last = items
                    .last()
                    .map(|d| d.as_str().to_owned())
                    .unwrap_or_default();
                let next = if more_here {
                    Some((chunk, last))
                } else if more_chunks {
                    Some((chunk + 1, last))
                } else {
                    None
                };
                return Ok(Page {
                    items,
                    next_cursor: next.map(|p| cursor::encode(&p)),
                });
            }
            if !more_chunks {
                break;
            }
            chunk += 1;
            after = None;
        }
        Ok(Page {
            items,
            next_cursor: None,
        })
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
        let (index, pk) = match (&filter.device_type, filter.state) {
            (Some(dt), _) => ("GSI2", keys::rollouts_of_type(dt.as_str())),
            // The tick's listing: the sparse index of the active ones, whose size is what is
            // active now, not every rollout ever stored.
            (None, Some(RolloutState::Active)) => ("GSI3", keys::ACTIVE_ROLLOUTS.to_owned()),
            (None, _) => ("GSI1", keys::ALL_ROLLOUTS.to_owned()),
        };
        // Ids are UUIDv7: descending id order is newest first.
        self.newest_first(index, vec![pk], None, page, |r: &Rollout| filter.matches(r))
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
                && r.state == RolloutState::Active
            {
                out.push(r);
            }
        }
        Ok(out)
    }
}
