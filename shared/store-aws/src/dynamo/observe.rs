//! What admins read: the OTA log and the audit log newest first, fleet metrics from counters,
//! and retention (DynamoDB TTL in production; `purge` for stores where TTL never runs, such as
//! DynamoDB Local, and for retention shortened after items were written).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use futures_util::future::try_join_all;
use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::cursor;
use ota_core::device::{LogEntry, LogFilter};
use ota_core::metrics::{FleetMetrics, RolloutWithProgress, first_outcome_hour};
use ota_core::ports::{Page, PageRequest, StoreError, StoreResult};
use ota_core::progress::StatusCounts;
use ota_core::status::OtaStatus;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use ota_core::retry;

use super::error::store_error;
use super::item::{Item, doc, get_n, get_s, key, micros};
use super::keys;
use super::ops::{Query, Range, Take};
use super::{DynamoMeta, TTL_ATTRIBUTE};

/// DynamoDB's limit of one `BatchWriteItem`.
const BATCH: usize = 25;

impl DynamoMeta {
    /// One page of index partitions (one, or the shards of a sharded one, merged) read in
    /// descending sort-key order (newest release,
    /// rollout, log entry or audit event first), the records `keep` rejects skipped: the cursor
    /// is the last sort key returned; `since` (for `time_key` sort keys) ends the walk, and so
    /// does the first item past its `expires_at`: TTL deletes expired log entries and audit
    /// events only eventually (days, at worst), and the items sort by the time they expire
    /// from, so everything after the first expired one is expired too.
    pub(super) async fn newest_first<T: DeserializeOwned>(
        &self,
        index: &'static str,
        pks: Vec<String>,
        since: Option<OffsetDateTime>,
        page: &PageRequest,
        keep: impl Fn(&T) -> bool + Sync,
    ) -> StoreResult<Page<T>> {
        let before: Option<String> = cursor::decode(page.cursor.as_deref())?;
        let floor = since.map(|t| format!("{:020}", micros(t).max(0)));
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let sk = format!("{index}SK");
        let items = self
            .query_partitions(
                index,
                pks,
                &before.map_or(Range::All, Range::Below),
                true,
                page.limit as usize + 1,
                &|it| {
                    let order = get_s(it, &sk).unwrap_or_default();
                    if floor.as_deref().is_some_and(|f| order < f)
                        || get_n(it, TTL_ATTRIBUTE).is_some_and(|t| t <= now)
                    {
                        return Take::Stop;
                    }
                    match doc::<T>(it) {
                        Ok(v) if !keep(&v) => Take::Skip,
                        _ => Take::Keep,
                    }
                },
            )
            .await?;
        let mut out = Vec::new();
        for it in &items {
            out.push((get_s(it, &sk).unwrap_or_default().to_owned(), doc::<T>(it)?));
        }
        let p = cursor::paginate(out, page.limit, |(order, _)| order.clone());
        Ok(Page {
            items: p.items.into_iter().map(|(_, v)| v).collect(),
            next_cursor: p.next_cursor,
        })
    }

    pub(super) async fn list_log(
        &self,
        f: &LogFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<LogEntry>> {
        // The narrowest index the filter allows; the rest is filtered here.
        let (index, pks) = match (&f.device_id, &f.firmware_id) {
            (Some(d), _) => ("GSI1", vec![keys::log_of_device(d.as_str())]),
            (None, Some(fw)) => ("GSI2", keys::index_shards(&keys::log_of_release(fw))),
            (None, None) => ("GSI3", keys::index_shards(keys::ALL_LOGS)),
        };
        self.newest_first(index, pks, f.since, page, |e: &LogEntry| f.matches(e))
            .await
    }

    pub(super) async fn list_audit_events(
        &self,
        f: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        self.newest_first(
            "GSI3",
            vec![keys::ALL_AUDIT.to_owned()],
            f.since,
            page,
            |e: &AuditEvent| f.matches(e),
        )
        .await
    }

    pub(super) async fn metrics(&self, now: OffsetDateTime) -> StoreResult<FleetMetrics> {
        let mut m = FleetMetrics::default();
        let mut versions: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut outcomes = StatusCounts::default();
        let first_hour = first_outcome_hour(now);
        // Every shard's counters at once: the metrics of a dashboard cost one round trip.
        let read = |pk: String, range: Range| async move {
            self.query(
                &Query {
                    index: None,
                    pk,
                    range,
                    descending: false,
                },
                usize::MAX,
                |_| Take::Keep,
            )
            .await
        };
        let fleet =
            try_join_all((0..keys::COUNTER_SHARDS).map(|n| read(keys::fleet(n), Range::All)));
        let hours = try_join_all((0..keys::COUNTER_SHARDS).map(|n| {
            read(
                keys::outcomes(n),
                Range::AtLeast(keys::hour_floor(first_hour)),
            )
        }));
        let (fleet, hours) = futures_util::try_join!(fleet, hours)?;
        for it in fleet.iter().flatten() {
            if let (Some(dt), Some(v)) = (get_s(it, "fdt"), get_s(it, "fver")) {
                *versions.entry((dt.to_owned(), v.to_owned())).or_default() +=
                    get_n(it, "ndev").unwrap_or(0);
            }
        }
        for it in hours.iter().flatten() {
            if let Some(st) = get_s(it, "st").and_then(OtaStatus::parse) {
                *outcomes.slot(st) += u64::try_from(get_n(it, "cnt").unwrap_or(0)).unwrap_or(0);
            }
        }
        for ((dt, v), count) in versions {
            let Ok(count) = u64::try_from(count) else {
                continue;
            };
            if count == 0 {
                continue;
            }
            m.devices_total += count;
            *m.devices_by_type.entry(dt.clone()).or_default() += count;
            m.versions_by_type.entry(dt).or_default().insert(v, count);
        }
        m.outcomes_24h = outcomes;
        for rollout in self.active_rollouts().await? {
            m.active_rollouts.push(RolloutWithProgress {
                health: None,
                progress: self.read_progress(&rollout.id).await?,
                rollout,
            });
        }
        m.release_health = self.release_health().await?;
        Ok(m)
    }

    /// Keys of an index partition's items older than `before`.
    async fn older_than(&self, pk: &str, before: OffsetDateTime) -> StoreResult<Vec<Item>> {
        let items = self
            .query(
                &Query {
                    index: Some("GSI3"),
                    pk: pk.to_owned(),
                    range: Range::Below(format!("{:020}", micros(before).max(0))),
                    descending: false,
                },
                usize::MAX,
                |_| Take::Keep,
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|it| Some(key(get_s(it, "PK")?, get_s(it, "SK")?)))
            .collect())
    }

    async fn delete_all(&self, keys: Vec<Item>) -> StoreResult<()> {
        for chunk in keys.chunks(BATCH) {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    DeleteRequest::builder()
                        .set_key(Some(k.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| StoreError::Internal(e.to_string()))
                })
                .collect::<StoreResult<_>>()?;
            for round in 0..retry::ROUNDS {
                if pending.is_empty() {
                    break;
                }
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| store_error("BatchWriteItem", &e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() {
                    retry::backoff(round).await;
                }
            }
        }
        Ok(())
    }

    pub(super) async fn purge_before(
        &self,
        audit_before: OffsetDateTime,
        log_before: OffsetDateTime,
    ) -> StoreResult<()> {
        let audit = self.older_than(keys::ALL_AUDIT, audit_before).await?;
        self.delete_all(audit).await?;
        for shard in keys::index_shards(keys::ALL_LOGS) {
            let log = self.older_than(&shard, log_before).await?;
            self.delete_all(log).await?;
        }
        Ok(())
    }
}
