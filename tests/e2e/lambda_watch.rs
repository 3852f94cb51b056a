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
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ota_core::manifest_keys::ManifestKeys;
use ota_testkit::process::{Output, Process};
use ota_testkit::server::{ADMIN_TOKEN_FILE, JWT_SECRET_FILE, Launch};
use serde_json::json;

use crate::harness::{now, sign_with};

/// How long the emulator may take to answer `/health` (it runs `cargo run` for the function).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// Lifetime of the admin token kept in the data directory, as `ota-server`'s start token.
const TOKEN_TTL_S: i64 = 30 * 24 * 3600;
/// The manifest keys in the data directory, under `ota-server`'s name for them.
const MANIFEST_KEYS_FILE: &str = "manifest-keys";

/// The six functions under `cargo lambda watch` on a free port, with the JWT secret, an admin
/// token and the manifest keys kept in the data directory as `ota-server` keeps them (so
/// restarts keep them; a test's own `OTA_MANIFEST_KEYS` wins).
pub struct Functions;

impl Launch for Functions {
    fn launch(&self, data: &Path, env: &[(String, String)], output: &Output) -> (Process, String) {
        let secret = credentials(data);
        let keys = manifest_keys(data);
        for _ in 0..3 {
            let port = free_port();
            let mut cmd = command(port);
            cmd.env("OTA_JWT_SECRET", &secret)
                .env("OTA_MANIFEST_KEYS", &keys);
            // A group of its own, so that stopping it stops the functions too.
            let mut process = Process::spawn_group(cmd, env, output);
            match wait_until_serving(process.child(), port) {
                Ok(()) => return (process, format!("http://127.0.0.1:{port}")),
                // Another test took the port between choosing and binding it: once more.
                Err(NotServing::Exited) => process.kill(),
                Err(NotServing::Timeout(e)) => {
                    process.kill();
                    output.dump();
                    panic!("cargo lambda watch did not serve /health: {e}");
                }
            }
        }
        output.dump();
        panic!("cargo lambda watch exited three times before serving");
    }
}

/// Why the emulator is not serving.
enum NotServing {
    /// It exited (most likely: the port was taken meanwhile).
    Exited,
    Timeout(String),
}

/// The JWT secret of this deployment, created with an admin token on first start and kept in
/// `dir` as `jwt-secret` and `admin-token`, the files the harness reads for `ota-server` too.
fn credentials(dir: &Path) -> String {
    let secret_file = dir.join(JWT_SECRET_FILE);
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
    std::fs::write(dir.join(ADMIN_TOKEN_FILE), token).expect("writing admin-token");
    secret
}

/// The manifest keys of this deployment, one key generated on first start and kept in `dir`, as
/// `ota-server` generates and keeps its own.
fn manifest_keys(dir: &Path) -> String {
    let file = dir.join(MANIFEST_KEYS_FILE);
    if let Ok(text) = std::fs::read_to_string(&file) {
        return text;
    }
    let text = format!("{}\n", ManifestKeys::generate_line());
    std::fs::write(&file, &text).expect("writing manifest-keys");
    text
}

fn free_port() -> u16 {
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

/// `cargo lambda watch` at the workspace root on `port`. Up to `OTA_E2E_LAMBDA_CONCURRENCY`
/// (default 2) instances per function, so that concurrent requests meet other instances as on
/// AWS.
fn command(port: u16) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let concurrency = std::env::var("OTA_E2E_LAMBDA_CONCURRENCY").unwrap_or_else(|_| "2".into());
    let mut cmd = Command::new(cargo_lambda());
    // What `cargo test` set for this test binary would reach the emulator's `cargo run`, which
    // would then rebuild the functions that `cargo xtask test` built.
    ota_testkit::cargo_env::scrub(&mut cmd);
    cmd.args(["lambda", "watch", "--ignore-changes"])
        .args(["--invoke-address", "127.0.0.1"])
        .args(["--invoke-port", &port.to_string()])
        .args(["--concurrency", &concurrency])
        .current_dir(root)
        .env("OTA_VIEW_CACHE_S", "0");
    cmd
}

/// Waits until `GET /health` through the emulator (which starts `admin-metrics`) answers 200.
fn wait_until_serving(child: &mut Child, port: u16) -> Result<(), NotServing> {
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
