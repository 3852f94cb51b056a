//! The check decision (`rules::decide`, pure) over a device type with 100 active rollouts: the
//! work `check` does per request once the store has answered. Rollouts of every target type are
//! mixed in, so canary bucketing (a SHA-256 per canary rollout) and group/list matching are paid.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ota_core::device::{Device, DeviceSnapshot};
use ota_core::ports::{ReleaseOption, ReleaseView};
use ota_core::release::ReleaseState;
use ota_core::rollout::{RolloutState, TargetType};
use ota_core::rules;
use ota_store_conformance::fixtures::{check_in, release, rollout};

const ROLLOUTS: usize = 100;

/// 100 releases 1.0.1 .. 1.0.100 of one type, each with an active rollout; every fourth is a
/// canary at 50 %, every fourth a group rollout, every fourth a named-device list, the rest all.
fn view() -> ReleaseView {
    let options = (1..=ROLLOUTS)
        .map(|i| {
            let fw = release("bench", &format!("1.0.{i}"), ReleaseState::Ready);
            let mut r = rollout(&fw, RolloutState::Active);
            match i % 4 {
                0 => {
                    r.target_type = TargetType::Canary;
                    r.rollout_percentage = 50.0;
                }
                1 => {
                    r.target_type = TargetType::Group;
                    r.target_filter.groups = vec![format!("group-{i}"), "beta".into()];
                }
                2 => {
                    // Names 20 devices, kept apart; the device is named by other rollouts.
                    r.target_type = TargetType::Specific;
                    r.named_devices = 20;
                }
                _ => {}
            }
            Arc::new(ReleaseOption {
                rollout: r,
                release: fw,
            })
        })
        .collect();
    ReleaseView {
        chip: Some("esp32c3".into()),
        options,
    }
}

fn decision(c: &mut Criterion) {
    let view = view();
    let check_in = check_in("dev-bench-0042", "bench", "1.0.0");
    let snapshot = DeviceSnapshot {
        device: Device::checked_in(None, &check_in, None).device,
        failures: Vec::new(),
        last_offer_status: None,
        named_in: (0..5).map(|i| format!("another rollout {i}")).collect(),
    };
    assert!(rules::decide(&view, &check_in, &snapshot).is_some());
    let mut group = c.benchmark_group("check_decision");
    group.sample_size(50);
    group.bench_function("decide_100_active_rollouts", |b| {
        b.iter(|| rules::decide(black_box(&view), black_box(&check_in), black_box(&snapshot)));
    });
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
