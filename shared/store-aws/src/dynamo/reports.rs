//! Status reports: the writes `report_plan` decides (the log entry, the attempt, the rollouts'
//! progress and, when rule 4 fires, the pause and its audit event) and the hourly outcome
//! counter, in one transaction. Every item is conditioned on what was read, so a concurrent
//! report makes the transaction fail and this one is planned again from fresh reads: the pause
//! fires on exactly the report that crosses the threshold.

use aws_sdk_dynamodb::types::TransactWriteItem;
use ota_core::audit::AuditEvent;
use ota_core::device::LogEntry;
use ota_core::metrics::{OUTCOME_HOURS_KEPT, outcome_hour};
use ota_core::ports::{StoreError, StoreResult};
use ota_core::progress::RolloutProgress;
use ota_core::report_plan::{self, Seen, StatusOutcome, StatusReport};
use ota_core::retry;

use super::DynamoMeta;
use super::item::{Item, doc, expires, get_n, item, key, micros, n, s, shard, time_key};
use super::keys;
use super::ops::{TxFail, put, update};
use super::rollouts::Expect;

/// A rollout's progress as read, with the revision its rewrite is conditioned on.
pub struct StoredProgress {
    pub progress: RolloutProgress,
    pub revision: Option<i64>,
    /// The log position (micros) of the last report that moved these counters: the next one is
    /// placed after it, so that the log lists a rollout's reports in the order their
    /// transactions won this item, whichever instance's clock wrote them.
    pub last_order: i64,
}

impl DynamoMeta {
    pub(super) async fn read_progress(&self, rollout_id: &str) -> StoreResult<StoredProgress> {
        Ok(
            match self
                .get(&keys::rollout(rollout_id), keys::PROGRESS_SK)
                .await?
            {
                Some(it) => StoredProgress {
                    progress: doc(&it)?,
                    revision: get_n(&it, "rev"),
                    last_order: get_n(&it, "lord").unwrap_or(0),
                },
                None => StoredProgress {
                    progress: RolloutProgress::default(),
                    revision: None,
                    last_order: 0,
                },
            },
        )
    }

    fn progress_write(
        &self,
        rollout_id: &str,
        from: &StoredProgress,
        to: &RolloutProgress,
        order: time::OffsetDateTime,
    ) -> StoreResult<TransactWriteItem> {
        let it = item(
            keys::rollout(rollout_id),
            keys::PROGRESS_SK,
            to,
            [
                ("rev", n(from.revision.unwrap_or(0) + 1)),
                ("lord", n(micros(order))),
            ],
        )?;
        match from.revision {
            Some(r) => put(it, Some("rev = :rev"), &[(":rev", n(r))], &self.table),
            None => put(it, Some("attribute_not_exists(PK)"), &[], &self.table),
        }
    }

    /// The log entry; `order` places it in the log (the commit order, see `commit_time`).
    fn log_item(&self, e: &LogEntry, order: time::OffsetDateTime) -> StoreResult<Item> {
        let order = time_key(order, &e.id);
        item(
            keys::device(e.device_id.as_str()),
            keys::event(&e.event_id),
            e,
            [
                ("GSI1PK", s(keys::log_of_device(e.device_id.as_str()))),
                ("GSI1SK", s(order.clone())),
                ("GSI2PK", s(keys::log_of_release(&e.firmware_id))),
                ("GSI2SK", s(order.clone())),
                ("GSI3PK", s(keys::ALL_LOGS)),
                ("GSI3SK", s(order)),
                (
                    "expires_at",
                    expires(e.created_at, self.options.log_retention),
                ),
            ],
        )
    }

    pub(super) fn audit_write(&self, e: &AuditEvent) -> StoreResult<TransactWriteItem> {
        put(
            self.audit_item(e)?,
            Some("attribute_not_exists(PK)"),
            &[],
            &self.table,
        )
    }

    pub(super) fn audit_item(&self, e: &AuditEvent) -> StoreResult<Item> {
        item(
            keys::audit(&e.id),
            keys::AUDIT_SK,
            e,
            [
                ("GSI3PK", s(keys::ALL_AUDIT)),
                ("GSI3SK", s(time_key(e.at, &e.id))),
                ("expires_at", expires(e.at, self.options.audit_retention)),
            ],
        )
    }

    async fn logged(&self, r: &StatusReport) -> StoreResult<Option<LogEntry>> {
        match self
            .get(
                &keys::device(r.device_id.as_str()),
                &keys::event(&r.event_id),
            )
            .await?
        {
            Some(it) => doc(&it).map(Some),
            None => Ok(None),
        }
    }

    pub(super) async fn report(&self, r: &StatusReport) -> StoreResult<StatusOutcome> {
        for round in 0..retry::ROUNDS {
            if let Some(stored) = self.logged(r).await? {
                return Ok(report_plan::duplicate(stored));
            }
            match self.try_report(r).await? {
                Some(outcome) => return Ok(outcome),
                None => retry::backoff(round).await,
            }
        }
        Err(StoreError::Unavailable(
            "too many concurrent reports for this rollout; retry".into(),
        ))
    }

    /// One attempt at storing the report as `report_plan` decides; None when a concurrent write
    /// invalidated the reads (every item written is conditioned on what was read).
    async fn try_report(&self, r: &StatusReport) -> StoreResult<Option<StatusOutcome>> {
        let state = self.device_state(&r.device_id).await?;
        let current = state.attempts.get(&r.firmware_id);
        let last_offer = state
            .device
            .as_ref()
            .and_then(|(d, _)| d.last_offer.as_ref());
        let seen = Seen::new(
            current.map(|a| a.attempt.clone()),
            last_offer,
            &r.firmware_id,
        );
        let attribution = seen
            .attribute(r)
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        // Held until the transaction is decided.
        let _turns = self.progress_turn(&attribution.counters()).await;
        let mut counters = Vec::new();
        for id in attribution.counters() {
            counters.push((id.to_owned(), self.read_progress(id).await?));
        }
        let rollout = match attribution.pause_candidate(r) {
            Some(id) => self.get_rollout_doc(id).await?,
            None => None,
        };
        let stored = |id: &str| counters.iter().find(|(c, _)| c == id).map(|(_, p)| p);
        let plan = attribution.plan(
            r,
            |id| stored(id).map_or_else(Default::default, |p| p.progress),
            rollout.as_ref(),
        );
        // The log position: after this process's turn at the rollouts, from a clock that never
        // repeats, and after the last report the rollouts' counters took (so across instances
        // too), so the log replays the counters rule 4 saw.
        let order = self.commit_time(r.at, counters.iter().map(|(_, p)| p.last_order));
        let mut writes = Vec::new();
        if let Some(a) = &plan.attempt {
            let mut item = key(
                keys::device(r.device_id.as_str()),
                keys::attempt(&r.firmware_id),
            );
            item.insert("status".into(), s(a.status.as_str()));
            item.insert("failures".into(), n(a.failures));
            item.insert("rev".into(), n(current.map_or(0, |c| c.revision) + 1));
            if let Some(id) = &a.rollout_id {
                item.insert("rollout".into(), s(id));
            }
            writes.push(match current {
                Some(c) => put(
                    item,
                    Some("rev = :rev"),
                    &[(":rev", n(c.revision))],
                    &self.table,
                )?,
                None => put(item, Some("attribute_not_exists(PK)"), &[], &self.table)?,
            });
        }
        for (id, progress) in &plan.progress {
            let from = stored(id).ok_or_else(|| {
                StoreError::Internal(format!("the counters of rollout {id} were not read"))
            })?;
            writes.push(self.progress_write(id, from, progress, order)?);
        }
        if let Some(pause) = &plan.pause {
            let view = self.read_view(pause.rollout.device_type.as_str()).await?;
            writes.extend(
                self.rollout_writes(
                    &pause.rollout,
                    Expect::Revision(pause.expect_revision),
                    &view,
                )
                .await?,
            );
            writes.push(self.audit_write(&pause.audit)?);
        }
        writes.push(put(
            self.log_item(&plan.entry, order)?,
            Some("attribute_not_exists(PK)"),
            &[],
            &self.table,
        )?);
        writes.push(update(
            key(
                keys::outcomes(shard(r.device_id.as_str(), keys::COUNTER_SHARDS)),
                keys::outcome_hour(outcome_hour(r.at), r.status.as_str()),
            ),
            "ADD cnt :one SET st = :st, expires_at = :exp",
            &[],
            &[
                (":one", n(1)),
                (":st", s(r.status.as_str())),
                (":exp", n((r.at + OUTCOME_HOURS_KEPT).unix_timestamp())),
            ],
            &self.table,
        )?);
        match self.transact(writes).await {
            Ok(()) => {
                if let Some(pause) = &plan.pause {
                    let (id, dt) = (&pause.rollout.id, &pause.rollout.device_type);
                    self.invalidate_view(dt);
                    // One line per pause, logged once the pause committed: the SAM template's
                    // metric filter counts `action = "rollout.auto_pause"` for its alarm.
                    tracing::warn!(
                        action = "rollout.auto_pause",
                        rollout_id = %id,
                        device_type = %dt,
                        trigger_event_id = %r.event_id,
                        "rollout paused: its failure rate crossed the threshold (rule 4)"
                    );
                }
                Ok(Some(plan.outcome()))
            }
            Err(TxFail::Cancelled(_)) => Ok(None),
            Err(TxFail::Store(e)) => Err(e),
        }
    }
}
