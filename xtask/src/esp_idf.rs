//! The device side on the host: the ESP-IDF example of `firmware-samples/esp-idf/` built for
//! `IDF_TARGET=linux` (ESP-IDF's own `esp_https_ota` through a host shim) and run as a device
//! against a real `ota-server` by `run-host-test.sh`. Needs an ESP-IDF tree: `IDF_PATH`, or
//! `../shared/esp-idf` beside the checkout; where neither exists this step says so and is
//! skipped, the rest of the run is not.

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Builds the example and runs it against `ota-server`; `python` is the test venv's (esptool).
pub fn host_test(root: &Path, python: &Path) -> anyhow::Result<()> {
    let Some(idf) = idf_path(root) else {
        eprintln!(
            "xtask: no ESP-IDF tree (IDF_PATH unset and no ../shared/esp-idf): the ESP-IDF host \
             test is skipped"
        );
        return Ok(());
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
    crate::run(crate::cargo().args(["build", "--locked", "-p", "ota-server"]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    crate::run(
        Command::new("bash")
            .current_dir(root)
            .arg("firmware-samples/esp-idf/run-host-test.sh")
            .arg(&target)
            .env("IDF_PATH", &idf)
            .env("IDF_PYTHON", venv.join("bin/python3"))
            .env("OTA_SERVER", target.join("debug/ota-server"))
            .env("ESPTOOL", python.with_file_name("esptool")),
    )?;
    eprintln!(
        "xtask: the ESP-IDF example updated itself against ota-server in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
