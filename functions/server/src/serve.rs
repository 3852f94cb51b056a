//! The accept loop of `ota-server`: HTTP/1.1 connections (what devices, CI and browsers speak
//! to it) served by hyper, each closed when it outstays its phase (`connection_timeouts`), and
//! a graceful shutdown on SIGTERM or Ctrl-C that stops accepting, closes idle connections and
//! lets requests under way finish.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::config::Timeouts;
use crate::connection_timeouts::{Tracked, Tracker};
use crate::workers::Workers;

/// Serves `app` on `listener` until `shutdown` resolves, then until the requests under way end;
/// an error only when the serving threads cannot start.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // Headers and idle connections are timed by `connection_timeouts`, which tells them apart;
    // hyper's header timer would run over idle keep-alive too (and needs no timer here).
    http.header_read_timeout(None);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut workers = Workers::start(std::thread::available_parallelism().map_or(1, usize::from))?;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Served by a thread of its own from here on: its socket is registered with that
        // thread's event loop, not the accepting one's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "could not hand a connection over");
                continue;
            }
        };
        let (app, http, watcher) = (app.clone(), http.clone(), graceful.watcher());
        workers.spawn(async move {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "could not serve a connection");
                    return;
                }
            };
            let tracker = Tracker::new();
            let io = TokioIo::new(Tracked::new(stream, tracker.clone()));
            let calls = tracker.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let in_flight = calls.begin();
                let app = app.clone();
                async move {
                    let resp = app.oneshot(req.map(axum::body::Body::new)).await?;
                    Ok::<_, Infallible>(in_flight.until_sent(resp))
                }
            });
            let conn = watcher.watch(http.serve_connection(io, service));
            tokio::select! {
                served = conn => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                }
                () = tracker.expired(timeouts) => {
                    tracing::debug!(%peer, "closed a connection that outstayed its timeout");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    workers.stop();
    Ok(())
}

/// A connection that failed before it was accepted is the client's business; anything else
/// (out of file descriptors) is the server's, and a pause lets it recover rather than spin.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; pausing a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
