//! Image validation throughput on a 4 MB image, the size of a large ESP32 app: the whole file
//! at once (`validate`) and streamed in 64 KB chunks as the upload routes feed it (`Validator`).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use esp_image::{Finish, Validator};
use firmware_samples::{ImageSpec, Target};

const IMAGE_BYTES: usize = 4 * 1024 * 1024;

fn image() -> Vec<u8> {
    ImageSpec {
        size: IMAGE_BYTES,
        ..ImageSpec::new(Target::Esp32s3, "1.2.3")
    }
    .build()
}

fn validation(c: &mut Criterion) {
    let bytes = image();
    let mut group = c.benchmark_group("esp_image_4mb");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(20);
    group.bench_function("validate", |b| {
        b.iter(|| esp_image::validate(black_box(&bytes)).expect("valid image"));
    });
    group.bench_function("stream_64k_chunks", |b| {
        b.iter(|| {
            let mut v = Validator::new();
            for chunk in black_box(&bytes).chunks(64 * 1024) {
                v.push(chunk);
            }
            match v.finish() {
                Finish::Done(verdict) => verdict.expect("valid image"),
                Finish::NeedsSha384(_) => panic!("the image is unsigned"),
            }
        });
    });
    group.finish();
}

criterion_group!(benches, validation);
criterion_main!(benches);
