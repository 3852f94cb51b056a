//! A real `ota-server` per test: an ephemeral port and a temporary data directory of its own, so
//! that tests run in parallel without sharing state, and the listening line read for its
//! address.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::cargo_env;
use crate::process::{Output, Process};

/// The file in which `ota-server` keeps the admin token it mints on its first start.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// The file in which `ota-server` keeps the JWT secret it generates on its first start.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

/// See [`Binary::workspace`]; built at most once per test binary.
fn workspace_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let test = std::env::current_exe().expect("the path of the running test binary");
        let profile_dir = profile_dir(&test);
        let sibling = profile_dir.join("ota-server");
        if sibling.exists() {
            return sibling;
        }
        let target = own_target_dir(profile_dir);
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "ota-server", "--target-dir"])
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        let status = cargo_env::scrub(&mut build)
            .status()
            .expect("running cargo build -p ota-server");
        assert!(status.success(), "cargo build -p ota-server failed");
        target.join("debug").join("ota-server")
    })
}

/// `target/<profile>` of a test binary, which Cargo puts in `target/<profile>/deps`.
fn profile_dir(test: &Path) -> &Path {
    test.parent()
        .and_then(Path::parent)
        .expect("a test binary sits in <target>/<profile>/deps")
}

/// Where [`Binary::workspace`] builds `ota-server` when Cargo has not: beside the profile
/// directories, shared by every package's tests (the build's environment is scrubbed of the
/// calling crate, so their builds are the same build).
fn own_target_dir(profile_dir: &Path) -> PathBuf {
    profile_dir
        .parent()
        .expect("a profile directory sits in a target directory")
        .join("ota-testkit-server")
}

/// How a deployment of the service starts on its data directory: its process and, once it
/// serves, its base URL. [`Binary`] starts `ota-server`; the e2e suite starts the Lambda
/// functions instead, on the same terms. `Send + Sync`, so that an [`OtaServer`] can be shared
/// with a test's threads like the rest of its state.
pub trait Launch: Send + Sync {
    /// Starts the deployment on `data` with the test's `env`, its output going to `output`.
    fn launch(&self, data: &Path, env: &[(String, String)], output: &Output) -> (Process, String);
}

/// `ota-server` from a binary, listening on an ephemeral port.
pub struct Binary {
    path: PathBuf,
    start_timeout: Duration,
}

impl Binary {
    /// The binary at `path`: `env!("CARGO_BIN_EXE_ota-server")` in the tests of `ota-server`.
    pub fn at(path: impl Into<PathBuf>) -> Binary {
        Binary {
            path: path.into(),
            start_timeout: Duration::from_secs(60),
        }
    }

    /// The `ota-server` next to the binaries Cargo built for the calling test, for the tests of
    /// the workspace's other packages (which cannot name it with `CARGO_BIN_EXE_`). `cargo test
    /// --workspace` builds it there, since it is a binary of the workspace. Where it was never
    /// built (`cargo test -p otactl` on a fresh checkout) it is built here, with `cargo build -p
    /// ota-server`, into a target directory of its own: Cargo holds the main target directory's
    /// lock while tests run, so a build into it would wait forever.
    pub fn workspace() -> Binary {
        Binary::at(workspace_binary())
    }

    /// How long the server may take to print its listening line.
    pub fn start_timeout(mut self, timeout: Duration) -> Binary {
        self.start_timeout = timeout;
        self
    }
}

impl Launch for Binary {
    fn launch(&self, data: &Path, env: &[(String, String)], output: &Output) -> (Process, String) {
        let mut cmd = Command::new(&self.path);
        cmd.env("OTA_LISTEN", "127.0.0.1:0")
            .env("OTA_DATA_DIR", data);
        let (process, listening) = Process::spawn(cmd, env, output);
        match listening.recv_timeout(self.start_timeout) {
            Ok(url) => (process, url.trim_end_matches('/').to_owned()),
            Err(e) => {
                process.kill();
                // The drain threads read what the process printed last before it died.
                std::thread::sleep(Duration::from_millis(100));
                output.dump();
                panic!("ota-server did not report its address ({e})");
            }
        }
    }
}

/// Starts an [`OtaServer`].
pub struct OtaServerBuilder {
    launch: Box<dyn Launch>,
    env: Vec<(String, String)>,
    data_prefix: String,
}

impl OtaServerBuilder {
    /// Sets a variable for the server, over the harness's own (`RUST_LOG` included).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn envs(mut self, env: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env.extend(env);
        self
    }

    /// The start of the data directory's name, which tells whose it is among the temporary
    /// directories (and lets a test check that no answer leaks it).
    pub fn data_prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.data_prefix);
        self
    }

    pub fn start(self) -> OtaServer {
        let data = tempfile::Builder::new()
            .prefix(&self.data_prefix)
            .tempdir()
            .expect("creating a temporary data directory");
        let mut server = OtaServer {
            process: None,
            launch: self.launch,
            env: self.env,
            data,
            output: Output::default(),
            base: String::new(),
        };
        server.start();
        server
    }
}

/// A running deployment of the service on `127.0.0.1` with a temporary data directory of its
/// own: `ota-server`, unless [`Launch`] says otherwise. Killed (and the directory removed) when
/// dropped.
pub struct OtaServer {
    // First, so that it is killed before its data directory is removed.
    process: Option<Process>,
    launch: Box<dyn Launch>,
    env: Vec<(String, String)>,
    data: tempfile::TempDir,
    output: Output,
    base: String,
}

impl OtaServer {
    pub fn builder(launch: impl Launch + 'static) -> OtaServerBuilder {
        OtaServerBuilder {
            launch: Box::new(launch),
            env: Vec::new(),
            data_prefix: "ota-testkit-".to_owned(),
        }
    }

    /// The base URL, without a trailing slash. It changes with every start.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    pub fn admin_token_file(&self) -> PathBuf {
        self.data_dir().join(ADMIN_TOKEN_FILE)
    }

    pub fn jwt_secret_file(&self) -> PathBuf {
        self.data_dir().join(JWT_SECRET_FILE)
    }

    pub fn admin_token(&self) -> String {
        read_secret(self.data_dir(), ADMIN_TOKEN_FILE)
    }

    /// Starts the deployment again after [`stop`](Self::stop) or [`kill`](Self::kill), on the
    /// same data directory and environment (and, for `ota-server`, a new port).
    pub fn start(&mut self) {
        assert!(self.process.is_none(), "the server is already running");
        let (process, base) = self
            .launch
            .launch(self.data.path(), &self.env, &self.output);
        self.process = Some(process);
        self.base = base;
    }

    /// Graceful stop: SIGTERM, then SIGKILL if it lingers.
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop();
        }
    }

    /// SIGTERM without waiting, the server left running until [`exit_status`](Self::exit_status).
    pub fn terminate(&self) {
        if let Some(process) = &self.process {
            process.terminate();
        }
    }

    /// How the server ended by itself within `timeout` (after [`terminate`](Self::terminate)),
    /// or None: then it is killed.
    pub fn exit_status(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.process.take()?.exit_status(timeout)
    }

    /// SIGKILL: what a crash or a power cut looks like to the server.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }
}

/// A secret `ota-server` keeps in `data_dir` (`ADMIN_TOKEN_FILE`, `JWT_SECRET_FILE`), trimmed.
pub fn read_secret(data_dir: &Path, name: &str) -> String {
    std::fs::read_to_string(data_dir.join(name))
        .unwrap_or_else(|e| panic!("reading {name} from the data directory: {e}"))
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_looked_for_beside_the_test_and_built_beside_the_profiles() {
        let test = Path::new("/w/target/debug/deps/cli-0123abcd");
        assert_eq!(profile_dir(test), Path::new("/w/target/debug"));
        assert_eq!(
            own_target_dir(profile_dir(test)),
            Path::new("/w/target/ota-testkit-server")
        );
    }
}
