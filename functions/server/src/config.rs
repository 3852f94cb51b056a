//! The server's configuration: environment variables of API.md §Configuration, all optional, so
//! that `cargo run --release -p ota-server` needs no setup. `OTA_TABLE` (with `OTA_BUCKET`)
//! switches the storage from SQLite and local files to DynamoDB and S3.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub jwt_secret: Option<String>,
    pub jwt_issuer: Option<String>,
    /// `OTA_PUBLIC_URL`; `None` means `http://<the address actually bound>` (which differs from
    /// `OTA_LISTEN` when that asks for an ephemeral port).
    pub public_url: Option<String>,
    pub url_ttl: Duration,
    pub device_auth: bool,
    pub max_upload_bytes: u64,
    pub poll_interval_s: u64,
    /// Device requests (check and status) per device per minute; 0 = unlimited.
    pub device_rate_per_min: u32,
    /// How long audit events and OTA log entries are kept.
    pub audit_retention: Duration,
    pub log_retention: Duration,
    /// Public key of an external identity provider for admin tokens: (algorithm, PEM path).
    pub admin_key: Option<(String, PathBuf)>,
    /// Where metadata and firmware live.
    pub storage: Storage,
}

/// The storage backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// SQLite and files in the data directory; the server signs its own capability URLs.
    Embedded,
    /// The DynamoDB table `OTA_TABLE` and the S3 bucket `OTA_BUCKET` (both read again by
    /// `ota_store_aws::stores_from_env`, with the SDK's own `AWS_*` variables, and
    /// `OTA_VIEW_CACHE_S` / `OTA_DYNAMODB_TIMEOUT_MS` by `DynamoOptions::from_env`); devices
    /// get presigned S3 URLs.
    Aws { table: String, bucket: String },
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number(name: &str, default: u64) -> anyhow::Result<u64> {
    match var(name) {
        Some(v) => v
            .trim()
            .parse()
            .with_context(|| format!("{name} must be a non-negative integer, got '{v}'")),
        None => Ok(default),
    }
}

fn days(name: &str, default: u64) -> anyhow::Result<Duration> {
    let d = number(name, default)?;
    if d == 0 {
        bail!("{name} must be at least 1 day");
    }
    Ok(Duration::from_secs(d.saturating_mul(86_400)))
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let listen: SocketAddr = var("OTA_LISTEN")
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
            .parse()
            .context("OTA_LISTEN must be host:port, e.g. 127.0.0.1:8080")?;
        let device_auth = match var("OTA_DEVICE_AUTH").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => bail!("OTA_DEVICE_AUTH must be 'on' or 'off', got '{other}'"),
        };
        let storage = match (var("OTA_TABLE"), var("OTA_BUCKET")) {
            (None, None) => Storage::Embedded,
            (Some(table), Some(bucket)) => Storage::Aws { table, bucket },
            (Some(_), None) => bail!("OTA_TABLE is set, so OTA_BUCKET must be set too"),
            (None, Some(_)) => bail!(
                "OTA_BUCKET is set without OTA_TABLE: the AWS storage needs both (unset both for \
                 the embedded SQLite + files storage)"
            ),
        };
        let url_ttl = number("OTA_URL_TTL_S", 900)?;
        if url_ttl == 0 {
            bail!("OTA_URL_TTL_S must be positive");
        }
        Ok(Self {
            listen,
            data_dir: PathBuf::from(var("OTA_DATA_DIR").unwrap_or_else(|| "./ota-data".to_owned())),
            jwt_secret: var("OTA_JWT_SECRET"),
            jwt_issuer: var("OTA_JWT_ISSUER"),
            public_url: var("OTA_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
            url_ttl: Duration::from_secs(url_ttl),
            device_auth,
            max_upload_bytes: number("OTA_MAX_UPLOAD_BYTES", 64 * 1024 * 1024)?,
            poll_interval_s: number("OTA_POLL_INTERVAL_S", 86_400)?,
            device_rate_per_min: u32::try_from(number("OTA_DEVICE_RATE_PER_MIN", 600)?)
                .context("OTA_DEVICE_RATE_PER_MIN is too large")?,
            audit_retention: days("OTA_AUDIT_RETENTION_DAYS", 365)?,
            log_retention: days("OTA_LOG_RETENTION_DAYS", 90)?,
            admin_key: var("OTA_ADMIN_JWT_PUBLIC_KEY_FILE").map(|path| {
                (
                    var("OTA_ADMIN_JWT_ALG").unwrap_or_else(|| "ES256".to_owned()),
                    PathBuf::from(path),
                )
            }),
            storage,
        })
    }
}
