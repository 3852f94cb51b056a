//! The few DynamoDB calls the adapter makes, with errors mapped once: strongly consistent
//! reads, conditional writes, paged queries, and transactions whose cancellation reasons say
//! which condition lost.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use futures_util::{StreamExt, TryStreamExt};
use ota_core::ports::{StoreError, StoreResult};
use ota_core::retry;

use super::DynamoMeta;
use super::error::{store_error, throttled};
use super::item::{Item, get_s, s};

/// Items in one `BatchWriteItem` (DynamoDB's limit).
const BATCH_WRITE_ITEMS: usize = 25;
/// The bytes one `BatchWriteItem` carries at most (DynamoDB takes 16 MB): large items (a
/// rollout's chunks of named devices, ~262 KB each) go a few a request, so that no request
/// takes long to send within the per-request timeout.
const BATCH_WRITE_BYTES: usize = 1 << 20;
/// `BatchWriteItem`s of one batch put in flight at once.
const BATCH_WRITES_IN_FLIGHT: usize = 16;

/// A key condition on the sort key (or the index's sort key).
#[derive(Clone)]
pub enum Range {
    All,
    Below(String),
    Above(String),
    AtLeast(String),
}

pub struct Query {
    pub index: Option<&'static str>,
    pub pk: String,
    pub range: Range,
    pub descending: bool,
}

/// What a listing does with one item of a query page.
pub enum Take {
    Keep,
    Skip,
    /// This item and everything after it are out of range.
    Stop,
}

/// Why a transaction did not commit.
pub enum TxFail {
    /// Cancelled: the code of each item's failure, in request order (`None` where it passed).
    Cancelled(Vec<Option<String>>),
    Store(StoreError),
}

impl TxFail {
    pub fn condition_failed(reasons: &[Option<String>], index: usize) -> bool {
        reasons
            .get(index)
            .and_then(|c| c.as_deref())
            .is_some_and(|c| c == "ConditionalCheckFailed")
    }
}

/// A put, optionally conditioned; `values` binds the condition's `:names`.
pub fn put(
    item: Item,
    condition: Option<&str>,
    values: &[(&str, AttributeValue)],
    table: &str,
) -> StoreResult<TransactWriteItem> {
    let mut p = Put::builder().table_name(table).set_item(Some(item));
    if let Some(c) = condition {
        p = p.condition_expression(c);
    }
    for (k, v) in values {
        p = p.expression_attribute_values(*k, v.clone());
    }
    Ok(TransactWriteItem::builder()
        .put(p.build().map_err(internal)?)
        .build())
}

/// An update; `names` binds the expression's `#names`, `values` its `:names`.
pub fn update(
    key: Item,
    expression: &str,
    names: &[(&str, String)],
    values: &[(&str, AttributeValue)],
    table: &str,
) -> StoreResult<TransactWriteItem> {
    let mut u = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression);
    for (k, name) in names {
        u = u.expression_attribute_names(*k, name);
    }
    for (k, v) in values {
        u = u.expression_attribute_values(*k, v.clone());
    }
    Ok(TransactWriteItem::builder()
        .update(u.build().map_err(internal)?)
        .build())
}

/// DynamoDB's key size limits (2048 bytes for a partition key, 1024 for a sort key). Ids
/// taken from a request are not length-checked by the API, and a key past these limits is an
/// item that cannot exist, not a fault.
pub fn key_fits(pk: &str, sk: &str) -> bool {
    pk.len() <= 2048 && sk.len() <= 1024
}

/// About the bytes an item's string attributes and names take (what batches are cut by).
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, v)| name.len() + v.as_s().map_or(16, String::len))
        .sum()
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("building a DynamoDB request: {e}"))
}

impl DynamoMeta {
    /// A strongly consistent `GetItem`.
    pub(super) async fn get(&self, pk: &str, sk: &str) -> StoreResult<Option<Item>> {
        if !key_fits(pk, sk) {
            return Ok(None);
        }
        self.client
            .get_item()
            .table_name(&self.table)
            .key("PK", s(pk))
            .key("SK", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map(|out| out.item)
            .map_err(|e| store_error("GetItem", &e))
    }

    /// Strongly consistent `BatchGetItem`s of `keys` (at most 100 a request), the items found
    /// in no particular order. Keys DynamoDB leaves unprocessed (throttling) are asked for
    /// again, a bounded number of times, then the read is `Unavailable`.
    pub(super) async fn batch_get(&self, keys: &[(String, String)]) -> StoreResult<Vec<Item>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(100) {
            let mut wanted = KeysAndAttributes::builder().consistent_read(true);
            for (pk, sk) in chunk {
                wanted = wanted.keys(HashMap::from([
                    ("PK".to_owned(), s(pk)),
                    ("SK".to_owned(), s(sk)),
                ]));
            }
            let mut pending = Some(wanted.build().map_err(internal)?);
            for round in 0..retry::ROUNDS {
                let Some(ask) = pending.take() else {
                    break;
                };
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ask)
                    .send()
                    .await
                    .map_err(|e| store_error("BatchGetItem", &e))?;
                if let Some(mut items) = out.responses
                    && let Some(items) = items.remove(&self.table)
                {
                    found.extend(items);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
                if pending.is_some() {
                    retry::backoff(round).await;
                }
            }
            if pending.is_some() {
                return Err(StoreError::Unavailable(
                    "DynamoDB left keys of a batch read unprocessed; retry".into(),
                ));
            }
        }
        Ok(found)
    }

    /// Unconditional puts of `items` (keys all distinct) by `BatchWriteItem`s: at most 25 items
    /// and ~1 MB a request, up to 16 requests in flight. Items DynamoDB leaves unprocessed
    /// (throttling) are sent again after a jittered pause, a bounded number of times, then the
    /// write is `Unavailable`. Not atomic: after an error, any part of `items` may be stored.
    pub(super) async fn batch_put(&self, items: Vec<Item>) -> StoreResult<()> {
        let mut requests: Vec<Vec<WriteRequest>> = Vec::new();
        let mut bytes = 0;
        for it in items {
            let size = item_size(&it);
            let put = PutRequest::builder()
                .set_item(Some(it))
                .build()
                .map_err(internal)?;
            let write = WriteRequest::builder().put_request(put).build();
            match requests.last_mut() {
                Some(last)
                    if last.len() < BATCH_WRITE_ITEMS && bytes + size <= BATCH_WRITE_BYTES =>
                {
                    bytes += size;
                    last.push(write);
                }
                _ => {
                    bytes = size;
                    requests.push(vec![write]);
                }
            }
        }
        futures_util::stream::iter(requests)
            .map(|writes| self.batch_write(writes))
            .buffer_unordered(BATCH_WRITES_IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    /// One `BatchWriteItem`, its unprocessed items sent again until none is left. A request
    /// refused whole for throttling (every item throttled: DynamoDB answers so rather than with
    /// unprocessed items, after the SDK's own retries) is sent again the same way, so that a
    /// large batch outlasts a table still scaling up; other errors end it at once.
    async fn batch_write(&self, mut pending: Vec<WriteRequest>) -> StoreResult<()> {
        for round in 0..retry::ROUNDS {
            match self
                .client
                .batch_write_item()
                .request_items(&self.table, pending.clone())
                .send()
                .await
            {
                Ok(out) => {
                    pending = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(&self.table))
                        .unwrap_or_default();
                    if pending.is_empty() {
                        return Ok(());
                    }
                }
                Err(e) if throttled(&e) => {}
                Err(e) => return Err(store_error("BatchWriteItem", &e)),
            }
            retry::backoff(round).await;
        }
        Err(StoreError::Unavailable(
            "DynamoDB left items of a batch write unprocessed; retry".into(),
        ))
    }

    /// A `PutItem`; a lost condition is `Conflict`.
    pub(super) async fn put_item(
        &self,
        item: Item,
        condition: Option<&str>,
        values: &[(&str, AttributeValue)],
    ) -> StoreResult<()> {
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if let Some(c) = condition {
            req = req.condition_expression(c);
        }
        for (k, v) in values {
            req = req.expression_attribute_values(*k, v.clone());
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| store_error("PutItem", &e))
    }

    /// Items of one partition in key order, page by page, each passed to `take`, until `want`
    /// items are kept, `take` says stop, or the partition ends. Reads of the table itself are
    /// strongly consistent; index reads cannot be.
    pub(super) async fn query(
        &self,
        q: &Query,
        want: usize,
        mut take: impl FnMut(&Item) -> Take,
    ) -> StoreResult<Vec<Item>> {
        let (pk_name, sk_name) = match q.index {
            Some(i) => (format!("{i}PK"), format!("{i}SK")),
            None => ("PK".to_owned(), "SK".to_owned()),
        };
        let condition = match &q.range {
            Range::All => "#pk = :pk".to_owned(),
            Range::Below(_) => "#pk = :pk AND #sk < :sk".to_owned(),
            Range::Above(_) => "#pk = :pk AND #sk > :sk".to_owned(),
            Range::AtLeast(_) => "#pk = :pk AND #sk >= :sk".to_owned(),
        };
        let mut kept = Vec::new();
        let mut start: Option<Item> = None;
        if !key_fits(&q.pk, "") {
            return Ok(kept);
        }
        loop {
            let mut req = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(&condition)
                .expression_attribute_names("#pk", &pk_name)
                .expression_attribute_values(":pk", s(&q.pk))
                .scan_index_forward(!q.descending)
                .set_exclusive_start_key(start.take());
            match &q.range {
                Range::All => {}
                Range::Below(v) | Range::Above(v) | Range::AtLeast(v) => {
                    req = req
                        .expression_attribute_names("#sk", &sk_name)
                        .expression_attribute_values(":sk", s(v));
                }
            }
            match q.index {
                Some(i) => req = req.index_name(i),
                None => req = req.consistent_read(true),
            }
            // Pages no larger than needed when nothing is filtered out; at least a few items
            // so that filtered listings do not crawl.
            let page =
                i32::try_from(want.saturating_sub(kept.len()).clamp(10, 1000)).unwrap_or(1000);
            let out = req
                .limit(page)
                .send()
                .await
                .map_err(|e| store_error("Query", &e))?;
            for it in out.items.unwrap_or_default() {
                match take(&it) {
                    Take::Keep => {
                        kept.push(it);
                        if kept.len() >= want {
                            return Ok(kept);
                        }
                    }
                    Take::Skip => {}
                    Take::Stop => return Ok(kept),
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(kept),
            }
        }
    }

    /// [`query`](Self::query) of the same range in each of `pks` (the partitions of a sharded
    /// index partition, `keys::index_shards`), merged in key order: the first `want` kept items
    /// of them all, each partition read at once and no further than `want` of its own. Sort
    /// keys are unique across the partitions (an item is in one of them).
    pub(super) async fn query_partitions(
        &self,
        index: &'static str,
        pks: Vec<String>,
        range: &Range,
        descending: bool,
        want: usize,
        take: &(impl Fn(&Item) -> Take + Sync),
    ) -> StoreResult<Vec<Item>> {
        let reads = pks.into_iter().map(|pk| async move {
            let q = Query {
                index: Some(index),
                pk,
                range: range.clone(),
                descending,
            };
            self.query(&q, want, take).await
        });
        let sk = format!("{index}SK");
        let mut items: Vec<Item> = futures_util::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect();
        items.sort_by(|a, b| {
            let order = get_s(a, &sk).cmp(&get_s(b, &sk));
            if descending { order.reverse() } else { order }
        });
        items.truncate(want);
        Ok(items)
    }

    /// One `TransactWriteItems`. Throttling and conflicts with another transaction are
    /// `Unavailable` only when no condition failed: the caller retries lost conditions itself.
    pub(super) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxFail> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let codes: Vec<Option<String>> = c
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().filter(|c| *c != "None").map(str::to_owned))
                        .collect();
                    let throttled = codes
                        .iter()
                        .flatten()
                        .any(|c| c.contains("Throttl") || c.contains("ProvisionedThroughput"));
                    if !throttled {
                        return Err(TxFail::Cancelled(codes));
                    }
                }
                Err(TxFail::Store(store_error("TransactWriteItems", &e)))
            }
        }
    }
}
