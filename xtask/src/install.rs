//! Tools installed under `target/`, each into a directory named after its pinned version: a
//! directory that exists is a finished install (it is built beside it and renamed into place at
//! the end), so a second run installs nothing and a changed pin installs afresh. Nothing is
//! installed system-wide.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A binary crate from crates.io, built with `cargo install --locked` (its own Cargo.lock).
pub struct CargoTool {
    /// The crate, and its binary.
    pub name: &'static str,
    pub version: &'static str,
    pub features: &'static [&'static str],
    /// What a failed build most likely lacked, for its error.
    pub needs: &'static str,
}

/// Returns the tool's binary in `<parent>/<name>-<version>/bin/`, building it when missing (a few
/// minutes, once).
pub fn cargo_tool(parent: &Path, tool: &CargoTool) -> anyhow::Result<PathBuf> {
    let CargoTool {
        name,
        version,
        features,
        needs,
    } = tool;
    let dir_name = format!("{name}-{version}");
    let install_root = parent.join(&dir_name);
    let bin = install_root.join("bin").join(name);
    if bin.is_file() {
        return Ok(bin);
    }
    let tmp = fresh_tmp(parent, &dir_name)?;
    eprintln!("xtask: building {name} {version} (cargo install, a few minutes, once)");
    let started = std::time::Instant::now();
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.args(["install", name, "--version"])
        .arg(format!("={version}"))
        .args(["--locked", "--root"])
        .arg(&tmp)
        // Build in a scratch directory of cargo's own, not in the workspace's target/.
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(parent);
    if !features.is_empty() {
        cmd.arg("--features").arg(features.join(","));
    }
    crate::run(&mut cmd).context(*needs)?;
    eprintln!(
        "xtask: {name} {version} built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !tmp.join("bin").join(name).is_file() {
        bail!("cargo install left no bin/{name} in {}", tmp.display());
    }
    move_into_place(&tmp, &install_root)?;
    Ok(bin)
}

/// An empty scratch directory `<parent>/.<name>.tmp-<pid>` beside the final one, private to this
/// process.
pub fn fresh_tmp(parent: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok(tmp)
}

/// Renames a finished install into place; when another process finished first, keeps theirs.
pub fn move_into_place(tmp: &Path, dest: &Path) -> anyhow::Result<()> {
    match std::fs::rename(tmp, dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.is_dir() => {
            let _ = std::fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(err) => {
            Err(err).with_context(|| format!("moving {} to {}", tmp.display(), dest.display()))
        }
    }
}

/// `npm install` of one pinned `package@version` into `prefix` (`OTA_NPM` names another npm),
/// with `extra` flags; `why` says what it is for when it fails.
pub fn npm_install(prefix: &Path, package: &str, extra: &[&str], why: &str) -> anyhow::Result<()> {
    eprintln!("xtask: installing {package} (npm)");
    let npm = std::env::var("OTA_NPM").unwrap_or_else(|_| "npm".to_owned());
    crate::run(
        Command::new(&npm)
            .arg("install")
            .arg("--prefix")
            .arg(prefix)
            .args([
                "--no-audit",
                "--no-fund",
                "--save-exact",
                "--loglevel=error",
            ])
            .args(extra)
            .arg(package),
    )
    .with_context(|| format!("{why} needs npm (and the npm registry)"))
}
