//! The `OTA_*` settings of docs/api.md that every deployment reads the same way (the embedded
//! server and each Lambda): credentials, URL lifetime, limits, retention. Deployment-specific names
//! (`OTA_LISTEN`, `OTA_DATA_DIR`, `OTA_TABLE`, ...) stay with their binary.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use ota_core::manifest_keys::ManifestKeys;

use crate::auth::{AuthConfig, ExternalAdminKey};
use crate::state::Settings;

/// A setting that is present but unusable, or a required one that is missing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A variable's value from the process environment, `None` when unset or blank.
pub fn var(name: &str) -> Option<String> {
    Env::process().var(name)
}

/// Where settings come from: the process environment, or in tests any lookup, so that parsing
/// is a pure function of the variables it is given.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

/// The process environment's lookup.
fn process_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl<'a> Env<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { lookup }
    }

    pub fn process() -> Env<'static> {
        Env {
            lookup: &process_lookup,
        }
    }

    /// A variable's value, `None` when unset or blank.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// An integer within `range`, `default` when unset. The message names the variable and the
    /// range, whatever is wrong with the value (not a number, negative, out of range).
    pub fn number(
        &self,
        name: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let Some(v) = self.var(name) else {
            return Ok(default);
        };
        v.trim()
            .parse()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ConfigError(format!(
                    "{name} must be an integer from {} to {}, got '{v}'",
                    range.start(),
                    range.end()
                ))
            })
    }

    /// A number of seconds within `range`.
    pub fn seconds(
        &self,
        name: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range).map(Duration::from_secs)
    }

    /// A number of milliseconds within `range`.
    pub fn millis(
        &self,
        name: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range).map(Duration::from_millis)
    }

    /// A number of days within `range`.
    pub fn days(
        &self,
        name: &str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.number(name, default, range)
            .map(|d| Duration::from_secs(d * 86_400))
    }

    /// One of `choices`, `default` when unset.
    pub fn choice(
        &self,
        name: &str,
        default: &'static str,
        choices: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let Some(v) = self.var(name) else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|c| **c == v.trim())
            .copied()
            .ok_or_else(|| {
                ConfigError(format!(
                    "{name} must be one of {}, got '{v}'",
                    choices.join(", ")
                ))
            })
    }
}

/// The limits of docs/api.md §15, one place: a value outside them starts nothing.
pub mod limits {
    use std::ops::RangeInclusive;

    /// S3 refuses to presign for longer than seven days (SigV4); capability URLs keep the same
    /// bound so that both storages accept the same settings.
    pub const URL_TTL_S: RangeInclusive<u64> = 1..=604_800;
    /// An ESP image's sizes are 32-bit: no image is larger than 4 GiB.
    pub const MAX_UPLOAD_BYTES: RangeInclusive<u64> = 1..=4 * 1024 * 1024 * 1024;
    /// At most a year between polls.
    pub const POLL_INTERVAL_S: RangeInclusive<u64> = 1..=31_536_000;
    /// 0 = unlimited; above 1000 a second the limit means nothing.
    pub const DEVICE_RATE_PER_MIN: RangeInclusive<u64> = 0..=60_000;
    /// Up to a century (a retention in days must also stay a representable time).
    pub const RETENTION_DAYS: RangeInclusive<u64> = 1..=36_500;
    /// A release view older than an hour would hold rollouts back for longer than anyone waits.
    pub const VIEW_CACHE_S: RangeInclusive<u64> = 0..=3600;
    /// A `last_seen` coarser than a week would hide a silent device for longer than anyone
    /// looks for one.
    pub const LAST_SEEN_PRECISION_S: RangeInclusive<u64> = 0..=604_800;
    /// A request attempt longer than a minute outlives the device's and the Lambda's patience.
    pub const DYNAMODB_TIMEOUT_MS: RangeInclusive<u64> = 1..=60_000;
    /// RFC 7518 §3.2: an HS256 key has at least 256 bits.
    pub const MIN_JWT_SECRET_BYTES: usize = 32;
    /// A DNS name (RFC 1035): at most 253 characters, labels of at most 63.
    pub const MAX_DOMAIN_CHARS: usize = 253;
    pub const MAX_DOMAIN_LABEL_CHARS: usize = 63;
    /// CloudFront's public key ids are 14 characters (`K2JCJMDEHXQW5F`), legacy account key
    /// pairs' 20 (`APKA...`); 64 leaves room and keeps nonsense out of every URL.
    pub const MAX_KEY_PAIR_ID_CHARS: usize = 64;
}

/// `OTA_CLOUDFRONT_*`: devices download through a CloudFront distribution, with URLs signed by a
/// key of its trusted key group, instead of presigned S3 URLs (AWS storage only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudFrontConfig {
    /// `OTA_CLOUDFRONT_DOMAIN`: the distribution's host name (`d111111abcdef8.cloudfront.net`, or
    /// an alternate domain name it serves).
    pub domain: String,
    /// `OTA_CLOUDFRONT_KEY_PAIR_ID`: the id CloudFront gave the public key.
    pub key_pair_id: String,
    /// `OTA_CLOUDFRONT_PRIVATE_KEY`, the PEM text itself (parsed by the deployment, which may
    /// also take it from elsewhere).
    pub private_key: Option<String>,
}

impl CloudFrontConfig {
    /// The three variables; `None` when none is set. Any of them without the domain, or the
    /// domain without the key's id, is refused naming the missing variable.
    fn read(env: Env<'_>) -> Result<Option<Self>, ConfigError> {
        let domain = env.var("OTA_CLOUDFRONT_DOMAIN");
        let key_pair_id = env.var("OTA_CLOUDFRONT_KEY_PAIR_ID");
        let private_key = env.var("OTA_CLOUDFRONT_PRIVATE_KEY");
        let Some(domain) = domain else {
            let orphan = [
                ("OTA_CLOUDFRONT_KEY_PAIR_ID", key_pair_id.is_some()),
                ("OTA_CLOUDFRONT_PRIVATE_KEY", private_key.is_some()),
            ]
            .into_iter()
            .find_map(|(name, set)| set.then_some(name));
            return match orphan {
                Some(name) => Err(ConfigError(format!(
                    "{name} is set without OTA_CLOUDFRONT_DOMAIN, the distribution it signs for"
                ))),
                None => Ok(None),
            };
        };
        let domain = domain.trim().to_owned();
        if !is_domain(&domain) {
            return Err(ConfigError(format!(
                "OTA_CLOUDFRONT_DOMAIN must be the distribution's host name without scheme, port                  or path (e.g. d111111abcdef8.cloudfront.net: labels of letters, digits and '-',                  at most {} characters), got '{domain}'",
                limits::MAX_DOMAIN_CHARS
            )));
        }
        let Some(key_pair_id) = key_pair_id else {
            return Err(ConfigError(
                "OTA_CLOUDFRONT_DOMAIN is set, so OTA_CLOUDFRONT_KEY_PAIR_ID must be set too: the \
                 id of the public key (in the distribution's trusted key group) that checks the \
                 download URLs"
                    .to_owned(),
            ));
        };
        let key_pair_id = key_pair_id.trim().to_owned();
        let id_ok = (1..=limits::MAX_KEY_PAIR_ID_CHARS).contains(&key_pair_id.len())
            && key_pair_id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !id_ok {
            return Err(ConfigError(format!(
                "OTA_CLOUDFRONT_KEY_PAIR_ID must be a CloudFront public key id (1 to {} uppercase \
                 letters and digits, e.g. K2JCJMDEHXQW5F), got '{key_pair_id}'",
                limits::MAX_KEY_PAIR_ID_CHARS
            )));
        }
        Ok(Some(Self {
            domain,
            key_pair_id,
            private_key,
        }))
    }
}

/// A DNS host name: dot-separated labels of ASCII letters, digits and inner hyphens.
fn is_domain(name: &str) -> bool {
    (1..=limits::MAX_DOMAIN_CHARS).contains(&name.len())
        && name.split('.').all(|label| {
            (1..=limits::MAX_DOMAIN_LABEL_CHARS).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The settings shared by every deployment, read from the environment.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `OTA_JWT_SECRET`; whether it may be missing is the deployment's decision.
    pub jwt_secret: Option<String>,
    /// `OTA_MANIFEST_KEYS`, the key ring's text itself; whether it may be missing (and where
    /// else the keys come from) is the deployment's decision.
    pub manifest_keys: Option<ManifestKeys>,
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
    /// `OTA_VIEW_CACHE_S` (5), for the DynamoDB store.
    pub view_cache: Duration,
    /// `OTA_DYNAMODB_TIMEOUT_MS` (2000), for the DynamoDB store.
    pub dynamodb_timeout: Duration,
    /// `OTA_LAST_SEEN_PRECISION_S` (21600), for the DynamoDB store.
    pub last_seen_precision: Duration,
    /// `OTA_CLOUDFRONT_*`, for the S3 store: whether (and where else) the private key may come
    /// from is the deployment's decision.
    pub cloudfront: Option<CloudFrontConfig>,
}

impl CommonConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(Env::process())
    }

    /// Every shared setting from `env`, each checked against docs/api.md §15, so that a value
    /// that would break requests later stops the process at start instead.
    pub fn read(env: Env<'_>) -> Result<Self, ConfigError> {
        let device_auth = env.choice("OTA_DEVICE_AUTH", "on", &["on", "off"])? == "on";
        let rate = env.number("OTA_DEVICE_RATE_PER_MIN", 600, limits::DEVICE_RATE_PER_MIN)?;
        let jwt_secret = env.var("OTA_JWT_SECRET");
        if let Some(secret) = &jwt_secret
            && secret.len() < limits::MIN_JWT_SECRET_BYTES
        {
            return Err(ConfigError(format!(
                "OTA_JWT_SECRET must be at least {} bytes (an HS256 key of 256 bits)",
                limits::MIN_JWT_SECRET_BYTES
            )));
        }
        let manifest_keys = env
            .var("OTA_MANIFEST_KEYS")
            .map(|text| manifest_keys("OTA_MANIFEST_KEYS", &text))
            .transpose()?;
        let alg = env.choice("OTA_ADMIN_JWT_ALG", "ES256", &["ES256", "RS256"])?;
        let admin_key = match env.var("OTA_ADMIN_JWT_PUBLIC_KEY_FILE") {
            Some(path) => Some((alg.to_owned(), PathBuf::from(path))),
            None if env.var("OTA_ADMIN_JWT_ALG").is_some() => {
                return Err(ConfigError(
                    "OTA_ADMIN_JWT_ALG is set without OTA_ADMIN_JWT_PUBLIC_KEY_FILE, the key it \
                     is for"
                        .to_owned(),
                ));
            }
            None => None,
        };
        Ok(Self {
            jwt_secret,
            manifest_keys,
            jwt_issuer: env.var("OTA_JWT_ISSUER"),
            url_ttl: env.seconds("OTA_URL_TTL_S", 900, limits::URL_TTL_S)?,
            device_auth,
            max_upload_bytes: env.number(
                "OTA_MAX_UPLOAD_BYTES",
                64 * 1024 * 1024,
                limits::MAX_UPLOAD_BYTES,
            )?,
            poll_interval_s: env.number("OTA_POLL_INTERVAL_S", 86_400, limits::POLL_INTERVAL_S)?,
            device_rate_per_min: u32::try_from(rate).unwrap_or(u32::MAX),
            audit_retention: env.days("OTA_AUDIT_RETENTION_DAYS", 365, limits::RETENTION_DAYS)?,
            log_retention: env.days("OTA_LOG_RETENTION_DAYS", 90, limits::RETENTION_DAYS)?,
            admin_key,
            view_cache: env.seconds("OTA_VIEW_CACHE_S", 5, limits::VIEW_CACHE_S)?,
            dynamodb_timeout: env.millis(
                "OTA_DYNAMODB_TIMEOUT_MS",
                2000,
                limits::DYNAMODB_TIMEOUT_MS,
            )?,
            last_seen_precision: env.seconds(
                "OTA_LAST_SEEN_PRECISION_S",
                21_600,
                limits::LAST_SEEN_PRECISION_S,
            )?,
            cloudfront: CloudFrontConfig::read(env)?,
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

/// The manifest key ring from `text`, which came from `source` (a variable, a file, a secret):
/// the error names the source and the line, never a key.
pub fn manifest_keys(source: &str, text: &str) -> Result<ManifestKeys, ConfigError> {
    ManifestKeys::parse(text).map_err(|e| {
        ConfigError(format!(
            "{source} must hold the manifest signing keys, one P-256 private key (64 hex \
             characters) a line, the signing key first: {e}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings from exactly these variables.
    fn read(vars: &[(&str, &str)]) -> Result<CommonConfig, String> {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        CommonConfig::read(Env::new(&lookup)).map_err(|e| e.0)
    }

    #[test]
    fn defaults_need_no_variable() {
        let c = read(&[]).unwrap();
        assert_eq!(c.url_ttl, Duration::from_secs(900));
        assert_eq!(c.max_upload_bytes, 64 * 1024 * 1024);
        assert_eq!(c.poll_interval_s, 86_400);
        assert_eq!(c.device_rate_per_min, 600);
        assert_eq!(c.log_retention, Duration::from_secs(90 * 86_400));
        assert_eq!(c.audit_retention, Duration::from_secs(365 * 86_400));
        assert_eq!(c.view_cache, Duration::from_secs(5));
        assert_eq!(c.dynamodb_timeout, Duration::from_millis(2000));
        assert_eq!(c.last_seen_precision, Duration::from_secs(21_600));
        assert!(c.device_auth);
        assert!(c.admin_key.is_none() && c.jwt_secret.is_none() && c.manifest_keys.is_none());
        assert_eq!(
            c.cloudfront, None,
            "presigned S3 unless a distribution is named"
        );
        // Blank is unset.
        assert_eq!(
            read(&[("OTA_URL_TTL_S", "  ")]).unwrap().url_ttl,
            Duration::from_secs(900)
        );
    }

    #[test]
    fn the_bounds_themselves_are_accepted() {
        let c = read(&[
            ("OTA_URL_TTL_S", "604800"),
            ("OTA_MAX_UPLOAD_BYTES", "1"),
            ("OTA_POLL_INTERVAL_S", "1"),
            ("OTA_DEVICE_RATE_PER_MIN", "0"),
            ("OTA_LOG_RETENTION_DAYS", "36500"),
            ("OTA_AUDIT_RETENTION_DAYS", "1"),
            ("OTA_VIEW_CACHE_S", "0"),
            ("OTA_DYNAMODB_TIMEOUT_MS", " 60000 "),
            ("OTA_LAST_SEEN_PRECISION_S", "0"),
            ("OTA_DEVICE_AUTH", "off"),
            ("OTA_JWT_SECRET", &"k".repeat(32)),
            (
                "OTA_MANIFEST_KEYS",
                &format!("# rotated\n{}\n", "1".repeat(64)),
            ),
            ("OTA_ADMIN_JWT_PUBLIC_KEY_FILE", "/keys/idp.pem"),
            ("OTA_ADMIN_JWT_ALG", "RS256"),
        ])
        .unwrap();
        assert_eq!(c.url_ttl, Duration::from_secs(604_800));
        assert_eq!(c.device_rate_per_min, 0);
        assert_eq!(c.view_cache, Duration::ZERO);
        assert_eq!(c.last_seen_precision, Duration::ZERO);
        assert_eq!(c.manifest_keys.map(|k| k.jwks().keys.len()), Some(1));
        assert!(!c.device_auth);
        assert_eq!(
            c.admin_key,
            Some(("RS256".to_owned(), PathBuf::from("/keys/idp.pem")))
        );
    }

    /// Every numeric setting refuses zero where it means nothing, negatives, values past its
    /// range and words, naming itself and its range.
    #[test]
    fn nonsense_is_refused_naming_the_variable_and_its_range() {
        let cases: [(&str, &[&str], &str); 9] = [
            (
                "OTA_URL_TTL_S",
                &["0", "604801", "-1", "15m"],
                "1 to 604800",
            ),
            (
                "OTA_MAX_UPLOAD_BYTES",
                &["0", "4294967297", "64MiB"],
                "1 to 4294967296",
            ),
            (
                "OTA_POLL_INTERVAL_S",
                &["0", "31536001", "-5"],
                "1 to 31536000",
            ),
            (
                "OTA_DEVICE_RATE_PER_MIN",
                &["-1", "60001", "lots"],
                "0 to 60000",
            ),
            (
                "OTA_LOG_RETENTION_DAYS",
                &["0", "36501", "1e9"],
                "1 to 36500",
            ),
            (
                "OTA_AUDIT_RETENTION_DAYS",
                &["0", "18446744073709551616"],
                "1 to 36500",
            ),
            ("OTA_VIEW_CACHE_S", &["-1", "3601", "5s"], "0 to 3600"),
            (
                "OTA_LAST_SEEN_PRECISION_S",
                &["-1", "604801", "6h"],
                "0 to 604800",
            ),
            (
                "OTA_DYNAMODB_TIMEOUT_MS",
                &["0", "60001", "2.5"],
                "1 to 60000",
            ),
        ];
        for (name, values, range) in cases {
            for value in values {
                let e = read(&[(name, value)]).unwrap_err();
                assert!(
                    e.contains(name) && e.contains(range) && e.contains(value),
                    "{name}={value}: {e}"
                );
            }
        }
        for (name, value) in [
            ("OTA_DEVICE_AUTH", "yes"),
            ("OTA_ADMIN_JWT_ALG", "HS256"),
            ("OTA_JWT_SECRET", "short"),
            ("OTA_MANIFEST_KEYS", "# no key"),
            ("OTA_MANIFEST_KEYS", "0123"),
        ] {
            let e = read(&[(name, value)]).unwrap_err();
            assert!(e.contains(name), "{name}={value}: {e}");
        }
        let e = read(&[("OTA_ADMIN_JWT_ALG", "RS256")]).unwrap_err();
        assert!(e.contains("OTA_ADMIN_JWT_PUBLIC_KEY_FILE"), "{e}");
    }

    #[test]
    fn cloudfront_needs_its_domain_and_key_id_and_checks_both() {
        let c = read(&[
            ("OTA_CLOUDFRONT_DOMAIN", " d111111abcdef8.cloudfront.net "),
            ("OTA_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
        ])
        .unwrap();
        assert_eq!(
            c.cloudfront,
            Some(CloudFrontConfig {
                domain: "d111111abcdef8.cloudfront.net".to_owned(),
                key_pair_id: "K2JCJMDEHXQW5F".to_owned(),
                private_key: None,
            })
        );
        let pem = "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----";
        let c = read(&[
            ("OTA_CLOUDFRONT_DOMAIN", "cdn.example.com"),
            ("OTA_CLOUDFRONT_KEY_PAIR_ID", "APKA9ONS7QCOWEXAMPLE"),
            ("OTA_CLOUDFRONT_PRIVATE_KEY", pem),
        ])
        .unwrap();
        assert_eq!(c.cloudfront.unwrap().private_key.as_deref(), Some(pem));

        // Each missing piece is named.
        let e = read(&[("OTA_CLOUDFRONT_DOMAIN", "cdn.example.com")]).unwrap_err();
        assert!(e.contains("OTA_CLOUDFRONT_KEY_PAIR_ID must be set"), "{e}");
        for orphan in ["OTA_CLOUDFRONT_KEY_PAIR_ID", "OTA_CLOUDFRONT_PRIVATE_KEY"] {
            let e = read(&[(orphan, "K2JCJMDEHXQW5F")]).unwrap_err();
            assert!(
                e.starts_with(orphan) && e.contains("without OTA_CLOUDFRONT_DOMAIN"),
                "{e}"
            );
        }
        // Values that would make broken URLs.
        let long_label = format!("{}.cloudfront.net", "a".repeat(64));
        let long_name = format!("{}cloudfront.net", "abcdefghi.".repeat(25));
        for bad in [
            "https://d111111abcdef8.cloudfront.net",
            "d111111abcdef8.cloudfront.net/",
            "d111111abcdef8.cloudfront.net:443",
            "cdn..example.com",
            "-cdn.example.com",
            "cdn_1.example.com",
            &long_label,
            &long_name,
        ] {
            let e = read(&[
                ("OTA_CLOUDFRONT_DOMAIN", bad),
                ("OTA_CLOUDFRONT_KEY_PAIR_ID", "K2JCJMDEHXQW5F"),
            ])
            .unwrap_err();
            assert!(e.contains("OTA_CLOUDFRONT_DOMAIN must be"), "{bad}: {e}");
        }
        let long_id = "K".repeat(65);
        for bad in [
            "k2jcjmdehxqw5f",
            "K2JC JMDE",
            "K2JCJMDEHXQW5F&x=1",
            &long_id,
        ] {
            let e = read(&[
                ("OTA_CLOUDFRONT_DOMAIN", "cdn.example.com"),
                ("OTA_CLOUDFRONT_KEY_PAIR_ID", bad),
            ])
            .unwrap_err();
            assert!(
                e.contains("OTA_CLOUDFRONT_KEY_PAIR_ID must be") && e.contains("1 to 64"),
                "{bad}: {e}"
            );
        }
    }
}
