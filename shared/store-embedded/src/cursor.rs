//! Opaque pagination cursors: the sort position of the last item returned, as URL-safe base64
//! JSON, so that pages stay stable while rows are added.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ota_core::ports::{StoreError, StoreResult};
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
