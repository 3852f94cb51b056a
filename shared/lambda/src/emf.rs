//! Request metrics as CloudWatch Embedded Metric Format: one JSON line per request on stdout,
//! which CloudWatch Logs turns into metrics (`Requests`, `Latency`, `Status4xx`, `Status5xx`,
//! dimension `Function`) without any API call from the function.
//! Format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tower::{Layer, Service};
use tracing::Instrument;

/// The CloudWatch namespace unless `OTA_METRICS_NAMESPACE` names another.
pub const DEFAULT_NAMESPACE: &str = "OtaService";

/// What one request contributes to the metrics.
#[derive(Debug, Clone)]
pub struct RequestRecord<'a> {
    pub function: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency: Duration,
    pub request_id: Option<&'a str>,
    /// Milliseconds since the Unix epoch, when the request arrived.
    pub timestamp_ms: u64,
}

/// The EMF line of one request (no trailing newline). Method, path, status and request id are
/// plain properties: searchable in Logs Insights, but not dimensions (no per-path metric cost).
pub fn emf_line(namespace: &str, r: &RequestRecord<'_>) -> String {
    let latency_ms = r.latency.as_secs_f64() * 1000.0;
    json!({
        "_aws": {
            "Timestamp": r.timestamp_ms,
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
        "Function": r.function,
        "Requests": 1,
        "Latency": (latency_ms * 1000.0).round() / 1000.0,
        "Status4xx": u8::from((400..500).contains(&r.status)),
        "Status5xx": u8::from(r.status >= 500),
        "StatusCode": r.status,
        "Method": r.method,
        "Path": r.path,
        "RequestId": r.request_id,
    })
    .to_string()
}

/// Where EMF lines go: stdout on Lambda, a collector in tests.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

fn stdout_sink() -> Sink {
    Arc::new(|line: &str| {
        // One write of the whole line, so that it never interleaves with a log line.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(format!("{line}\n").as_bytes());
        let _ = out.flush();
    })
}

/// A tower layer that emits one EMF line per request and runs the request inside a `request`
/// span carrying the Lambda request id, so that every JSON log line of the request has it.
#[derive(Clone)]
pub struct EmfLayer {
    function: &'static str,
    namespace: Arc<str>,
    sink: Sink,
}

impl EmfLayer {
    /// Lines to stdout, in `OTA_METRICS_NAMESPACE` or [`DEFAULT_NAMESPACE`].
    pub fn new(function: &'static str) -> Self {
        let namespace = ota_http::config::var("OTA_METRICS_NAMESPACE")
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Self::with_sink(function, &namespace, stdout_sink())
    }

    pub fn with_sink(function: &'static str, namespace: &str, sink: Sink) -> Self {
        Self {
            function,
            namespace: namespace.into(),
            sink,
        }
    }
}

impl<S> Layer<S> for EmfLayer {
    type Service = EmfService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EmfService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct EmfService<S> {
    inner: S,
    layer: EmfLayer,
}

impl<S, B, RB> Service<http::Request<B>> for EmfService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let request_id = req
            .extensions()
            .get::<lambda_http::Context>()
            .map(|c| c.request_id.clone());
        let span = tracing::info_span!(
            "request",
            request_id = request_id.as_deref().unwrap_or("-"),
            function = self.layer.function,
            method = %method,
            path = %path,
        );
        let fut = self.inner.call(req).instrument(span);
        let layer = self.layer.clone();
        Box::pin(async move {
            let result = fut.await;
            // The router never fails (its error type is Infallible); an error here would be
            // answered as a 500 by lambda_http.
            let status = result.as_ref().map_or(500, |r| r.status().as_u16());
            let line = emf_line(
                &layer.namespace,
                &RequestRecord {
                    function: layer.function,
                    method: &method,
                    path: &path,
                    status,
                    latency: started.elapsed(),
                    request_id: request_id.as_deref(),
                    timestamp_ms,
                },
            );
            (layer.sink)(&line);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn record(status: u16) -> RequestRecord<'static> {
        RequestRecord {
            function: "check",
            method: "POST",
            path: "/api/ota/check",
            status,
            latency: Duration::from_micros(12_345_678),
            request_id: Some("req-1"),
            timestamp_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn the_line_is_one_json_object_in_embedded_metric_format() {
        let line = emf_line("OtaService", &record(200));
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_123u64);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "OtaService");
        assert_eq!(directive["Dimensions"], serde_json::json!([["Function"]]));
        let metrics = directive["Metrics"].as_array().unwrap();
        let names: Vec<&str> = metrics
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Requests", "Latency", "Status4xx", "Status5xx"]);
        // Every metric and dimension named in the directive is a member of the root object,
        // with a number for each metric (the specification's validity rules).
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(v[name].is_number(), "{name} missing");
            assert!(
                ["Count", "Milliseconds"].contains(&m["Unit"].as_str().unwrap()),
                "{m}"
            );
        }
        assert_eq!(v["Function"], "check");
        assert_eq!(v["Requests"], 1);
        assert_eq!(v["Latency"], 12345.678);
        assert_eq!(v["Status4xx"], 0);
        assert_eq!(v["Status5xx"], 0);
        assert_eq!(v["StatusCode"], 200);
        assert_eq!(v["Method"], "POST");
        assert_eq!(v["Path"], "/api/ota/check");
        assert_eq!(v["RequestId"], "req-1");
    }

    #[test]
    fn client_and_server_errors_are_counted_apart() {
        let counts = |status| {
            let v: Value = serde_json::from_str(&emf_line("N", &record(status))).unwrap();
            (
                v["Status4xx"].as_u64().unwrap(),
                v["Status5xx"].as_u64().unwrap(),
            )
        };
        assert_eq!(counts(302), (0, 0));
        assert_eq!(counts(400), (1, 0));
        assert_eq!(counts(429), (1, 0));
        assert_eq!(counts(499), (1, 0));
        assert_eq!(counts(500), (0, 1));
        assert_eq!(counts(503), (0, 1));
    }

    #[test]
    fn no_request_id_is_null_not_missing() {
        let mut r = record(200);
        r.request_id = None;
        let v: Value = serde_json::from_str(&emf_line("N", &r)).unwrap();
        assert!(v.as_object().unwrap().contains_key("RequestId"));
        assert!(v["RequestId"].is_null());
    }

    #[tokio::test]
    async fn the_layer_emits_one_line_per_request_with_its_status() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink: Sink = {
            let lines = lines.clone();
            Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_owned()))
        };
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/boom", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .layer(EmfLayer::with_sink("admin-metrics", "Test", sink));
        let mut ctx = lambda_http::Context::default();
        ctx.request_id = "abc-123".to_owned();
        let mut req = http::Request::get("/ok")
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut().insert(ctx);
        assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 200);
        let req = http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(app.oneshot(req).await.unwrap().status(), 503);

        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 2);
        let first: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(first["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Test");
        assert_eq!(first["Function"], "admin-metrics");
        assert_eq!(first["StatusCode"], 200);
        assert_eq!(first["Path"], "/ok");
        assert_eq!(first["RequestId"], "abc-123");
        assert!(first["Latency"].as_f64().unwrap() >= 0.0);
        let second: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["StatusCode"], 503);
        assert_eq!(second["Status5xx"], 1);
        assert!(second["RequestId"].is_null());
    }
}
