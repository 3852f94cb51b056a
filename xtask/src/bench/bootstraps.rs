//! The Lambda bootstraps of the `lambda-release` profile (the workspace `Cargo.toml`,
//! docs/lambda.md): their sizes as deployed (arm64, cross-built with `cargo lambda build`: most
//! of an hour on two cores from nothing, minutes when only the workspace's crates changed) and
//! on this machine's architecture, and the init time of each, measured on this machine's build
//! (an arm64 binary does not run here): process start to its first request for an event, against
//! a runtime API of our own.

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::lambda::FUNCTIONS;

/// The functions' profile (`[profile.lambda-release]`).
const PROFILE: &str = "lambda-release";
/// The arm64 build's target directory: cross-compiled artefacts of their own, so that they do
/// not evict the host's. `cargo lambda build` leaves `lambda/<function>/bootstrap` in it.
const ARM64_DIR: &str = "target/lambda-arm64";
/// The host build of the same profile, where cargo puts it: `<function>` in it.
const HOST_DIR: &str = "target/lambda-release";
/// Init measurements per function; the median is reported.
const INIT_RUNS: usize = 11;
/// How long an init may take before the run fails.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);
/// The request the Lambda runtime makes once the function's `main` has built its state.
const NEXT: &str = "GET /2018-06-01/runtime/invocation/next ";

/// Builds the functions with the `lambda-release` profile: for arm64 with `cargo lambda
/// build` (what is deployed) and for this machine with cargo.
pub fn build(root: &Path) -> anyhow::Result<()> {
    const TARGET: &str = "aarch64-unknown-linux-gnu";
    let installed = crate::stdout_of(
        Command::new("rustup").args(["target", "list", "--installed"]),
        "rustup target list",
    )?;
    if !installed.lines().any(|t| t.trim() == TARGET) {
        crate::run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    let bin = crate::lambda::ensure_cargo_lambda(root)?;
    let mut arm64 = crate::lambda::cargo_lambda(&bin)?;
    arm64
        .args([
            "lambda",
            "build",
            "--locked",
            "--profile",
            PROFILE,
            "--arm64",
        ])
        .env("CARGO_TARGET_DIR", root.join(ARM64_DIR));
    let mut host = crate::cargo();
    host.args(["build", "--locked", "--profile", PROFILE]);
    for name in FUNCTIONS {
        arm64.args(["-p", &format!("ota-fn-{name}")]);
        host.args(["-p", &format!("ota-fn-{name}")]);
    }
    crate::run(&mut arm64)?;
    crate::run(&mut host)
}

/// The architectures built: the deployment's, and this machine's (`x86_64` here).
const ARCHS: [&str; 2] = ["arm64", std::env::consts::ARCH];

/// Where the bootstrap of `name` for `arch` (one of [`ARCHS`]) is.
fn bootstrap(root: &Path, arch: &str, name: &str) -> PathBuf {
    if arch == ARCHS[0] {
        root.join(ARM64_DIR)
            .join("lambda")
            .join(name)
            .join("bootstrap")
    } else {
        root.join(HOST_DIR).join(name)
    }
}

/// Sizes of the bootstraps of both architectures as built, stripped (a copy, with `llvm-strip`:
/// the profile strips already, so the two agree unless it stopped doing so) and stripped then
/// gzipped (about what the deployment zip holds); `None` when none is built.
pub fn sizes(root: &Path, llvm_strip: &str, work: &Path) -> anyhow::Result<Option<Value>> {
    let mut rows = Vec::new();
    std::fs::create_dir_all(work)?;
    for arch in ARCHS {
        for name in FUNCTIONS {
            let built = bootstrap(root, arch, name);
            let Ok(meta) = std::fs::metadata(&built) else {
                rows.push(json!({ "function": name, "arch": arch, "built": false }));
                continue;
            };
            // Strip a copy: the build directory belongs to whoever runs the build.
            let stripped = work.join(format!("{name}.{arch}"));
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
                "arch": arch,
                "built": true,
                "path": built.strip_prefix(root).unwrap_or(&built),
                "bytes": meta.len(),
                "stripped_bytes": stripped_len,
                "stripped_gzip_bytes": gz.stdout.len(),
            }));
        }
    }
    if rows.iter().all(|r| r["built"] == false) {
        return Ok(None);
    }
    Ok(Some(json!({ "profile": PROFILE, "functions": rows })))
}

/// The init time of each function built for this machine: [`INIT_RUNS`] starts, median, min
/// and max in milliseconds.
pub fn init_times(root: &Path) -> anyhow::Result<Value> {
    let mut rows = Vec::new();
    for name in FUNCTIONS {
        let bin = bootstrap(root, ARCHS[1], name);
        let mut ms = (0..INIT_RUNS)
            .map(|_| init_once(&bin, name).map(|d| d.as_secs_f64() * 1000.0))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        ms.sort_by(f64::total_cmp);
        let round = |v: f64| (v * 100.0).round() / 100.0;
        rows.push(json!({
            "function": name,
            "median_ms": round(ms[ms.len() / 2]),
            "min_ms": round(ms[0]),
            "max_ms": round(ms[ms.len() - 1]),
        }));
    }
    Ok(json!({
        "arch": std::env::consts::ARCH,
        "runs": INIT_RUNS,
        "method": "process start to its first GET /2018-06-01/runtime/invocation/next, against a \
                   runtime API served by xtask; secrets given in the environment (no Secrets \
                   Manager call), nothing else is reached at init",
        "functions": rows,
    }))
}

/// One start of `bin` with the environment Lambda gives a function (and the settings the
/// deployment gives it, the secrets in plain), timed until it asks the runtime API for its first
/// event; then the process is killed.
fn init_once(bin: &Path, name: &str) -> anyhow::Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the runtime API")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::channel();
    let api = std::thread::spawn(move || -> anyhow::Result<()> {
        let (stream, _) = listener.accept()?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        let at = Instant::now();
        // The receiver is gone only when the run failed already; nothing to report then.
        let _ = tx.send((at, line));
        Ok(())
    });
    let stderr = tempfile_path(name);
    let started = Instant::now();
    let mut child = Command::new(bin)
        // Only what Lambda sets and what the deployment configures: no profile files, no
        // caller's AWS variables.
        .env_clear()
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", addr.to_string().as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", name),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_REGION", crate::aws_local::REGION),
            ("AWS_ACCESS_KEY_ID", crate::aws_local::ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", crate::aws_local::SECRET_KEY),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("OTA_TABLE", "ota-bench"),
            ("OTA_BUCKET", "ota-bench"),
            ("OTA_JWT_SECRET", "a bench secret of thirty-two bytes.."),
            // A P-256 scalar (any value below the curve order but zero).
            ("OTA_MANIFEST_KEYS", &"11".repeat(32)),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let outcome = loop {
        if let Ok((at, line)) = rx.recv_timeout(Duration::from_millis(5)) {
            break if line.starts_with(NEXT) {
                Ok(at - started)
            } else {
                Err(anyhow::anyhow!(
                    "{name}: the first request to the runtime API was {line:?}"
                ))
            };
        }
        if let Some(status) = child.try_wait()? {
            break Err(anyhow::anyhow!(
                "{name} exited with {status} before asking for an event:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            ));
        }
        if started.elapsed() > INIT_TIMEOUT {
            break Err(anyhow::anyhow!(
                "{name} did not ask for an event within {} s",
                INIT_TIMEOUT.as_secs()
            ));
        }
    };
    let _ = child.kill();
    child.wait()?;
    // An API thread still waiting for its connection (the run failed) is let go by one of ours.
    if let Ok(s) = TcpStream::connect(addr) {
        let _ = s.shutdown(Shutdown::Both);
    }
    api.join()
        .map_err(|_| anyhow::anyhow!("the runtime API thread panicked"))??;
    let _ = std::fs::remove_file(&stderr);
    outcome
}

fn tempfile_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "xtask-bench-init-{name}-{}.stderr",
        std::process::id()
    ))
}
