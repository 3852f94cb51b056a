//! The images under `samples/` must be exactly what the generator builds today, so the README
//! walkthrough and the generator never drift apart. `UPDATE_SAMPLES=1 cargo test -p
//! firmware-samples --test samples` rewrites them after an intended generator change.

use std::path::Path;

use esp_image::validate;

#[test]
fn committed_samples_match_the_generator() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
    let update = std::env::var_os("UPDATE_SAMPLES").is_some();
    for (name, spec) in firmware_samples::samples() {
        let built = spec.build();
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&path, &built).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
        }
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path:?}: {e}; regenerate with UPDATE_SAMPLES=1"));
        assert!(
            committed == built,
            "{name} differs from what the generator builds; if the generator change is \
             intended, regenerate with UPDATE_SAMPLES=1"
        );
    }
}

#[test]
fn the_generator_is_deterministic() {
    for (name, spec) in firmware_samples::samples() {
        assert_eq!(spec.build(), spec.clone().build(), "{name}");
    }
}

#[test]
fn samples_are_valid_and_say_what_their_names_say() {
    for (name, spec) in firmware_samples::samples() {
        let info = validate(&spec.build()).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_eq!(
            format!(
                "{}-{}-{}.bin",
                info.app.project_name, info.chip, info.app.version
            ),
            name
        );
        assert_eq!(info.app.secure_version, 0);
        assert_eq!(info.file_len, 64 * 1024);
    }
}
