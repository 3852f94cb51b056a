//! A real `ota-server` on the embedded default (ephemeral port, temporary data directory),
//! started the way `tools/otactl/tests/harness.rs` starts it, and the real `fleet-sim` binary.
//!
//! The server binary is the `ota-server` next to the `fleet-sim` binary Cargo built for this
//! test; when it was never built (`cargo test -p fleet-sim` on a clean checkout) it is built
//! into a target directory of its own, since Cargo holds the main one's lock while tests run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

const LISTEN_PREFIX: &str = "ota-server listening on ";

pub fn sim_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_fleet-sim"))
}

fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = sim_bin()
            .parent()
            .expect("fleet-sim sits in a target directory");
        let sibling = profile_dir.join("ota-server");
        if sibling.exists() {
            return sibling;
        }
        let target = profile_dir
            .parent()
            .expect("a profile directory sits in a target directory")
            .join("fleet-sim-test-server");
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
    pub data: tempfile::TempDir,
    child: Child,
}

impl Server {
    pub fn start() -> Server {
        let data = tempfile::Builder::new()
            .prefix("fleet-sim-test-")
            .tempdir()
            .expect("temporary data directory");
        let mut child = Command::new(server_bin())
            .env("OTA_LISTEN", "127.0.0.1:0")
            .env("OTA_DATA_DIR", data.path())
            .env("RUST_LOG", "warn")
            .env_remove("OTA_TABLE")
            .env_remove("OTA_BUCKET")
            .env_remove("OTA_JWT_SECRET")
            .env_remove("OTA_PUBLIC_URL")
            .env_remove("OTA_DEVICE_RATE_PER_MIN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting ota-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(base) = line.strip_prefix(LISTEN_PREFIX) {
                    let _ = tx.send(base.trim().to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("ota-server did not print its listening line");
        Server { base, data, child }
    }

    pub fn admin_token_file(&self) -> PathBuf {
        self.data.path().join("admin-token")
    }

    pub fn secret_file(&self) -> PathBuf {
        self.data.path().join("jwt-secret")
    }

    /// `fleet-sim` against this server with its admin token; more flags in `args`.
    pub fn sim(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(sim_bin());
        cmd.arg("--base-url")
            .arg(&self.base)
            .arg("--admin-token-file")
            .arg(self.admin_token_file())
            .args(args);
        cmd
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.admin_token_file())
            .expect("reading admin-token")
            .trim()
            .to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
