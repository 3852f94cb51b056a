//! The error statuses that need a fault: 429 for a device over its request budget, 503 with
//! `Retry-After` while the database is locked by another process, and recovery afterwards (the
//! AWS storage's outage is `aws_faults.rs`).

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::api::{check, check_raw};
use crate::harness::{Go, Server, embedded_only};

#[tokio::test]
async fn a_device_over_its_budget_gets_429_and_others_do_not() {
    let srv = Server::builder()
        .env("OTA_DEVICE_RATE_PER_MIN", "5")
        .start()
        .await;
    let mut refused = None;
    // Six requests may straddle a minute boundary: then the budget resets once, so allow 11.
    for _ in 0..11 {
        let r = check_raw(&srv, "looping", "demo", "1.0.0", json!({})).await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        r.expect(200);
    }
    let refused = refused.expect("the sixth check in a minute is refused");
    let p = refused.problem(429);
    assert_eq!(p["type"], "/problems/throttled");
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    // Another device has a budget of its own.
    check(&srv, "calm", "demo", "1.0.0").await;
}

/// Holds an exclusive lock on the server's SQLite database from another process (its stdout is
/// kept open: closing it would kill the holder with a broken pipe).
struct DbLock {
    holder: tokio::process::Child,
    _stdout: tokio::process::ChildStdout,
}

impl DbLock {
    async fn take(db: &std::path::Path) -> DbLock {
        let python = std::env::var("OTA_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = "import sqlite3, sys, time\n\
                      c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                      c.execute('BEGIN EXCLUSIVE')\n\
                      print('locked', flush=True)\n\
                      sys.stdin.read()\n";
        let mut child = tokio::process::Command::new(python)
            .args(["-c", script])
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mut out = child.stdout.take().expect("stdout");
        let mut buf = [0u8; 6];
        tokio::io::AsyncReadExt::read_exact(&mut out, &mut buf)
            .await
            .expect("the lock is taken");
        assert_eq!(&buf, b"locked");
        DbLock {
            holder: child,
            _stdout: out,
        }
    }

    async fn release(mut self) {
        drop(self.holder.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(10), self.holder.wait()).await;
    }
}

#[tokio::test]
async fn a_locked_database_answers_503_with_retry_after_then_recovers() {
    if embedded_only("locks the SQLite file; the DynamoDB outage is aws_faults.rs") {
        return;
    }
    let srv = Server::start().await;
    check(&srv, "before", "demo", "1.0.0").await;
    let lock = DbLock::take(&srv.data_dir().join("ota.sqlite3")).await;
    let r = check_raw(&srv, "during", "demo", "1.0.0", json!({})).await;
    let p = r.problem(503);
    assert_eq!(p["type"], "/problems/unavailable");
    assert!(r.header("retry-after").is_some(), "503 carries Retry-After");
    let health = srv.get("/health").go().await;
    health.problem(503);
    lock.release().await;
    srv.get("/health").go().await.expect(200);
    check(&srv, "during", "demo", "1.0.0").await;
    // Nothing stored before the fault was lost, and the refused check left no half-written device.
    let devices = srv
        .admin(reqwest::Method::GET, "/api/ota/admin/devices")
        .go()
        .await
        .expect(200);
    let ids: Vec<&str> = devices["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .collect();
    assert_eq!(ids, ["before", "during"]);
}
