//! How long a connection may keep the server waiting between requests (docs/api.md §15.1):
//! `OTA_HEADER_TIMEOUT_S` from the first byte of a request to the end of its headers, and
//! `OTA_IDLE_TIMEOUT_S` while no request is under way (a fresh connection, or one kept alive
//! after an answer). While a request is under way neither applies: its body has
//! `body_stall_timeout`, and its answer is the handler's.
//!
//! hyper's own `header_read_timeout` cannot say this: it starts whenever hyper waits for a
//! request head, idle keep-alive included, so it would close an idle connection after the
//! header timeout, and it knows no idle timeout of its own. Instead each connection tracks its
//! phase here: its reads (a first byte ends the idle wait) and its requests (from the call of
//! the service to the end of the answer's body), and a watcher closes the connection when the
//! deadline of its phase passes.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::config::Timeouts;

/// What a connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request under way, none begun.
    Idle,
    /// A request has begun to arrive; its head is not complete.
    Head,
    /// This many requests are being answered.
    Busy(usize),
}

/// The phase of one connection, shared by its socket, its service and its watcher.
pub struct Tracker {
    phase: Mutex<(Phase, Instant)>,
    changed: Notify,
}

impl Tracker {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new((Phase::Idle, Instant::now())),
            changed: Notify::new(),
        })
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut guard = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        let next = f(guard.0);
        if next != guard.0 {
            *guard = (next, Instant::now());
            // One watcher: a stored permit means no change is missed between its look and its
            // wait.
            self.changed.notify_one();
        }
    }

    /// When the current phase runs out, if it can.
    fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        let (phase, since) = *self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        match phase {
            Phase::Idle => Some(since + timeouts.idle),
            Phase::Head => Some(since + timeouts.header),
            Phase::Busy(_) => None,
        }
    }

    /// Resolves once the connection outstays its phase: the caller then drops (closes) it.
    pub async fn expired(&self, timeouts: Timeouts) {
        loop {
            match self.deadline(&timeouts) {
                Some(deadline) if Instant::now() >= deadline => return,
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline) => {}
                        () = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }

    /// A request's head arrived and the service is called: until the returned guard (moved
    /// into the answer's body) is dropped, the connection is busy.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.update(|phase| match phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Idle | Phase::Head => Phase::Busy(1),
        });
        InFlight(self.clone())
    }

    fn bytes_arrived(&self) {
        self.update(|phase| match phase {
            Phase::Idle => Phase::Head,
            other => other,
        });
    }
}

/// One request under way on a connection.
pub struct InFlight(Arc<Tracker>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|phase| match phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle,
        });
    }
}

impl InFlight {
    /// The answer, busy until its body is sent (or dropped with the connection).
    pub fn until_sent(self, resp: Response) -> Response {
        resp.map(|inner| {
            Body::new(Guarded {
                inner,
                _in_flight: self,
            })
        })
    }
}

/// A response body holding its request's [`InFlight`].
struct Guarded {
    inner: Body,
    _in_flight: InFlight,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's socket, telling its tracker when bytes arrive.
pub struct Tracked<S> {
    io: S,
    tracker: Arc<Tracker>,
}

impl<S> Tracked<S> {
    pub fn new(io: S, tracker: Arc<Tracker>) -> Self {
        Self { io, tracker }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.tracker.bytes_arrived();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn timeouts() -> Timeouts {
        Timeouts {
            header: Duration::from_secs(10),
            body_stall: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_deadline() {
        let t = Tracker::new();
        let start = Instant::now();
        assert_eq!(
            t.deadline(&timeouts()),
            Some(start + Duration::from_secs(60))
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        t.bytes_arrived();
        assert_eq!(
            t.deadline(&timeouts()),
            Some(start + Duration::from_secs(15)),
            "a head has the header timeout from its first byte"
        );
        let first = t.begin();
        let second = t.begin();
        assert_eq!(t.deadline(&timeouts()), None, "busy: no deadline");
        t.bytes_arrived();
        drop(first);
        assert_eq!(t.deadline(&timeouts()), None, "one request still under way");
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(second);
        assert_eq!(
            t.deadline(&timeouts()),
            Some(start + Duration::from_secs(165)),
            "idle again from the end of the last answer"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_waits_out_a_busy_phase() {
        let t = Tracker::new();
        let busy = t.begin();
        let waited = tokio::time::timeout(Duration::from_secs(600), t.expired(timeouts())).await;
        assert!(waited.is_err(), "a busy connection never expires");
        drop(busy);
        let idle_since = Instant::now();
        t.expired(timeouts()).await;
        assert_eq!(idle_since.elapsed(), Duration::from_secs(60));
    }
}
