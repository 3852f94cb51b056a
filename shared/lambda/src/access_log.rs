//! Which requests get an access line in a function's log, and the line. A line for every
//! request was the largest part of the steady poll's log bill; now a line is written for
//! - every error answer (4xx and 5xx), so that no failure goes unrecorded;
//! - every request that changed state: any method but GET, HEAD and OPTIONS, except where the
//!   handler said otherwise ([`ota_http::ChangedState`]: a check changed something only when it
//!   offered);
//! - one in `OTA_ACCESS_LOG_SAMPLE` of the others (100 by default; 1 logs every request, 0
//!   none), counted per instance, starting with its first request.
//!
//! Counts and latencies of every request are in the EMF metrics ([`crate::emf`]) whatever is
//! sampled here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Method;
use ota_http::config::{ConfigError, Env};
use serde::Serialize;

/// The default of `OTA_ACCESS_LOG_SAMPLE`.
pub const DEFAULT_SAMPLE: u64 = 100;

/// Why a request has its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Error,
    Change,
    Sample,
}

/// One in `every` of the requests that neither failed nor changed state.
#[derive(Debug)]
pub struct Sampling {
    every: u64,
    unremarkable: AtomicU64,
}

impl Sampling {
    pub fn new(every: u64) -> Self {
        Self {
            every,
            unremarkable: AtomicU64::new(0),
        }
    }

    /// `OTA_ACCESS_LOG_SAMPLE`, 0 to 1,000,000.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        env.number("OTA_ACCESS_LOG_SAMPLE", DEFAULT_SAMPLE, 0..=1_000_000)
            .map(Self::new)
    }

    /// Why this request is logged, if it is. `changed` is the handler's word
    /// ([`ota_http::ChangedState`]), when it gave one.
    pub fn reason(&self, method: &Method, status: u16, changed: Option<bool>) -> Option<Reason> {
        if status >= 400 {
            return Some(Reason::Error);
        }
        if changed.unwrap_or(!method.is_safe()) {
            return Some(Reason::Change);
        }
        let n = self.unremarkable.fetch_add(1, Ordering::Relaxed);
        (self.every > 0 && n.is_multiple_of(self.every)).then_some(Reason::Sample)
    }
}

/// What the line says of a request. No query string and no header: no credential or token ever
/// lands in the log.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    pub level: &'static str,
    pub message: &'static str,
    pub reason: Reason,
    pub function: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    pub request_id: Option<&'a str>,
}

impl<'a> Line<'a> {
    /// The line of a request (JSON, no trailing newline); errors at the level that says whose.
    pub fn json(
        reason: Reason,
        function: &'a str,
        method: &'a str,
        path: &'a str,
        status: u16,
        latency: Duration,
        request_id: Option<&'a str>,
    ) -> String {
        let level = match status {
            500.. => "ERROR",
            400..=499 => "WARN",
            _ => "INFO",
        };
        let line = Line {
            level,
            message: "request",
            reason,
            function,
            method,
            path,
            status,
            latency_ms: (latency.as_secs_f64() * 1e6).round() / 1e3,
            request_id,
        };
        serde_json::to_string(&line).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn every_error_and_every_change_has_its_line() {
        let s = Sampling::new(0);
        assert_eq!(s.reason(&Method::GET, 404, None), Some(Reason::Error));
        assert_eq!(
            s.reason(&Method::POST, 429, Some(false)),
            Some(Reason::Error)
        );
        assert_eq!(
            s.reason(&Method::GET, 503, Some(false)),
            Some(Reason::Error)
        );
        assert_eq!(s.reason(&Method::POST, 200, None), Some(Reason::Change));
        assert_eq!(s.reason(&Method::PATCH, 200, None), Some(Reason::Change));
        assert_eq!(s.reason(&Method::DELETE, 204, None), Some(Reason::Change));
        // The check: a POST that changed nothing, and a GET that offered.
        assert_eq!(s.reason(&Method::POST, 200, Some(false)), None);
        assert_eq!(
            s.reason(&Method::GET, 200, Some(true)),
            Some(Reason::Change)
        );
        assert_eq!(s.reason(&Method::GET, 302, None), None);
        assert_eq!(s.reason(&Method::HEAD, 200, None), None);
    }

    #[test]
    fn one_in_n_of_the_others_is_sampled_starting_with_the_first() {
        let s = Sampling::new(100);
        let sampled = (0..1000)
            .filter(|_| s.reason(&Method::GET, 200, None).is_some())
            .count();
        assert_eq!(sampled, 10);
        let s = Sampling::new(3);
        let picks: Vec<bool> = (0..7)
            .map(|_| s.reason(&Method::POST, 200, Some(false)) == Some(Reason::Sample))
            .collect();
        assert_eq!(picks, [true, false, false, true, false, false, true]);
        // Errors and changes do not move the count.
        let s = Sampling::new(2);
        assert!(s.reason(&Method::GET, 200, None).is_some());
        assert!(s.reason(&Method::POST, 201, None).is_some());
        assert!(s.reason(&Method::GET, 500, None).is_some());
        assert!(s.reason(&Method::GET, 200, None).is_none());
        assert!(s.reason(&Method::GET, 200, None).is_some());
        let every = Sampling::new(1);
        assert!((0..5).all(|_| every.reason(&Method::GET, 200, None).is_some()));
    }

    #[test]
    fn the_setting_is_bounded() {
        let env = |v: &'static str| {
            move |name: &str| (name == "OTA_ACCESS_LOG_SAMPLE").then(|| v.to_owned())
        };
        let unset = |_: &str| None;
        assert_eq!(Sampling::from_env(&Env::new(&unset)).unwrap().every, 100);
        assert_eq!(Sampling::from_env(&Env::new(&env("0"))).unwrap().every, 0);
        assert_eq!(Sampling::from_env(&Env::new(&env("1"))).unwrap().every, 1);
        for bad in ["-1", "1000001", "ten", "0.5"] {
            let e = Sampling::from_env(&Env::new(&env(bad))).unwrap_err();
            assert!(e.0.contains("OTA_ACCESS_LOG_SAMPLE"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_line_says_whose_error_and_carries_no_query() {
        let line = |status| {
            let l = Line::json(
                Reason::Error,
                "check",
                "POST",
                "/api/ota/check",
                status,
                Duration::from_micros(1_234_567),
                Some("req-1"),
            );
            assert!(!l.contains('\n'));
            serde_json::from_str::<Value>(&l).unwrap()
        };
        let v = line(401);
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "request");
        assert_eq!(v["reason"], "error");
        assert_eq!(v["function"], "check");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/api/ota/check");
        assert_eq!(v["status"], 401);
        assert_eq!(v["latency_ms"], 1234.567);
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(line(500)["level"], "ERROR");
        assert_eq!(line(200)["level"], "INFO");
    }
}
