//! The AWS side, measured without AWS: DynamoDB requests per check (the `check_budget` test on
//! the local stack, which counts requests on the wire). The Lambda bootstraps: `bootstraps.rs`.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use crate::aws_local::LocalAws;

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
