//! `OtaServer` against `fake-ota-server`, a shell script that behaves as `ota-server` does at
//! its edges (secrets in the data directory, the listening line, signals), so that these tests
//! need no build of the real one; the real one is started by every test of otactl, fleet-sim
//! and the e2e suite.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ota_testkit::server::{Binary, JWT_SECRET_FILE, OtaServer, OtaServerBuilder, read_secret};

fn fake_binary() -> Binary {
    Binary::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake-ota-server"))
}

fn fake() -> OtaServerBuilder {
    OtaServer::builder(fake_binary())
}

/// The environment the fake last started with.
fn started_env(server: &OtaServer) -> Vec<String> {
    std::fs::read_to_string(server.data_dir().join("env"))
        .expect("the fake records its environment")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn pid(server: &OtaServer) -> u32 {
    read_secret(server.data_dir(), "pid")
        .parse()
        .expect("a pid")
}

fn running(pid: u32) -> bool {
    // A reaped process has no /proc entry; only a zombie would have one without running.
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn the_address_and_the_secrets_come_from_the_server() {
    let server = fake().start();
    assert_eq!(server.base(), format!("http://127.0.0.1:{}", pid(&server)));
    assert_eq!(server.admin_token(), format!("token-{}", pid(&server)));
    assert_eq!(
        read_secret(server.data_dir(), JWT_SECRET_FILE),
        format!("secret-{}", pid(&server))
    );
    assert_eq!(
        server.admin_token_file(),
        server.data_dir().join("admin-token")
    );
    assert_eq!(
        server.jwt_secret_file(),
        server.data_dir().join("jwt-secret")
    );
}

#[test]
fn the_test_env_wins_over_the_harness_env() {
    let server = fake()
        .env("OTA_POLL_INTERVAL_S", "7")
        .envs([("RUST_LOG".to_owned(), "debug".to_owned())])
        .start();
    let env = started_env(&server);
    let data = format!("OTA_DATA_DIR={}", server.data_dir().display());
    for line in [
        "OTA_LISTEN=127.0.0.1:0",
        &data,
        "OTA_POLL_INTERVAL_S=7",
        "RUST_LOG=debug",
    ] {
        assert!(env.iter().any(|l| l == line), "{line} in {env:?}");
    }
}

#[test]
fn rust_log_is_warn_unless_the_test_says_otherwise() {
    let server = fake().start();
    assert!(started_env(&server).iter().any(|l| l == "RUST_LOG=warn"));
}

#[test]
fn the_data_directory_is_named_after_its_owner() {
    let server = fake().data_prefix("ota-e2e-").start();
    let name = server.data_dir().file_name().unwrap().to_string_lossy();
    assert!(name.starts_with("ota-e2e-"), "{name}");
}

#[test]
fn a_start_after_a_stop_keeps_the_data_directory_and_the_environment() {
    let mut server = fake().env("OTA_POLL_INTERVAL_S", "7").start();
    let (first, token) = (pid(&server), server.admin_token());
    let data: PathBuf = server.data_dir().to_owned();
    server.stop();
    server.start();
    assert!(!running(first), "stopped before starting again");
    assert_ne!(pid(&server), first);
    assert_eq!(server.base(), format!("http://127.0.0.1:{}", pid(&server)));
    assert_eq!(server.data_dir(), data);
    assert_eq!(
        server.admin_token(),
        token,
        "the first start's token is kept"
    );
    assert!(
        started_env(&server)
            .iter()
            .any(|l| l == "OTA_POLL_INTERVAL_S=7")
    );
}

#[test]
fn kill_then_start_is_a_crash_and_a_restart() {
    let mut server = fake().start();
    let first = pid(&server);
    server.kill();
    assert!(!running(first));
    server.start();
    assert!(running(pid(&server)));
}

#[test]
fn stop_kills_what_ignores_sigterm_after_the_timeout() {
    let mut server = fake().env("FAKE_IGNORE_TERM", "1").start();
    let first = pid(&server);
    let started = Instant::now();
    server.stop();
    assert!(!running(first));
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn dropping_the_server_kills_it_and_removes_its_data() {
    let server = fake().start();
    let (first, data) = (pid(&server), server.data_dir().to_owned());
    drop(server);
    assert!(!running(first));
    assert!(!data.exists());
}

#[test]
fn a_chatty_server_never_blocks_on_its_pipes() {
    // Far more than a pipe holds (64 KiB) on each of stdout and stderr before the address.
    let server = fake().env("FAKE_NOISE", "20000").start();
    assert!(running(pid(&server)));
}

#[test]
#[should_panic(expected = "ota-server did not report its address")]
fn a_server_that_never_listens_fails_the_test_after_the_timeout() {
    OtaServer::builder(fake_binary().start_timeout(Duration::from_millis(500)))
        .env("FAKE_SILENT", "1")
        .start();
}
