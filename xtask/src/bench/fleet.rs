//! The fleet simulator (`tools/fleet-sim`) against fresh release servers: simulated devices
//! through a canary -> 100 % rollout, its summary kept as it wrote it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};

use super::server::Server;

/// Devices of the run against the embedded default.
pub const DEVICES: u32 = 10_000;

/// Where the simulator sends its requests and what it signs them with.
pub struct Target<'a> {
    /// The admin API (publish, roll out, read back), and the first server's admin token.
    pub admin: &'a Server,
    /// Each device talks to one of these (the admin server when empty).
    pub device_servers: &'a [Server],
    pub jwt_secret_file: PathBuf,
}

impl<'a> Target<'a> {
    /// One server on its own data directory's secret.
    pub fn single(server: &'a Server) -> Self {
        Target {
            admin: server,
            device_servers: &[],
            jwt_secret_file: server.data_dir.join("jwt-secret"),
        }
    }
}

/// Runs `bin` with `devices` and the `extra` arguments against `target`; its JSON summary goes to
/// `json_out`. A failed run (exit code other than 0) is recorded, not raised: the other numbers
/// stand on their own.
pub fn run(
    bin: &Path,
    target: &Target<'_>,
    devices: u32,
    extra: &[&str],
    json_out: &Path,
) -> anyhow::Result<Value> {
    let started = Instant::now();
    let log = json_out.with_extension("log");
    let mut args = vec![
        "--base-url".to_owned(),
        target.admin.base_url(),
        "--admin-token-file".to_owned(),
        target
            .admin
            .data_dir
            .join("admin-token")
            .display()
            .to_string(),
        "--jwt-secret-file".to_owned(),
        target.jwt_secret_file.display().to_string(),
    ];
    for s in target.device_servers {
        args.extend(["--device-url".to_owned(), s.base_url()]);
    }
    args.extend(["--devices".to_owned(), devices.to_string()]);
    args.extend(["--seed".to_owned(), "1".to_owned()]);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.extend(["--json-out".to_owned(), json_out.display().to_string()]);
    let out = Command::new(bin)
        .args(&args)
        .output()
        .with_context(|| format!("starting {}", bin.display()))?;
    std::fs::write(
        &log,
        [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
    )?;
    let summary = std::fs::read_to_string(json_out)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok());
    Ok(json!({
        "command": format!("fleet-sim {}", args.join(" ")),
        "exit_code": out.status.code(),
        "wall_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "log": log.display().to_string(),
        "summary": summary,
    }))
}
