//! The edge of `ota-server` against clients that misbehave at the socket, over raw TCP: headers
//! that never end, connections left idle, request bodies that stall; and settings that would
//! break every request later, refused at start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
