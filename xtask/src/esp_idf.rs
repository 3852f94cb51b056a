//! The device side on the host: the ESP-IDF example of `firmware-samples/esp-idf/` (the
//! `ota_client` component with ESP-IDF's own `esp_https_ota` through a host shim) built for
//! `IDF_TARGET=linux`, for the end-to-end suite's `esp_idf_device` tests to boot as a device
//! against each deployment. Needs an ESP-IDF tree: `IDF_PATH`, or `../shared/esp-idf` beside the
//! checkout; where neither exists this step says so, and those tests say they are skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The built device program and what the tests need to drive it.
pub struct HostDevice {
    elf: PathBuf,
    /// The key ring whose public keys are compiled into `elf` (two keys: a rotation).
    keys: PathBuf,
    esptool: PathBuf,
}

impl HostDevice {
    /// Points the end-to-end suite at the program (`tests/e2e/esp_idf_device.rs`).
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("OTA_E2E_ESP_IDF_DEVICE", &self.elf)
            .env("OTA_E2E_ESP_IDF_KEYS", &self.keys)
            .env("OTA_E2E_ESPTOOL", &self.esptool)
    }
}

/// The ESP-IDF tree to build against, if there is one.
fn idf_path(root: &Path) -> Option<PathBuf> {
    let candidate = std::env::var_os("IDF_PATH")
        .map(PathBuf::from)
        .or_else(|| root.parent().map(|p| p.join("shared/esp-idf")))?;
    candidate
        .join("tools/cmake/project.cmake")
        .is_file()
        .then_some(candidate)
}

/// Builds the example for the host, with a key ring of its own (kept across runs, so that a
/// rebuild compiles one file); `python` is the test venv's, whose esptool the tests use.
pub fn build_host_device(root: &Path, python: &Path) -> anyhow::Result<Option<HostDevice>> {
    let Some(idf) = idf_path(root) else {
        eprintln!(
            "xtask: no ESP-IDF tree (IDF_PATH unset and no ../shared/esp-idf): the ESP-IDF device \
             tests are skipped"
        );
        return Ok(None);
    };
    let venv = crate::python::ensure_venv(
        root,
        "esp-idf-venv",
        "xtask/requirements-esp-idf.txt",
        |python| {
            Command::new(python)
                .args(["-c", "import kconfgen, cryptography"])
                .status()
                .is_ok_and(|s| s.success())
        },
    )?;
    let started = std::time::Instant::now();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let work = target.join("esp-idf-host");
    std::fs::create_dir_all(&work)?;
    crate::run(crate::cargo().args(["build", "--locked", "-p", "otactl"]))?;
    let otactl = target.join("debug/otactl");
    let keys = work.join("manifest-keys");
    if !keys.is_file() {
        let mut ring = String::new();
        for _ in 0..2 {
            ring += &crate::stdout_of(
                Command::new(&otactl).args(["keys", "generate"]),
                "otactl keys generate",
            )?;
        }
        std::fs::write(&keys, ring)?;
    }
    let header = crate::stdout_of(
        Command::new(&otactl)
            .args(["keys", "export", "--c-header", "--keys-file"])
            .arg(&keys),
        "otactl keys export --c-header",
    )?;
    let header_path = work.join("ota_manifest_keys.h");
    // Rewritten only when it changes: ninja rebuilds what includes it.
    if std::fs::read_to_string(&header_path).ok().as_deref() != Some(header.as_str()) {
        std::fs::write(&header_path, header)?;
    }
    let build = work.join("build");
    // sdkconfig is regenerated from example/sdkconfig.defaults every time, so edits there apply.
    let _ = std::fs::remove_file(build.join("sdkconfig"));
    crate::stdout_of(
        Command::new("cmake")
            .current_dir(root)
            .args(["-S", "firmware-samples/esp-idf/example", "-B"])
            .arg(&build)
            .args([
                "-G",
                "Ninja",
                "-DIDF_TARGET=linux",
                "-DPYTHON_DEPS_CHECKED=1",
            ])
            .arg(format!("-DPYTHON={}", venv.join("bin/python3").display()))
            .arg(format!("-DSDKCONFIG={}", build.join("sdkconfig").display()))
            .arg(format!(
                "-DOTA_MANIFEST_KEYS_HEADER={}",
                header_path.display()
            ))
            .env("IDF_PATH", &idf)
            // The component manager is not installed and would need the network.
            .env("IDF_COMPONENT_MANAGER", "0"),
        "cmake (configuring the ESP-IDF example)",
    )?;
    crate::stdout_of(
        // IDF_PATH again: ninja re-runs cmake when a CMakeLists.txt changed.
        Command::new("ninja")
            .arg("-C")
            .arg(&build)
            .env("IDF_PATH", &idf)
            .env("IDF_COMPONENT_MANAGER", "0"),
        "ninja (building the ESP-IDF example)",
    )?;
    eprintln!(
        "xtask: the ESP-IDF example built for the host in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(Some(HostDevice {
        elf: build.join("demo.elf"),
        keys,
        esptool: python.with_file_name("esptool"),
    }))
}
