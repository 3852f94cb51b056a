//! Device credentials: signed here with the service's HS256 secret when it is given (what a
//! factory line with the secret would do, and no request per device), otherwise minted one by
//! one through `POST /api/ota/admin/devices/{id}/token`.

use std::path::Path;

use anyhow::{Context, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::http::exchange;
use crate::latency::{Endpoint, Timings};

/// Lifetime of the credentials the simulator makes: long enough for any run, not forever.
const TOKEN_TTL_S: u64 = 24 * 3600;

pub enum Credentials {
    Signed(EncodingKey),
    Minted {
        http: reqwest::Client,
        base: String,
        admin_token: String,
    },
}

#[derive(Deserialize)]
struct Minted {
    token: String,
}

impl Credentials {
    pub fn signed_with(secret_file: &Path) -> anyhow::Result<Credentials> {
        let text = std::fs::read_to_string(secret_file)
            .with_context(|| format!("reading {}", secret_file.display()))?;
        // Trimmed as the server trims its `jwt-secret` file.
        let secret = text.trim();
        if secret.is_empty() {
            bail!("{} is empty", secret_file.display());
        }
        Ok(Credentials::Signed(EncodingKey::from_secret(
            secret.as_bytes(),
        )))
    }

    /// A device token for `device_id` of `device_type` (claims as docs/api.md's §Credentials).
    pub async fn token(
        &self,
        device_id: &str,
        device_type: &str,
        timings: &mut Timings,
        retries: &mut u64,
        max_attempts: u32,
    ) -> anyhow::Result<String> {
        match self {
            Credentials::Signed(key) => {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let exp = u64::try_from(now).context("the clock is before 1970")? + TOKEN_TTL_S;
                let claims = json!({
                    "sub": device_id,
                    "aud": "ota-device",
                    "device_type": device_type,
                    "exp": exp,
                });
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
                    .context("signing a device token")
            }
            Credentials::Minted {
                http,
                base,
                admin_token,
            } => {
                let url = format!("{base}/api/ota/admin/devices/{device_id}/token");
                let body = json!({"device_type": device_type, "ttl_s": TOKEN_TTL_S});
                let a = exchange(Endpoint::TokenMint, timings, retries, max_attempts, || {
                    http.post(&url).bearer_auth(admin_token).json(&body)
                })
                .await?;
                if a.status != StatusCode::OK && a.status != StatusCode::CREATED {
                    bail!("minting a token for {device_id}: {} {}", a.status, a.text());
                }
                Ok(a.json::<Minted>()?.token)
            }
        }
    }
}
