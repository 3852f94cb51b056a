//! Status reports: the log entry, the attempt, the rollout's progress, the hourly outcome
//! counter and, when rule 4 fires, the pause and its audit event, in one transaction. Every
//! item is conditioned on what was read, so a concurrent report makes the transaction fail and
//! this one is recomputed: the pause fires on exactly the report that crosses the threshold.

use aws_sdk_dynamodb::types::TransactWriteItem;
use ota_core::audit::AuditEvent;
use ota_core::device::{LogEntry, StatusOutcome};
use ota_core::ports::{StatusReport, StoreError, StoreResult};
use ota_core::progress::{RolloutProgress, should_pause};
use ota_core::rollout::RolloutState;
use ota_core::status::{Transition, attempt_rollout, transition};

use super::DynamoMeta;
use super::item::{Item, doc, expires, get_n, item, key, micros, n, s, shard, time_key};
use super::keys;
use super::ops::{MAX_ROUNDS, TxFail, backoff, put, update};
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

const HOUR_S: i64 = 3600;

fn hour_of(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(HOUR_S)
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
                ("GSI2PK", s(keys::log_of_firmware(&e.firmware_id))),
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
        for round in 0..MAX_ROUNDS {
            if let Some(prev) = self.logged(r).await? {
                return Ok(StatusOutcome {
                    entry: prev,
                    duplicate: true,
                    changed: false,
                    paused_rollout: None,
                });
            }
            match self.try_report(r).await? {
                Some(outcome) => return Ok(outcome),
                None => backoff(round).await,
            }
        }
        Err(StoreError::Unavailable(
            "too many concurrent reports for this rollout; retry".into(),
        ))
    }

    /// One attempt at storing the report; None when a concurrent write invalidated the reads.
    async fn try_report(&self, r: &StatusReport) -> StoreResult<Option<StatusOutcome>> {
        let state = self.device_state(&r.device_id).await?;
        let current = state.attempts.get(&r.firmware_id).cloned();
        let step = transition(current.as_ref().map(|a| a.status), r.status)
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        let counted_in = current.as_ref().and_then(|a| a.rollout_id.clone());
        let rollout_id = attempt_rollout(
            step,
            current.as_ref().map(|a| a.status),
            counted_in.as_ref(),
            || {
                state
                    .device
                    .as_ref()
                    .and_then(|(d, _)| d.last_offer.clone())
                    .filter(|o| o.firmware_id == r.firmware_id)
                    .map(|o| o.rollout_id)
            },
        );
        let entry = r.log_entry(rollout_id.clone());
        let mut writes = Vec::new();
        let changed = step == Transition::Apply;
        let mut paused_rollout = None;
        // Held until the transaction is decided.
        let _turns;
        // The log position: after this process's turn at the rollout, from a clock that never
        // repeats, and after the last report the rollout's counters took (so across instances
        // too), so the log replays the counters rule 4 saw.
        let order;
        if changed {
            let failures =
                current.as_ref().map_or(0, |a| a.failures) + u32::from(r.status.is_failure());
            let mut attempt = key(
                keys::device(r.device_id.as_str()),
                keys::attempt(&r.firmware_id),
            );
            attempt.insert("status".into(), s(r.status.as_str()));
            attempt.insert("failures".into(), n(failures));
            attempt.insert(
                "rev".into(),
                n(current.as_ref().map_or(0, |a| a.revision) + 1),
            );
            if let Some(id) = &rollout_id {
                attempt.insert("rollout".into(), s(id));
            }
            writes.push(match &current {
                Some(a) => put(
                    attempt,
                    Some("rev = :rev"),
                    &[(":rev", n(a.revision))],
                    &self.table,
                )?,
                None => put(attempt, Some("attribute_not_exists(PK)"), &[], &self.table)?,
            });
            let from = current.as_ref().map(|a| a.status);
            let turns: Vec<&String> = rollout_id.iter().chain(counted_in.iter()).collect();
            _turns = self.progress_turn(&turns).await;
            // A retry that another rollout offered leaves the rollout of the failed attempt.
            let left = match (&counted_in, from) {
                (Some(old), Some(from)) if rollout_id.as_ref() != Some(old) => {
                    Some((old, from, self.read_progress(old).await?))
                }
                _ => None,
            };
            let moved = match &rollout_id {
                Some(id) => Some((id, self.read_progress(id).await?)),
                None => None,
            };
            let after = left.iter().map(|(_, _, p)| p.last_order);
            order = self.commit_time(r.at, after.chain(moved.iter().map(|(_, p)| p.last_order)));
            if let Some((old, from, stored)) = &left {
                let mut p = stored.progress;
                p.attempt_left(*from);
                writes.push(self.progress_write(old, stored, &p, order)?);
            }
            if let Some((id, stored)) = moved {
                let from = from.filter(|_| counted_in.as_ref() == Some(id));
                let mut p = stored.progress;
                p.attempt_moved(from, r.status);
                writes.push(self.progress_write(id, &stored, &p, order)?);
                if r.status.is_final()
                    && let Some(mut rollout) = self.get_rollout_doc(id).await?
                    && rollout.state == RolloutState::Active
                    && should_pause(&rollout, &p)
                {
                    let expect = Expect::Revision(rollout.revision);
                    rollout.state = RolloutState::Paused;
                    rollout.revision += 1;
                    rollout.updated_at = r.at;
                    let view = self.read_view(rollout.device_type.as_str()).await?;
                    writes.extend(self.rollout_writes(&rollout, expect, &view).await?);
                    writes.push(self.audit_write(&AuditEvent::auto_pause(
                        &rollout,
                        &p,
                        &r.event_id,
                        r.at,
                    ))?);
                    paused_rollout = Some((id.clone(), rollout.device_type.clone()));
                }
            }
        } else {
            order = self.commit_time(r.at, std::iter::empty());
        }
        writes.push(put(
            self.log_item(&entry, order)?,
            Some("attribute_not_exists(PK)"),
            &[],
            &self.table,
        )?);
        writes.push(update(
            key(
                keys::outcomes(shard(r.device_id.as_str(), keys::COUNTER_SHARDS)),
                keys::outcome_hour(hour_of(r.at), r.status.as_str()),
            ),
            "ADD cnt :one SET st = :st, expires_at = :exp",
            &[
                (":one", n(1)),
                (":st", s(r.status.as_str())),
                (":exp", n(r.at.unix_timestamp() + 2 * 86_400)),
            ],
            &self.table,
        )?);
        match self.transact(writes).await {
            Ok(()) => {
                if let Some((id, dt)) = &paused_rollout {
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
                Ok(Some(StatusOutcome {
                    entry,
                    duplicate: false,
                    changed,
                    paused_rollout: paused_rollout.map(|(id, _)| id),
                }))
            }
            Err(TxFail::Cancelled(_)) => Ok(None),
            Err(TxFail::Store(e)) => Err(e),
        }
    }
}
