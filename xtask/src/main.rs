//! Project automation. `cargo xtask test` runs every test of the workspace after installing what
//! the tests need (idempotently), so that a new machine needs nothing but this command.

mod aws_local;
mod bench;
mod contract;
mod deny;
mod esp_idf;
mod infra;
mod install;
mod lambda;
mod python;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test                  install the test oracles and the local AWS stack if missing, start the
                        stack, then run every test of the workspace against it, schemathesis
                        and a generated client against ota-server (tests/openapi/), the ESP-IDF
                        example updating itself on the host (firmware-samples/esp-idf/; skipped
                        without an ESP-IDF tree: IDF_PATH or ../shared/esp-idf), the end-to-end
                        suite again on DynamoDB + S3, and the README walkthrough through the
                        Lambda functions (cargo lambda watch)
  lint                  cargo fmt --check, cargo clippy --all-targets -D warnings, cfn-lint on
                        infra/template.yaml (installed into target/cfn-lint-venv if missing),
                        and cargo deny check licenses bans sources, offline (deny.toml;
                        cargo-deny installed into target/tools if missing); the OpenAPI
                        document ota-server serves through Redocly's CLI (npm) and
                        openapi-spec-validator (PyPI), both installed under target/ if missing
  local-aws             install if missing and start DynamoDB Local and s3s-fs, create the
                        table and bucket, serve the Lambda functions with `cargo lambda watch`
                        (the six HTTP ones on one base URL, rollout-tick by its name); print
                        the URL, an admin token and the environment as `export` lines; run
                        until Ctrl-C
  local-aws --check     the same, then one real DynamoDB and S3 round trip, one request per
                        HTTP function through the base URL, the README walkthrough and one
                        invocation of rollout-tick, then stop
  bench                 load comparison (ota-server vs nginx static, wrk, 64 connections),
                        peak RSS, the Lambda bootstraps' sizes (arm64 and this machine) and
                        init times, DynamoDB requests per check and cost table,
                        fleet-sim; installs nginx, wrk, llvm with apt-get if missing; writes
                        target/bench/results.json (docs/performance.md)
";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("lint") => lint(),
        Some("local-aws") => local_aws(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command '{other}'\n\n{USAGE}"),
    }
}

/// The workspace root (this crate lives in `<root>/xtask`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    c.current_dir(root());
    // What `cargo run` set for xtask itself would rebuild ring and what builds on it.
    ota_testkit::cargo_env::scrub(&mut c);
    c
}

/// Runs a command, failing with its name when it does not succeed.
fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: {shown}");
    let status = cmd.status().with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// Runs a command for its standard output; on failure the error carries both of its outputs.
fn stdout_of(cmd: &mut Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    let python = python::ensure_test_tools(&root())?;
    // The stack is stopped when `aws` is dropped: on return, on error and on a failed test alike.
    let aws = aws_local::LocalAws::start(&root())
        .context("the local AWS stack (DynamoDB Local + s3s-fs) did not start")?;
    aws_local::smoke_check(&aws).context("the local AWS stack started but does not work")?;
    let device = esp_idf::build_host_device(&root(), &python)?;
    let mut workspace = cargo();
    aws.apply(&mut workspace)
        .args(["test", "--workspace", "--all-targets", "--locked"])
        .args(extra)
        .env("OTA_PYTHON", &python);
    run(with_device(&mut workspace, device.as_ref()))?;
    contract::test(&root(), &python)?;
    e2e_on_aws(&aws, &python, device.as_ref(), None)?;
    let cargo_lambda = lambda_on_aws(&aws)?;
    e2e_on_aws(&aws, &python, device.as_ref(), Some(&cargo_lambda))?;
    // Doc tests are not part of --all-targets.
    run(aws
        .apply(&mut cargo())
        .args(["test", "--workspace", "--doc", "--locked"]))
}

/// Lets the end-to-end suite boot the ESP-IDF example as a device, when there is one.
fn with_device<'a>(cmd: &'a mut Command, device: Option<&esp_idf::HostDevice>) -> &'a mut Command {
    match device {
        Some(device) => device.apply(cmd),
        None => cmd,
    }
}

/// The HTTP end-to-end suite again on the local AWS stack (the first run, inside `cargo test
/// --workspace`, tested the embedded storage), every test with a table and a bucket of its own:
/// against `ota-server` on DynamoDB and S3, or, given `cargo-lambda`, against the six HTTP Lambda
/// functions under `cargo lambda watch` (built by [`lambda::prepare`]). `OTA_E2E_AWS_THREADS`
/// sets its parallelism (default 2: DynamoDB Local shares the machine's cores with the
/// deployments and the tests).
fn e2e_on_aws(
    aws: &aws_local::LocalAws,
    python: &Path,
    device: Option<&esp_idf::HostDevice>,
    cargo_lambda: Option<&Path>,
) -> anyhow::Result<()> {
    let threads = std::env::var("OTA_E2E_AWS_THREADS").unwrap_or_else(|_| "2".to_owned());
    let started = std::time::Instant::now();
    let mut cmd = cargo();
    aws.apply(&mut cmd)
        .args([
            "test",
            "--locked",
            "-p",
            "ota-server",
            "--test",
            "e2e",
            "--",
        ])
        .arg(format!("--test-threads={threads}"))
        .env("OTA_E2E_STORE", "aws")
        // DynamoDB Local shares two cores with the whole run: hundreds of concurrent reports
        // queue for seconds there, where real DynamoDB answers in milliseconds.
        .env("OTA_DYNAMODB_TIMEOUT_MS", "30000")
        .env("OTA_PYTHON", python);
    let deployment = match cargo_lambda {
        Some(bin) => {
            cmd.env("OTA_E2E_DEPLOY", "lambda")
                .env("OTA_E2E_CARGO_LAMBDA", bin);
            "the Lambda functions"
        }
        None => "ota-server",
    };
    run(with_device(&mut cmd, device))?;
    eprintln!(
        "xtask: end-to-end suite against {deployment} on DynamoDB + S3 passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The Lambda functions themselves on the same stack, through `cargo lambda watch` (the API
/// Gateway routes of `Cargo.toml`): one probe per HTTP function, then the README walkthrough,
/// then one invocation of `rollout-tick`.
/// Returns the `cargo-lambda` binary, installed if it was missing.
fn lambda_on_aws(aws: &aws_local::LocalAws) -> anyhow::Result<PathBuf> {
    let started = std::time::Instant::now();
    let bin = lambda::ensure_cargo_lambda(&root())?;
    let session = lambda::prepare(aws)?;
    let log = aws.run_dir().join("cargo-lambda-watch.log");
    let watch = lambda::Watch::start(&bin, aws, &session, Some(&log))?;
    eprintln!(
        "xtask: cargo lambda watch serving {} after {:.1} s",
        watch.base_url(),
        started.elapsed().as_secs_f64()
    );
    lambda::smoke_check(&watch, &session.admin_token)?;
    lambda::walkthrough(&watch, &session.admin_token)?;
    lambda::invoke_rollout_tick(&watch)?;
    Ok(bin.join("cargo-lambda"))
}

/// `cargo xtask local-aws [--check]`.
fn local_aws(args: &[String]) -> anyhow::Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask local-aws [--check]"),
    };
    let started = std::time::Instant::now();
    let lambda_bin = lambda::ensure_cargo_lambda(&root())?;
    let mut aws = aws_local::LocalAws::start(&root())
        .context("the local AWS stack (DynamoDB Local + s3s-fs) did not start")?;
    eprintln!(
        "xtask: local AWS stack up in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if check {
        aws_local::smoke_check(&aws)?;
        eprintln!("xtask: local AWS stack ok");
        lambda_on_aws(&aws)?;
        eprintln!(
            "xtask: local AWS mode ok in {:.1} s; stopping it",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let session = lambda::prepare(&aws)?;
    let mut watch = lambda::Watch::start(&lambda_bin, &aws, &session, None)?;
    eprintln!(
        "xtask: cargo lambda watch serving {} ({:.1} s in all)",
        watch.base_url(),
        started.elapsed().as_secs_f64()
    );
    eprintln!("xtask: DynamoDB Local: {}", aws.dynamodb_endpoint);
    eprintln!("xtask: s3s-fs:         {}", aws.s3_endpoint);
    for (name, log) in aws.logs() {
        eprintln!("xtask: {name} log:   {}", log.display());
    }
    eprintln!(
        "xtask: table {} and bucket {} created; the functions log below (JSON and EMF lines)",
        lambda::TABLE,
        lambda::BUCKET
    );
    // Nothing schedules it here: staged rollouts advance on checks and reports, or by hand.
    eprintln!(
        "xtask: rollout-tick runs once per invocation: curl -X POST -d '{{}}' \
         {}/2015-03-31/functions/rollout-tick/invocations",
        watch.base_url()
    );
    eprintln!("xtask: paste these into a shell, then Ctrl-C here to stop everything:");
    for name in aws_local::LocalAws::ENV_REMOVE {
        println!("unset {name}");
    }
    for (name, value) in &session.env {
        println!("export {name}={value}");
    }
    println!("export OTA={}", watch.base_url());
    println!("export TOKEN={}", session.admin_token);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        aws.check_alive()?;
        watch.check_alive()?;
    }
}

fn lint() -> anyhow::Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]))?;
    infra::lint_template(&root())?;
    deny::check(&root())?;
    contract::lint(&root())
}
