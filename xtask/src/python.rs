//! Python tools (esptool, the test oracle; cargo-lambda with zig, for `cargo xtask local-aws`)
//! installed into virtual environments under `target/`, so that the machine's own Python stays
//! untouched and a second run installs nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Returns the Python interpreter that has the test tools, installing them when missing.
pub fn ensure_test_tools(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = ensure_venv(
        root,
        "xtask-venv",
        "xtask/requirements-test.txt",
        |python| {
            Command::new(python)
                .args(["-c", "import esptool, schemathesis, openapi_spec_validator"])
                .status()
                .is_ok_and(|s| s.success())
        },
    )?;
    Ok(venv.join("bin/python3"))
}

/// The virtual environment `target/<name>` with the pinned `requirements` (a path relative to
/// the root) installed: created or updated when the requirements changed since the last
/// install, and checked with `works` (given the venv's interpreter) before it is marked done.
pub fn ensure_venv(
    root: &Path,
    name: &str,
    requirements: &str,
    works: impl Fn(&Path) -> bool,
) -> anyhow::Result<PathBuf> {
    let requirements = root.join(requirements);
    let venv = root.join("target").join(name);
    let python = venv.join("bin/python3");
    let stamp = venv.join("requirements.stamp");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
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
    if !works(&python) {
        bail!(
            "{} installed, but its tools do not run from {}",
            requirements.display(),
            venv.display()
        );
    }
    std::fs::write(&stamp, wanted)?;
    Ok(venv)
}
