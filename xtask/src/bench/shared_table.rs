//! Reports on one rollout from several processes sharing one table (`docs/scale.md`): three
//! release `ota-server` on the AWS storage (DynamoDB Local and s3s-fs, started here) stand in for
//! Lambda instances, and the fleet simulator spreads its devices over them, each device to one
//! process. What it shows: the reports per second one rollout takes across instances, the
//! tail of a report, retries, and that none is lost.

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::fleet;
use super::server::Server;
use crate::aws_local::LocalAws;
use crate::lambda;

/// Processes sharing the table.
pub const PROCESSES: usize = 3;
/// Devices of the run: DynamoDB Local, a Java process on the same cores, is the bottleneck, so
/// a thousand devices (~3,000 reports) take a few minutes.
pub const DEVICES: u32 = 1_000;
/// Whole images in one GET, 48 devices in flight.
const FLEET_ARGS: [&str; 4] = ["--chunk-size", "0", "--concurrency", "48"];

/// Builds `ota-local-setup` (release), starts the local stack, creates the table and bucket,
/// starts the processes and runs the simulator; `release` holds the release binaries.
pub fn run(root: &Path, release: &Path, out: &Path) -> anyhow::Result<Value> {
    crate::run(crate::cargo().args([
        "build",
        "--release",
        "--locked",
        "-p",
        "ota-lambda",
        "--bin",
        "ota-local-setup",
    ]))?;
    let aws = LocalAws::start(root)
        .context("the local AWS stack (DynamoDB Local + s3s-fs) did not start")?;
    let mut env = lambda::session_env(&aws)?;
    lambda::create_table_and_bucket(&aws, &release.join("ota-local-setup"), &env)?;
    let dir = out.join("shared-table");
    std::fs::create_dir_all(&dir)?;
    let secret = env
        .iter()
        .find(|(k, _)| k == "OTA_JWT_SECRET")
        .map(|(_, v)| v.clone())
        .context("the session has no JWT secret")?;
    let secret_file = dir.join("jwt-secret");
    std::fs::write(&secret_file, &secret)?;
    env.extend(
        [
            // The simulator's devices report in bursts; the bench measures the table, not the
            // per-device limit.
            ("OTA_DEVICE_RATE_PER_MIN", "0"),
            // DynamoDB Local under this load answers in seconds at times; the production
            // default (2 s) would turn that into 503s that measure the emulator.
            ("OTA_DYNAMODB_TIMEOUT_MS", "10000"),
            // The simulator raises its canary to 100 % through the first process and checks
            // through all of them at once; each process's cached view of the type lags an edit
            // made elsewhere by up to this (docs/aws-keys.md), which the simulator would count
            // as devices inside the canary never offered. Read it on every check instead.
            ("OTA_VIEW_CACHE_S", "0"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let servers = (0..PROCESSES)
        .map(|i| {
            Server::start(
                &release.join("ota-server"),
                &dir.join(format!("server-{i}")),
                &env,
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let target = fleet::Target {
        admin: &servers[0],
        device_servers: &servers,
        jwt_secret_file: secret_file,
    };
    let mut v = fleet::run(
        &release.join("fleet-sim"),
        &target,
        DEVICES,
        &FLEET_ARGS,
        &dir.join("fleet.json"),
    )?;
    let retried = (0..PROCESSES)
        .map(|i| std::fs::read_to_string(dir.join(format!("server-{i}.log"))))
        .collect::<std::io::Result<Vec<_>>>()?;
    v["server_retries"] = server_retries(retried.iter().map(String::as_str)).into();
    v["processes"] = PROCESSES.into();
    v["load_average_after"] = super::load_average().into();
    Ok(v)
}

/// The write rounds that status reports lost to concurrent ones, over the processes' logs: each
/// report stored on its `n`th round logs `rounds=n` (`ota-store-aws`, `reports.rs`) and lost
/// `n - 1`. The logs may colour field names (ANSI escapes), which are dropped first.
fn server_retries<'a>(logs: impl Iterator<Item = &'a str>) -> u64 {
    logs.flat_map(str::lines)
        .map(without_ansi)
        .filter(|l| l.contains("status report stored after losing a write race"))
        .filter_map(|l| {
            l.split_once("rounds=")?
                .1
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map(|rounds| rounds.saturating_sub(1))
        .sum()
}

/// `line` without its ANSI escape sequences (`ESC [ ... m`).
fn without_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_the_rounds_lost_by_each_contended_report() {
        let a = "2026-12-06T06:30:00Z  INFO ota_store_aws::dynamo::reports: status report stored \
                 after losing a write race device=d1 rounds=3\nsomething else rounds=9\n";
        let b = "x INFO ota_store_aws::dynamo::reports: status report stored after losing a \
                 write race device=d2 rounds=2\n";
        let coloured = "\u{1b}[32m INFO\u{1b}[0m status report stored after losing a write race \
                        \u{1b}[3mrounds\u{1b}[0m\u{1b}[2m=\u{1b}[0m4";
        assert_eq!(server_retries([a, b].into_iter()), 3);
        assert_eq!(server_retries([coloured].into_iter()), 3);
        assert_eq!(server_retries(["nothing here"].into_iter()), 0);
    }
}
