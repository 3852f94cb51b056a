//! A real `ota-server` on the embedded default (ephemeral port, temporary data directory; see
//! ota-testkit) and the real `fleet-sim` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use ota_testkit::server::{Binary, OtaServer};

pub fn sim_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_fleet-sim"))
}

/// A running `ota-server`, stopped when dropped.
pub struct Server {
    pub base: String,
    server: OtaServer,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// With extra environment, e.g. a short `OTA_ROLLOUT_TICK_S`.
    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let server = env
            .iter()
            .fold(OtaServer::builder(Binary::workspace()), |b, (k, v)| {
                b.env(k, v)
            })
            .data_prefix("fleet-sim-test-")
            .start();
        Server {
            base: server.base().to_owned(),
            server,
        }
    }

    pub fn admin_token_file(&self) -> PathBuf {
        self.server.admin_token_file()
    }

    pub fn secret_file(&self) -> PathBuf {
        self.server.jwt_secret_file()
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
        self.server.admin_token()
    }
}
