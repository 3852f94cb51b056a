//! A real `ota-server` per test (ephemeral port, temporary data directory; see ota-testkit) and
//! the real `otactl` binary run against it, as CI would run it.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ota_testkit::server::{Binary, OtaServer};
use serde_json::Value;

pub fn otactl_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_otactl"))
}

/// A running `ota-server`, stopped when dropped.
pub struct Server {
    pub admin_token: String,
    /// Where `otactl` keeps resumable uploads for this test.
    pub state: tempfile::TempDir,
    server: OtaServer,
}

impl Server {
    pub fn start() -> Server {
        let server = OtaServer::builder(Binary::workspace())
            .data_prefix("otactl-test-")
            .start();
        Server {
            admin_token: server.admin_token(),
            state: tempfile::tempdir().expect("temporary state directory"),
            server,
        }
    }

    pub fn secret_file(&self) -> PathBuf {
        self.server.jwt_secret_file()
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
            .env("OTA_SERVER", self.server.base())
            .env("OTA_TOKEN", &self.admin_token)
            .env("OTACTL_STATE_DIR", self.state.path())
            .env_remove("OTA_OUTPUT");
        cmd
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base())
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
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

/// The stdout lines of a child started with `Stdio::piped()`, through a thread, so that a
/// command that never prints fails its test by a `recv_timeout` instead of hanging it.
pub fn lines(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The exit code of a child that must end within `limit` (killed, and the test failed, if not).
#[track_caller]
pub fn exits_within(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
