//! `BlobStore` in memory, test support like [`MemoryMeta`](crate::MemoryMeta): objects are
//! byte vectors, capability URLs are `memory:` URLs nobody serves (the use cases only hand them
//! out). It passes the blob conformance suite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use ota_core::ports::{
    BlobMeta, BlobStore, BorrowedByteStream, ByteRange, ByteStream, SignedUrl, StoreError,
    StoreResult, UploadTarget,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The blob store in memory. Clones share one store.
#[derive(Clone, Default)]
pub struct MemoryBlobs {
    objects: Arc<Mutex<HashMap<String, Bytes>>>,
}

impl MemoryBlobs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every key stored, sorted: what a test checks to see that nothing was left behind.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .lock()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, HashMap<String, Bytes>>> {
        self.objects
            .lock()
            .map_err(|_| StoreError::Internal("the memory blob store's lock is poisoned".into()))
    }
}

/// The whole stream, refusing more than `limit` bytes; nothing is kept of a failed read.
async fn read_all(mut body: BorrowedByteStream<'_>, limit: u64) -> StoreResult<Vec<u8>> {
    let mut data = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| StoreError::Conflict(format!("the upload broke off: {e}")))?;
        data.extend_from_slice(&chunk);
        if data.len() as u64 > limit {
            return Err(StoreError::TooLarge { limit });
        }
    }
    Ok(data)
}

fn meta_of(data: &[u8]) -> BlobMeta {
    BlobMeta {
        size: data.len() as u64,
        sha256: Sha256::digest(data).into(),
    }
}

fn expiry(ttl: Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() + ttl
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn download_url(&self, key: &str, ttl: Duration) -> StoreResult<SignedUrl> {
        let expires_at = expiry(ttl);
        Ok(SignedUrl {
            url: format!("memory:///{key}?exp={}", expires_at.unix_timestamp()),
            expires_at,
        })
    }

    async fn upload_url(
        &self,
        key: &str,
        size: u64,
        sha256_hex: &str,
        ttl: Duration,
    ) -> StoreResult<UploadTarget> {
        let digest = hex::decode(sha256_hex)
            .map_err(|_| StoreError::Internal("the SHA-256 is not hex".into()))?;
        let expires_at = expiry(ttl);
        Ok(UploadTarget {
            url: format!("memory:///{key}?exp={}", expires_at.unix_timestamp()),
            method: "PUT",
            headers: vec![
                ("content-length".into(), size.to_string()),
                (
                    "x-amz-checksum-sha256".into(),
                    base64::engine::general_purpose::STANDARD.encode(digest),
                ),
            ],
            expires_at,
        })
    }

    async fn put<'a>(
        &self,
        key: &str,
        body: BorrowedByteStream<'a>,
        limit: u64,
    ) -> StoreResult<BlobMeta> {
        let data = read_all(body, limit).await?;
        let meta = meta_of(&data);
        self.lock()?.insert(key.to_owned(), Bytes::from(data));
        Ok(meta)
    }

    async fn put_exact<'a>(
        &self,
        key: &str,
        body: BorrowedByteStream<'a>,
        expect: &BlobMeta,
    ) -> StoreResult<BlobMeta> {
        let data = read_all(body, expect.size).await?;
        let meta = meta_of(&data);
        if meta == *expect {
            self.lock()?.insert(key.to_owned(), Bytes::from(data));
        }
        Ok(meta)
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<ByteStream> {
        let data = self.lock()?.get(key).cloned().ok_or(StoreError::NotFound)?;
        let part = match range {
            // Ranges come clamped to the object, so they fit its length.
            Some(r) => {
                let at = |n: u64| usize::try_from(n).map_err(|_| StoreError::NotFound);
                data.slice(at(r.start)?..=at(r.end)?)
            }
            None => data,
        };
        Ok(Box::pin(stream::iter([Ok(part)])))
    }

    async fn size(&self, key: &str) -> StoreResult<Option<u64>> {
        Ok(self.lock()?.get(key).map(|d| d.len() as u64))
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.lock()?.remove(key);
        Ok(())
    }
}
