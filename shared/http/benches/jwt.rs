//! JWT verification (HS256), once per device request (`verify_device`) and per admin request
//! (`verify_admin`, which also reads the header to pick the key).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ota_core::ids::{DeviceId, DeviceType};
use ota_http::auth::{AuthConfig, Role};

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
    group.bench_function("verify_device", |b| {
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
