//! The AWS side, measured without AWS: DynamoDB requests per check (the `check_budget` test on
//! the local stack, which counts requests on the wire) and the Lambda bootstrap sizes of an
//! arm64 build that is already there (this command never starts that build: it takes most of
//! an hour on two cores).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::aws_local::LocalAws;
use crate::lambda::FUNCTIONS;

/// Where `cargo lambda build --release --arm64` leaves `<function>/bootstrap` with
/// `CARGO_TARGET_DIR=target/lambda-arm64` (docs/lambda.md).
const LAMBDA_DIR: &str = "target/lambda-arm64/lambda";

/// Runs `cargo test -p ota-store-aws --test check_budget` against a local stack of its own and
/// returns the cases it printed (`DYNAMODB_REQUESTS {...}` lines).
pub fn dynamodb_requests(root: &Path) -> anyhow::Result<Vec<Value>> {
    let aws = LocalAws::start(root)
        .context("the local AWS stack (DynamoDB Local + s3s-fs) did not start")?;
    let out = aws
        .apply(&mut crate::cargo())
        .args([
            "test",
            "--locked",
            "-p",
            "ota-store-aws",
            "--test",
            "check_budget",
            "--",
            "--nocapture",
        ])
        .output()
        .context("running the check_budget test")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the check_budget test failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("DYNAMODB_REQUESTS "))
        .map(|j| serde_json::from_str(j).context("a DYNAMODB_REQUESTS line"))
        .collect()
}

/// Sizes of the arm64 bootstraps as built, stripped (a copy, with `llvm-strip`) and stripped
/// then gzipped (about what the deployment zip holds); `None` when none is built.
pub fn lambda_sizes(root: &Path, llvm_strip: &str, work: &Path) -> anyhow::Result<Option<Value>> {
    let dir = root.join(LAMBDA_DIR);
    let mut rows = Vec::new();
    std::fs::create_dir_all(work)?;
    for name in FUNCTIONS {
        let built = dir.join(name).join("bootstrap");
        let Ok(meta) = std::fs::metadata(&built) else {
            rows.push(json!({ "function": name, "built": false }));
            continue;
        };
        // A binary written in the last minute may still be being linked by a running build.
        let age = meta.modified()?.elapsed().unwrap_or_default();
        if age < std::time::Duration::from_secs(60) {
            rows.push(json!({ "function": name, "built": false, "note": "modified < 60 s ago" }));
            continue;
        }
        // Strip a copy: the build directory belongs to whoever runs the build.
        let stripped = work.join(name);
        std::fs::copy(&built, &stripped)?;
        crate::run(Command::new(llvm_strip).arg(&stripped))?;
        let stripped_len = std::fs::metadata(&stripped)?.len();
        let gz = Command::new("gzip")
            .args(["-9", "-c"])
            .arg(&stripped)
            .output()
            .context("running gzip")?;
        rows.push(json!({
            "function": name,
            "built": true,
            "bytes": meta.len(),
            "stripped_bytes": stripped_len,
            "stripped_gzip_bytes": gz.stdout.len(),
        }));
    }
    if rows.iter().all(|r| r["built"] == false) {
        return Ok(None);
    }
    Ok(Some(json!({ "dir": LAMBDA_DIR, "functions": rows })))
}
