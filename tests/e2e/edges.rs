//! The edge of `ota-server` against clients that misbehave at the socket, over raw TCP: headers
//! that never end, connections left idle, request bodies that stall; and settings that would
//! break every request later, refused at start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use firmware_samples::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api::image;
use crate::harness::{Server, server_only};

/// The timeouts these tests run with, short so that they wait seconds: the header timeout
/// shorter than the idle one, so that each is seen apart from the other.
const HEADER_S: u64 = 1;
const BODY_S: u64 = 1;
const IDLE_S: u64 = 3;
/// How late a close may come past its deadline on a loaded test machine.
const SLACK: Duration = Duration::from_millis(1500);
/// How early it may seem to come: the test's clock starts after the server's.
const EARLY: Duration = Duration::from_millis(200);

/// Whether `after` is when a deadline of `expected` fires.
fn at_deadline(after: Duration, expected: Duration) -> bool {
    after + EARLY >= expected && after < expected + SLACK
}

async fn server() -> Server {
    Server::builder()
        .env("OTA_HEADER_TIMEOUT_S", &HEADER_S.to_string())
        .env("OTA_BODY_TIMEOUT_S", &BODY_S.to_string())
        .env("OTA_IDLE_TIMEOUT_S", &IDLE_S.to_string())
        .start()
        .await
}

async fn connect(srv: &Server) -> TcpStream {
    let addr = srv.base().trim_start_matches("http://").to_owned();
    TcpStream::connect(addr).await.unwrap()
}

/// Reads until the server closes the connection; returns what came and how long it took (at
/// most `limit`, which fails the test).
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + limit).into(), stream.read(&mut buf)).await {
            Err(elapsed) => panic!(
                "the connection stayed open {limit:?} ({elapsed}); received {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(0) | Err(_)) => return (got, start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response with a `Content-Length` body: its head (status line and headers, as
/// text) and body.
async fn response(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if got.len() >= end + 4 + length {
                    return (head, got[end + 4..end + 4 + length].to_vec());
                }
            }
            let n = stream.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed mid-response: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("a response within 30 s")
}

fn health(keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!("GET /health HTTP/1.1\r\nHost: ota\r\nConnection: {connection}\r\n\r\n").into_bytes()
}

/// Headers that never end are cut off after the header timeout, sooner than the idle timeout.
#[tokio::test]
async fn half_sent_headers_are_closed_after_the_header_timeout() {
    if server_only("the edge timeouts are ota-server's; API Gateway holds Lambda connections") {
        return;
    }
    let srv = server().await;
    let mut s = connect(&srv).await;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: ota\r\n")
        .await
        .unwrap();
    let (got, after) = until_closed(&mut s, Duration::from_secs(IDLE_S) + SLACK).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let header = Duration::from_secs(HEADER_S);
    assert!(at_deadline(after, header), "closed after {after:?}");
}

/// A connection with no request under way, fresh or kept alive after an answer, is closed
/// after the idle timeout, and not at the header timeout: a keep-alive client may wait longer
/// than that between requests.
#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    if server_only("the edge timeouts are ota-server's; API Gateway holds Lambda connections") {
        return;
    }
    let srv = server().await;
    let mut s = connect(&srv).await;
    s.write_all(&health(true)).await.unwrap();
    let (head, _) = response(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // Past the header timeout, idle: still open, and it serves the next request.
    tokio::time::sleep(Duration::from_secs(HEADER_S) + Duration::from_millis(800)).await;
    s.write_all(&health(true)).await.unwrap();
    let (head, _) = response(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let (got, after) = until_closed(&mut s, Duration::from_secs(IDLE_S) + SLACK * 2).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let idle = Duration::from_secs(IDLE_S);
    assert!(at_deadline(after, idle), "closed after {after:?}");

    // A connection that never sends a byte.
    let mut silent = connect(&srv).await;
    let (_, after) = until_closed(&mut silent, idle + SLACK * 2).await;
    assert!(after + EARLY >= idle, "closed after {after:?}");
}

const BOUNDARY: &str = "edge-boundary";

fn upload_head(srv: &Server, content_length: usize) -> Vec<u8> {
    format!(
        "POST /api/ota/admin/upload HTTP/1.1\r\nHost: ota\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\
         Content-Length: {content_length}\r\n\r\n",
        srv.admin_token()
    )
    .into_bytes()
}

fn form(version: &str, file: &[u8]) -> Vec<u8> {
    ota_testkit::multipart::form(
        BOUNDARY,
        &[("device_type", "edges"), ("version", version)],
        file,
    )
}

/// An upload that declares a large body and stops sending is ended after the body timeout:
/// 408 problem+json, the connection closed, nothing stored. A slow upload that keeps sending
/// is not: the bound is on the pause, not on the whole body.
#[tokio::test]
async fn a_stalled_upload_is_ended_and_a_slow_one_is_not() {
    if server_only("the edge timeouts are ota-server's; API Gateway holds Lambda connections") {
        return;
    }
    let srv = server().await;
    let body = form("1.0.0", &image(Target::Esp32c3, "1.0.0"));
    let mut s = connect(&srv).await;
    s.write_all(&upload_head(&srv, body.len() + 10_000_000))
        .await
        .unwrap();
    s.write_all(&body[..body.len() / 2]).await.unwrap();
    let stalled_at = Instant::now();
    let (head, problem) = response(&mut s).await;
    let after = stalled_at.elapsed();
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert!(head.contains("connection: close"), "{head}");
    let problem: serde_json::Value = serde_json::from_slice(&problem).unwrap();
    assert_eq!(problem["status"], 408);
    assert_eq!(problem["type"], "/problems/request-timeout");
    let body_timeout = Duration::from_secs(BODY_S);
    assert!(at_deadline(after, body_timeout), "answered after {after:?}");
    until_closed(&mut s, SLACK).await;
    assert!(
        srv.stored_blobs().await.is_empty(),
        "{:?}",
        srv.stored_blobs().await
    );

    // The same upload, sent in four pieces with pauses shorter than the body timeout: longer
    // in all than the timeout, and accepted.
    let body = form("1.0.1", &image(Target::Esp32c3, "1.0.1"));
    let mut s = connect(&srv).await;
    s.write_all(&upload_head(&srv, body.len())).await.unwrap();
    let started = Instant::now();
    for piece in body.chunks(body.len().div_ceil(4)) {
        tokio::time::sleep(Duration::from_millis(600)).await;
        s.write_all(piece).await.unwrap();
    }
    let (head, release) = response(&mut s).await;
    assert!(started.elapsed() > body_timeout * 2);
    assert!(
        head.starts_with("http/1.1 201"),
        "{head} {}",
        String::from_utf8_lossy(&release)
    );
}

/// A setting out of its range stops `ota-server` at start, with a message naming it (docs/api.md
/// §15): a URL lifetime S3 cannot presign would otherwise start fine and fail every check.
#[test]
fn a_setting_out_of_range_stops_the_server_at_start() {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ota-server"))
        .env("OTA_LISTEN", "127.0.0.1:0")
        .env("OTA_DATA_DIR", data.path())
        .env("OTA_URL_TTL_S", "604801")
        .env_remove("OTA_TABLE")
        .env_remove("OTA_BUCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("ota-server kept running with OTA_URL_TTL_S=604801");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {}", out.status);
    assert!(
        stderr.contains("OTA_URL_TTL_S") && stderr.contains("604800"),
        "stderr: {stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "it served before refusing"
    );
}

/// A stop (SIGTERM) refuses new connections at once, lets the requests under way finish on
/// their connections (two, served by different threads: the server hands connections out in
/// turn), and ends the process with status 0.
#[tokio::test]
async fn a_stop_lets_the_requests_under_way_finish() {
    if server_only("a stop of ota-server; Lambda instances are stopped by the platform") {
        return;
    }
    let mut srv = Server::builder()
        .env("OTA_BODY_TIMEOUT_S", "60")
        .start()
        .await;
    let mut under_way = Vec::new();
    for device in ["stop-1", "stop-2"] {
        let body =
            format!(r#"{{"device_id":"{device}","device_type":"stop","current_version":"1.0.0"}}"#);
        let head = format!(
            "POST /api/ota/check HTTP/1.1\r\nHost: ota\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            srv.device_token(device, "stop"),
            body.len()
        );
        let mut s = connect(&srv).await;
        let (first, rest) = body.split_at(body.len() / 2);
        s.write_all(format!("{head}{first}").as_bytes())
            .await
            .unwrap();
        under_way.push((s, rest.to_owned()));
    }
    // Both requests are in their handlers, waiting for the rest of their bodies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.local().terminate();
    let addr = srv.base().trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(&addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (mut s, rest) in under_way {
        s.write_all(rest.as_bytes()).await.unwrap();
        let (head, body) = response(&mut s).await;
        assert!(
            head.starts_with("http/1.1 200"),
            "{head} {}",
            String::from_utf8_lossy(&body)
        );
    }
    let status = srv.local().exit_status(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "ended with {status:?} after the requests under way finished"
    );
}
