//! `BlobStore` on S3: download URLs for devices (signed CloudFront URLs when a distribution is
//! configured, else presigned S3 GETs), presigned PUT URLs for CI, and server-side streaming
//! uploads (the one-shot multipart route) that commit all or nothing.
//!
//! Commit rule for `put` and `put_exact`: the bytes are counted and hashed while they stream, and
//! the object becomes visible only once the whole stream was read and passed the check (limit,
//! or size and SHA-256). A body that fits in one part is held in memory and written with one
//! `PutObject` after the check; a larger one goes up as a multipart upload, which S3 keeps
//! invisible until `CompleteMultipartUpload`, and which is aborted instead on any error, on an
//! over-limit body or on a mismatch. So nothing ever relies on the server refusing a wrong
//! checksum: s3s-fs 0.14.1 answers 400 `BadDigest` but keeps the wrong bytes (docs/local-aws.md),
//! and wrong bytes are never sent to a commit here in the first place. No temporary key and
//! no `CopyObject` are needed (nor the 5 GB single-copy limit, nor a second write of the bytes).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream as SdkByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use ota_core::ports::{
    BlobMeta, BlobStore, BorrowedByteStream, ByteRange, ByteStream, SignedUrl, StoreError,
    StoreResult, UploadTarget,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::CloudFrontSigner;

/// Size of a multipart part (S3 wants at least 5 MiB for all but the last) and of the largest
/// body held in memory for a single `PutObject`. ESP32 images are a few MiB: most uploads take
/// the single-request path.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Firmware blobs in one S3 bucket, under the keys the domain chooses (`firmware/<id>.bin`).
#[derive(Clone)]
pub struct S3Blobs {
    client: Client,
    bucket: String,
    /// Devices download through this distribution when set; uploads always go to S3.
    cloudfront: Option<CloudFrontSigner>,
}

impl S3Blobs {
    /// A client from the shared SDK configuration. Path-style addressing
    /// (`http://host/bucket/key`) is switched on whenever the S3 endpoint is overridden
    /// (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, or an endpoint set on `sdk`): local S3
    /// servers (s3s-fs, MinIO) do not serve `bucket.host` names. Real S3 keeps virtual-hosted
    /// addressing, the style AWS recommends.
    pub fn new(sdk: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let overridden = sdk.endpoint_url().is_some()
            || ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
                .iter()
                .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(overridden)
            .build();
        Self::from_client(Client::from_conf(config), bucket)
    }

    /// For a caller that configures the client itself (addressing style included).
    pub fn from_client(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            cloudfront: None,
        }
    }

    /// Download URLs signed for `signer`'s distribution instead of presigned S3 GETs (the bucket
    /// is then private to the distribution: infra/template.yaml, `CloudFront=enabled`).
    #[must_use]
    pub fn with_cloudfront(mut self, signer: CloudFrontSigner) -> Self {
        self.cloudfront = Some(signer);
        self
    }

    /// The underlying client, e.g. for tests that create buckets.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Streams `body` to `key`, committing only when it holds at most `limit` bytes and, with
    /// `expect`, exactly those bytes. Returns what the stream held (also on a mismatch).
    async fn upload(
        &self,
        key: &str,
        mut body: BorrowedByteStream<'_>,
        limit: u64,
        expect: Option<&BlobMeta>,
    ) -> StoreResult<BlobMeta> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = BytesMut::new();
        let mut multipart: Option<Multipart> = None;
        let result: StoreResult<BlobMeta> = async {
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|e| StoreError::Conflict(format!("upload interrupted: {e}")))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(StoreError::TooLarge { limit });
                }
                hasher.update(&chunk);
                buf.extend_from_slice(&chunk);
                if buf.len() >= PART_SIZE {
                    let part = buf.split().freeze();
                    let mp = match multipart.as_mut() {
                        Some(mp) => mp,
                        None => multipart.insert(Multipart::create(self, key).await?),
                    };
                    mp.upload_part(self, key, part).await?;
                }
            }
            Ok(BlobMeta {
                size,
                sha256: hasher.finalize().into(),
            })
        }
        .await;

        let meta = match result {
            Ok(meta) => meta,
            Err(e) => {
                if let Some(mp) = multipart {
                    mp.abort(self, key).await;
                }
                return Err(e);
            }
        };
        if expect.is_some_and(|want| *want != meta) {
            if let Some(mp) = multipart {
                mp.abort(self, key).await;
            }
            return Ok(meta);
        }
        let committed = match multipart {
            None => self.put_object(key, buf.freeze(), &meta).await,
            Some(mut mp) => {
                let last = async {
                    if !buf.is_empty() {
                        mp.upload_part(self, key, buf.freeze()).await?;
                    }
                    Ok::<_, StoreError>(())
                }
                .await;
                match last {
                    Ok(()) => mp.complete(self, key).await,
                    Err(e) => {
                        mp.abort(self, key).await;
                        Err(e)
                    }
                }
            }
        };
        committed.map(|()| meta)
    }

    async fn put_object(&self, key: &str, bytes: Bytes, meta: &BlobMeta) -> StoreResult<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            // Our own hash of what we send: S3 checks it end to end.
            .checksum_sha256(B64.encode(meta.sha256))
            .body(SdkByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("PutObject", &e))
    }
}

/// A multipart upload in progress: invisible under its key until completed.
struct Multipart {
    upload_id: String,
    parts: Vec<CompletedPart>,
}

impl Multipart {
    async fn create(s: &S3Blobs, key: &str) -> StoreResult<Self> {
        let out = s
            .client
            .create_multipart_upload()
            .bucket(&s.bucket)
            .key(key)
            // Each part carries its SHA-256, so S3 checks every part as it arrives.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| sdk_error("CreateMultipartUpload", &e))?;
        let upload_id = out
            .upload_id
            .ok_or_else(|| StoreError::Internal("CreateMultipartUpload: no upload id".into()))?;
        Ok(Self {
            upload_id,
            parts: Vec::new(),
        })
    }

    async fn upload_part(&mut self, s: &S3Blobs, key: &str, part: Bytes) -> StoreResult<()> {
        let number = i32::try_from(self.parts.len() + 1)
            .map_err(|_| StoreError::Internal("too many parts".into()))?;
        let checksum = B64.encode(Sha256::digest(&part));
        let out = s
            .client
            .upload_part()
            .bucket(&s.bucket)
            .key(key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .checksum_sha256(&checksum)
            .body(SdkByteStream::from(part))
            .send()
            .await
            .map_err(|e| sdk_error("UploadPart", &e))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .checksum_sha256(checksum)
                .build(),
        );
        Ok(())
    }

    async fn complete(mut self, s: &S3Blobs, key: &str) -> StoreResult<()> {
        let done = s
            .client
            .complete_multipart_upload()
            .bucket(&s.bucket)
            .key(key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = sdk_error("CompleteMultipartUpload", &e);
                self.abort(s, key).await;
                Err(err)
            }
        }
    }

    /// Best effort: a failed abort leaves parts that are invisible under the key and billed
    /// until the bucket's `AbortIncompleteMultipartUpload` lifecycle rule removes them.
    async fn abort(self, s: &S3Blobs, key: &str) {
        let aborted = s
            .client
            .abort_multipart_upload()
            .bucket(&s.bucket)
            .key(key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(key, error = %DisplayErrorContext(&e), "AbortMultipartUpload failed");
        }
    }
}

/// Presigning settings from now, and the moment the URL stops working.
fn presigning(ttl: Duration) -> StoreResult<(PresigningConfig, OffsetDateTime)> {
    let start = SystemTime::now();
    let config = PresigningConfig::builder()
        .start_time(start)
        .expires_in(ttl)
        .build()
        .map_err(|e| StoreError::Internal(format!("presigning: {e}")))?;
    Ok((config, OffsetDateTime::from(start) + ttl))
}

/// Throttling, 5xx and connection failures are worth a retry later (503 at the HTTP edge); a
/// 404 is `NotFound`; anything else is a bug or misconfiguration, logged with the SDK's text
/// (error codes and messages, never credentials).
fn sdk_error<E>(op: &str, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default();
    let text = format!("S3 {op}: {}", DisplayErrorContext(err));
    let throttled = matches!(
        code,
        "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded"
    );
    match err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => StoreError::Unavailable(text),
        // Also a 404, but a deployment error: the firmware is not merely absent.
        _ if code == "NoSuchBucket" => StoreError::Internal(text),
        _ if status == Some(404) || matches!(code, "NoSuchKey" | "NotFound") => {
            StoreError::NotFound
        }
        _ if throttled || status.is_some_and(|s| s == 429 || s >= 500) => {
            StoreError::Unavailable(text)
        }
        _ => StoreError::Internal(text),
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn download_url(&self, key: &str, ttl: Duration) -> StoreResult<SignedUrl> {
        if let Some(cloudfront) = &self.cloudfront {
            return cloudfront.download_url(key, ttl);
        }
        let (config, expires_at) = presigning(ttl)?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| sdk_error("presign GetObject", &e))?;
        Ok(SignedUrl {
            url: req.uri().to_owned(),
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
        let sha = hex::decode(sha256_hex)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| StoreError::Internal("file hash is not 32 bytes of hex".into()))?;
        let length = i64::try_from(size)
            .map_err(|_| StoreError::Internal("upload size out of range".into()))?;
        let (config, expires_at) = presigning(ttl)?;
        // Both values are signed into the URL (no `.checksum_algorithm()`, which would make the
        // SDK expect to compute the checksum itself): S3 refuses another length with 403 and
        // other bytes of that length with 400 BadDigest.
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(length)
            .checksum_sha256(B64.encode(sha))
            .presigned(config)
            .await
            .map_err(|e| sdk_error("presign PutObject", &e))?;
        Ok(UploadTarget {
            url: req.uri().to_owned(),
            method: "PUT",
            // The signed headers the client must send (the host comes with the URL).
            headers: req
                .headers()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
                .collect(),
            expires_at,
        })
    }

    async fn put<'a>(
        &self,
        key: &str,
        body: BorrowedByteStream<'a>,
        limit: u64,
    ) -> StoreResult<BlobMeta> {
        self.upload(key, body, limit, None).await
    }

    async fn put_exact<'a>(
        &self,
        key: &str,
        body: BorrowedByteStream<'a>,
        expect: &BlobMeta,
    ) -> StoreResult<BlobMeta> {
        // Identical bytes may replace identical bytes (a retried upload); other bytes never
        // reach a commit, so an existing object stays as it was.
        self.upload(key, body, expect.size, Some(expect)).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<ByteStream> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.map(|r| format!("bytes={}-{}", r.start, r.end)))
            .send()
            .await
            .map_err(|e| sdk_error("GetObject", &e))?;
        let stream = futures_util::stream::unfold(out.body, |mut body| async move {
            body.next()
                .await
                .map(|chunk| (chunk.map_err(std::io::Error::other), body))
        });
        Ok(Box::pin(stream))
    }

    async fn size(&self, key: &str) -> StoreResult<Option<u64>> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match head {
            Ok(out) => out
                .content_length
                .and_then(|n| u64::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| StoreError::Internal("HeadObject: no content length".into())),
            Err(e) => match sdk_error("HeadObject", &e) {
                StoreError::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        // S3 answers 204 for a missing key too; a server that says 404 means the same.
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match deleted.map_err(|e| sdk_error("DeleteObject", &e)) {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
