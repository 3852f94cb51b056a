//! The contract's own checks (`tests/openapi/`): the OpenAPI document `ota-server` serves is
//! validated by two independent tools (`cargo xtask lint`), then exercised by schemathesis and
//! by a client another project's generator writes from it (`cargo xtask test`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use ota_testkit::server::{Binary, OtaServer};

use crate::install::{fresh_tmp, move_into_place, npm_install};

/// Redocly's CLI from npm, pinned.
const REDOCLY_NPM: &str = "@redocly/cli";
const REDOCLY_NPM_VERSION: &str = "2.77.0";

/// Where the checks' inputs and outputs live, relative to the root.
const CONFIG_DIR: &str = "tests/openapi";

/// `ota-server` as the tests build it, started on a fresh data directory; with `unthrottled`,
/// its devices have no request budget (the tester's one device makes thousands of requests,
/// which would otherwise mostly meet the 429 of docs/api.md §12 instead of the routes).
fn start_server(root: &Path, unthrottled: bool) -> anyhow::Result<OtaServer> {
    crate::run(crate::cargo().args(["build", "--locked", "-p", "ota-server"]))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let rate = if unthrottled { "0" } else { "600" };
    Ok(
        OtaServer::builder(Binary::at(target.join("debug/ota-server")))
            .data_prefix("ota-contract-")
            .env("OTA_DEVICE_RATE_PER_MIN", rate)
            .start(),
    )
}

/// The document a running server serves, saved under `target/openapi/`.
fn fetch_document(root: &Path, server: &OtaServer) -> anyhow::Result<PathBuf> {
    let dir = root.join("target/openapi");
    std::fs::create_dir_all(&dir)?;
    let doc = dir.join("openapi.json");
    crate::run(
        Command::new("curl")
            .args(["-sSf", "-o"])
            .arg(&doc)
            .arg(format!("{}/api/ota/openapi.json", server.base())),
    )
    .context("fetching the OpenAPI document (curl)")?;
    Ok(doc)
}

/// `redocly` from `target/redocly-<version>/`, installed with npm when missing.
fn redocly(root: &Path) -> anyhow::Result<PathBuf> {
    let name = format!("redocly-{REDOCLY_NPM_VERSION}");
    let prefix = root.join("target").join(&name);
    let bin = |p: &Path| p.join("node_modules/.bin/redocly");
    if bin(&prefix).exists() {
        return Ok(bin(&prefix));
    }
    let tmp = fresh_tmp(&root.join("target"), &name)?;
    npm_install(
        &tmp,
        &format!("{REDOCLY_NPM}@{REDOCLY_NPM_VERSION}"),
        &[],
        "installing Redocly's CLI",
    )?;
    if !bin(&tmp).exists() {
        bail!(
            "{REDOCLY_NPM} installed but {} is missing",
            bin(&tmp).display()
        );
    }
    move_into_place(&tmp, &prefix)?;
    Ok(bin(&prefix))
}

/// Both validators on the served document; any error fails (Redocly's warnings too, but for
/// the rules `tests/openapi/redocly.yaml` turns off, each with its reason).
pub fn lint(root: &Path) -> anyhow::Result<()> {
    let python = crate::python::ensure_test_tools(root)?;
    let redocly = redocly(root)?;
    let server = start_server(root, false)?;
    let doc = fetch_document(root, &server)?;
    drop(server);
    let out = Command::new(redocly)
        .current_dir(root)
        .args(["lint", "--max-problems", "500", "--config"])
        .arg(format!("{CONFIG_DIR}/redocly.yaml"))
        .arg(&doc)
        .output()
        .context("starting redocly")?;
    let report = String::from_utf8_lossy(&out.stderr);
    eprint!("{}{report}", String::from_utf8_lossy(&out.stdout));
    // Redocly exits 0 on warnings ("You have N warnings."); they fail here too.
    if !out.status.success() || report.contains("You have") {
        bail!("redocly lint found problems in {}", doc.display());
    }
    crate::run(
        Command::new(python.with_file_name("openapi-spec-validator"))
            .args(["--validation-errors", "all"])
            .arg(&doc),
    )
}

/// Schemathesis, every check, against `ota-server` with an admin and a device credential; then
/// the README walkthrough through a generated client.
pub fn test(root: &Path, python: &Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let server = start_server(root, true)?;
    let admin = server.admin_token();
    let device = mint_device_token(&server, &admin)?;
    let report = root.join("target/openapi/schemathesis");
    std::fs::create_dir_all(&report)?;
    crate::run(
        Command::new(python.with_file_name("st"))
            // From its report directory: schemathesis keeps a cache where it runs.
            .current_dir(&report)
            .arg("--config-file")
            .arg(root.join(CONFIG_DIR).join("schemathesis.toml"))
            .arg("run")
            .arg(format!("{}/api/ota/openapi.json", server.base()))
            // A fixed seed and no example database: a failure is reproduced by running again.
            .args(["--continue-on-failure", "--no-color", "--seed", "1"])
            .args(["--generation-database", "none"])
            .args(["--report", "junit", "--report-dir"])
            .arg(&report)
            .env("OTA_ADMIN_TOKEN", &admin)
            .env("OTA_DEVICE_TOKEN", &device),
    )?;
    drop(server);
    eprintln!(
        "xtask: schemathesis passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let server = start_server(root, false)?;
    let samples = root.join("firmware-samples/samples");
    crate::run(
        Command::new(python)
            .current_dir(root)
            .arg(format!("{CONFIG_DIR}/generated_client.py"))
            .env("OTA_BASE_URL", server.base())
            .env("OTA_ADMIN_TOKEN", server.admin_token())
            .env("OTA_SAMPLE_IMAGE", samples.join("demo-esp32c3-1.1.0.bin"))
            .env(
                "OTA_SAMPLE_IMAGE_OLD",
                samples.join("demo-esp32c3-1.0.0.bin"),
            )
            .env(
                "OTA_CLIENT_GENERATOR",
                python.with_file_name("openapi-python-client"),
            ),
    )?;
    eprintln!(
        "xtask: the contract's checks passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A device token for the one device the tester's device requests may name.
fn mint_device_token(server: &OtaServer, admin: &str) -> anyhow::Result<String> {
    let answer = crate::stdout_of(
        Command::new("curl")
            .args(["-sSf", "-X", "POST", "-H", "content-type: application/json"])
            .arg("-H")
            .arg(format!("authorization: Bearer {admin}"))
            .args(["-d", r#"{"device_type":"scales_bridge_tab5"}"#])
            .arg(format!(
                "{}/api/ota/admin/devices/a4cf12b3c4d5/token",
                server.base()
            )),
        "minting a device token",
    )?;
    let v: serde_json::Value = serde_json::from_str(&answer)?;
    v["token"]
        .as_str()
        .map(str::to_owned)
        .context("the minted token answer has no token")
}
