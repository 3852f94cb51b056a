//! The automatic decisions of rollouts (docs/api.md §9.5): made on the checks and status reports
//! that change what a rollout's gate and stage read, and by a periodic tick (`ota-server`'s
//! background task; on AWS a scheduled function), each written once whoever evaluates
//! (`MetaStore::decide_rollout`).

use std::collections::HashMap;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use crate::device::CheckIn;
use crate::device_health::BootReport;
use crate::error::OpError;
use crate::health_gate::GateNumbers;
use crate::ids::DeviceType;
use crate::install_timeout;
use crate::metrics::RolloutHealth;
use crate::ports::{PageRequest, ReleaseView, StoreError};
use crate::rollout::{Rollout, RolloutFilter, RolloutState};
use crate::rollout_evaluation;
use crate::service::Service;

/// How often one process evaluates one rollout on the checks that find its stage due: each
/// evaluation reads the rollout's counters (on DynamoDB, 33 items), and a due stage waiting for
/// its devices would otherwise be evaluated by every check. The reports and crashes that move
/// the numbers are evaluated each (as rule 4 reads the totals after each final report).
pub const EVALUATE_EVERY: Duration = Duration::seconds(1);

/// How often one process looks for a rollout's silent devices on the checks of its type (on
/// DynamoDB, a Query of each of the 16 shards of its index of open attempts), or as often as
/// its timeout when that is shorter, so that a timeout is written within about its own length
/// of being due; the tick looks too.
pub const TIMEOUTS_EVERY: Duration = Duration::seconds(10);

/// When this process last evaluated each rollout on a request.
#[derive(Debug, Default)]
pub struct Evaluations(Mutex<HashMap<String, OffsetDateTime>>);

/// Rollouts remembered before the oldest are forgotten (each is a few dozen bytes).
const REMEMBERED: usize = 4096;

impl Evaluations {
    /// Whether `what` (a rollout's id, or its id and a suffix) may be done at `now`, at most
    /// once `every`, noting it if so.
    fn take(&self, what: &str, now: OffsetDateTime, every: Duration) -> bool {
        let Ok(mut last) = self.0.lock() else {
            return true;
        };
        if last.get(what).is_some_and(|at| now - *at < every) {
            return false;
        }
        if last.len() >= REMEMBERED {
            last.retain(|_, at| now - *at < TIMEOUTS_EVERY.max(EVALUATE_EVERY));
        }
        last.insert(what.to_owned(), now);
        true
    }
}

/// What a tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    pub evaluated: usize,
    pub decided: usize,
    /// Silent attempts given `timed_out`.
    pub timed_out: usize,
}

impl Service {
    /// The gate numbers of `r`: its counters and its release's.
    pub(crate) async fn gate_numbers(&self, r: &Rollout) -> Result<GateNumbers, OpError> {
        let progress = self.meta.rollout_progress(&r.id).await?;
        let release = self.meta.release_health(&r.firmware_id).await?;
        Ok(GateNumbers::of(&progress, &release))
    }

    /// Where `r` stands, for the answers about one rollout: None for a rollout that decides
    /// nothing by itself.
    pub(crate) async fn rollout_health(
        &self,
        r: &Rollout,
    ) -> Result<Option<RolloutHealth>, OpError> {
        if !rollout_evaluation::decides_itself(r) {
            return Ok(None);
        }
        let numbers = self.gate_numbers(r).await?;
        Ok(Some(RolloutHealth {
            failure_percent: numbers.failure_percent(),
            crash_percent: numbers.crash_percent(),
            numbers,
            next_evaluation_at: rollout_evaluation::next_evaluation_at(r),
        }))
    }

    /// Evaluates `r` (as the caller read it) now and writes its decision, if any. True when
    /// this call's decision was written; a rollout another evaluator or an admin changed first
    /// keeps their change, and this one decides nothing.
    pub async fn evaluate_rollout(&self, r: &Rollout) -> Result<bool, OpError> {
        if r.state != RolloutState::Active || !rollout_evaluation::decides_itself(r) {
            return Ok(false);
        }
        let numbers = self.gate_numbers(r).await?;
        let Some(change) = rollout_evaluation::evaluate(r, &numbers, self.now()) else {
            return Ok(false);
        };
        match self.meta.decide_rollout(&change).await {
            Ok(()) => {
                let d = change.rollout.staging.decisions.last();
                // One line per decision, once written: the operator's log of what the service
                // did by itself (a pause is also counted by the SAM template's alarm).
                tracing::warn!(
                    action = change.audit.action,
                    rollout_id = %r.id,
                    device_type = %r.device_type,
                    stage = change.rollout.staging.stage_index,
                    limit = ?d.and_then(|d| d.limit),
                    "rollout decided by itself"
                );
                Ok(true)
            }
            Err(StoreError::Conflict(_) | StoreError::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// On a check, before its offer is decided: the rollouts of `view` whose stage may have
    /// passed by `c.at` (so that a stage change is visible to the check that made it). True
    /// when one decided: the caller reads the view again.
    pub(crate) async fn evaluate_due(
        &self,
        view: &ReleaseView,
        c: &CheckIn,
    ) -> Result<bool, OpError> {
        let mut decided = false;
        for o in &view.options {
            let r = &o.rollout;
            let timeouts = r.staging.install_timeout_s.is_some_and(|t| {
                let every = TIMEOUTS_EVERY.min(Duration::seconds(i64::try_from(t).unwrap_or(0)));
                self.evaluations
                    .take(&format!("{}#timeouts", r.id), c.at, every)
            });
            let due = rollout_evaluation::next_evaluation_at(r).is_some_and(|t| t <= c.at);
            if (timeouts && self.time_out_silent(r).await? > 0)
                || (due && self.evaluations.take(&r.id, c.at, EVALUATE_EVERY))
            {
                decided |= self.evaluate_rollout(r).await?;
            }
        }
        Ok(decided)
    }

    /// On a check reporting a crash, once recorded: the rollouts of `view` with a crash limit.
    pub(crate) async fn evaluate_crashes(
        &self,
        view: &ReleaseView,
        c: &CheckIn,
    ) -> Result<(), OpError> {
        if !c.boot.as_ref().is_some_and(BootReport::shows_crash) {
            return Ok(());
        }
        for o in &view.options {
            let gate = o.rollout.staging.health_gate.as_ref();
            if gate.is_some_and(|g| g.max_crash_percent.is_some()) {
                self.evaluate_rollout(&o.rollout).await?;
            }
        }
        Ok(())
    }

    /// After a final report counted toward rollout `rollout_id` of `device_type`: that
    /// rollout, when active (found in the type's release view, which a store caches).
    pub(crate) async fn evaluate_reported(
        &self,
        device_type: &DeviceType,
        rollout_id: &str,
    ) -> Result<(), OpError> {
        let view = self.meta.release_view(device_type).await?;
        if let Some(o) = view.options.iter().find(|o| o.rollout.id == rollout_id) {
            self.evaluate_rollout(&o.rollout).await?;
        }
        Ok(())
    }

    /// The periodic tick: every active rollout that decides by itself, evaluated once.
    pub async fn evaluate_rollouts(&self) -> Result<Tick, OpError> {
        let filter = RolloutFilter {
            state: Some(RolloutState::Active),
            ..RolloutFilter::default()
        };
        let mut page = PageRequest {
            limit: PageRequest::MAX_LIMIT,
            cursor: None,
        };
        let mut tick = Tick::default();
        loop {
            let found = self.meta.list_rollouts(&filter, &page).await?;
            for r in found
                .items
                .iter()
                .filter(|r| rollout_evaluation::decides_itself(r))
            {
                tick.evaluated += 1;
                tick.timed_out += self.time_out_silent(r).await?;
                tick.decided += usize::from(self.evaluate_rollout(r).await?);
            }
            match found.next_cursor {
                Some(c) => page.cursor = Some(c),
                None => return Ok(tick),
            }
        }
    }

    /// Writes `timed_out` for the devices of `r` silent longer than its install timeout, at
    /// most [`install_timeout::MAX_TIMEOUTS_AT_ONCE`]; how many were written. Each is a status
    /// report (counted, and judged by rule 4, as the device's own `failed` would be); one the
    /// device made obsolete by speaking meanwhile, or another evaluator wrote first, is not
    /// written again.
    pub(crate) async fn time_out_silent(&self, r: &Rollout) -> Result<usize, OpError> {
        let Some(timeout_s) = r.staging.install_timeout_s else {
            return Ok(0);
        };
        let now = self.now();
        let silent = self
            .meta
            .silent_attempts(
                &r.id,
                install_timeout::silent_before(timeout_s, now),
                install_timeout::MAX_TIMEOUTS_AT_ONCE,
            )
            .await?;
        if silent.is_empty() {
            return Ok(0);
        }
        let Some(release) = self.meta.get_release(&r.firmware_id).await? else {
            return Ok(0);
        };
        let mut written = 0;
        for a in &silent {
            let report = install_timeout::report(r, &release.version, a, timeout_s, now);
            match self.meta.record_status(&report).await {
                Ok(outcome) if outcome.changed => {
                    written += 1;
                    tracing::info!(
                        rollout_id = %r.id,
                        device_id = %a.device_id,
                        silent_since = %a.since,
                        "install timed out"
                    );
                }
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(written)
    }
}
