//! The README's walkthrough, run verbatim (bash, curl, jq) against a fresh server, so that the
//! first thing a new user tries keeps working as written.

use std::path::Path;

use crate::harness::Server;

const README: &str = include_str!("../../README.md");

/// The first `sh` code block after the "## Walkthrough" heading.
fn walkthrough_script() -> &'static str {
    let section = README
        .split_once("## Walkthrough")
        .expect("README has a Walkthrough section")
        .1;
    let block = section
        .split_once("```sh\n")
        .expect("the Walkthrough has a sh block")
        .1;
    block.split_once("```").expect("the sh block is closed").0
}

#[tokio::test]
async fn readme_walkthrough_runs_verbatim() {
    let srv = Server::start().await;
    // The walkthrough runs at the repository root beside `ota-data`: recreate that layout.
    let work = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::os::unix::fs::symlink(srv.data_dir(), work.path().join("ota-data")).unwrap();
    std::os::unix::fs::symlink(
        repo.join("firmware-samples"),
        work.path().join("firmware-samples"),
    )
    .unwrap();
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", walkthrough_script()])
        .current_dir(work.path())
        .env("OTA", srv.base())
        .output()
        .await
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "walkthrough failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("\"state\": \"ready\""), "{stdout}");
    assert!(stdout.contains("\"update_available\": true"), "{stdout}");
    assert!(stdout.contains("/tmp/ota-demo.bin: OK"), "{stdout}");
    assert!(
        stdout.contains("{\"status\":\"success\",\"version\":\"1.1.0\"}"),
        "{stdout}"
    );
}
