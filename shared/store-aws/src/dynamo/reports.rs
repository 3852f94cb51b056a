//! Status reports: the writes `report_plan` decides (the log entry, the attempt, the device's
//! shard of the rollouts' progress) and the hourly outcome counter, in one transaction. Every
//! item is conditioned on what was read, so a concurrent report makes the transaction fail and
//! this one is planned again from fresh reads.
//!
//! Rule 4 is decided after the commit, on the totals of every shard read then: a rollout's
//! reports no longer serialize on one item, and the pause is still written once (conditioned on
//! the rollout's revision). The price is that under concurrency it can come a few reports late:
//! every final report reads the totals after its own commit, so the pause is written by the
//! first of them to see the threshold crossed, at most one report per concurrent writer after
//! the crossing one (docs/aws-keys.md §Contention and limits).

use aws_sdk_dynamodb::types::TransactWriteItem;
use ota_core::audit::AuditEvent;
use ota_core::device::LogEntry;
use ota_core::metrics::{OUTCOME_HOURS_KEPT, outcome_hour};
use ota_core::ports::{StoreError, StoreResult};
use ota_core::progress::RolloutProgress;
use ota_core::report_plan::{self, Seen, StatusOutcome, StatusReport};
use ota_core::rollout::RolloutState;
use ota_core::{auto_pause, retry};

use super::DynamoMeta;
use super::item::{Item, doc, expires, get_n, item, key, micros, n, s, shard, time_key};
use super::keys;
use super::open_attempts;
use super::ops::{TxFail, put, update};
use super::rollouts::Expect;

/// One shard of a rollout's progress as read, with the revision its rewrite is conditioned on.
pub struct StoredProgress {
    pub progress: RolloutProgress,
    pub revision: Option<i64>,
    /// The log position (micros) of the last report that moved these counters: the next one is
    /// placed after it, so that the log lists the reports of one shard in the order their
    /// transactions won this item, whichever instance's clock wrote them.
    pub last_order: i64,
}

impl DynamoMeta {
    /// A rollout's counters: the sum of its shards and of the one item that held them all
    /// before they were sharded. One `BatchGetItem`, strongly consistent; the shards are read
    /// side by side, not at one instant, which the counters (only ever moved by reports) allow.
    pub(super) async fn read_progress(&self, rollout_id: &str) -> StoreResult<RolloutProgress> {
        let keys: Vec<(String, String)> = (0..keys::PROGRESS_SHARDS)
            .map(|k| keys::progress_shard(rollout_id, k))
            .chain([keys::rollout(rollout_id)])
            .map(|pk| (pk, keys::PROGRESS_SK.to_owned()))
            .collect();
        let mut total = RolloutProgress::default();
        for it in self.batch_get(&keys).await? {
            total.add(&doc(&it)?);
        }
        Ok(total)
    }

    async fn read_shard(&self, rollout_id: &str, shard: u32) -> StoreResult<StoredProgress> {
        Ok(
            match self
                .get(&keys::progress_shard(rollout_id, shard), keys::PROGRESS_SK)
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
        shard: u32,
        from: &StoredProgress,
        to: &RolloutProgress,
        order: time::OffsetDateTime,
    ) -> StoreResult<TransactWriteItem> {
        let it = item(
            keys::progress_shard(rollout_id, shard),
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
        let device = e.device_id.as_str();
        item(
            keys::device(e.device_id.as_str()),
            keys::event(&e.event_id),
            e,
            [
                ("GSI1PK", s(keys::log_of_device(e.device_id.as_str()))),
                ("GSI1SK", s(order.clone())),
                (
                    "GSI2PK",
                    s(keys::index_shard(
                        &keys::log_of_release(&e.firmware_id),
                        device,
                    )),
                ),
                ("GSI2SK", s(order.clone())),
                ("GSI3PK", s(keys::index_shard(keys::ALL_LOGS, device))),
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
                Some(outcome) => {
                    if round > 0 {
                        // Contention made visible (a line only for a report that lost a race,
                        // rare since the progress is sharded): `cargo xtask bench` counts these
                        // for the retries a report took across instances (docs/scale.md).
                        tracing::info!(
                            device = %r.device_id,
                            rounds = round + 1,
                            "status report stored after losing a write race"
                        );
                    }
                    return Ok(outcome);
                }
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
        // The device's shard of every rollout it moves: its attempts are only ever counted there.
        let progress_shard = shard(r.device_id.as_str(), keys::PROGRESS_SHARDS);
        let turns: Vec<String> = attribution
            .counters()
            .iter()
            .map(|id| keys::progress_shard(id, progress_shard))
            .collect();
        // Held until the transaction is decided.
        let _turns = self.progress_turn(&turns).await;
        let mut counters = Vec::new();
        for id in attribution.counters() {
            counters.push((id.to_owned(), self.read_shard(id, progress_shard).await?));
        }
        let pause_candidate = attribution.pause_candidate(r).map(str::to_owned);
        let stored = |id: &str| counters.iter().find(|(c, _)| c == id).map(|(_, p)| p);
        // No rollout for rule 4 here: a shard's counters are not the rollout's (see the module).
        let plan = attribution.plan(
            r,
            |id| stored(id).map_or_else(Default::default, |p| p.progress),
            None,
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
            item.extend(open_attempts::attributes(r.device_id.as_str(), a));
            item.insert("rev".into(), n(current.map_or(0, |c| c.revision) + 1));
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
            writes.push(self.progress_write(id, progress_shard, from, progress, order)?);
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
            Ok(()) => {}
            Err(TxFail::Cancelled(_)) => return Ok(None),
            Err(TxFail::Store(e)) => return Err(e),
        }
        let mut outcome = plan.outcome();
        if let Some(id) = pause_candidate {
            match self.pause_if_crossed(&id, r).await {
                Ok(true) => outcome.paused_rollout = Some(id),
                Ok(false) => {}
                // The report is stored and must be answered as such; the next final report of
                // the rollout decides the pause again on its totals.
                Err(e) => tracing::error!(
                    rollout_id = %id,
                    error = %e,
                    "rule 4 could not be decided after a final report"
                ),
            }
        }
        Ok(Some(outcome))
    }

    /// Rule 4 on the rollout's totals as they are now, after a final report that counted
    /// toward it: pauses the rollout (with its audit event, conditioned on the revision read)
    /// when they are over its threshold. True when this call's pause committed; a lost race
    /// (another report's pause, an admin's edit) reads the rollout again.
    async fn pause_if_crossed(&self, rollout_id: &str, r: &StatusReport) -> StoreResult<bool> {
        for round in 0..retry::ROUNDS {
            let Some(rollout) = self.get_rollout_doc(rollout_id).await? else {
                return Ok(false);
            };
            // Only an active rollout with a threshold can pause: no totals to read otherwise.
            if rollout.state != RolloutState::Active || rollout.failure_threshold_percent.is_none()
            {
                return Ok(false);
            }
            let totals = self.read_progress(rollout_id).await?;
            let Some(pause) = auto_pause::after_final_report(&rollout, &totals, &r.event_id, r.at)
            else {
                return Ok(false);
            };
            let dt = &pause.rollout.device_type;
            let view = self.read_view(dt.as_str()).await?;
            let mut writes = self
                .rollout_writes(
                    &pause.rollout,
                    Expect::Revision(pause.expect_revision),
                    &view,
                )
                .await?;
            writes.push(self.audit_write(&pause.audit)?);
            match self.transact(writes).await {
                Ok(()) => {
                    self.invalidate_view(dt);
                    // One line per pause, logged once the pause committed: the SAM template's
                    // metric filter counts `action = "rollout.auto_pause"` for its alarm.
                    tracing::warn!(
                        action = "rollout.auto_pause",
                        rollout_id = %rollout_id,
                        device_type = %dt,
                        trigger_event_id = %r.event_id,
                        "rollout paused: its failure rate crossed the threshold (rule 4)"
                    );
                    return Ok(true);
                }
                Err(TxFail::Cancelled(_)) => retry::backoff(round).await,
                Err(TxFail::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(
            "the rollout changed too often to decide its pause; retry".into(),
        ))
    }
}
