//! Per-endpoint request timings, kept by each device task and merged at the end (no lock on the
//! hot path), and their percentiles.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// The requests a device makes, as the summary names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /api/ota/admin/devices/{id}/token` (only without --jwt-secret-file).
    TokenMint,
    /// `POST /api/ota/check`.
    Check,
    /// `HEAD` of the download URL (`esp_https_ota`'s partial download asks for the length first).
    Head,
    /// `GET` of the download URL with `Range`.
    RangeGet,
    /// `GET` of the whole image (--chunk-size 0).
    Get,
    /// `POST /api/ota/status`.
    Status,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Endpoint::TokenMint,
        Endpoint::Check,
        Endpoint::Head,
        Endpoint::RangeGet,
        Endpoint::Get,
        Endpoint::Status,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Endpoint::TokenMint => "token_mint",
            Endpoint::Check => "check",
            Endpoint::Head => "head",
            Endpoint::RangeGet => "range_get",
            Endpoint::Get => "get",
            Endpoint::Status => "status",
        }
    }
}

/// Timings of answered requests (any status) and the count of requests that got no usable
/// answer (connection errors, 429/503 before a retry, unexpected statuses).
#[derive(Debug, Default)]
pub struct Timings {
    micros: BTreeMap<Endpoint, Vec<u32>>,
    errors: BTreeMap<Endpoint, u64>,
}

impl Timings {
    pub fn record(&mut self, e: Endpoint, took: Duration) {
        let us = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.micros.entry(e).or_default().push(us);
    }

    pub fn error(&mut self, e: Endpoint) {
        *self.errors.entry(e).or_default() += 1;
    }

    pub fn merge(&mut self, other: Timings) {
        for (e, v) in other.micros {
            self.micros.entry(e).or_default().extend(v);
        }
        for (e, n) in other.errors {
            *self.errors.entry(e).or_default() += n;
        }
    }

    /// One entry per endpoint that saw a request; rates over `wall` (the time devices ran).
    pub fn summary(&mut self, wall: Duration) -> BTreeMap<&'static str, EndpointStats> {
        let secs = wall.as_secs_f64().max(1e-9);
        let mut out = BTreeMap::new();
        for e in Endpoint::ALL {
            let errors = self.errors.get(&e).copied().unwrap_or(0);
            let samples = self.micros.entry(e).or_default();
            if samples.is_empty() && errors == 0 {
                continue;
            }
            samples.sort_unstable();
            let ms = |p: usize| f64::from(percentile(samples, p)) / 1000.0;
            out.insert(
                e.key(),
                EndpointStats {
                    requests: samples.len() as u64,
                    errors,
                    requests_per_s: samples.len() as f64 / secs,
                    p50_ms: ms(50),
                    p95_ms: ms(95),
                    p99_ms: ms(99),
                    max_ms: f64::from(samples.last().copied().unwrap_or(0)) / 1000.0,
                },
            );
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointStats {
    pub requests: u64,
    pub errors: u64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Nearest-rank `p`th percentile (`p` in 0..=100) of sorted samples (0 when there are none),
/// in integers: the rank is ⌈p × n / 100⌉ exactly.
fn percentile(sorted: &[u32], p: usize) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len()).div_ceil(100);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 95), 95);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
    }
}
