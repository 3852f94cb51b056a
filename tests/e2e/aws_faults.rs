//! The AWS storage when DynamoDB goes away: a private DynamoDB Local (on disk, `-dbPath`) is
//! killed mid-run and started again on the same port and files. While it is down, check, status
//! reports and admin calls answer 503 with `Retry-After` and problem+json, never a 500, and
//! quickly; afterwards a release upload caught by the outage exists whole or not at all, a report
//! acknowledged before the outage is still in the log, and a report refused with 503 and sent
//! again is counted exactly once.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use firmware_samples::Target;
use reqwest::Method;
use serde_json::{Value, json};

use crate::api::*;
use crate::harness::{Go, Resp, Server, aws_only, dynamodb_client};

/// A refused connection must become a 503 well within what a device or CI waits for an answer.
const MAX_TIME_TO_503: Duration = Duration::from_secs(10);
/// A DynamoDB that hangs is only noticed by the SDK's timeouts: this server runs with the
/// production default (`OTA_DYNAMODB_TIMEOUT_MS` 2000, so at most 5 s per call with retries),
/// within the 5 s an ESP-IDF HTTP client waits by default plus the report's own reads.
const MAX_TIME_TO_503_HUNG: Duration = Duration::from_secs(10);
/// The production default, set explicitly: `cargo xtask test` raises it for the rest of the
/// suite, where DynamoDB Local shares two cores with the whole test run.
const DYNAMODB_TIMEOUT_MS: &str = "2000";
const DYNAMODB_START_TIMEOUT: Duration = Duration::from_secs(120);

/// A DynamoDB Local of this test's own, keeping its tables in `dir`, on a fixed port.
struct PrivateDynamo {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateDynamo {
    async fn start() -> PrivateDynamo {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::Builder::new()
            .prefix("ota-e2e-dynamodb-")
            .tempdir()
            .expect("a directory for DynamoDB Local");
        let mut db = PrivateDynamo {
            port,
            dir,
            child: None,
        };
        db.spawn().await;
        db
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the server on the same port and files, and waits until it answers.
    async fn spawn(&mut self) {
        assert!(self.child.is_none(), "DynamoDB Local is already running");
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!("{name} is not set: run the AWS-mode suite through `cargo xtask test`")
            })
        };
        let java = PathBuf::from(var("OTA_JAVA"));
        let jar_dir = PathBuf::from(var("OTA_DYNAMODB_LOCAL_DIR"));
        let log = std::fs::File::create(self.dir.path().join("dynamodb.log")).expect("log file");
        let started = Instant::now();
        let child = Command::new(java)
            .args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"])
            .arg(format!(
                "-Djava.library.path={}",
                jar_dir.join("DynamoDBLocal_lib").display()
            ))
            .arg("-jar")
            .arg(jar_dir.join("DynamoDBLocal.jar"))
            .arg("-dbPath")
            .arg(self.dir.path())
            .args(["-sharedDb", "-disableTelemetry", "-port"])
            .arg(self.port.to_string())
            .current_dir(&jar_dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting DynamoDB Local");
        self.child = Some(child);
        let client = dynamodb_client(Some(&self.endpoint())).await;
        loop {
            if client.list_tables().send().await.is_ok() {
                break;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "DynamoDB Local exited with {status}:\n{}",
                    self.log_tail(self.dir.path())
                );
            }
            assert!(
                started.elapsed() < DYNAMODB_START_TIMEOUT,
                "DynamoDB Local did not answer on port {}:\n{}",
                self.port,
                self.log_tail(self.dir.path())
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!(
            "private DynamoDB Local answers on port {} after {:.1} s",
            self.port,
            started.elapsed().as_secs_f64()
        );
    }

    fn log_tail(&self, dir: &Path) -> String {
        let text = std::fs::read_to_string(dir.join("dynamodb.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGSTOP / SIGCONT: a DynamoDB that accepts connections and never answers.
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("DynamoDB Local is running").id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// SIGKILL: the outage.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateDynamo {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asserts the answer of a request made while DynamoDB is down, returns it as a problem.
#[track_caller]
fn assert_unavailable(what: &str, r: &Resp, took: Duration) -> Value {
    assert_unavailable_within(what, r, took, MAX_TIME_TO_503)
}

#[track_caller]
fn assert_unavailable_within(what: &str, r: &Resp, took: Duration, bound: Duration) -> Value {
    println!("{what}: {} after {:.2} s", r.status, took.as_secs_f64());
    assert_eq!(r.status, 503, "{what}: {}", r.text());
    let p = r.problem(503);
    let retry_after = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After"));
    assert!(
        retry_after.parse::<u64>().is_ok_and(|s| s > 0),
        "{what}: Retry-After '{retry_after}'"
    );
    assert!(
        took < bound,
        "{what}: the 503 took {:.1} s",
        took.as_secs_f64()
    );
    p
}

async fn timed(req: reqwest::RequestBuilder) -> (Resp, Duration) {
    let started = Instant::now();
    let r = req.go().await;
    (r, started.elapsed())
}

fn status_body(device: &str, firmware_id: &str, status: &str, event_id: &str) -> Value {
    json!({"device_id": device, "firmware_id": firmware_id, "status": status,
           "event_id": event_id})
}

/// Log entries of `device` with this event id.
async fn entries_of(srv: &Server, device: &str, event_id: &str) -> usize {
    logs(srv, &[("device_id", device)])
        .await
        .iter()
        .filter(|e| e["event_id"] == event_id)
        .count()
}

#[tokio::test]
async fn a_dynamodb_outage_answers_503_and_loses_nothing() {
    if aws_only("stops DynamoDB Local, which only the AWS storage uses") {
        return;
    }
    let mut db = PrivateDynamo::start().await;
    let srv = Server::builder()
        .dynamodb_endpoint(&db.endpoint())
        .env("OTA_DYNAMODB_TIMEOUT_MS", DYNAMODB_TIMEOUT_MS)
        .start()
        .await;

    let fw = publish(&srv, "outage", "1.1.0").await;
    let fw_id = str_of(&fw, "id").to_owned();
    rollout_all(&srv, &fw_id).await;
    let offer = check(&srv, "o-1", "outage", "1.0.0").await;
    assert_eq!(offer["update_available"], true);
    let acked = uuid::Uuid::new_v4().to_string();
    srv.device(Method::POST, "/api/ota/status", "o-1", "outage")
        .json(&status_body("o-1", &fw_id, "downloading", &acked))
        .go()
        .await
        .expect(200);

    // A release upload in flight when DynamoDB goes away (big enough to take a moment).
    let big = image_of_size(Target::Esp32c3, "1.2.0", 4 * 1024 * 1024);
    let form = upload_form("outage", "1.2.0", big.clone(), &[]);
    let request = srv
        .admin(Method::POST, "/api/ota/admin/upload")
        .multipart(form);
    let in_flight = tokio::spawn(timed(request));
    tokio::time::sleep(Duration::from_millis(100)).await;
    db.kill();
    let outage = Instant::now();
    let (upload_answer, took) = in_flight.await.expect("the upload task");
    println!(
        "upload in flight: {} after {:.2} s",
        upload_answer.status,
        took.as_secs_f64()
    );
    assert!(
        [201, 503].contains(&upload_answer.status),
        "upload during the outage: {} {}",
        upload_answer.status,
        upload_answer.text()
    );
    if upload_answer.status == 503 {
        assert_unavailable("upload", &upload_answer, Duration::ZERO);
    }

    // Device calls.
    let (r, took) = timed(
        srv.device(Method::POST, "/api/ota/check", "o-2", "outage")
            .json(
                &json!({"device_id": "o-2", "device_type": "outage", "current_version": "1.0.0"}),
            ),
    )
    .await;
    assert_unavailable("check", &r, took);
    let refused = uuid::Uuid::new_v4().to_string();
    let (r, took) = timed(
        srv.device(Method::POST, "/api/ota/status", "o-1", "outage")
            .json(&status_body("o-1", &fw_id, "installing", &refused)),
    )
    .await;
    assert_unavailable("status report", &r, took);
    let (r, took) = timed(srv.device(
        Method::GET,
        &format!("/api/ota/download/{fw_id}"),
        "o-1",
        "outage",
    ))
    .await;
    assert_unavailable("download", &r, took);

    // Admin calls, reading and writing.
    for (what, req) in [
        (
            "firmware list",
            srv.admin(Method::GET, "/api/ota/admin/firmware"),
        ),
        ("metrics", srv.admin(Method::GET, "/api/ota/admin/metrics")),
        ("logs", srv.admin(Method::GET, "/api/ota/admin/logs")),
        (
            "rollout create",
            srv.admin(Method::POST, "/api/ota/admin/rollouts")
                .json(&json!({"name": "x", "firmware_id": fw_id, "target_type": "all"})),
        ),
        (
            "firmware create",
            srv.admin(Method::POST, "/api/ota/admin/firmware")
                .json(&json!({
                "device_type": "outage", "version": "9.0.0", "file_size": 1000,
                "file_hash": "00".repeat(32)})),
        ),
        (
            "upload",
            srv.admin(Method::POST, "/api/ota/admin/upload")
                .multipart(upload_form(
                    "outage",
                    "1.3.0",
                    image(Target::Esp32c3, "1.3.0"),
                    &[],
                )),
        ),
    ] {
        let (r, took) = timed(req).await;
        assert_unavailable(what, &r, took);
    }
    let (r, took) = timed(srv.get("/health")).await;
    println!("health: {} after {:.2} s", r.status, took.as_secs_f64());
    assert_eq!(r.status, 503, "health during the outage: {}", r.text());

    // DynamoDB comes back on the same port with the same files.
    db.spawn().await;
    println!("outage lasted {:.1} s", outage.elapsed().as_secs_f64());

    // The upload caught by the outage: the whole release or nothing.
    let releases = list_all(
        &srv,
        "/api/ota/admin/firmware",
        &[("device_type", "outage")],
        50,
    )
    .await;
    let versions: Vec<&str> = releases.iter().map(|f| str_of(f, "version")).collect();
    for f in &releases {
        assert_eq!(f["state"], "ready", "half-written release: {f}");
    }
    let again = upload(&srv, "outage", "1.2.0", big.clone(), &[]).await;
    if versions.contains(&"1.2.0") {
        assert_eq!(upload_answer.status, 201, "a 503 upload left a release");
        again.problem(409);
        let existing = releases.iter().find(|f| f["version"] == "1.2.0").unwrap();
        assert_eq!(existing["file_hash"], sha256_hex(&big).as_str());
    } else {
        assert_eq!(upload_answer.status, 503, "a 201 upload was lost");
        again.expect(201);
    }
    let offer = check(&srv, "o-3", "outage", "1.0.0").await;
    let got = srv.get(str_of(&offer, "download_url")).go().await;
    assert_eq!(got.status, 200);
    assert_eq!(sha256_hex(&got.body), str_of(&offer, "file_hash"));

    // The report acknowledged before the outage is there; the refused one is sent again (as a
    // device retries) and counted once, however often it is retried.
    assert_eq!(entries_of(&srv, "o-1", &acked).await, 1);
    assert_eq!(entries_of(&srv, "o-1", &refused).await, 0);
    let first = srv
        .device(Method::POST, "/api/ota/status", "o-1", "outage")
        .json(&status_body("o-1", &fw_id, "installing", &refused))
        .go()
        .await
        .expect(200);
    let second = srv
        .device(Method::POST, "/api/ota/status", "o-1", "outage")
        .json(&status_body("o-1", &fw_id, "installing", &refused))
        .go()
        .await
        .expect(200);
    assert_eq!(first, second, "a repeated event id is answered the same");
    assert_eq!(entries_of(&srv, "o-1", &refused).await, 1);
    assert_eq!(entries_of(&srv, "o-1", &acked).await, 1);
    srv.get("/health").go().await.expect(200);

    // A DynamoDB that hangs rather than refuses: the SDK's timeouts must still end in a 503.
    db.signal("STOP");
    let (r, took) = timed(
        srv.device(Method::POST, "/api/ota/check", "o-4", "outage")
            .json(
                &json!({"device_id": "o-4", "device_type": "outage", "current_version": "1.0.0"}),
            ),
    )
    .await;
    let (report, report_took) = timed(
        srv.device(Method::POST, "/api/ota/status", "o-1", "outage")
            .json(&status_body(
                "o-1",
                &fw_id,
                "success",
                &uuid::Uuid::new_v4().to_string(),
            )),
    )
    .await;
    db.signal("CONT");
    assert_unavailable_within("check, DynamoDB hanging", &r, took, MAX_TIME_TO_503_HUNG);
    assert_unavailable_within(
        "status report, DynamoDB hanging",
        &report,
        report_took,
        MAX_TIME_TO_503_HUNG,
    );
}
