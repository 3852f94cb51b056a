//! The whole `check` use case on the embedded store (SQLite in a temp dir, capability URLs),
//! 100 active rollouts of the device's type: what one `POST /api/ota/check` costs `ota-server`
//! below HTTP and JWT. Devices cycle through 1,000 already registered ids, each already offered
//! the update, so every iteration is the steady-state answer "update available" (a release
//! view read, the device's write transaction, a capability URL).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use ota_core::capability::CapabilitySigner;
use ota_core::cmd::check::CheckAnswer;
use ota_core::ports::{BlobStore, MetaStore};
use ota_core::release::ReleaseState;
use ota_core::rollout::RolloutState;
use ota_store_conformance::fixtures::{check_input, release, rollout, service};
use ota_store_embedded::{LocalBlobs, SqliteMeta};

const ROLLOUTS: usize = 100;
const DEVICES: usize = 1000;

async fn seeded(dir: &std::path::Path) -> (Arc<dyn MetaStore>, Arc<dyn BlobStore>) {
    let meta = SqliteMeta::open(&dir.join("ota.sqlite3")).expect("open sqlite");
    for i in 1..=ROLLOUTS {
        let fw = release("bench", &format!("1.0.{i}"), ReleaseState::Ready);
        meta.insert_release(&fw).await.expect("insert firmware");
        meta.insert_rollout(&rollout(&fw, RolloutState::Active), &[])
            .await
            .expect("insert rollout");
    }
    let blobs = LocalBlobs::open(
        &dir.join("blobs"),
        "http://127.0.0.1:8080",
        CapabilitySigner::from_secret(b"bench"),
    )
    .expect("open blobs");
    (Arc::new(meta), Arc::new(blobs))
}

fn check_on_sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (meta, blobs) = rt.block_on(seeded(dir.path()));
    let svc = service(meta, blobs);
    let check_ins: Vec<_> = (0..DEVICES)
        .map(|d| check_input(&format!("dev-{d}"), "bench", "1.0.0"))
        .collect();
    // Register every device once (the first check writes the registration transaction).
    rt.block_on(async {
        for c in &check_ins {
            let answer = svc.check(c.clone()).await;
            assert!(matches!(answer, Ok(CheckAnswer::Update { .. })));
        }
    });
    let mut next = 0usize;
    let mut group = c.benchmark_group("check_sqlite");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("check_100_active_rollouts", |b| {
        b.to_async(&rt).iter(|| {
            next = (next + 1) % DEVICES;
            let (svc, c) = (svc.clone(), check_ins[next].clone());
            async move { svc.check(c).await }
        });
    });
    group.finish();
}

criterion_group!(benches, check_on_sqlite);
criterion_main!(benches);
