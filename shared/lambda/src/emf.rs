//! Request metrics as CloudWatch Embedded Metric Format, aggregated per instance: one JSON line
//! per batch of requests on stdout, which CloudWatch Logs turns into metrics (`Requests`,
//! `Latency`, `Status4xx`, `Status5xx`, dimension `Function`) without any API call from the
//! function. A line per request was ~450 bytes of ingested log (~$0.23 per million requests,
//! more than the steady poll's DynamoDB read); a batch of 100 is ~11 bytes per request.
//! Format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>
//!
//! A batch is written at the end of the request that fills it ([`MAX_VALUES`] latencies, the
//! most one EMF value array may hold), that finds it [`MAX_AGE`] old, or that answered 5xx (so
//! that server errors reach their metric at once). Lambda runs code only inside a request, so
//! an instance that the service retires loses its unwritten batch: at most 99 requests or a
//! minute of one instance's counts. `Requests`, `Status4xx` and `Status5xx` are sums per
//! line: read them with the `Sum` statistic (`SampleCount` counts lines); `Latency` keeps
//! every value, so its percentiles are exact.

use std::time::{Duration, Instant};

use serde_json::json;

/// The CloudWatch namespace unless `OTA_METRICS_NAMESPACE` names another.
pub const DEFAULT_NAMESPACE: &str = "OtaService";
/// The most values one metric of an EMF line may have (the specification's limit).
pub const MAX_VALUES: usize = 100;
/// The oldest a batch's first request may be when the batch is written.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// What one request contributes to the metrics.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub status: u16,
    pub latency: Duration,
    /// Milliseconds since the Unix epoch, when the request arrived.
    pub timestamp_ms: u64,
}

/// The requests of one instance since its last line.
#[derive(Debug, Default)]
pub struct Batch {
    /// When the first request of the batch arrived: the line's timestamp, and its age.
    first: Option<(u64, Instant)>,
    requests: u64,
    status_4xx: u64,
    status_5xx: u64,
    /// Milliseconds, rounded to the microsecond.
    latencies_ms: Vec<f64>,
}

impl Batch {
    /// Adds one request; the batch's line when it is due (and the batch starts over).
    pub fn add(
        &mut self,
        sample: Sample,
        now: Instant,
        namespace: &str,
        function: &str,
    ) -> Option<String> {
        let (_, since) = *self.first.get_or_insert((sample.timestamp_ms, now));
        self.requests += 1;
        self.status_4xx += u64::from((400..500).contains(&sample.status));
        self.status_5xx += u64::from(sample.status >= 500);
        self.latencies_ms
            .push((sample.latency.as_secs_f64() * 1e6).round() / 1e3);
        let due = self.latencies_ms.len() >= MAX_VALUES
            || now.duration_since(since) >= MAX_AGE
            || sample.status >= 500;
        due.then(|| std::mem::take(self).line(namespace, function))
    }

    /// The EMF line of the batch (no trailing newline).
    fn line(&self, namespace: &str, function: &str) -> String {
        json!({
            "_aws": {
                "Timestamp": self.first.map_or(0, |(ms, _)| ms),
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Function"]],
                    "Metrics": [
                        {"Name": "Requests", "Unit": "Count"},
                        {"Name": "Latency", "Unit": "Milliseconds"},
                        {"Name": "Status4xx", "Unit": "Count"},
                        {"Name": "Status5xx", "Unit": "Count"},
                    ],
                }],
            },
            "Function": function,
            "Requests": self.requests,
            "Latency": self.latencies_ms,
            "Status4xx": self.status_4xx,
            "Status5xx": self.status_5xx,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn sample(status: u16, latency_us: u64) -> Sample {
        Sample {
            status,
            latency: Duration::from_micros(latency_us),
            timestamp_ms: 1_700_000_000_123,
        }
    }

    /// Adds `samples` at `now`, returning the lines written.
    fn feed(batch: &mut Batch, samples: &[Sample], now: Instant) -> Vec<Value> {
        samples
            .iter()
            .filter_map(|s| batch.add(*s, now, "OtaService", "check"))
            .map(|l| {
                assert!(!l.contains('\n'));
                serde_json::from_str(&l).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_full_batch_is_one_line_in_embedded_metric_format() {
        let mut batch = Batch::default();
        let now = Instant::now();
        let mut samples = vec![sample(200, 12_345_678); 97];
        samples.extend([sample(404, 1_000), sample(429, 2_500), sample(304, 999)]);
        let lines = feed(&mut batch, &samples, now);
        assert_eq!(lines.len(), 1, "one line for 100 requests");
        let v = &lines[0];
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "OtaService");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        let metrics = directive["Metrics"].as_array().unwrap();
        let names: Vec<&str> = metrics
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Requests", "Latency", "Status4xx", "Status5xx"]);
        // The specification's validity rules: every metric named in the directive is a member
        // of the root object, a number or an array of at most 100 numbers.
        for m in metrics {
            let value = &v[m["Name"].as_str().unwrap()];
            let ok = value.is_number()
                || value
                    .as_array()
                    .is_some_and(|a| a.len() <= MAX_VALUES && a.iter().all(Value::is_number));
            assert!(ok, "{m}: {value}");
        }
        assert_eq!(v["Function"], "check");
        assert_eq!(v["Requests"], 100);
        assert_eq!(v["Status4xx"], 2);
        assert_eq!(v["Status5xx"], 0);
        let latency = v["Latency"].as_array().unwrap();
        assert_eq!(latency.len(), 100);
        assert_eq!(latency[0], 12345.678);
        assert_eq!(latency[99], 0.999);
        // The next request starts a new batch.
        assert!(feed(&mut batch, &[sample(200, 1)], now).is_empty());
        assert_eq!(batch.requests, 1);
    }

    #[test]
    fn a_batch_is_written_once_a_minute_old() {
        let mut batch = Batch::default();
        let start = Instant::now();
        assert!(feed(&mut batch, &[sample(200, 5)], start).is_empty());
        let almost = start + MAX_AGE.saturating_sub(Duration::from_millis(1));
        assert!(feed(&mut batch, &[sample(200, 5)], almost).is_empty());
        let lines = feed(&mut batch, &[sample(200, 5)], start + MAX_AGE);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["Requests"], 3);
    }

    #[test]
    fn a_server_error_is_written_at_once_with_the_requests_before_it() {
        let mut batch = Batch::default();
        let now = Instant::now();
        let lines = feed(
            &mut batch,
            &[sample(200, 5), sample(400, 5), sample(503, 5)],
            now,
        );
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (
                &lines[0]["Requests"],
                &lines[0]["Status4xx"],
                &lines[0]["Status5xx"]
            ),
            (&json!(3), &json!(1), &json!(1))
        );
        let lines = feed(&mut batch, &[sample(500, 5)], now);
        assert_eq!(lines[0]["Requests"], 1, "a new batch after each line");
    }

    #[test]
    fn a_full_line_costs_about_eleven_bytes_per_request() {
        // The cost table of docs/performance.md counts 11 bytes of metrics per request.
        let mut batch = Batch::default();
        let lines: Vec<String> = (0..MAX_VALUES)
            .filter_map(|_| {
                batch.add(
                    sample(200, 23_456),
                    Instant::now(),
                    "OtaService",
                    "admin-rollout",
                )
            })
            .collect();
        assert_eq!(lines.len(), 1);
        let per_request = lines[0].len() / MAX_VALUES;
        assert!(
            (9..=11).contains(&per_request),
            "{per_request} B per request"
        );
    }
}
