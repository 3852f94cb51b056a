//! The command line, as clap reads it. Usage errors exit with clap's code 2.
// The doc comments here are `--help` text, printed as written: Markdown backticks would show.
#![allow(clippy::doc_markdown)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ota_core::offer_schedule::Window;
use time::OffsetDateTime;

use crate::staging::{self, Stages};

#[derive(Debug, Parser)]
#[command(
    name = "otactl",
    version,
    about = "Publish, roll out and watch ESP32 firmware through the OTA admin API",
    after_help = "Exit codes: 0 success, 1 refused (by the server or the local image check) or failed, 2 usage error."
)]
pub struct Cli {
    /// Base URL of the OTA service, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "OTA_SERVER", global = true)]
    pub server: Option<String>,
    /// Admin or CI bearer token (a JWT).
    #[arg(long, env = "OTA_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Tables for people, JSON for scripts.
    #[arg(long, short, value_enum, default_value_t = Output::Table, env = "OTA_OUTPUT", global = true)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

/// A percentage flag: 0 to 100 (NaN would go out as JSON `null`).
fn parse_percent(s: &str) -> Result<f64, String> {
    s.parse()
        .ok()
        .filter(|p: &f64| p.is_finite() && (0.0..=100.0).contains(p))
        .ok_or_else(|| "must be a number from 0 to 100".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate an image locally, then create, upload and finalize a release.
    Upload(UploadArgs),
    /// Upload (as `upload`) and start a canary rollout of the release in one step, for CI.
    Release(ReleaseArgs),
    /// Releases: list, show, edit, deactivate.
    #[command(subcommand)]
    Firmware(FirmwareCmd),
    /// Rollouts: create, list, show, change percentage or state, promote, watch.
    #[command(subcommand)]
    Rollout(RolloutCmd),
    /// The device registry.
    #[command(subcommand)]
    Devices(DevicesCmd),
    /// The OTA log, newest first; --follow keeps polling for new entries.
    Logs(LogsArgs),
    /// Fleet metrics: devices, versions, last-24-hour outcomes, active rollouts.
    Metrics,
    /// Print what the server would read from an image (offline).
    Inspect { file: PathBuf },
    /// Offline credentials.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manifest keys: a new signing key (offline), the public keys for firmware.
    #[command(subcommand)]
    Keys(KeysCmd),
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The app image (.bin) as ESP-IDF builds it.
    pub file: PathBuf,
    /// The product line, e.g. scales_bridge_tab5 (created by its first image).
    #[arg(long)]
    pub device_type: String,
    /// Defaults to the version in the image's app description.
    #[arg(long)]
    pub version: Option<String>,
    /// Build number (a device that reports its build is offered a higher (version, build)).
    #[arg(long = "build")]
    pub build_number: Option<u64>,
    /// Channel the release is offered on (server default: stable).
    #[arg(long)]
    pub channel: Option<String>,
    /// Release notes shown to devices and admins.
    #[arg(long)]
    pub notes: Option<String>,
    /// Internal description (not shown to devices).
    #[arg(long)]
    pub description: Option<String>,
    /// Devices below this version are not offered the release.
    #[arg(long)]
    pub min_current_version: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    #[command(flatten)]
    pub upload: UploadArgs,
    /// Percentage of the device type's fleet in the canary (0-100).
    #[arg(long, value_parser = parse_percent)]
    pub canary: f64,
    /// Rollout name; defaults to "<device type> <version> canary".
    #[arg(long)]
    pub name: Option<String>,
    /// Pause the rollout by itself when failed/(failed+success) exceeds this percentage.
    #[arg(long, value_parser = parse_percent)]
    pub failure_threshold: Option<f64>,
    /// Final reports needed before the threshold applies (server default 10).
    #[arg(long)]
    pub min_reports: Option<u32>,
}

// Paging shared by the list commands (a `//` comment: a doc comment here would become the
// `--help` summary of every command that flattens it).
#[derive(Debug, Args)]
pub struct Page {
    /// Items per page (server default 50, max 500).
    #[arg(long)]
    pub limit: Option<u32>,
    /// The `next_cursor` of a previous page.
    #[arg(long)]
    pub cursor: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FirmwareCmd {
    /// Releases, newest version first.
    List {
        #[arg(long)]
        device_type: Option<String>,
        #[arg(long)]
        channel: Option<String>,
        /// pending_upload, ready or rejected.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// One release.
    Get { id: String },
    /// Change what may change after release (never the bytes or the version).
    Update {
        id: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long)]
        channel: Option<String>,
        /// true or false.
        #[arg(long)]
        active: Option<bool>,
        #[arg(long, conflicts_with = "clear_min_current_version")]
        min_current_version: Option<String>,
        #[arg(long)]
        clear_min_current_version: bool,
    },
    /// Stop offering a release (its bytes and history stay).
    Deactivate { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    All,
    Canary,
    Specific,
    Group,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::All => "all",
            Target::Canary => "canary",
            Target::Specific => "specific",
            Target::Group => "group",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RolloutCmd {
    /// Start a rollout of a release, in stages with a health gate and a schedule when given.
    Create {
        /// The release to roll out.
        #[arg(long = "firmware")]
        firmware_id: String,
        /// Defaults to "<device type> <version> <target>".
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = Target::All)]
        target: Target,
        /// For --target canary (0-100); with --stages the stage sets it.
        #[arg(long, value_parser = parse_percent, conflicts_with = "stages")]
        percentage: Option<f64>,
        /// For --target specific; repeat for several.
        #[arg(long = "device")]
        devices: Vec<String>,
        /// For --target specific: a file of device ids, one a line (blank lines and lines
        /// starting with # skipped), added to any --device; up to 100,000 in all.
        #[arg(long)]
        devices_file: Option<std::path::PathBuf>,
        /// For --target group; repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Pause the rollout by itself when failed/(failed+success) exceeds this percentage.
        #[arg(long, value_parser = parse_percent)]
        failure_threshold: Option<f64>,
        /// Final reports before --failure-threshold, --max-failure and --max-crash judge
        /// (server default 10).
        #[arg(long)]
        min_reports: Option<u32>,
        #[arg(long)]
        allow_downgrade: bool,
        #[command(flatten)]
        staged: StagedArgs,
    },
    /// Rollouts, newest first, with their progress counts.
    List {
        #[arg(long)]
        device_type: Option<String>,
        #[arg(long = "firmware")]
        firmware_id: Option<String>,
        /// active, paused, aborted or completed.
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// One rollout, with its stage, gate numbers and last decision when staged.
    Get { id: String },
    /// The devices a specific rollout names, by id.
    Devices {
        id: String,
        #[command(flatten)]
        page: Page,
    },
    /// Change the canary percentage.
    Set {
        id: String,
        #[arg(long, value_parser = parse_percent)]
        percentage: f64,
        /// Refuse (409) if someone changed the rollout since this revision.
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Stop offering the release until resumed.
    Pause {
        id: String,
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Offer again after a pause (by hand or by the health gate).
    Resume {
        id: String,
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Stop for good: an aborted rollout offers nothing and cannot be resumed.
    Abort {
        id: String,
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Start the next stage now, whatever its soak, devices and gate say.
    Promote {
        id: String,
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Follow a rollout: its state, stage, gate numbers and decisions, printed when they
    /// change, until it is paused, aborted, completed or in its last stage (or Ctrl-C).
    Watch {
        id: String,
        /// Seconds between polls.
        #[arg(long, default_value_t = 5.0)]
        every: f64,
    },
}

/// The stages, health gate, schedule and pacing of `rollout create` (docs/api.md §9.5, §9.6).
#[derive(Debug, Default, Args)]
pub struct StagedArgs {
    /// Stages that widen the rollout by themselves: PERCENT[:SOAK_S[:MIN_DEVICES]],
    /// comma-separated, e.g. 1:3600,10:14400,100 (soak default 0 s, min devices default 1).
    #[arg(long, value_parser = staging::parse_stages)]
    pub stages: Option<Stages>,
    /// Health gate: pause when failed/final outcomes is over this percentage.
    #[arg(long, value_parser = parse_percent)]
    pub max_failure: Option<f64>,
    /// Health gate: pause when crashed devices/devices on the release is over this percentage.
    #[arg(long, value_parser = parse_percent)]
    pub max_crash: Option<f64>,
    /// When new offers may be made, UTC: [DAYS@]HH:MM-HH:MM with DAYS as mon-fri, sat,sun or
    /// mon,wed-fri (every day when left out); an end at or before the start runs past
    /// midnight. Repeat for several.
    #[arg(long = "window", value_parser = staging::parse_window)]
    pub windows: Vec<Window>,
    /// No new offers before this RFC 3339 time, e.g. 2026-12-10T02:00:00Z.
    #[arg(long, value_parser = staging::parse_time)]
    pub start_at: Option<OffsetDateTime>,
    /// No new offers from this RFC 3339 time on.
    #[arg(long, value_parser = staging::parse_time)]
    pub end_at: Option<OffsetDateTime>,
    /// Seconds after its last report that an unfinished attempt is counted timed out.
    #[arg(long)]
    pub install_timeout: Option<u64>,
    /// At most this many devices get their first offer of the rollout in a rolling hour.
    #[arg(long)]
    pub max_offers_per_hour: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum DevicesCmd {
    /// The registry, by device id.
    List {
        #[arg(long)]
        device_type: Option<String>,
        #[arg(long)]
        version: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// A device with its recent OTA log.
    Get { id: String },
    /// Show a device's groups, or replace them with the ones given (--clear: none).
    Groups {
        id: String,
        groups: Vec<String>,
        #[arg(long, conflicts_with = "groups")]
        clear: bool,
    },
    /// Mint a device credential (admin role).
    Token {
        id: String,
        /// Defaults to the device's registered type.
        #[arg(long)]
        device_type: Option<String>,
        /// Lifetime in seconds; without it the token does not expire.
        #[arg(long)]
        ttl: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long = "firmware")]
    pub firmware_id: Option<String>,
    #[arg(long)]
    pub status: Option<String>,
    /// RFC 3339 time, e.g. 2026-01-01T00:00:00Z.
    #[arg(long)]
    pub since: Option<String>,
    /// Entries to show (server default 50, max 500).
    #[arg(long)]
    pub limit: Option<u32>,
    /// Keep polling and print new entries as they arrive (JSON: one object per line).
    #[arg(long, short)]
    pub follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Publisher,
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Print a new P-256 manifest signing key as a line of the key file (OTA_MANIFEST_KEYS,
    /// OTA_MANIFEST_KEYS_FILE, the Secrets Manager secret): put it first to sign with it.
    Generate,
    /// Print the public manifest keys for firmware to compile in: from the server's
    /// GET /api/ota/keys (no token needed), or from a key file with --keys-file.
    Export {
        /// As the C header of the ESP-IDF client component (OTA_MANIFEST_KEYS of
        /// ota_client_key_t); the one format so far.
        #[arg(long, required = true)]
        c_header: bool,
        /// Read the private key file (the text of OTA_MANIFEST_KEYS_FILE) instead of asking the
        /// server: offline, e.g. at a factory. Only the public keys are printed.
        #[arg(long)]
        keys_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Sign an admin/CI token with the service's HS256 secret (no server needed).
    Mint {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// File holding the JWT secret (the server's OTA_JWT_SECRET or <data>/jwt-secret).
        #[arg(long)]
        secret_file: PathBuf,
        /// Who the token is for (the audit log's actor).
        #[arg(long, default_value = "ci")]
        sub: String,
        /// Lifetime in seconds (default 90 days).
        #[arg(long, default_value_t = 90 * 24 * 3600)]
        ttl: i64,
        /// `iss` claim, needed when the server sets OTA_JWT_ISSUER.
        #[arg(long)]
        issuer: Option<String>,
    },
}
