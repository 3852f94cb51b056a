//! A request body that stops arriving ends its request (docs/api.md §15.1, `OTA_BODY_TIMEOUT_S`):
//! a client that declares a large upload and then sends nothing would otherwise hold its
//! handler, its connection and the upload's temporary file forever. The bound is on the pause
//! between two arrivals, not on the whole body, so a slow upload that keeps going is read to
//! its end; and the clock runs only while the handler waits for bytes, never while it is busy
//! with the ones it has (writing them to storage).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use ota_http::problem::Problem;
use tokio::time::Sleep;

/// Middleware: the request's body stalls into an error, and a request whose body stalled is
/// answered 408 whatever its handler made of that error (a malformed form, a broken-off
/// upload), with `Connection: close`, since the rest of the body will never be read.
pub async fn body_stall_timeout(
    State(stall): State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    let stalled = Arc::new(AtomicBool::new(false));
    let watched = stalled.clone();
    let req = req.map(|inner| {
        Body::new(StallBody {
            inner,
            stall,
            timer: None,
            stalled: watched,
        })
    });
    let resp = next.run(req).await;
    if !stalled.load(Ordering::Acquire) {
        return resp;
    }
    let mut resp = Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        format!(
            "the request body stalled: no byte arrived for {} s",
            stall.as_secs()
        ),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Why a body ended early.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled for {0:?}")]
struct Stalled(Duration);

/// A body that fails once no frame has arrived for `stall` while it is being read.
struct StallBody {
    inner: Body,
    stall: Duration,
    /// Runs from the first read that found nothing, until a frame arrives.
    timer: Option<Pin<Box<Sleep>>>,
    /// Set for good once the body stalled, for the middleware and for every later read.
    stalled: Arc<AtomicBool>,
}

impl HttpBody for StallBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.stalled.load(Ordering::Acquire) {
            // Never an end of stream: what was read must not pass for the whole body.
            return Poll::Ready(Some(Err(axum::Error::new(Stalled(this.stall)))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let stall = this.stall;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(stall)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.timer = None;
                this.stalled.store(true, Ordering::Release);
                Poll::Ready(Some(Err(axum::Error::new(Stalled(stall)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
