//! The fleet simulator (`tools/fleet-sim`) against a fresh release server: 10,000 simulated
//! devices through a canary -> 100 % rollout, its summary kept as it wrote it.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};

use super::server::Server;

pub const DEVICES: u32 = 10_000;

/// Runs `bin` against `server`; its JSON summary goes to `json_out`. A failed run (exit code
/// other than 0) is recorded, not raised: the other numbers stand on their own.
pub fn run(bin: &Path, server: &Server, json_out: &Path) -> anyhow::Result<Value> {
    let started = Instant::now();
    let log = json_out.with_extension("log");
    let out = Command::new(bin)
        .args(["--base-url", &server.base_url()])
        .arg("--admin-token-file")
        .arg(server.data_dir.join("admin-token"))
        .arg("--jwt-secret-file")
        .arg(server.data_dir.join("jwt-secret"))
        .args(["--devices", &DEVICES.to_string(), "--seed", "1"])
        .arg("--json-out")
        .arg(json_out)
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
        "command": format!(
            "fleet-sim --base-url URL --admin-token-file FILE --jwt-secret-file FILE \
             --devices {DEVICES} --seed 1 --json-out {}", json_out.display()
        ),
        "exit_code": out.status.code(),
        "wall_s": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "log": log.display().to_string(),
        "summary": summary,
    }))
}
