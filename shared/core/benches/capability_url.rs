//! Capability URL signing and verification on the embedded server (HMAC-SHA256): one sign per
//! check that offers an update, one verify per download request (each Range request too).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ota_core::capability::CapabilitySigner;

const KEY: &str = "firmware/0192f5a0-7b1c-7d4e-9a3b-5c6d7e8f9a0b.bin";
const EXPIRES: i64 = 1_900_000_000;

fn capability(c: &mut Criterion) {
    let signer = CapabilitySigner::from_secret(b"a bench secret of thirty-two bytes..");
    let sig = signer.sign("GET", KEY, EXPIRES, &[]);
    let mut group = c.benchmark_group("capability_url");
    group.sample_size(50);
    group.bench_function("sign", |b| {
        b.iter(|| signer.sign(black_box("GET"), black_box(KEY), black_box(EXPIRES), &[]));
    });
    group.bench_function("verify", |b| {
        b.iter(|| signer.verify("GET", black_box(KEY), EXPIRES, &[], black_box(&sig)));
    });
    group.finish();
}

criterion_group!(benches, capability);
criterion_main!(benches);
