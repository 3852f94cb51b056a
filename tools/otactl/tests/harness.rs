//! A real `ota-server` per test (ephemeral port, temporary data directory) and the real
//! `otactl` binary run against it, as CI would run it.
//!
//! The server binary is the workspace's `target/<profile>/ota-server`, the sibling of the
//! `otactl` binary Cargo built for this test. `cargo test --workspace` builds it (it is a
//! binary of the workspace); for `cargo test -p otactl` on a checkout where it was never built,
//! it is built here with `cargo build -p ota-server` into a target directory of its own: Cargo
//! holds the main target directory's lock while tests run, so building into it would wait
//! forever.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const START_TIMEOUT: Duration = Duration::from_secs(60);
const LISTEN_PREFIX: &str = "ota-server listening on ";

pub fn otactl_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_otactl"))
}

fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = otactl_bin()
            .parent()
            .expect("the otactl binary sits in a target directory");
        let sibling = profile_dir.join("ota-server");
        if sibling.exists() {
            return sibling;
        }
        let target = profile_dir
            .parent()
            .expect("a profile directory sits in a target directory")
            .join("otactl-test-server");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-p", "ota-server", "--target-dir"])
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build -p ota-server");
        assert!(status.success(), "cargo build -p ota-server failed");
        target.join("debug").join("ota-server")
    })
}

/// A running `ota-server`, stopped when dropped.
pub struct Server {
    pub base: String,
    pub admin_token: String,
    pub data: tempfile::TempDir,
    /// Where `otactl` keeps resumable uploads for this test.
    pub state: tempfile::TempDir,
    child: Child,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let data = tempfile::Builder::new()
            .prefix("otactl-test-")
            .tempdir()
            .expect("temporary data directory");
        let state = tempfile::tempdir().expect("temporary state directory");
        let mut cmd = Command::new(server_bin());
        cmd.env("OTA_LISTEN", "127.0.0.1:0")
            .env("OTA_DATA_DIR", data.path())
            .env("RUST_LOG", "warn")
            .env_remove("OTA_TABLE")
            .env_remove("OTA_BUCKET")
            .env_remove("OTA_JWT_SECRET")
            .env_remove("OTA_PUBLIC_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting ota-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout after the first line so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(base) = line.strip_prefix(LISTEN_PREFIX) {
                    let _ = tx.send(base.trim().to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(START_TIMEOUT)
            .expect("ota-server did not print its listening line");
        let admin_token = std::fs::read_to_string(data.path().join("admin-token"))
            .expect("reading admin-token")
            .trim()
            .to_owned();
        Server {
            base,
            admin_token,
            data,
            state,
            child,
        }
    }

    pub fn secret_file(&self) -> PathBuf {
        self.data.path().join("jwt-secret")
    }

    /// `otactl ARGS` against this server with the admin token.
    pub fn otactl(&self, args: &[&str]) -> Run {
        self.otactl_with(args, &[])
    }

    pub fn otactl_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::from(cmd.output().expect("running otactl"))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(otactl_bin());
        cmd.args(args)
            .env("OTA_SERVER", &self.base)
            .env("OTA_TOKEN", &self.admin_token)
            .env("OTACTL_STATE_DIR", self.state.path())
            .env_remove("OTA_OUTPUT");
        cmd
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one `otactl` run did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "otactl failed: {self:#?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        self.ok();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// Exit 1 with the reason on exactly one `otactl:` line of stderr; returns that line.
    #[track_caller]
    pub fn refused(&self) -> String {
        assert_eq!(self.code, 1, "expected exit 1: {self:#?}");
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("otactl:"))
            .collect();
        assert_eq!(lines.len(), 1, "one error line expected: {self:#?}");
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:#?}");
        lines[0].to_owned()
    }
}

pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../firmware-samples/samples")
        .join(name)
}

/// Writes generated image bytes into `dir` and returns the path.
pub fn write_image(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writing an image");
    path
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
