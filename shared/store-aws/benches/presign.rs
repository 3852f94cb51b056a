//! The download URL a check hands a device (`S3Blobs::download_url`), both ways, local
//! computation only: `s3_presign/presigned_get`, SigV4 over the query string (static
//! credentials, no endpoint is ever contacted); `cloudfront/sign`, the canned policy signed with
//! RSA 2048 over SHA-1 (a key made from a fixed seed for the bench).

use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use criterion::{Criterion, criterion_group, criterion_main};
use ota_core::ports::BlobStore;
use ota_store_aws::{CloudFrontKey, CloudFrontSigner, RSA_KEY_BITS, S3Blobs};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

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

/// Measures `blobs.download_url` as `<group>/<name>`, once checked to give a URL with `marker`.
fn bench_download_url(c: &mut Criterion, group: &str, name: &str, blobs: &S3Blobs, marker: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let url = rt
        .block_on(blobs.download_url(KEY, Duration::from_secs(900)))
        .expect("download URL");
    assert!(url.url.contains(marker), "{}", url.url);
    let mut group = c.benchmark_group(group);
    group.sample_size(30);
    group.bench_function(name, |b| {
        b.to_async(&rt)
            .iter(|| blobs.download_url(KEY, Duration::from_secs(900)));
    });
    group.finish();
}

fn presign(c: &mut Criterion) {
    bench_download_url(
        c,
        "s3_presign",
        "presigned_get",
        &blobs(),
        "X-Amz-Signature=",
    );
}

fn cloudfront(c: &mut Criterion) {
    let private = rsa::RsaPrivateKey::new(&mut ChaCha8Rng::seed_from_u64(16), RSA_KEY_BITS)
        .expect("bench key");
    let pem = private.to_pkcs8_pem(LineEnding::LF).expect("bench key PEM");
    let key = CloudFrontKey::from_pem(&pem).expect("bench key");
    let blobs = blobs().with_cloudfront(CloudFrontSigner::new(
        "d111111abcdef8.cloudfront.net",
        "K2JCJMDEHXQW5F",
        key,
    ));
    bench_download_url(c, "cloudfront", "sign", &blobs, "&Key-Pair-Id=");
}

criterion_group!(benches, presign, cloudfront);
criterion_main!(benches);
