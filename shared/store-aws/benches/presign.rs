//! Presigning the S3 GET that a check hands a device (`S3Blobs::download_url`): SigV4 over the
//! query string, local computation only (static credentials, no endpoint is ever contacted).

use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use criterion::{Criterion, criterion_group, criterion_main};
use ota_core::ports::BlobStore;
use ota_store_aws::S3Blobs;

const KEY: &str = "firmware/0192f5a0-7b1c-7d4e-9a3b-5c6d7e8f9a0b.bin";

fn blobs() -> S3Blobs {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDBENCHEXAMPLE",
            "bench/secret/key/not/a/real/one",
            None,
            None,
            "bench",
        ))
        .build();
    S3Blobs::from_client(aws_sdk_s3::Client::from_conf(config), "ota-firmware-bench")
}

fn presign(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let blobs = blobs();
    let url = rt
        .block_on(blobs.download_url(KEY, Duration::from_secs(900)))
        .expect("presign");
    assert!(url.url.contains("X-Amz-Signature="), "{}", url.url);
    let mut group = c.benchmark_group("s3_presign");
    group.sample_size(30);
    group.bench_function("presigned_get", |b| {
        b.to_async(&rt)
            .iter(|| blobs.download_url(KEY, Duration::from_secs(900)));
    });
    group.finish();
}

criterion_group!(benches, presign);
criterion_main!(benches);
