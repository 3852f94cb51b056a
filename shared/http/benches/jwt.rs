//! JWT verification (HS256), once per device request (`verify_device`) and per admin request
//! (`verify_admin`, which also reads the header to pick the key). A device token is verified in
//! full the first time a process sees it (`verify_device_new`: more distinct tokens than the
//! process remembers, taken in turn) and found among the remembered after that
//! (`verify_device_again`).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ota_core::ids::{DeviceId, DeviceType};
use ota_http::auth::{AuthConfig, Role};
use ota_http::verified_tokens::GENERATION;

fn jwt(c: &mut Criterion) {
    let auth = AuthConfig::new(b"a bench secret of thirty-two bytes..", None, true);
    let device = auth
        .mint_device(
            &DeviceId::parse("a4cf12b3c4d5").expect("device id"),
            &DeviceType::parse("demo").expect("device type"),
            None,
        )
        .expect("mint device token");
    let admin = auth
        .mint_admin("bench", Role::Admin, 3600)
        .expect("mint admin token");
    let mut group = c.benchmark_group("jwt_hs256");
    group.sample_size(50);
    let fleet: Vec<String> = (0..3 * GENERATION)
        .map(|n| {
            auth.mint_device(
                &DeviceId::parse(&format!("dev-{n:06}")).expect("device id"),
                &DeviceType::parse("demo").expect("device type"),
                None,
            )
            .expect("mint device token")
        })
        .collect();
    let mut next = fleet.iter().cycle();
    group.bench_function("verify_device_new", |b| {
        b.iter(|| {
            let token = next.next().expect("an endless cycle");
            auth.verify_device(black_box(token)).expect("valid")
        });
    });
    group.bench_function("verify_device_again", |b| {
        b.iter(|| auth.verify_device(black_box(&device)).expect("valid"));
    });
    group.bench_function("verify_admin", |b| {
        b.iter(|| auth.verify_admin(black_box(&admin)).expect("valid"));
    });
    group.bench_function("mint_device", |b| {
        b.iter(|| {
            auth.mint_device(
                &DeviceId::parse("a4cf12b3c4d5").expect("device id"),
                &DeviceType::parse("demo").expect("device type"),
                None,
            )
        });
    });
    group.finish();
}

criterion_group!(benches, jwt);
criterion_main!(benches);
