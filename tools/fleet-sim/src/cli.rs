//! The command line. `cargo xtask bench` calls the simulator through exactly these flags, so
//! renaming one breaks the bench: add flags, never rename them.

use std::path::PathBuf;

use clap::Parser;
use ota_core::stages::Stage;
use serde_json::{Map, Value, json};

// The field docs are `--help` text, printed as written: Markdown backticks would show.
#[allow(clippy::doc_markdown)]
#[derive(Debug, Clone, Parser)]
#[command(
    name = "fleet-sim",
    about = "Simulates ESP32 devices updating through esp_https_ota while driving a canary -> 100 % rollout"
)]
pub struct Args {
    /// Base URL of the service, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub base_url: String,
    /// Base URLs the devices' requests are spread over, each device always to the same one
    /// (repeatable): several `ota-server` processes on one DynamoDB table stand in for Lambda
    /// instances. Admin requests go to `--base-url`, which is also the default.
    #[arg(long = "device-url")]
    pub device_urls: Vec<String>,
    /// File holding an admin token (the embedded server writes `<data dir>/admin-token`).
    #[arg(long)]
    pub admin_token_file: PathBuf,
    /// The service's HS256 secret (`<data dir>/jwt-secret`): device tokens are then signed
    /// locally instead of minted one request per device.
    #[arg(long)]
    pub jwt_secret_file: Option<PathBuf>,
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// Devices in flight at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Bytes per ranged GET, as esp_https_ota's partial download; 0 = one plain GET.
    #[arg(long, default_value_t = 65_536)]
    pub chunk_size: u64,
    /// Download through the redirecting `GET /api/ota/download/{firmware_id}` with the device
    /// credential in `X-OTA-Device-Token`, instead of the capability URL the check returns.
    #[arg(long)]
    pub via_download_endpoint: bool,
    /// Share of devices that fail the update (download aborted, `failed` reported).
    #[arg(long, default_value_t = 0.01)]
    pub failure_rate: f64,
    /// Share of devices that install, boot the new image and roll back (`rolled_back`).
    #[arg(long, default_value_t = 0.005)]
    pub rollback_rate: f64,
    /// Percentage of the first (canary) phase; the second phase widens the rollout to 100.
    #[arg(long, default_value_t = 10.0)]
    pub canary_percent: f64,
    /// Decides which devices fail or roll back and the order devices start in.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Image to publish; without it (and without --firmware-id) one is generated.
    #[arg(long, conflicts_with = "firmware_id")]
    pub image: Option<PathBuf>,
    /// An already published, ready release to roll out instead of publishing one.
    #[arg(long)]
    pub firmware_id: Option<String>,
    /// Device type of the published image and of the simulated devices.
    #[arg(long, default_value = "fleet-sim")]
    pub device_type: String,
    /// Version every device runs before the update.
    #[arg(long, default_value = "0.0.1")]
    pub from_version: String,
    /// Size of the generated image (bytes; K/M suffixes are 1024-based).
    #[arg(long, default_value = "256K", value_parser = firmware_samples::parse_size)]
    pub image_size: usize,
    /// The rollout's `failure_threshold_percent`: above it the service pauses the rollout.
    #[arg(long, default_value_t = 20.0)]
    pub failure_threshold: f64,
    /// The rollout's `min_reports` before the threshold applies.
    #[arg(long, default_value_t = 100)]
    pub min_reports: u32,
    /// Attempts per request when the service answers 429/503 or the connection fails.
    #[arg(long, default_value_t = 8)]
    pub max_attempts: u32,
    /// Write the summary as JSON (keys documented in docs/fleet-sim.md).
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Staged rollout instead of canary -> 100 %: PERCENT[:SOAK_S[:MIN_DEVICES]],... e.g.
    /// 10:2,50:2,100. The server advances the stages; devices keep polling meanwhile.
    #[arg(long, value_parser = parse_stages)]
    pub stages: Option<Stages>,
    /// Staged runs: the health gate's max_failure_percent (--min-reports is its min_reports).
    #[arg(long, requires = "stages", value_parser = percent)]
    pub max_failure: Option<f64>,
    /// Staged runs: the health gate's max_crash_percent.
    #[arg(long, requires = "stages", value_parser = percent)]
    pub max_crash: Option<f64>,
    /// Staged runs: the rollout's install_timeout_s (the server writes timed_out after it).
    #[arg(long, requires = "stages")]
    pub install_timeout: Option<u64>,
    /// crash:P: P % of the devices (by device id) that boot the new release report a panic
    /// on their next check.
    #[arg(long, value_parser = parse_bad_release)]
    pub bad_release: Option<f64>,
    /// P % of the devices (by device id) go silent after reporting downloading.
    #[arg(long, default_value_t = 0.0, value_parser = percent)]
    pub silent: f64,
    /// Staged runs: seconds between two polls of the devices not yet offered.
    #[arg(long, default_value_t = 0.5, value_parser = seconds)]
    pub poll_every: f64,
    /// Staged runs: give up this many seconds after creating the rollout.
    #[arg(long, default_value_t = 600)]
    pub max_wait: u64,
}

/// `--stages`: what clap keeps of one occurrence (a bare `Vec` would read as a repeatable flag).
#[derive(Debug, Clone)]
pub struct Stages(pub Vec<Stage>);

/// `PERCENT[:SOAK_S[:MIN_DEVICES]],...`. otactl has the same syntax, but in its binary crate:
/// sharing it would mean moving otactl's code, so this reads only what the simulator sends.
fn parse_stages(s: &str) -> Result<Stages, String> {
    s.split(',')
        .map(|item| {
            let mut parts = item.trim().split(':');
            let mut stage = Map::new();
            stage.insert(
                "percent".into(),
                json!(percent(parts.next().unwrap_or(""))?),
            );
            for name in ["soak_s", "min_devices"] {
                if let Some(p) = parts.next() {
                    let n: u64 = p.parse().map_err(|_| format!("{name} {p:?} in {item:?}"))?;
                    stage.insert(name.into(), json!(n));
                }
            }
            if parts.next().is_some() {
                return Err(format!("{item:?} is not PERCENT[:SOAK_S[:MIN_DEVICES]]"));
            }
            // Through the server's type, so that what is left out takes the server's default.
            serde_json::from_value(Value::Object(stage)).map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()
        .map(Stages)
}

fn percent(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|p: &f64| (0.0..=100.0).contains(p))
        .ok_or_else(|| format!("{s:?} is not a percentage from 0 to 100"))
}

/// A pause between polls: a number of seconds from 0.01 to an hour (a negative or non-finite
/// one would panic the sleep).
fn seconds(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|t: &f64| (0.01..=3600.0).contains(t))
        .ok_or_else(|| format!("{s:?} is not a number of seconds from 0.01 to 3600"))
}

/// `crash:P`, the only kind of bad release simulated so far.
fn parse_bad_release(s: &str) -> Result<f64, String> {
    s.strip_prefix("crash:")
        .ok_or_else(|| format!("{s:?} is not crash:PERCENT"))
        .and_then(percent)
}

impl Args {
    /// Refusals clap cannot express.
    pub fn check(&self) -> Result<(), String> {
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("--{name} must be between 0 and 1, got {v}"))
            }
        };
        share("failure-rate", self.failure_rate)?;
        share("rollback-rate", self.rollback_rate)?;
        if self.failure_rate + self.rollback_rate > 1.0 {
            return Err("--failure-rate + --rollback-rate exceed 1".to_owned());
        }
        if !(0.0..=100.0).contains(&self.canary_percent) {
            return Err(format!(
                "--canary-percent must be between 0 and 100, got {}",
                self.canary_percent
            ));
        }
        if self.devices == 0 || self.concurrency == 0 {
            return Err("--devices and --concurrency must be positive".to_owned());
        }
        if self.max_attempts == 0 {
            return Err("--max-attempts must be positive".to_owned());
        }
        Ok(())
    }
}
