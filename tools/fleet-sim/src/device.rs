//! One simulated ESP32 going through an update as ESP-IDF's `esp_https_ota` does it: check,
//! HEAD of the download URL for the length, ranged GETs of `chunk_size` bytes (each request
//! follows the redirects again), SHA-256 against what the check announced, then the status
//! reports of docs/api.md and, once running the new version, a check that must offer nothing.

use std::sync::Arc;

use anyhow::{anyhow, bail};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::admin::Release;
use crate::http::exchange;
use crate::latency::{Endpoint, Timings};
use crate::plan::{Fate, SimDevice};
use crate::tokens::Credentials;

/// What every device shares.
pub struct Fleet {
    pub http: reqwest::Client,
    /// Where device requests go: one of them per device (`--device-url`), never empty.
    pub device_bases: Vec<String>,
    pub device_type: String,
    pub from_version: String,
    pub chunk_size: u64,
    /// Download through `GET /api/ota/download/{firmware_id}` (HEAD answered there, GET
    /// redirected to a capability URL) instead of the URL the check handed out.
    pub via_download_endpoint: bool,
    pub max_attempts: u32,
    pub credentials: Credentials,
    pub release: Release,
}

/// How one device's turn in a phase ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The check offered nothing (outside the canary, or the rollout paused).
    NotOffered,
    Updated,
    Failed,
    RolledBack,
    /// Reported `downloading` and then nothing more (--silent): the server's install timeout
    /// is what ends its attempt.
    Silent,
    /// Something `esp_https_ota` would not accept, or the service refused a request.
    Error(String),
}

/// A status report the service acknowledged (2xx), with the event id it stored it under.
#[derive(Debug, Clone)]
pub struct AckedReport {
    pub device_id: String,
    pub event_id: String,
    pub status: &'static str,
}

/// What one device did in one phase.
pub struct DeviceRun {
    pub outcome: Outcome,
    pub timings: Timings,
    pub retries: u64,
    pub bytes: u64,
    pub acked: Vec<AckedReport>,
}

#[derive(Debug, Deserialize)]
struct CheckAnswer {
    update_available: bool,
    firmware_id: Option<String>,
    file_size: Option<u64>,
    file_hash: Option<String>,
    download_url: Option<String>,
}

struct Session<'a> {
    fleet: &'a Fleet,
    device: &'a SimDevice,
    token: &'a str,
    run: DeviceRun,
}

impl Session<'_> {
    /// The base URL of this device's requests: the same for the device every time.
    fn base(&self) -> &str {
        let bases = &self.fleet.device_bases;
        let index = usize::from(
            self.device
                .id
                .bytes()
                .fold(0u16, |h, b| h.wrapping_mul(31).wrapping_add(u16::from(b))),
        );
        &bases[index % bases.len()]
    }
}

/// Runs one device's turn; never fails, the outcome says what went wrong.
pub async fn run(fleet: Arc<Fleet>, device: SimDevice, token: Arc<str>) -> DeviceRun {
    let mut s = Session {
        fleet: &fleet,
        device: &device,
        token: &token,
        run: DeviceRun {
            outcome: Outcome::NotOffered,
            timings: Timings::default(),
            retries: 0,
            bytes: 0,
            acked: Vec::new(),
        },
    };
    let outcome = match s.update().await {
        Ok(o) => o,
        Err(e) => Outcome::Error(format!("{}: {e:#}", device.id)),
    };
    s.run.outcome = outcome;
    s.run
}

/// A device credential, made once per device and reused across phases.
pub async fn credential(
    fleet: &Fleet,
    device_id: &str,
    timings: &mut Timings,
    retries: &mut u64,
) -> anyhow::Result<String> {
    fleet
        .credentials
        .token(
            device_id,
            &fleet.device_type,
            timings,
            retries,
            fleet.max_attempts,
        )
        .await
}

impl Session<'_> {
    async fn update(&mut self) -> anyhow::Result<Outcome> {
        let from = self.fleet.from_version.clone();
        let offer = self.check(&from).await?;
        if !offer.update_available {
            return Ok(Outcome::NotOffered);
        }
        let fw = &self.fleet.release;
        let (Some(id), Some(size), Some(hash), Some(url)) = (
            offer.firmware_id.as_deref(),
            offer.file_size,
            offer.file_hash.as_deref(),
            offer.download_url.as_deref(),
        ) else {
            bail!(
                "check offered an update without firmware_id, file_size, file_hash and download_url"
            );
        };
        if id != fw.id {
            bail!("check offered release {id}, the rollout is for {}", fw.id);
        }
        if size != fw.file_size || !hash.eq_ignore_ascii_case(&fw.file_hash) {
            bail!(
                "check announced size {size} / hash {hash}, the release has {} / {}",
                fw.file_size,
                fw.file_hash
            );
        }
        self.report("downloading", Some(0), Some(0), None).await?;
        if self.device.silent {
            return Ok(Outcome::Silent);
        }
        let redirecting;
        let url = if self.fleet.via_download_endpoint {
            redirecting = format!("{}/api/ota/download/{id}", self.base());
            redirecting.as_str()
        } else {
            url
        };
        let verified = if self.fleet.chunk_size == 0 {
            self.download_whole(url, size).await?
        } else {
            self.download_ranged(url, size).await?
        };
        let Some(digest) = verified else {
            // Injected: the download broke off (power loss, Wi-Fi gone) half way.
            let msg = format!(
                "fleet-sim injected failure: download aborted after {} of {size} bytes",
                self.run.bytes
            );
            self.report("failed", Some(self.run.bytes), None, Some(msg))
                .await?;
            return Ok(Outcome::Failed);
        };
        if !digest.eq_ignore_ascii_case(hash) {
            let msg = format!("sha256 mismatch: got {digest}, expected {hash}");
            self.report("failed", Some(size), None, Some(msg.clone()))
                .await?;
            bail!("{msg}");
        }
        self.report("installing", Some(size), Some(100), None)
            .await?;
        if self.device.fate == Fate::RollBack {
            let msg = "fleet-sim injected rollback: the new image was not confirmed after boot";
            self.report("rolled_back", Some(size), Some(100), Some(msg.to_owned()))
                .await?;
            return Ok(Outcome::RolledBack);
        }
        self.report("success", Some(size), Some(100), None).await?;
        let after = self.check_after_boot().await?;
        if after.update_available {
            bail!(
                "running the new version {}, the check still offers {:?}",
                self.fleet.release.version,
                after.firmware_id
            );
        }
        Ok(Outcome::Updated)
    }

    /// A device API call with the device's bearer token.
    async fn post(
        &mut self,
        endpoint: Endpoint,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<crate::http::Answer> {
        let url = format!("{}{path}", self.base());
        let (http, token) = (&self.fleet.http, self.token);
        exchange(
            endpoint,
            &mut self.run.timings,
            &mut self.run.retries,
            self.fleet.max_attempts,
            || http.post(&url).bearer_auth(token).json(body),
        )
        .await
    }

    async fn check(&mut self, current_version: &str) -> anyhow::Result<CheckAnswer> {
        let body = json!({
            "device_id": self.device.id,
            "device_type": self.fleet.device_type,
            "current_version": current_version,
        });
        self.check_with(&body).await
    }

    /// The first check on the new release, with its image's hash and the boot (docs/api.md
    /// §3.1): the hash puts the device among the release's devices for the crash share, and a
    /// crashing device (--bad-release) says its boot was a panic.
    async fn check_after_boot(&mut self) -> anyhow::Result<CheckAnswer> {
        let (reset_reason, crashes) = if self.device.crashes {
            ("panic", 1)
        } else {
            ("sw", 0)
        };
        let body = json!({
            "device_id": self.device.id,
            "device_type": self.fleet.device_type,
            "current_version": self.fleet.release.version,
            "running_image_sha256": self.fleet.release.image_sha256,
            "boot": {
                "reset_reason": reset_reason,
                "boots_since_update": 1,
                "crashes_since_last_check": crashes,
            },
        });
        self.check_with(&body).await
    }

    async fn check_with(&mut self, body: &serde_json::Value) -> anyhow::Result<CheckAnswer> {
        let a = self.post(Endpoint::Check, "/api/ota/check", body).await?;
        if a.status != StatusCode::OK {
            bail!("check answered {}: {}", a.status, a.text());
        }
        a.json()
    }

    /// `esp_https_ota`'s partial download: HEAD for the length, then `Range: bytes=a-b` GETs.
    /// `None` when the device is scripted to fail and stops half way.
    async fn download_ranged(&mut self, url: &str, size: u64) -> anyhow::Result<Option<String>> {
        let head = exchange(
            Endpoint::Head,
            &mut self.run.timings,
            &mut self.run.retries,
            self.fleet.max_attempts,
            || fetch(self.fleet, self.token, Method::HEAD, url),
        )
        .await?;
        if head.status != StatusCode::OK {
            bail!(
                "HEAD {} answered {} (esp_https_ota needs 200): {}",
                redact(url),
                head.status,
                head.text()
            );
        }
        let length = header_u64(&head.headers, CONTENT_LENGTH.as_str());
        if length != Some(size) {
            bail!("HEAD Content-Length {length:?}, the check announced {size}");
        }
        let chunk = self.fleet.chunk_size;
        let chunks = size.div_ceil(chunk);
        let stop_after = (self.device.fate == Fate::Fail).then(|| (chunks / 2).max(1));
        let mut hasher = Sha256::new();
        for i in 0..chunks {
            if stop_after == Some(i) {
                return Ok(None);
            }
            let start = i * chunk;
            let end = (start + chunk).min(size) - 1;
            let range = format!("bytes={start}-{end}");
            let a = exchange(
                Endpoint::RangeGet,
                &mut self.run.timings,
                &mut self.run.retries,
                self.fleet.max_attempts,
                || fetch(self.fleet, self.token, Method::GET, url).header(RANGE, &range),
            )
            .await?;
            if a.status != StatusCode::PARTIAL_CONTENT {
                bail!(
                    "GET {range} answered {} (a resumable download needs 206)",
                    a.status
                );
            }
            let want_range = format!("bytes {start}-{end}/{size}");
            let got_range = a.headers.get(CONTENT_RANGE).and_then(|v| v.to_str().ok());
            if got_range != Some(want_range.as_str()) {
                bail!("GET {range}: Content-Range {got_range:?}, expected {want_range}");
            }
            if a.body.len() as u64 != end - start + 1 {
                bail!("GET {range}: {} bytes in the body", a.body.len());
            }
            hasher.update(&a.body);
            self.run.bytes += a.body.len() as u64;
        }
        if stop_after.is_some() {
            // A one-chunk image: the failure comes after the only chunk.
            return Ok(None);
        }
        Ok(Some(hex::encode(hasher.finalize())))
    }

    /// One plain GET of the whole image (--chunk-size 0).
    async fn download_whole(&mut self, url: &str, size: u64) -> anyhow::Result<Option<String>> {
        let a = exchange(
            Endpoint::Get,
            &mut self.run.timings,
            &mut self.run.retries,
            self.fleet.max_attempts,
            || fetch(self.fleet, self.token, Method::GET, url),
        )
        .await?;
        if a.status != StatusCode::OK {
            bail!("GET of the image answered {}: {}", a.status, a.text());
        }
        if a.body.len() as u64 != size {
            bail!(
                "GET of the image: {} bytes, the check announced {size}",
                a.body.len()
            );
        }
        if self.device.fate == Fate::Fail {
            // The bytes arrived, the write to flash did not: counted as half a download.
            self.run.bytes += size / 2;
            return Ok(None);
        }
        self.run.bytes += size;
        Ok(Some(hex::encode(Sha256::digest(&a.body))))
    }

    async fn report(
        &mut self,
        status: &'static str,
        bytes_downloaded: Option<u64>,
        progress_percent: Option<u8>,
        error_message: Option<String>,
    ) -> anyhow::Result<()> {
        // One id per report, kept across retries: a retried report must be stored once.
        let event_id = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "device_id": self.device.id,
            "firmware_id": self.fleet.release.id,
            "status": status,
            "bytes_downloaded": bytes_downloaded,
            "progress_percent": progress_percent,
            "error_message": error_message,
            "event_id": event_id,
        });
        let a = self
            .post(Endpoint::Status, "/api/ota/status", &body)
            .await?;
        if !a.status.is_success() {
            return Err(anyhow!(
                "status {status} answered {}: {}",
                a.status,
                a.text()
            ));
        }
        #[derive(Deserialize)]
        struct Ack {
            event_id: String,
        }
        let ack: Ack = a.json()?;
        if ack.event_id != event_id {
            bail!(
                "status {status} acknowledged under event id {}, sent {event_id}",
                ack.event_id
            );
        }
        self.run.acked.push(AckedReport {
            device_id: self.device.id.clone(),
            event_id,
            status,
        });
        Ok(())
    }
}

/// A request for image bytes. The redirecting download endpoint takes the device credential
/// in `X-OTA-Device-Token`, which `esp_https_ota` carries across the redirect and the
/// capability URL (or S3) ignores; a capability URL from the check needs no credential.
fn fetch(fleet: &Fleet, token: &str, method: Method, url: &str) -> reqwest::RequestBuilder {
    let r = fleet.http.request(method, url);
    if fleet.via_download_endpoint {
        r.header("x-ota-device-token", token)
    } else {
        r
    }
}

fn header_u64(h: &reqwest::header::HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A capability URL without its query (the signature is a credential until it expires).
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}
