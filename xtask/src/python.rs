//! The Python oracles (esptool): installed into a virtual environment under `target/` so that
//! the machine's own Python stays untouched and a second run installs nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Returns the Python interpreter that has the test tools, installing them when missing.
pub fn ensure_test_tools(root: &Path) -> anyhow::Result<PathBuf> {
    let requirements = root.join("xtask/requirements-test.txt");
    let venv = root.join("target/xtask-venv");
    let python = venv.join("bin/python3");
    let stamp = venv.join("requirements.stamp");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(python);
    }
    let system = std::env::var("OTA_SYSTEM_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if !python.exists() {
        eprintln!("xtask: creating {}", venv.display());
        super::run(Command::new(&system).args(["-m", "venv"]).arg(&venv))?;
    }
    eprintln!("xtask: installing {}", requirements.display());
    super::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
    )?;
    let ok = Command::new(&python)
        .args(["-c", "import esptool"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("esptool is still not importable from {}", python.display());
    }
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}
