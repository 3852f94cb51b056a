//! Items as the adapter writes them: keys, the JSON `doc` of the domain record, and typed
//! reads of the few attributes that conditions and counters use.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use ota_core::ports::{StoreError, StoreResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute; every number stored is an integer.
pub fn n(v: impl Into<i128>) -> AttributeValue {
    AttributeValue::N(v.into().to_string())
}

pub fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The primary key of an item.
pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(sk))])
}

/// An item: its key, its `doc` and further attributes.
pub fn item<T: Serialize>(
    pk: impl Into<String>,
    sk: impl Into<String>,
    doc: &T,
    attrs: impl IntoIterator<Item = (&'static str, AttributeValue)>,
) -> StoreResult<Item> {
    let mut it = key(pk, sk);
    it.insert("doc".to_owned(), s(to_json(doc)?));
    for (k, v) in attrs {
        it.insert(k.to_owned(), v);
    }
    Ok(it)
}

pub fn to_json<T: Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Internal(format!("encoding a record: {e}")))
}

pub fn doc<T: DeserializeOwned>(item: &Item) -> StoreResult<T> {
    let text = get_s(item, "doc")
        .ok_or_else(|| StoreError::Internal("an item without its doc attribute".into()))?;
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("a stored record does not decode: {e}")))
}

pub fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// A sort key that orders by time, then by id (unique, so cursors never skip a tie).
pub fn time_key(t: OffsetDateTime, id: &str) -> String {
    format!("{:020}#{id}", micros(t).max(0))
}

/// The DynamoDB TTL value of a record written at `t` and kept for `keep`.
pub fn expires(t: OffsetDateTime, keep: std::time::Duration) -> AttributeValue {
    n(t.unix_timestamp()
        .saturating_add(i64::try_from(keep.as_secs()).unwrap_or(i64::MAX)))
}

/// A small stable hash, to spread a counter's writes over shards.
pub fn shard(id: &str, shards: u32) -> u32 {
    // FNV-1a: stable across processes and releases, unlike std's hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h % shards
}
