//! The Lambda deployment as the suite runs it (`OTA_E2E_DEPLOY=lambda`): the six functions of
//! `functions/` under `cargo lambda watch`, which turns each request into an API Gateway HTTP
//! API event for the function the workspace router names (`[workspace.metadata.lambda.watch
//! .router]`, the routes of the SAM template) and starts instances on demand. Every test gets
//! its own emulator, table and bucket, like every test of the server gets its own process.
//!
//! `cargo xtask test` builds the functions and sets `OTA_E2E_CARGO_LAMBDA` (the `cargo-lambda`
//! it installed). Instances of different functions do not share memory, as on AWS: the
//! per-instance view cache is off (`OTA_VIEW_CACHE_S=0`) unless a test sets it, because tests
//! read right after writing through another function.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{now, sign_with};

/// How long the emulator may take to answer `/health` (it runs `cargo run` for the function).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Lifetime of the admin token kept in the data directory, as `ota-server`'s start token.
const TOKEN_TTL_S: i64 = 30 * 24 * 3600;

/// Why the emulator is not serving.
pub enum NotServing {
    /// It exited (most likely: the port was taken meanwhile).
    Exited,
    Timeout(String),
}

/// The JWT secret of this deployment, created with an admin token on first start and kept in
/// `dir` as `jwt-secret` and `admin-token`, the files the harness reads for `ota-server` too.
pub fn credentials(dir: &Path) -> String {
    let secret_file = dir.join("jwt-secret");
    if let Ok(secret) = std::fs::read_to_string(&secret_file) {
        return secret.trim().to_owned();
    }
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let token = sign_with(
        secret.as_bytes(),
        &json!({"sub": "ota-lambda-e2e", "role": "admin", "aud": "ota-admin",
                "exp": now() + TOKEN_TTL_S}),
    );
    std::fs::write(&secret_file, &secret).expect("writing jwt-secret");
    std::fs::write(dir.join("admin-token"), token).expect("writing admin-token");
    secret
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("a bound address").port()
}

fn cargo_lambda() -> PathBuf {
    match std::env::var_os("OTA_E2E_CARGO_LAMBDA") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "OTA_E2E_DEPLOY=lambda needs OTA_E2E_CARGO_LAMBDA, the cargo-lambda binary: run \
             `cargo xtask test`, which installs it into target/cargo-lambda-venv"
        ),
    }
}

/// `cargo lambda watch` at the workspace root on `port`, in a process group of its own so that
/// stopping the group stops the functions too. Up to `OTA_E2E_LAMBDA_CONCURRENCY` (default 2)
/// instances per function, so that concurrent requests meet other instances as on AWS.
pub fn command(port: u16) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let concurrency = std::env::var("OTA_E2E_LAMBDA_CONCURRENCY").unwrap_or_else(|_| "2".into());
    let mut cmd = Command::new(cargo_lambda());
    // What `cargo test` set for this test binary is not the runner's environment, and the
    // emulator's `cargo run` would see it: cargo records the variables build scripts track from
    // its own environment (ring's tracks CARGO_MANIFEST_DIR), so with these it would rebuild
    // the functions. `cargo xtask` clears the same ones for its builds.
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n == "CARGO_MANIFEST_DIR"
            || n == "CARGO_MANIFEST_PATH"
            || n == "CARGO_CRATE_NAME"
            || n == "CARGO_PRIMARY_PACKAGE"
            || n == "CARGO_TARGET_TMPDIR"
            || n.starts_with("CARGO_PKG_")
            || n.starts_with("CARGO_BIN_")
        {
            cmd.env_remove(&name);
        }
    }
    cmd.args(["lambda", "watch", "--ignore-changes"])
        .args(["--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .args(["--concurrency", &concurrency])
        .current_dir(root)
        .env("OTA_VIEW_CACHE_S", "0")
        .process_group(0);
    cmd
}

/// Waits until `GET /health` through the emulator (which starts `admin-metrics`) answers 200.
pub fn wait_until_serving(child: &mut Child, port: u16) -> Result<(), NotServing> {
    let started = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(NotServing::Exited);
        }
        let last = match health(port) {
            Ok(200) => return Ok(()),
            Ok(status) => format!("GET /health answered {status}"),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > START_TIMEOUT {
            return Err(NotServing::Timeout(format!(
                "{last} after {} s",
                START_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The status code of `GET /health`, over a plain HTTP/1.1 connection.
fn health(port: u16) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP status line"))
}
