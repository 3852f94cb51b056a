//! The server's configuration: environment variables of docs/api.md §Configuration, all optional,
//! so that `cargo run --release -p ota-server` needs no setup. `OTA_TABLE` (with `OTA_BUCKET`)
//! switches the storage from SQLite and local files to DynamoDB and S3.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use ota_http::config::{CommonConfig, var};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `OTA_PUBLIC_URL`; `None` means `http://<the address actually bound>` (which differs from
    /// `OTA_LISTEN` when that asks for an ephemeral port).
    pub public_url: Option<String>,
    /// The settings every deployment reads the same way (credentials, limits, retention).
    pub common: CommonConfig,
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

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let listen: SocketAddr = var("OTA_LISTEN")
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
            .parse()
            .context("OTA_LISTEN must be host:port, e.g. 127.0.0.1:8080")?;
        let storage = match (var("OTA_TABLE"), var("OTA_BUCKET")) {
            (None, None) => Storage::Embedded,
            (Some(table), Some(bucket)) => Storage::Aws { table, bucket },
            (Some(_), None) => bail!("OTA_TABLE is set, so OTA_BUCKET must be set too"),
            (None, Some(_)) => bail!(
                "OTA_BUCKET is set without OTA_TABLE: the AWS storage needs both (unset both for \
                 the embedded SQLite + files storage)"
            ),
        };
        Ok(Self {
            listen,
            data_dir: PathBuf::from(var("OTA_DATA_DIR").unwrap_or_else(|| "./ota-data".to_owned())),
            public_url: var("OTA_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_owned()),
            common: CommonConfig::from_env()?,
            storage,
        })
    }
}
