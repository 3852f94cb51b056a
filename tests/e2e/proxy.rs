//! An HTTP proxy on loopback that records what passes and can change it: the man in the middle
//! (or the bad CDN) a device must survive, which no real component produces on demand. It forwards
//! to one upstream, keeping the `Host` header as sent so that signed URLs (S3 SigV4) still verify.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::Response;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

/// An answer, before the proxy returns it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What a test does to the traffic: `request` may rewrite a request before it goes upstream;
/// `answer` may rewrite (or invent, returning `Some` without asking upstream) an answer.
pub trait Fault: Send + Sync + 'static {
    fn request(&self, _seen: &mut Seen) {}
    fn short_circuit(&self, _seen: &Seen) -> Option<Answer> {
        None
    }
    fn answer(&self, _seen: &Seen, _answer: &mut Answer) {}
}

/// Passes everything through unchanged.
pub struct Transparent;
impl Fault for Transparent {}

struct Shared {
    /// Set once: a server can be told the proxy's address before it starts.
    upstream: std::sync::OnceLock<String>,
    http: reqwest::Client,
    fault: Box<dyn Fault>,
    seen: Mutex<Vec<Seen>>,
}

pub struct Proxy {
    base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the length, which the proxy recomputes.
fn forwarded(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade" | "content-length"
    )
}

async fn upstream_answer(shared: &Shared, seen: &Seen) -> Answer {
    let Some(upstream) = shared.upstream.get() else {
        return Answer {
            status: StatusCode::BAD_GATEWAY,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"the proxy has no upstream yet"),
        };
    };
    let mut out = shared
        .http
        .request(seen.method.clone(), format!("{upstream}{}", seen.uri))
        .body(seen.body.clone());
    for (name, value) in seen.headers.iter().filter(|(n, _)| forwarded(n)) {
        out = out.header(name, value);
    }
    match out.send().await {
        Ok(r) => Answer {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await.unwrap_or_default(),
        },
        Err(e) => Answer {
            status: StatusCode::BAD_GATEWAY,
            headers: HeaderMap::new(),
            body: Bytes::from(e.to_string()),
        },
    }
}

async fn relay(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut seen = Seen {
        method: parts.method,
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
        at: Instant::now(),
    };
    shared.fault.request(&mut seen);
    shared.seen.lock().expect("proxy log").push(seen.clone());
    let mut answer = match shared.fault.short_circuit(&seen) {
        Some(answer) => answer,
        None => upstream_answer(&shared, &seen).await,
    };
    shared.fault.answer(&seen, &mut answer);
    let mut resp = Response::builder().status(answer.status);
    // A HEAD answer's length is the resource's, not its (empty) body's.
    let head = seen.method == Method::HEAD;
    for (name, value) in answer
        .headers
        .iter()
        .filter(|(n, _)| forwarded(n) || (head && *n == "content-length"))
    {
        resp = resp.header(name, value);
    }
    resp.body(Body::from(answer.body))
        .expect("a response of parts that came from one")
}

impl Proxy {
    /// Listens on a free loopback port, forwarding nowhere until [`Proxy::forward_to`].
    pub async fn bind(fault: impl Fault) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the proxy");
        let base = format!("http://{}", listener.local_addr().expect("its address"));
        let shared = Arc::new(Shared {
            upstream: std::sync::OnceLock::new(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("the proxy's client"),
            fault: Box::new(fault),
            seen: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(relay)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Proxy { base, shared, task }
    }

    /// A proxy to `upstream` (a base URL without a trailing slash).
    pub async fn start(upstream: &str, fault: impl Fault) -> Proxy {
        let proxy = Proxy::bind(fault).await;
        proxy.forward_to(upstream);
        proxy
    }

    pub fn forward_to(&self, upstream: &str) {
        self.shared
            .upstream
            .set(upstream.trim_end_matches('/').to_owned())
            .expect("the upstream is set once");
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("proxy log").clone()
    }
}
