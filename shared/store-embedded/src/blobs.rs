//! `BlobStore` on a local directory, with HMAC capability URLs that the server itself answers.
//! Objects are written whole or not at all: temp file, fsync, rename, fsync of the directory.
//! They are read through a memory map (`map_object`), kept between reads (`MappedObjects`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use ota_core::capability::{CAPABILITY_PATH, CapabilitySigner};
use ota_core::ports::{
    BlobMeta, BlobStore, BorrowedByteStream, ByteRange, ByteStream, SignedUrl, StoreError,
    StoreResult, UploadTarget,
};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::mapped_objects::MappedObjects;

pub struct LocalBlobs {
    root: PathBuf,
    public_url: String,
    signer: CapabilitySigner,
    maps: MappedObjects,
}

impl LocalBlobs {
    pub fn open(root: &Path, public_url: &str, signer: CapabilitySigner) -> StoreResult<Self> {
        for dir in [root.join("firmware"), root.join("tmp")] {
            std::fs::create_dir_all(&dir).map_err(io_err)?;
        }
        Ok(Self {
            root: root.to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            signer,
            maps: MappedObjects::default(),
        })
    }

    /// `key`'s object, mapped: kept from an earlier read, or mapped now (and kept).
    async fn mapped(&self, key: &str) -> StoreResult<Bytes> {
        let generation = match self.maps.get(key) {
            Ok(map) => return Ok(map),
            Err(generation) => generation,
        };
        let path = self.path(key)?;
        let map = tokio::task::spawn_blocking(move || map_object(&path))
            .await
            .map_err(|e| StoreError::Internal(format!("blocking task failed: {e}")))??;
        self.maps.keep(key, generation, &map);
        Ok(map)
    }

    /// Maps a key to a file, refusing anything that could escape the root.
    fn path(&self, key: &str) -> StoreResult<PathBuf> {
        let safe = !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
        if safe {
            Ok(self.root.join(key))
        } else {
            Err(StoreError::NotFound)
        }
    }
}

impl LocalBlobs {
    /// Streams `body` into a new temporary file, counting and hashing; removes it on failure.
    async fn receive(
        &self,
        mut body: BorrowedByteStream<'_>,
        limit: u64,
    ) -> StoreResult<(PathBuf, BlobMeta)> {
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}.part", uuid::Uuid::new_v4()));
        let result: StoreResult<BlobMeta> = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(io_err)?;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|e| StoreError::Conflict(format!("upload interrupted: {e}")))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(StoreError::TooLarge { limit });
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(io_err)?;
            }
            file.sync_all().await.map_err(io_err)?;
            Ok(BlobMeta {
                size,
                sha256: hasher.finalize().into(),
            })
        }
        .await;
        match result {
            Ok(meta) => Ok((tmp, meta)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }
}

/// Moves a received temporary file into place, durably.
async fn commit(tmp: &Path, dest: &Path) -> StoreResult<()> {
    let result = async {
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io_err)?;
        }
        tokio::fs::rename(tmp, dest).await.map_err(io_err)?;
        if let Some(parent) = dest.parent() {
            // The rename is durable only once the directory entry is.
            sync_dir(parent).await?;
        }
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(tmp).await;
    }
    result
}

#[allow(clippy::needless_pass_by_value)] // an adapter for `map_err`, which hands over the error
fn io_err(e: std::io::Error) -> StoreError {
    StoreError::Internal(format!("blob storage: {e}"))
}

fn expiry(ttl: Duration) -> (i64, time::OffsetDateTime) {
    let at = time::OffsetDateTime::now_utc() + ttl;
    (at.unix_timestamp(), at)
}

#[async_trait]
impl BlobStore for LocalBlobs {
    async fn download_url(&self, key: &str, ttl: Duration) -> StoreResult<SignedUrl> {
        let (exp, expires_at) = expiry(ttl);
        let sig = self.signer.sign("GET", key, exp, &[]);
        Ok(SignedUrl {
            url: format!(
                "{}{CAPABILITY_PATH}{key}?exp={exp}&sig={sig}",
                self.public_url
            ),
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
        let (exp, expires_at) = expiry(ttl);
        let size_s = size.to_string();
        let sig = self.signer.sign("PUT", key, exp, &[&size_s, sha256_hex]);
        let sha_b64 = hex::decode(sha256_hex)
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .map_err(|_| StoreError::Internal("file hash is not hex".into()))?;
        Ok(UploadTarget {
            url: format!(
                "{}{CAPABILITY_PATH}{key}?exp={exp}&size={size}&sha256={sha256_hex}&sig={sig}",
                self.public_url
            ),
            method: "PUT",
            headers: vec![
                ("content-length".to_owned(), size_s),
                ("x-amz-checksum-sha256".to_owned(), sha_b64),
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
        let dest = self.path(key)?;
        let (tmp, meta) = self.receive(body, limit).await?;
        let committed = commit(&tmp, &dest).await;
        self.maps.forget(key);
        committed.map(|()| meta)
    }

    async fn put_exact<'a>(
        &self,
        key: &str,
        body: BorrowedByteStream<'a>,
        expect: &BlobMeta,
    ) -> StoreResult<BlobMeta> {
        let dest = self.path(key)?;
        let (tmp, meta) = self.receive(body, expect.size).await?;
        if meta == *expect {
            let committed = commit(&tmp, &dest).await;
            self.maps.forget(key);
            committed?;
        } else {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        Ok(meta)
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<ByteStream> {
        let object = self.mapped(key).await?;
        let bytes = match range {
            Some(r) => {
                let end = usize::try_from(r.end.saturating_add(1))
                    .unwrap_or(usize::MAX)
                    .min(object.len());
                let start = usize::try_from(r.start).unwrap_or(usize::MAX).min(end);
                object.slice(start..end)
            }
            None => object,
        };
        Ok(Box::pin(futures_util::stream::once(async move {
            Ok::<_, std::io::Error>(bytes)
        })))
    }

    async fn size(&self, key: &str) -> StoreResult<Option<u64>> {
        // Through the map the download that follows will read: no second look at the file.
        match self.mapped(key).await {
            Ok(map) => Ok(Some(map.len() as u64)),
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let path = self.path(key)?;
        let removed = tokio::fs::remove_file(&path).await;
        self.maps.forget(key);
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(e)),
        }
    }
}

async fn sync_dir(dir: &Path) -> StoreResult<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir).and_then(|f| f.sync_all()))
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
        .map_err(io_err)
}

/// The whole object, mapped: hyper writes from the page cache with no read into a buffer and no
/// hand-off to the blocking pool per chunk (reading through `tokio::fs` cost both, and held
/// downloads to 40 % of nginx's `sendfile`).
fn map_object(path: &Path) -> StoreResult<Bytes> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StoreError::NotFound),
        Err(e) => return Err(io_err(e)),
    };
    if file.metadata().map_err(io_err)?.len() == 0 {
        return Ok(Bytes::new()); // mmap refuses an empty file
    }
    // SAFETY: a mapped file must not shrink while mapped. Objects here are never written in
    // place: each is written to tmp/ and renamed over its key (`commit`), and removed by
    // unlinking, so a mapping always refers to a whole, unchanging file.
    #[allow(unsafe_code)] // the one unsafe of this crate; sound as said above
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err)?;
    Ok(Bytes::from_owner(map))
}
