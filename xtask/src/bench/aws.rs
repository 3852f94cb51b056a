//! The AWS side, measured without AWS: DynamoDB requests per check (the `check_budget` test on
//! the local stack, which counts requests on the wire) and the sizes of the Lambda bootstraps
//! of the arm64 release build (which cargo brings up to date first: most of an hour on two
//! cores from nothing, minutes when only the workspace's crates changed).

use std::path::Path;
use std::process::Command;

use anyhow::Context;
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
    let stdout = crate::stdout_of(
        aws.apply(&mut crate::cargo()).args([
            "test",
            "--locked",
            "-p",
            "ota-store-aws",
            "--test",
            "check_budget",
            "--",
            "--nocapture",
        ]),
        "the check_budget test",
    )?;
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("DYNAMODB_REQUESTS "))
        .map(|j| serde_json::from_str(j).context("a DYNAMODB_REQUESTS line"))
        .collect()
}

/// `cargo lambda build --release --arm64` of the six functions into `target/lambda-arm64`
/// (its own target directory: cross-compiled, thin-LTO artefacts would otherwise evict the
/// host's from `target/release`).
pub fn build_lambdas(root: &Path) -> anyhow::Result<()> {
    const TARGET: &str = "aarch64-unknown-linux-gnu";
    let installed = crate::stdout_of(
        Command::new("rustup").args(["target", "list", "--installed"]),
        "rustup target list",
    )?;
    if !installed.lines().any(|t| t.trim() == TARGET) {
        crate::run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    let bin = crate::lambda::ensure_cargo_lambda(root)?;
    let mut cmd = crate::lambda::cargo_lambda(&bin)?;
    cmd.args(["lambda", "build", "--release", "--arm64"])
        .env("CARGO_TARGET_DIR", root.join("target/lambda-arm64"));
    for name in FUNCTIONS {
        cmd.args(["-p", &format!("ota-fn-{name}")]);
    }
    crate::run(&mut cmd)
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
