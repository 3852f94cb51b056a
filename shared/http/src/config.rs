//! The `OTA_*` settings of docs/api.md that every deployment reads the same way (the embedded
//! server and each Lambda): credentials, URL lifetime, limits, retention. Deployment-specific names
//! (`OTA_LISTEN`, `OTA_DATA_DIR`, `OTA_TABLE`, ...) stay with their binary.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{AuthConfig, ExternalAdminKey};
use crate::state::Settings;

/// A setting that is present but unusable, or a required one that is missing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A variable's value, `None` when unset or blank.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A non-negative integer variable, `default` when unset.
pub fn number(name: &str, default: u64) -> Result<u64, ConfigError> {
    let Some(v) = var(name) else {
        return Ok(default);
    };
    v.trim()
        .parse()
        .map_err(|_| ConfigError(format!("{name} must be a non-negative integer, got '{v}'")))
}

/// A positive number of seconds.
pub fn seconds(name: &str, default: u64) -> Result<Duration, ConfigError> {
    match number(name, default)? {
        0 => Err(ConfigError(format!("{name} must be positive"))),
        s => Ok(Duration::from_secs(s)),
    }
}

/// A positive number of days.
pub fn days(name: &str, default: u64) -> Result<Duration, ConfigError> {
    match number(name, default)? {
        0 => Err(ConfigError(format!("{name} must be at least 1 day"))),
        d => Ok(Duration::from_secs(d.saturating_mul(86_400))),
    }
}

/// The settings shared by every deployment, read from the environment.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `OTA_JWT_SECRET`; whether it may be missing is the deployment's decision.
    pub jwt_secret: Option<String>,
    pub jwt_issuer: Option<String>,
    /// `OTA_URL_TTL_S` (900).
    pub url_ttl: Duration,
    /// `OTA_DEVICE_AUTH`: `on` (default) or `off`.
    pub device_auth: bool,
    /// `OTA_MAX_UPLOAD_BYTES` (64 MiB).
    pub max_upload_bytes: u64,
    /// `OTA_POLL_INTERVAL_S` (86400).
    pub poll_interval_s: u64,
    /// `OTA_DEVICE_RATE_PER_MIN` (600): checks and status reports per device per minute; 0 =
    /// unlimited.
    pub device_rate_per_min: u32,
    /// `OTA_AUDIT_RETENTION_DAYS` (365).
    pub audit_retention: Duration,
    /// `OTA_LOG_RETENTION_DAYS` (90).
    pub log_retention: Duration,
    /// `OTA_ADMIN_JWT_PUBLIC_KEY_FILE` with `OTA_ADMIN_JWT_ALG` (`ES256` unless set).
    pub admin_key: Option<(String, PathBuf)>,
}

impl CommonConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let device_auth = match var("OTA_DEVICE_AUTH").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError(format!(
                    "OTA_DEVICE_AUTH must be 'on' or 'off', got '{other}'"
                )));
            }
        };
        let rate = number("OTA_DEVICE_RATE_PER_MIN", 600)?;
        Ok(Self {
            jwt_secret: var("OTA_JWT_SECRET"),
            jwt_issuer: var("OTA_JWT_ISSUER"),
            url_ttl: seconds("OTA_URL_TTL_S", 900)?,
            device_auth,
            max_upload_bytes: number("OTA_MAX_UPLOAD_BYTES", 64 * 1024 * 1024)?,
            poll_interval_s: number("OTA_POLL_INTERVAL_S", 86_400)?,
            device_rate_per_min: u32::try_from(rate)
                .map_err(|_| ConfigError("OTA_DEVICE_RATE_PER_MIN is too large".to_owned()))?,
            audit_retention: days("OTA_AUDIT_RETENTION_DAYS", 365)?,
            log_retention: days("OTA_LOG_RETENTION_DAYS", 90)?,
            admin_key: var("OTA_ADMIN_JWT_PUBLIC_KEY_FILE").map(|path| {
                let alg = var("OTA_ADMIN_JWT_ALG").unwrap_or_else(|| "ES256".to_owned());
                (alg, PathBuf::from(path))
            }),
        })
    }

    /// What the handlers are told about URLs, polling and uploads.
    pub fn settings(&self) -> Settings {
        Settings {
            url_ttl: self.url_ttl,
            poll_interval_s: self.poll_interval_s,
            max_upload_bytes: self.max_upload_bytes,
        }
    }

    /// Token checking with `secret`, plus the external admin key when one is configured (its
    /// PEM file is read here).
    pub fn auth(&self, secret: &[u8]) -> Result<AuthConfig, ConfigError> {
        let auth = AuthConfig::new(secret, self.jwt_issuer.clone(), self.device_auth);
        let Some((alg, path)) = &self.admin_key else {
            return Ok(auth);
        };
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| ConfigError(format!("reading {shown}: {e}")))?;
        let key = ExternalAdminKey::from_pem(alg, &pem)
            .map_err(|e| ConfigError(format!("{shown}: {e}")))?;
        Ok(auth.with_external_admin_key(key))
    }
}
