//! One HTTP exchange, timed and retried the way a device firmware retries: after 429 or 503
//! (waiting `Retry-After`) and after a dropped connection. Any other answer goes back to the
//! caller, which decides whether it is what `esp_https_ota` expects.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};

use crate::latency::{Endpoint, Timings};

/// A complete answer: the body is read inside the timing, as a device waits for all of it.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "answer {} is not the JSON expected: {}",
                self.status,
                self.text()
            )
        })
    }

    /// The body for an error message, cut short.
    pub fn text(&self) -> String {
        let s = String::from_utf8_lossy(&self.body);
        s.chars().take(400).collect()
    }
}

/// Longest wait honoured from `Retry-After` (the device throttle's window is one minute).
const MAX_BACKOFF: Duration = Duration::from_secs(61);

/// Sends what `make` builds (again on each attempt), retrying 429/503/transport errors up to
/// `max_attempts` times in all; counts `retries` and records every answered attempt.
pub async fn exchange(
    endpoint: Endpoint,
    timings: &mut Timings,
    retries: &mut u64,
    max_attempts: u32,
    make: impl Fn() -> RequestBuilder,
) -> anyhow::Result<Answer> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = Instant::now();
        let outcome = async {
            let resp = make().send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?.to_vec();
            Ok::<_, reqwest::Error>(Answer {
                status,
                headers,
                body,
            })
        }
        .await;
        let took = started.elapsed();
        let wait = match outcome {
            Ok(a)
                if a.status == StatusCode::TOO_MANY_REQUESTS
                    || a.status == StatusCode::SERVICE_UNAVAILABLE =>
            {
                timings.error(endpoint);
                if attempt >= max_attempts {
                    return Err(anyhow!(
                        "{} {} after {attempt} attempts: {}",
                        endpoint.key(),
                        a.status,
                        a.text()
                    ));
                }
                retry_after(&a.headers).unwrap_or(Duration::from_millis(250 * u64::from(attempt)))
            }
            Ok(a) => {
                timings.record(endpoint, took);
                return Ok(a);
            }
            Err(e) => {
                timings.error(endpoint);
                if attempt >= max_attempts {
                    return Err(anyhow!(
                        "{}: no answer after {attempt} attempts: {e:#}",
                        endpoint.key()
                    ));
                }
                Duration::from_millis(250 * u64::from(attempt))
            }
        };
        *retries += 1;
        tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
    }
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let secs: u64 = h.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs.max(1)))
}

/// The client every simulated device shares: one connection pool, redirects followed as
/// `esp_https_ota` follows them (10 at most), no proxy from the environment.
pub fn client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()
        .context("building the HTTP client")
}
