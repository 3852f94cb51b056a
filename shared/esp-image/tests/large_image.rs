//! A 16 MB image (the largest upload the server plans for) streams through in bounded memory.

use esp_image::Validator;
use firmware_samples::{ImageSpec, Target};

#[test]
fn sixteen_megabytes_stream_through() {
    let spec = ImageSpec {
        size: 16 * 1024 * 1024,
        ..ImageSpec::new(Target::Esp32s3, "9.9.9")
    };
    let bytes = spec.build();
    let mut v = Validator::new();
    for chunk in bytes.chunks(64 * 1024 + 3) {
        v.push(chunk);
    }
    // The validator's own state: fixed buffers, hashers and a few small vectors; the segment
    // list and the 4 KB signature sector are its only heap growth.
    assert!(std::mem::size_of::<Validator>() < 1024);
    let info = v
        .finish()
        .with_file(&bytes)
        .unwrap_or_else(|r| panic!("{r}"));
    assert_eq!(info.file_len, bytes.len() as u64);
    assert_eq!(info.app.version, "9.9.9");
}
