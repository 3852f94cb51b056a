//! The write of the batched `last_seen` refreshes (`last_seen.rs`) of a fleet of 16,384 devices
//! (the size of `cargo xtask bench`'s), each device registered with a document like a real
//! one's (type, version, groups, a running image, a boot report): what one flush costs the
//! steady poll every five seconds. Each iteration refreshes every device in memory (untimed),
//! then times the read that writes the batch first (`get_device` of one device).

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use ota_core::ports::MetaStore;
use ota_store_conformance::fixtures::{boot, dev, release_of_image, running};
use ota_store_embedded::SqliteMeta;

const DEVICES: usize = 16_384;

fn last_seen_batch(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = SqliteMeta::open(&dir.path().join("ota.sqlite3")).expect("open sqlite");
    let image = "ab".repeat(32);
    let ids: Vec<String> = (0..DEVICES).map(|d| format!("device-{d:05}")).collect();
    let mut uptime = 5;
    // Every poll of a device is `uptime` seconds into its one boot: the same boot, refreshed.
    let booted = running("any", "bench", None, None).at;
    let poll = |id: &str, uptime: u64| {
        let mut c = running(
            id,
            "bench",
            Some(&image),
            Some(boot("poweron", 1, 0, uptime)),
        );
        c.at = booted + Duration::from_secs(uptime);
        c
    };
    rt.block_on(async {
        meta.insert_release(&release_of_image("bench", "1.0.0", &image))
            .await
            .expect("insert release");
        for id in &ids {
            meta.record_check(&poll(id, uptime), &|_| None)
                .await
                .expect("register");
        }
    });
    let mut group = c.benchmark_group("last_seen_batch");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("flush_16384_devices", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                uptime += 5;
                rt.block_on(async {
                    for id in &ids {
                        meta.record_check(&poll(id, uptime), &|_| None)
                            .await
                            .expect("steady poll");
                    }
                    let start = Instant::now();
                    meta.get_device(&dev(&ids[0]))
                        .await
                        .expect("read")
                        .expect("registered");
                    timed += start.elapsed();
                });
            }
            timed
        });
    });
    group.finish();
}

criterion_group!(benches, last_seen_batch);
criterion_main!(benches);
