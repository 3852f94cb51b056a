//! What a function writes about each request: its share of the batched EMF metrics
//! ([`crate::emf`]) and, when [`crate::access_log`] says so, an access line. Each request runs
//! inside a `request` span carrying the Lambda request id, so that every JSON log line written
//! while serving it has the id.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ota_http::ChangedState;
use ota_http::config::{ConfigError, Env};
use tower::{Layer, Service};
use tracing::Instrument;

use crate::access_log::{Line, Sampling};
use crate::emf::{self, Batch, Sample};

/// Where lines go: stdout on Lambda, a collector in tests.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

fn stdout_sink() -> Sink {
    Arc::new(|line: &str| {
        // One write of the whole line, so that it never interleaves with a log line.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(format!("{line}\n").as_bytes());
        let _ = out.flush();
    })
}

struct Shared {
    function: &'static str,
    namespace: String,
    sampling: Sampling,
    batch: Mutex<Batch>,
    sink: Sink,
}

/// A tower layer writing the metrics and access lines of each request of one function.
#[derive(Clone)]
pub struct RequestLogLayer {
    shared: Arc<Shared>,
}

impl RequestLogLayer {
    /// Lines to stdout, in `OTA_METRICS_NAMESPACE` (or [`emf::DEFAULT_NAMESPACE`]), sampled by
    /// `OTA_ACCESS_LOG_SAMPLE`.
    pub fn from_env(function: &'static str) -> Result<Self, ConfigError> {
        let env = Env::process();
        let namespace = env
            .var("OTA_METRICS_NAMESPACE")
            .unwrap_or_else(|| emf::DEFAULT_NAMESPACE.to_owned());
        Ok(Self::with_sink(
            function,
            &namespace,
            Sampling::from_env(&env)?,
            stdout_sink(),
        ))
    }

    pub fn with_sink(
        function: &'static str,
        namespace: &str,
        sampling: Sampling,
        sink: Sink,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                function,
                namespace: namespace.to_owned(),
                sampling,
                batch: Mutex::new(Batch::default()),
                sink,
            }),
        }
    }
}

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLogService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestLogService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RequestLogService<S> {
    inner: S,
    layer: RequestLogLayer,
}

impl<S, B, RB> Service<http::Request<B>> for RequestLogService<S>
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
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let request_id = req
            .extensions()
            .get::<lambda_http::Context>()
            .map(|c| c.request_id.clone());
        let shared = self.layer.shared.clone();
        let span = tracing::info_span!(
            "request",
            request_id = request_id.as_deref().unwrap_or("-"),
            function = shared.function,
            method = %method,
            path = %path,
        );
        let fut = self.inner.call(req).instrument(span);
        Box::pin(async move {
            let result = fut.await;
            // The router never fails (its error type is Infallible); an error here would be
            // answered as a 500 by lambda_http.
            let (status, changed) = result.as_ref().map_or((500, None), |r| {
                let changed = r.extensions().get::<ChangedState>().map(|c| c.0);
                (r.status().as_u16(), changed)
            });
            let latency = started.elapsed();
            if let Some(reason) = shared.sampling.reason(&method, status, changed) {
                (shared.sink)(&Line::json(
                    reason,
                    shared.function,
                    method.as_str(),
                    &path,
                    status,
                    latency,
                    request_id.as_deref(),
                ));
            }
            let sample = Sample {
                status,
                latency,
                timestamp_ms,
            };
            // A poisoned lock only means a panic mid-add; its counts are still numbers.
            let line = shared
                .batch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .add(sample, Instant::now(), &shared.namespace, shared.function);
            if let Some(line) = line {
                (shared.sink)(&line);
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use axum::{Extension, Router};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn errors_and_changes_are_logged_the_rest_sampled_and_every_request_counted() {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink: Sink = {
            let lines = lines.clone();
            Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_owned()))
        };
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/write", post(|| async { StatusCode::CREATED }))
            .route(
                "/check",
                post(|| async { (Extension(ChangedState(false)), "up to date") }),
            )
            .route("/boom", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
            .layer(RequestLogLayer::with_sink(
                "check",
                "Test",
                Sampling::new(4),
                sink,
            ));
        let send = |method: &str, uri: &str, id: Option<&str>| {
            let mut req = http::Request::builder()
                .method(method)
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            if let Some(id) = id {
                let mut ctx = lambda_http::Context::default();
                ctx.request_id = id.to_owned();
                req.extensions_mut().insert(ctx);
            }
            app.clone().oneshot(req)
        };
        // Eight steady checks (two sampled), a write, then a server error.
        for i in 0..8 {
            let id = format!("c{i}");
            let resp = send("POST", "/check", Some(&id)).await.unwrap();
            assert_eq!(resp.status(), 200);
        }
        assert_eq!(
            send("GET", "/ok?token=secret", None)
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            send("POST", "/write", Some("w")).await.unwrap().status(),
            201
        );
        assert_eq!(send("GET", "/boom", Some("b")).await.unwrap().status(), 503);

        let lines: Vec<Value> = lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let access: Vec<(String, String, u64)> = lines
            .iter()
            .filter(|l| l["message"] == "request")
            .map(|l| {
                (
                    l["reason"].as_str().unwrap().to_owned(),
                    l["request_id"].as_str().unwrap_or("-").to_owned(),
                    l["status"].as_u64().unwrap(),
                )
            })
            .collect();
        // The ninth unremarkable request, the GET, is the third sampled.
        let expected = [
            ("sample", "c0", 200),
            ("sample", "c4", 200),
            ("sample", "-", 200),
            ("change", "w", 201),
            ("error", "b", 503),
        ];
        assert_eq!(
            access,
            expected.map(|(r, id, s)| (r.to_owned(), id.to_owned(), s))
        );
        assert!(
            lines.iter().any(|l| l["path"] == "/ok"),
            "the path, not the query"
        );
        // The server error wrote the batch at once: all eleven requests on one EMF line.
        let emf: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
        assert_eq!(emf.len(), 1);
        assert_eq!(emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Test");
        assert_eq!(emf[0]["Function"], "check");
        assert_eq!(emf[0]["Requests"], 11);
        assert_eq!(emf[0]["Status5xx"], 1);
        assert_eq!(emf[0]["Status4xx"], 0);
        assert_eq!(emf[0]["Latency"].as_array().unwrap().len(), 11);
        assert!(
            std::ptr::eq(emf[0], lines.last().unwrap()),
            "the error's access line comes before the batch it closes"
        );
    }
}
