//! The server's configuration: environment variables of docs/api.md §Configuration, all optional,
//! so that `cargo run --release -p ota-server` needs no setup. `OTA_TABLE` (with `OTA_BUCKET`)
//! switches the storage from SQLite and local files to DynamoDB and S3. Every value is checked
//! here, at start: one that would break requests later stops the process with a message naming
//! the variable.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::Uri;
use ota_http::config::{CloudFrontConfig, CommonConfig, Env};
use ota_store_aws::{CloudFrontKey, CloudFrontSigner};

/// Seconds a client may take to send a request's headers (`OTA_HEADER_TIMEOUT_S`).
const HEADER_TIMEOUT_S: RangeInclusive<u64> = 1..=300;
/// Seconds a request body may stall (`OTA_BODY_TIMEOUT_S`), and a connection idle between
/// requests (`OTA_IDLE_TIMEOUT_S`).
const BODY_AND_IDLE_TIMEOUT_S: RangeInclusive<u64> = 1..=3600;

/// Seconds between two evaluations of the rollouts by the background task
/// (`OTA_ROLLOUT_TICK_S`).
const ROLLOUT_TICK_S: RangeInclusive<u64> = 1..=3600;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `OTA_MANIFEST_KEYS_FILE`: the manifest keys elsewhere than `<data dir>/manifest-keys`.
    pub manifest_keys_file: Option<PathBuf>,
    /// `OTA_PUBLIC_URL`; `None` means `http://<the address actually bound>` (which differs from
    /// `OTA_LISTEN` when that asks for an ephemeral port).
    pub public_url: Option<String>,
    /// The settings every deployment reads the same way (credentials, limits, retention).
    pub common: CommonConfig,
    /// Where metadata and firmware live.
    pub storage: Storage,
    /// `OTA_CLOUDFRONT_*` (AWS storage only): devices download through this distribution.
    pub cloudfront: Option<CloudFrontSigner>,
    /// How long a connection may wait for what its client owes it.
    pub timeouts: Timeouts,
    /// How often the background task evaluates every rollout with stages or a health gate
    /// (`OTA_ROLLOUT_TICK_S`, 15).
    pub rollout_tick: Duration,
}

/// The edge timeouts of docs/api.md §15.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From a request's first byte to the end of its headers (`OTA_HEADER_TIMEOUT_S`, 10).
    pub header: Duration,
    /// Between two reads of a request body that is still owed (`OTA_BODY_TIMEOUT_S`, 30).
    pub body_stall: Duration,
    /// A connection with no request under way (`OTA_IDLE_TIMEOUT_S`, 60).
    pub idle: Duration,
}

/// The storage backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// SQLite and files in the data directory; the server signs its own capability URLs.
    Embedded,
    /// The DynamoDB table `OTA_TABLE` and the S3 bucket `OTA_BUCKET` (both read again by
    /// `ota_store_aws::stores_from_env`, with the SDK's own `AWS_*` variables); devices get
    /// presigned S3 URLs.
    Aws { table: String, bucket: String },
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::read(Env::process())
    }

    pub fn read(env: Env<'_>) -> anyhow::Result<Self> {
        let listen: SocketAddr = env
            .var("OTA_LISTEN")
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
            .parse()
            .context("OTA_LISTEN must be host:port, e.g. 127.0.0.1:8080")?;
        let storage = match (env.var("OTA_TABLE"), env.var("OTA_BUCKET")) {
            (None, None) => Storage::Embedded,
            (Some(table), Some(bucket)) => Storage::Aws { table, bucket },
            (Some(_), None) => bail!("OTA_TABLE is set, so OTA_BUCKET must be set too"),
            (None, Some(_)) => bail!(
                "OTA_BUCKET is set without OTA_TABLE: the AWS storage needs both (unset both for \
                 the embedded SQLite + files storage)"
            ),
        };
        let public_url = env
            .var("OTA_PUBLIC_URL")
            .map(|u| public_url(&u))
            .transpose()?;
        let common = CommonConfig::read(env)?;
        let cloudfront = common
            .cloudfront
            .as_ref()
            .map(|c| cloudfront(c, &storage))
            .transpose()?;
        Ok(Self {
            listen,
            data_dir: PathBuf::from(
                env.var("OTA_DATA_DIR")
                    .unwrap_or_else(|| "./ota-data".to_owned()),
            ),
            manifest_keys_file: env.var("OTA_MANIFEST_KEYS_FILE").map(PathBuf::from),
            public_url,
            common,
            storage,
            cloudfront,
            timeouts: Timeouts {
                header: env.seconds("OTA_HEADER_TIMEOUT_S", 10, HEADER_TIMEOUT_S)?,
                body_stall: env.seconds("OTA_BODY_TIMEOUT_S", 30, BODY_AND_IDLE_TIMEOUT_S)?,
                idle: env.seconds("OTA_IDLE_TIMEOUT_S", 60, BODY_AND_IDLE_TIMEOUT_S)?,
            },
            rollout_tick: env.seconds("OTA_ROLLOUT_TICK_S", 15, ROLLOUT_TICK_S)?,
        })
    }
}

/// The signer of `OTA_CLOUDFRONT_*`: only over S3, with its private key in
/// `OTA_CLOUDFRONT_PRIVATE_KEY` (the server reads no Secrets Manager), checked now.
fn cloudfront(config: &CloudFrontConfig, storage: &Storage) -> anyhow::Result<CloudFrontSigner> {
    if *storage == Storage::Embedded {
        bail!(
            "OTA_CLOUDFRONT_DOMAIN is set on the embedded storage: a distribution serves the S3 \
             bucket of the AWS storage (OTA_TABLE, OTA_BUCKET); unset the OTA_CLOUDFRONT_* \
             variables, or set those two"
        );
    }
    let Some(pem) = &config.private_key else {
        bail!(
            "OTA_CLOUDFRONT_DOMAIN is set, so OTA_CLOUDFRONT_PRIVATE_KEY must be set too: the PEM \
             private key that signs the download URLs (ota-server reads no Secrets Manager)"
        );
    };
    let key = CloudFrontKey::from_pem(pem)
        .map_err(|e| anyhow::anyhow!("OTA_CLOUDFRONT_PRIVATE_KEY must hold {e}"))?;
    Ok(CloudFrontSigner::new(
        &config.domain,
        &config.key_pair_id,
        key,
    ))
}

/// `OTA_PUBLIC_URL` without its trailing `/`: an absolute `http` or `https` URL (a path prefix
/// allowed, for a reverse proxy), since every capability URL is built on it.
fn public_url(value: &str) -> anyhow::Result<String> {
    let trimmed = value.trim().trim_end_matches('/');
    let usable = trimmed.parse::<Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|h| !h.is_empty())
            && uri.query().is_none()
    }) && !trimmed.contains('#');
    if !usable {
        bail!(
            "OTA_PUBLIC_URL must be an absolute http:// or https:// URL without query or \
             fragment, e.g. https://ota.example.com, got '{value}'"
        );
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        Config::read(Env::new(&lookup))
    }

    fn refused(vars: &[(&str, &str)]) -> String {
        format!("{:#}", read(vars).unwrap_err())
    }

    #[test]
    fn defaults_need_no_variable() {
        let c = read(&[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.storage, Storage::Embedded);
        assert_eq!(c.public_url, None);
        assert_eq!(
            c.timeouts,
            Timeouts {
                header: Duration::from_secs(10),
                body_stall: Duration::from_secs(30),
                idle: Duration::from_secs(60),
            }
        );
    }

    #[test]
    fn timeouts_are_positive_and_bounded() {
        let c = read(&[
            ("OTA_HEADER_TIMEOUT_S", "1"),
            ("OTA_BODY_TIMEOUT_S", "3600"),
            ("OTA_IDLE_TIMEOUT_S", "2"),
        ])
        .unwrap();
        assert_eq!(c.timeouts.header, Duration::from_secs(1));
        assert_eq!(c.timeouts.body_stall, Duration::from_secs(3600));
        assert_eq!(c.timeouts.idle, Duration::from_secs(2));
        for (name, value, range) in [
            ("OTA_HEADER_TIMEOUT_S", "0", "1 to 300"),
            ("OTA_HEADER_TIMEOUT_S", "301", "1 to 300"),
            ("OTA_BODY_TIMEOUT_S", "0", "1 to 3600"),
            ("OTA_BODY_TIMEOUT_S", "-30", "1 to 3600"),
            ("OTA_IDLE_TIMEOUT_S", "3601", "1 to 3600"),
            ("OTA_IDLE_TIMEOUT_S", "1m", "1 to 3600"),
        ] {
            let e = refused(&[(name, value)]);
            assert!(e.contains(name) && e.contains(range), "{name}={value}: {e}");
        }
    }

    #[test]
    fn listen_storage_and_public_url_are_checked() {
        assert!(refused(&[("OTA_LISTEN", "localhost")]).contains("OTA_LISTEN"));
        assert!(refused(&[("OTA_TABLE", "t")]).contains("OTA_BUCKET"));
        assert!(refused(&[("OTA_BUCKET", "b")]).contains("OTA_TABLE"));
        let c = read(&[("OTA_PUBLIC_URL", "https://ota.example.com/fleet/")]).unwrap();
        assert_eq!(
            c.public_url.as_deref(),
            Some("https://ota.example.com/fleet")
        );
        for bad in [
            "ota.example.com",
            "ftp://ota.example.com",
            "https://",
            "https://ota.example.com/?a=b",
            "https://ota.example.com/#x",
            "/relative",
        ] {
            let e = refused(&[("OTA_PUBLIC_URL", bad)]);
            assert!(e.contains("OTA_PUBLIC_URL"), "{bad}: {e}");
        }
        // The shared settings are read by the same pass.
        assert!(refused(&[("OTA_URL_TTL_S", "604801")]).contains("OTA_URL_TTL_S"));
    }

    #[test]
    fn cloudfront_needs_the_aws_storage_and_a_plain_key() {
        let distribution = [
            ("OTA_CLOUDFRONT_DOMAIN", "d111111abcdef8.cloudfront.net"),
            ("OTA_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
        ];
        let aws = [("OTA_TABLE", "ota"), ("OTA_BUCKET", "ota-firmware")];
        let e = refused(&distribution);
        assert!(
            e.contains("embedded storage") && e.contains("OTA_TABLE"),
            "{e}"
        );
        let e = refused(&[distribution.as_slice(), &aws].concat());
        assert!(e.contains("OTA_CLOUDFRONT_PRIVATE_KEY must be set"), "{e}");
        let e = refused(
            &[
                distribution.as_slice(),
                &aws,
                &[("OTA_CLOUDFRONT_PRIVATE_KEY", "-----BEGIN PUBLIC KEY-----")],
            ]
            .concat(),
        );
        assert!(
            e.starts_with("OTA_CLOUDFRONT_PRIVATE_KEY must hold") && e.contains("a public key"),
            "{e}"
        );
        // Without the variables, S3 presigns as before.
        assert!(read(&aws).unwrap().cloudfront.is_none());
    }
}
