//! The admin side of the run, over the admin API of docs/api.md: publish the image, start and widen
//! the rollout, and read back the OTA log, the rollout's counters and the fleet metrics.

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::{Answer, exchange};
use crate::latency::{Endpoint, Timings};

pub struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
    max_attempts: u32,
}

/// The fields of a release the run needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Release {
    pub id: String,
    pub device_type: String,
    pub version: String,
    pub file_size: u64,
    pub file_hash: String,
    pub state: String,
    #[serde(default)]
    pub is_active: bool,
    /// What a device running it reports as `running_image_sha256`: how the server knows a
    /// device is on the release, the whole of the gate's crash share.
    #[serde(default)]
    pub image_sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Created {
    #[serde(flatten)]
    release: Release,
    upload: UploadUrl,
}

#[derive(Debug, Deserialize)]
struct UploadUrl {
    url: String,
    method: String,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

use ota_core::metrics::RolloutHealth;
/// The service's own counter types: the simulator reads exactly what the server writes.
pub use ota_core::progress::{RolloutProgress as Progress, StatusCounts};
pub use ota_core::rollout::Staging;

#[derive(Debug, Clone, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub state: String,
    pub rollout_percentage: f64,
    pub progress: Progress,
    /// The server's own staging fields (empty for a plain canary rollout).
    #[serde(flatten)]
    pub staging: Staging,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(default)]
    pub health: Option<RolloutHealth>,
}

/// One OTA log entry, as far as the loss check needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    pub event_id: String,
    pub device_id: String,
    pub status: String,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Metrics {
    outcomes_24h: StatusCounts,
}

impl Admin {
    pub fn new(http: reqwest::Client, base: &str, token: &str, max_attempts: u32) -> Admin {
        Admin {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            max_attempts,
        }
    }

    /// An admin request; answers other than `want` are errors carrying the problem text.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        want: StatusCode,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let a = exchange(
            Endpoint::Check, // admin calls are not part of the per-endpoint figures
            &mut Timings::default(),
            &mut 0,
            self.max_attempts,
            || {
                let r = self
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(&self.token);
                match body {
                    Some(b) => r.json(b),
                    None => r,
                }
            },
        )
        .await?;
        if a.status != want {
            bail!("{method} {path} answered {}: {}", a.status, a.text());
        }
        Ok(a)
    }

    /// Two-step publish (docs/api.md): create the release, PUT the bytes to the upload URL it hands
    /// out, finalize (the server validates the image).
    pub async fn publish(
        &self,
        device_type: &str,
        version: &str,
        bytes: &[u8],
        sha256: &str,
    ) -> anyhow::Result<Release> {
        let create = json!({
            "device_type": device_type,
            "version": version,
            "file_size": bytes.len(),
            "file_hash": sha256,
            "release_notes": "published by fleet-sim",
        });
        let created: Created = self
            .call(
                Method::POST,
                "/api/ota/admin/firmware",
                Some(&create),
                StatusCode::CREATED,
            )
            .await?
            .json()?;
        let method = Method::from_bytes(created.upload.method.as_bytes())
            .context("upload method of the create answer")?;
        let mut put = self
            .http
            .request(method, &created.upload.url)
            .body(bytes.to_vec());
        for (k, v) in &created.upload.headers {
            put = put.header(k, v);
        }
        let resp = put.send().await.context("uploading the image")?;
        if !resp.status().is_success() {
            let status = resp.status();
            bail!(
                "upload PUT answered {status}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        let path = format!("/api/ota/admin/firmware/{}/finalize", created.release.id);
        let fw: Release = self
            .call(Method::POST, &path, None, StatusCode::OK)
            .await?
            .json()?;
        Ok(fw)
    }

    pub async fn release(&self, id: &str) -> anyhow::Result<Release> {
        let path = format!("/api/ota/admin/firmware/{id}");
        self.call(Method::GET, &path, None, StatusCode::OK)
            .await?
            .json()
    }

    pub async fn create_canary(
        &self,
        fw: &Release,
        percentage: f64,
        failure_threshold: f64,
        min_reports: u32,
    ) -> anyhow::Result<Rollout> {
        let body = json!({
            "name": format!("fleet-sim {} {}", fw.device_type, fw.version),
            "firmware_id": fw.id,
            "target_type": "canary",
            "rollout_percentage": percentage,
            "failure_threshold_percent": failure_threshold,
            "min_reports": min_reports,
        });
        self.create_rollout(&body).await
    }

    /// A rollout the server widens by itself (docs/api.md §9.5, §9.7): `stages` is `{"stages":
    /// ..., "health_gate": ..., "install_timeout_s": ...}`, merged into the create.
    pub async fn create_staged(&self, fw: &Release, stages: Value) -> anyhow::Result<Rollout> {
        let mut body = json!({
            "name": format!("fleet-sim {} {} staged", fw.device_type, fw.version),
            "firmware_id": fw.id,
            "target_type": "canary",
        });
        if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), stages) {
            b.extend(extra);
        }
        self.create_rollout(&body).await
    }

    async fn create_rollout(&self, body: &Value) -> anyhow::Result<Rollout> {
        self.call(
            Method::POST,
            "/api/ota/admin/rollouts",
            Some(body),
            StatusCode::CREATED,
        )
        .await?
        .json()
    }

    pub async fn rollout(&self, id: &str) -> anyhow::Result<Rollout> {
        let path = format!("/api/ota/admin/rollouts/{id}");
        self.call(Method::GET, &path, None, StatusCode::OK)
            .await?
            .json()
    }

    /// `PATCH` of the rollout at its current revision.
    pub async fn patch_rollout(&self, id: &str, change: Value) -> anyhow::Result<Rollout> {
        let path = format!("/api/ota/admin/rollouts/{id}");
        self.call(Method::PATCH, &path, Some(&change), StatusCode::OK)
            .await?
            .json()
    }

    /// Every OTA log entry of the release, following the cursor 500 at a time.
    pub async fn logs_of(&self, firmware_id: &str) -> anyhow::Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/ota/admin/logs?firmware_id={firmware_id}&limit=500");
            if let Some(c) = &cursor {
                path.push_str("&cursor=");
                path.push_str(&form_encode(c));
            }
            let page: Page<LogEntry> = self
                .call(Method::GET, &path, None, StatusCode::OK)
                .await?
                .json()?;
            out.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// `outcomes_24h` of the fleet metrics.
    pub async fn outcomes_24h(&self) -> anyhow::Result<StatusCounts> {
        let m: Metrics = self
            .call(Method::GET, "/api/ota/admin/metrics", None, StatusCode::OK)
            .await?
            .json()?;
        Ok(m.outcomes_24h)
    }
}

/// Percent-encodes a query value (cursors are opaque and may hold `+`, `/`, `=`).
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
