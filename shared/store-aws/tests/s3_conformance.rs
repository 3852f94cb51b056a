//! The blob contract against a real S3 implementation (s3s-fs, started by `cargo xtask test`),
//! plus what only S3 has: presigned URLs checked by the server itself, and multipart uploads.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use ota_core::ports::{BlobMeta, BlobStore, ByteStream, StoreError};
use ota_store_aws::S3Blobs;
use sha2::{Digest, Sha256};

/// The SDK configuration of the local stack. Fails (never skips) without it: a green run must
/// mean the S3 adapter was tested.
async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "AWS_ENDPOINT_URL_S3 is not set: these tests need the local AWS stack. Run them with \
         `cargo xtask test`, or start the stack with `cargo xtask local-aws` and paste the \
         export lines it prints before `cargo test -p ota-store-aws`."
    );
    ota_store_aws::load_sdk_config().await
}

/// A store on a new, empty bucket of its own.
async fn fresh(sdk: &aws_config::SdkConfig) -> S3Blobs {
    let bucket = format!("ota-test-{}", uuid::Uuid::new_v4().simple());
    let blobs = S3Blobs::new(sdk, &bucket);
    blobs
        .client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateBucket {bucket}: {e:?}"));
    blobs
}

fn body(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(stream::iter(chunks))
}

fn meta_of(data: &[u8]) -> BlobMeta {
    BlobMeta {
        size: data.len() as u64,
        sha256: Sha256::digest(data).into(),
    }
}

async fn read_all(s: &S3Blobs, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut st = s.get(key, None).await.unwrap();
    while let Some(c) = st.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..u32::try_from(len).unwrap())
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect()
}

async fn fresh_blobs() -> (Arc<dyn BlobStore>, ()) {
    (Arc::new(fresh(&sdk_config().await).await), ())
}

ota_store_conformance::blob_store_tests!(fresh_blobs);

#[tokio::test]
async fn presigned_get_serves_ranges_and_expires() {
    let s = fresh(&sdk_config().await).await;
    let bytes = data(50_000, 1);
    s.put("firmware/g.bin", body(&bytes, 4096), 1 << 20)
        .await
        .unwrap();
    let http = reqwest::Client::new();

    let url = s
        .download_url("firmware/g.bin", Duration::from_secs(60))
        .await
        .unwrap()
        .url;
    let full = http.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.bytes().await.unwrap(), bytes);

    let part = http
        .get(&url)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), bytes[100..200]);

    // Another key under the same signature.
    let tampered = url.replacen("firmware/g.bin", "firmware/h.bin", 1);
    assert_ne!(tampered, url);
    assert_eq!(http.get(&tampered).send().await.unwrap().status(), 403);

    let short = s
        .download_url("firmware/g.bin", Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(short.expires_at < time::OffsetDateTime::now_utc());
    assert_eq!(http.get(&short.url).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn presigned_put_accepts_only_the_pinned_bytes() {
    let s = fresh(&sdk_config().await).await;
    let good = data(4_000, 2);
    let sha_hex = hex::encode(Sha256::digest(&good));
    let http = reqwest::Client::new();
    let target = |key: &'static str| {
        let s = s.clone();
        let sha_hex = sha_hex.clone();
        async move {
            s.upload_url(key, 4_000, &sha_hex, Duration::from_secs(60))
                .await
                .unwrap()
        }
    };
    let send = |t: &ota_core::ports::UploadTarget, bytes: Vec<u8>, with_length: bool| {
        let mut req = http.put(&t.url);
        for (k, v) in &t.headers {
            if with_length || k != "content-length" {
                req = req.header(k, v);
            }
        }
        req.body(bytes).send()
    };

    let t = target("firmware/ok.bin").await;
    let mut names: Vec<&str> = t.headers.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["content-length", "x-amz-checksum-sha256"]);
    let ok = send(&t, good.clone(), true).await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(read_all(&s, "firmware/ok.bin").await, good);

    // Same length, other bytes: S3 checks the signed checksum (400 BadDigest). s3s-fs keeps
    // the object anyway (docs/local-aws.md), so only the refusal is asserted, on its own key.
    let t = target("firmware/bad.bin").await;
    let mut wrong = good.clone();
    wrong[10] ^= 1;
    let bad = send(&t, wrong, true).await.unwrap();
    assert!(bad.status().is_client_error(), "{}", bad.status());

    // Another length breaks the signed content-length (403).
    let t = target("firmware/long.bin").await;
    let mut long = good.clone();
    long.push(0);
    let long = send(&t, long, false).await.unwrap();
    assert!(long.status().is_client_error(), "{}", long.status());
    assert_eq!(s.size("firmware/long.bin").await.unwrap(), None);
}

/// Bodies above one part go through a multipart upload, which must commit only when complete.
#[tokio::test]
async fn multipart_put_commits_all_or_nothing() {
    let s = fresh(&sdk_config().await).await;
    let big = data(17 * 1024 * 1024 + 123, 3);
    let meta = s
        .put("firmware/big.bin", body(&big, 64 * 1024), 32 << 20)
        .await
        .unwrap();
    assert_eq!(meta, meta_of(&big));
    assert_eq!(
        s.size("firmware/big.bin").await.unwrap(),
        Some(big.len() as u64)
    );
    assert_eq!(
        Sha256::digest(read_all(&s, "firmware/big.bin").await),
        Sha256::digest(&big)
    );

    // Over the limit after two parts went up: aborted, nothing under the key.
    let r = s
        .put("firmware/over.bin", body(&big, 64 * 1024), 16 << 20)
        .await;
    assert_eq!(r, Err(StoreError::TooLarge { limit: 16 << 20 }));
    assert_eq!(s.size("firmware/over.bin").await.unwrap(), None);

    // A stream that breaks after the first part.
    let mut chunks: Vec<std::io::Result<Bytes>> = big[..9 << 20]
        .chunks(1 << 20)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    chunks.push(Err(std::io::Error::other("connection reset")));
    let broken: ByteStream = Box::pin(stream::iter(chunks));
    assert!(
        s.put("firmware/broken.bin", broken, 32 << 20)
            .await
            .is_err()
    );
    assert_eq!(s.size("firmware/broken.bin").await.unwrap(), None);
}

/// A connection failure is `Unavailable` (503 and a retry later), not an internal error.
#[tokio::test]
async fn unreachable_s3_is_unavailable() {
    let sdk = sdk_config().await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        // Nothing listens on port 1; no retries, so the test fails fast.
        .endpoint_url("http://127.0.0.1:1")
        .force_path_style(true)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let s = S3Blobs::from_client(aws_sdk_s3::Client::from_conf(config), "ota-unreachable");
    let r = s.size("firmware/a.bin").await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    let r = s.get("firmware/a.bin", None).await.map(|_| ());
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
}
