//! The Lambda functions served locally by `cargo lambda watch` on the local AWS stack: the
//! table and bucket created, a JWT secret and a manifest key for the session, an admin token,
//! one base URL that serves the paths of docs/api.md (the router in the workspace `Cargo.toml`)
//! through the six HTTP functions, and `rollout-tick` invoked by name. `docs/lambda.md`.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::aws_local::{self, LocalAws, http};

/// Table and bucket of a local session (the stack is fresh, in memory, every time).
pub const TABLE: &str = "ota-local";
pub const BUCKET: &str = "ota-local";
/// The functions' binaries, built before the emulator starts so that its first invocation of
/// each (`cargo run --bin <function>` at the workspace root) finds them fresh.
pub const FUNCTIONS: [&str; 7] = [
    "check",
    "download",
    "status",
    "admin-upload",
    "admin-rollout",
    "admin-metrics",
    "rollout-tick",
];
/// How long the emulator may take to answer its first request (it starts the function then).
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// The directory with `cargo-lambda` (and zig, through the `ziglang` wheel), installed into a
/// virtual environment under `target/` when missing.
pub fn ensure_cargo_lambda(root: &Path) -> anyhow::Result<PathBuf> {
    let venv = crate::python::ensure_venv(
        root,
        "cargo-lambda-venv",
        "xtask/requirements-lambda.txt",
        |python| {
            let ok = |cmd: &mut Command| {
                cmd.stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let bin = python.parent().unwrap_or(Path::new("."));
            ok(Command::new(bin.join("cargo-lambda")).args(["lambda", "--help"]))
                && ok(Command::new(python).args(["-m", "ziglang", "version"]))
        },
    )?;
    Ok(venv.join("bin"))
}

/// `cargo-lambda` from `bin_dir` (`ensure_cargo_lambda`), at the workspace root, finding the
/// venv's zig first on PATH and none of cargo's per-crate variables (they would rebuild the
/// dependencies that track them).
pub fn cargo_lambda(bin_dir: &Path) -> anyhow::Result<Command> {
    let mut cmd = Command::new(bin_dir.join("cargo-lambda"));
    cmd.current_dir(crate::root());
    ota_testkit::cargo_env::scrub(&mut cmd);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin_dir.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(paths)?);
    Ok(cmd)
}

/// What the functions of a session are configured with, and an admin token for it.
pub struct Session {
    pub env: Vec<(String, String)>,
    pub admin_token: String,
}

/// Builds the functions and the setup tool, creates the table and the bucket, generates the
/// session's JWT secret and manifest key and mints an admin token with it.
pub fn prepare(aws: &LocalAws) -> anyhow::Result<Session> {
    let mut build = crate::cargo();
    // Selected by binary name at the workspace root, as the emulator's `cargo run --bin` does, so
    // that features are resolved the same way (`-p` would resolve them for those packages only
    // and the emulator would rebuild the AWS SDK).
    build.args(["build", "--locked", "--bin", "ota-local-setup"]);
    for f in FUNCTIONS {
        build.args(["--bin", f]);
    }
    crate::run(&mut build)?;
    let mut env = session_env(aws)?;
    // Every request's access line, for the log check of the probes (and for reading a failed
    // test's log).
    env.push(("OTA_ACCESS_LOG_SAMPLE".to_owned(), "1".to_owned()));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::root().join("target"), PathBuf::from);
    let setup = crate::root().join(target).join("debug/ota-local-setup");
    let admin_token = create_table_and_bucket(aws, &setup, &env)?;
    Ok(Session { env, admin_token })
}

/// The settings of a session on `aws`: the local stack's endpoints and credentials, the table
/// and bucket, a JWT secret and a manifest key of its own.
pub fn session_env(aws: &LocalAws) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = aws.env();
    env.extend(
        [
            ("OTA_TABLE", TABLE.to_owned()),
            ("OTA_BUCKET", BUCKET.to_owned()),
            ("OTA_JWT_SECRET", random_hex(32)?),
            // A manifest key of this session. 32 random bytes are a valid P-256 scalar but for a
            // chance of about 2^-32 (zero or past the curve order), which the functions would
            // refuse at init, naming the variable.
            ("OTA_MANIFEST_KEYS", random_hex(32)?),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    Ok(env)
}

/// Creates the table and the bucket of `env` with the `ota-local-setup` binary `setup`; returns
/// the admin token it minted.
pub fn create_table_and_bucket(
    aws: &LocalAws,
    setup: &Path,
    env: &[(String, String)],
) -> anyhow::Result<String> {
    let mut cmd = Command::new(setup);
    aws.apply(&mut cmd).envs(env.iter().map(|(k, v)| (k, v)));
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("starting {}", setup.display()))?;
    if !out.status.success() {
        bail!("creating the table and the bucket failed ({})", out.status);
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// `cargo lambda watch`, which starts `cargo run` and the functions under it. With a log file it
/// runs in a process group of its own, all stopped on drop; otherwise it stays in the terminal's
/// group, so that Ctrl-C reaches it and every function directly.
pub struct Watch {
    child: Child,
    pub addr: SocketAddr,
    log: Option<PathBuf>,
}

impl Watch {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts the emulator on a free port and waits until the base URL answers `/health`
    /// (which starts the `admin-metrics` function). With `log`, its output goes there (and
    /// functions are not rebuilt on code changes); otherwise to this terminal, with hot reload.
    pub fn start(
        bin_dir: &Path,
        aws: &LocalAws,
        session: &Session,
        log: Option<&Path>,
    ) -> anyhow::Result<Watch> {
        let port = aws_local::free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = cargo_lambda(bin_dir)?;
        cmd.args(["lambda", "watch", "--invoke-address", "127.0.0.1"])
            .args(["--invoke-port", &port.to_string()]);
        aws.apply(&mut cmd)
            .envs(session.env.iter().map(|(k, v)| (k, v)));
        if let Some(log) = log {
            let file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
            cmd.arg("--ignore-changes")
                .process_group(0)
                .stdout(file.try_clone()?)
                .stderr(file);
        }
        let child = cmd.spawn().context("starting cargo lambda watch")?;
        let mut watch = Watch {
            child,
            addr,
            log: log.map(Path::to_path_buf),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = watch.child.try_wait()? {
                bail!(
                    "cargo lambda watch exited with {status}{}",
                    watch.log_tail()
                );
            }
            if let Ok(r) = http::request(addr, "GET", "/health", &[], b"") {
                if r.status == 200 {
                    break;
                }
                // The function answered, but not healthy: the store does not answer.
                if r.status != 502 && r.status != 404 {
                    bail!(
                        "GET /health through cargo lambda watch answered {}: {}{}",
                        r.status,
                        http::truncate(&r.body, 500),
                        watch.log_tail()
                    );
                }
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "cargo lambda watch did not serve /health within {} s{}",
                    START_TIMEOUT.as_secs(),
                    watch.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(watch)
    }

    /// Returns an error when the emulator has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("cargo lambda watch exited with {status}{}", self.log_tail());
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let Some(log) = &self.log else {
            return String::new();
        };
        let mut text = String::new();
        let _ = File::open(log).and_then(|mut f| f.read_to_string(&mut text));
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        format!("\n--- {} (end) ---\n{}", log.display(), &text[start..])
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The process group when it has its own, else the emulator alone.
        let group = match self.log {
            Some(_) => format!("-{}", self.child.id()),
            None => self.child.id().to_string(),
        };
        let kill = |signal: &str| {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        kill("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill("-KILL");
        let _ = self.child.wait();
    }
}

/// One request of the smoke check and the status it must get.
struct Probe {
    method: &'static str,
    path: &'static str,
    /// With the admin token.
    admin: bool,
    body: &'static [u8],
    want: u16,
    function: &'static str,
}

const fn probe(
    method: &'static str,
    path: &'static str,
    admin: bool,
    body: &'static [u8],
    want: u16,
    function: &'static str,
) -> Probe {
    Probe {
        method,
        path,
        admin,
        body,
        want,
        function,
    }
}

const CHECK: &[u8] = br#"{"device_id":"dev-1","device_type":"demo","current_version":"1.0.0"}"#;
const STATUS: &[u8] = br#"{"device_id":"dev-1","firmware_id":"00000000-0000-0000-0000-000000000000","status":"downloading"}"#;

/// At least one request per function: the admin lists read the (empty) table, the requests
/// without a credential show the function answering its own routes.
const PROBES: [Probe; 9] = [
    probe("GET", "/health", false, b"", 200, "admin-metrics"),
    probe(
        "GET",
        "/api/ota/openapi.json",
        false,
        b"",
        200,
        "admin-metrics",
    ),
    probe(
        "GET",
        "/api/ota/admin/metrics",
        true,
        b"",
        200,
        "admin-metrics",
    ),
    probe(
        "GET",
        "/api/ota/admin/device-types",
        false,
        b"",
        401,
        "admin-rollout",
    ),
    probe(
        "GET",
        "/api/ota/admin/rollouts",
        true,
        b"",
        200,
        "admin-rollout",
    ),
    probe(
        "GET",
        "/api/ota/admin/firmware",
        true,
        b"",
        200,
        "admin-upload",
    ),
    probe("POST", "/api/ota/check", false, CHECK, 401, "check"),
    probe("POST", "/api/ota/status", false, STATUS, 401, "status"),
    probe("GET", "/api/ota/download/p-1", false, b"", 401, "download"),
];

/// How often a probe is sent again after an emulator failure (not the service's).
const EMULATOR_RETRIES: u32 = 3;

/// Sends [`PROBES`] through the base URL, as a client of docs/api.md would.
pub fn smoke_check(watch: &Watch, token: &str) -> anyhow::Result<()> {
    let bearer = format!("Bearer {token}");
    for p in &PROBES {
        let mut headers = vec![("Content-Type", "application/json")];
        if p.admin {
            headers.push(("Authorization", bearer.as_str()));
        }
        let started = Instant::now();
        let (method, path, function) = (p.method, p.path, p.function);
        let mut r = http::request(watch.addr, method, path, &headers, p.body)
            .with_context(|| format!("{method} {path} ({function})"))?;
        // The emulator's own 500, when a function instance lost its runtime connection (the
        // e2e harness's EMULATOR_RETRIES says more): not the service's answer, so asked again.
        for _ in 0..EMULATOR_RETRIES {
            if !(r.status == 500 && r.body.contains("https://httpstatuses.com/500")) {
                break;
            }
            eprintln!("xtask: cargo lambda watch failed {method} {path}; sending it again");
            std::thread::sleep(std::time::Duration::from_millis(500));
            r = http::request(watch.addr, method, path, &headers, p.body)
                .with_context(|| format!("{method} {path} ({function})"))?;
        }
        if r.status != p.want {
            bail!(
                "{method} {path} ({function}) answered {}, expected {}: {}{}",
                r.status,
                p.want,
                http::truncate(&r.body, 500),
                watch.log_tail()
            );
        }
        eprintln!(
            "xtask: {method} {path} -> {} ({function}, {} ms)",
            r.status,
            started.elapsed().as_millis()
        );
    }
    // The functions' output reaches the emulator's log: an access line per request (sampled
    // 1 in 1 here) and JSON log lines, the ones of a request carrying its request id. (EMF lines
    // come per 100 requests or per minute: too few requests here to expect one.)
    if let Some(log) = &watch.log {
        let text = std::fs::read_to_string(log)?;
        let line = text
            .lines()
            .find(|l| l.contains(r#""message":"request""#) && l.contains(r#""function":"check""#));
        let Some(line) = line else {
            bail!(
                "no access line of the check function in the log{}",
                watch.log_tail()
            );
        };
        eprintln!("xtask: an access line: {line}");
    }
    Ok(())
}

/// What EventBridge sends `rollout-tick` every minute (AWS's sample of a scheduled event); the
/// function reads none of it.
const SCHEDULED_EVENT: &[u8] = br#"{"version":"0","id":"53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2015-10-08T16:53:06Z","region":"us-east-1","resources":["arn:aws:events:us-east-1:123456789012:rule/rollout-tick"],"detail":{}}"#;

/// Invokes `rollout-tick` once with a scheduled event through the emulator's Lambda invoke API
/// (as `cargo lambda invoke` does; it has no HTTP route), and checks that the tick ran on the
/// session's table: the invocation succeeds and answers how many rollouts it evaluated and
/// decided and how many devices it timed out. Its effects are `ota-lambda`'s test
/// `rollout_tick`.
pub fn invoke_rollout_tick(watch: &Watch) -> anyhow::Result<()> {
    let started = Instant::now();
    let path = "/2015-03-31/functions/rollout-tick/invocations";
    let headers = [("Content-Type", "application/json")];
    let r = http::request(watch.addr, "POST", path, &headers, SCHEDULED_EVENT)
        .context("invoking rollout-tick")?;
    let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    let counted = |field: &str| answer[field].as_u64().is_some();
    if r.status != 200
        || !["evaluated", "decided", "timed_out"]
            .into_iter()
            .all(counted)
    {
        bail!(
            "rollout-tick answered {}: {}{}",
            r.status,
            http::truncate(&r.body, 500),
            watch.log_tail()
        );
    }
    eprintln!(
        "xtask: rollout-tick invoked with a scheduled event -> {answer} ({} ms)",
        started.elapsed().as_millis()
    );
    Ok(())
}

/// Runs the README's walkthrough (the shell block that starts with `OTA=${OTA:-`) verbatim
/// through the base URL, with the session's admin token instead of the embedded server's token
/// file: publish, roll out, check, download from S3, report, read the log, across five of the
/// functions. Needs bash, curl, jq and sha256sum.
pub fn walkthrough(watch: &Watch, token: &str) -> anyhow::Result<()> {
    let readme = std::fs::read_to_string(crate::root().join("README.md"))?;
    let start = readme
        .find("```sh\nOTA=${OTA:-")
        .context("README.md has no walkthrough block")?
        + "```sh\n".len();
    let end = start
        + readme[start..]
            .find("```")
            .context("the walkthrough block does not end")?;
    let script: String = readme[start..end]
        .lines()
        .filter(|l| !l.starts_with("TOKEN=$(cat ota-data/admin-token)"))
        .map(|l| format!("{l}\n"))
        .collect();
    let started = Instant::now();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("OTA", watch.base_url())
        .env("TOKEN", token)
        .current_dir(crate::root())
        .output()
        .context("starting bash for the README walkthrough")?;
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "the README walkthrough failed through the functions ({}):\n{shown}{}",
            out.status,
            watch.log_tail()
        );
    }
    eprintln!(
        "xtask: README walkthrough through the functions ok in {:.1} s:\n{shown}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
