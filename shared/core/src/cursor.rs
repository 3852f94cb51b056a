//! Opaque pagination cursors: the sort position of the last item returned, as URL-safe base64
//! JSON, so that pages stay stable while rows are added.

use crate::ports::{Page, StoreError, StoreResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Serialize, de::DeserializeOwned};

pub fn encode<T: Serialize>(position: &T) -> String {
    let json = serde_json::to_vec(position).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

pub fn decode<T: DeserializeOwned>(cursor: Option<&str>) -> StoreResult<Option<T>> {
    let Some(c) = cursor else { return Ok(None) };
    let bytes = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| StoreError::BadCursor)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| StoreError::BadCursor)
}

/// A page of `limit` items from `items` fetched with one extra: the extra says whether a next
/// page exists, and the cursor is the sort position `key` of the last item kept.
pub fn paginate<T, K: Serialize>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| encode(&key(last)))
    } else {
        None
    };
    Page { items, next_cursor }
}
