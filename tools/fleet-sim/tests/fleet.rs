//! `fleet-sim` against a real `ota-server`: a small fleet through canary -> 100 %, with the
//! summary checked here and the OTA log read back independently of the simulator.

mod server;

use std::process::Output;

use serde_json::Value;
use server::Server;

/// Runs the simulator with `args` plus `--json-out`; its output (for messages) and summary.
fn simulate(server: &Server, args: &[&str]) -> (Output, String, Value) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let json = dir.path().join("summary.json");
    let out = server
        .sim(args)
        .arg("--json-out")
        .arg(&json)
        .output()
        .expect("running fleet-sim");
    let text = format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&json).unwrap_or_else(|e| panic!("no JSON summary ({e}): {text}"));
    let summary = serde_json::from_slice(&bytes).expect("the summary is JSON");
    (out, text, summary)
}

/// Every entry of `GET /api/ota/admin/logs?firmware_id=` (read here, not by the simulator).
fn log_entries(server: &Server, firmware_id: &str) -> Vec<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let http = reqwest::Client::new();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut req = http
                .get(format!("{}/api/ota/admin/logs", server.base))
                .bearer_auth(server.admin_token())
                .query(&[("firmware_id", firmware_id), ("limit", "500")]);
            if let Some(c) = &cursor {
                req = req.query(&[("cursor", c)]);
            }
            let page: Value = req
                .send()
                .await
                .expect("GET logs")
                .json()
                .await
                .expect("logs JSON");
            out.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    })
}

#[test]
fn two_hundred_devices_update_through_canary_and_full_rollout_without_a_lost_report() {
    let server = Server::start();
    let secret = server.secret_file();
    let (out, text, s) = simulate(
        &server,
        &[
            "--jwt-secret-file",
            secret.to_str().expect("UTF-8 path"),
            "--devices",
            "200",
            "--concurrency",
            "32",
            "--failure-rate",
            "0.02",
            "--rollback-rate",
            "0.01",
            "--seed",
            "42",
        ],
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(s["schema"], "fleet-sim/1", "{s:#}");
    assert_eq!(s["ok"], true, "{s:#}");
    let d = &s["devices"];
    assert_eq!(d["total"], 200, "{s:#}");
    assert_eq!(d["failed"], 4, "{s:#}");
    assert_eq!(d["failed_injected"], 4, "{s:#}");
    assert_eq!(d["rolled_back"], 2, "{s:#}");
    assert_eq!(d["rolled_back_injected"], 2, "{s:#}");
    assert_eq!(d["updated"], 194, "{s:#}");
    assert_eq!(d["not_updated"], 0, "{s:#}");
    assert_eq!(d["errors"], 0, "{s:#}");

    let phases = s["rollout"]["phases"].as_array().expect("phases");
    assert_eq!(phases.len(), 2, "{s:#}");
    assert_eq!(phases[0]["percentage"], 10.0);
    assert_eq!(phases[0]["devices"], 200);
    let canary = phases[0]["offered"].as_u64().expect("offered");
    assert!(canary > 0 && canary < 60, "a 10 % canary of 200: {canary}");
    assert_eq!(phases[1]["percentage"], 100.0);
    assert_eq!(phases[1]["offered"].as_u64(), Some(200 - canary));
    assert_eq!(s["rollout"]["auto_paused"], false);
    assert_eq!(s["rollout"]["success_reports"], 194);
    assert_eq!(s["rollout"]["failure_reports"], 6);

    // Per device: downloading; then installing + success/rolled_back, or failed.
    let r = &s["reports"];
    let want = serde_json::json!({"pending": 0, "downloading": 200, "installing": 196,
        "success": 194, "failed": 4, "rolled_back": 2, "timed_out": 0});
    assert_eq!(r["acknowledged"], want, "{s:#}");
    assert_eq!(r["in_log"], want, "{s:#}");
    assert_eq!(r["metrics_delta"], want, "{s:#}");
    assert_eq!(r["lost"], 0);
    assert_eq!(r["unexpected_in_log"], 0);
    assert_eq!(r["rollout_counters_match"], true);

    // The simulator's own word is not the proof: count the OTA log here too.
    let firmware_id = s["firmware"]["id"].as_str().expect("firmware id");
    let log = log_entries(&server, firmware_id);
    assert_eq!(log.len(), 596, "OTA log entries of the release");
    let successes = log.iter().filter(|e| e["status"] == "success").count();
    assert_eq!(successes, 194);

    let e = &s["endpoints"];
    let size = s["firmware"]["file_size"].as_u64().expect("file size");
    let chunks = size.div_ceil(65_536);
    assert_eq!(e["check"]["requests"], 200 + 200 - canary + 194, "{e:#}");
    assert_eq!(e["head"]["requests"], 200, "{e:#}");
    assert_eq!(e["status"]["requests"], 596, "{e:#}");
    // Failing devices stop after half of the chunks.
    let range_gets = 196 * chunks + 4 * (chunks / 2).max(1);
    assert_eq!(
        e["range_get"]["requests"].as_u64(),
        Some(range_gets),
        "{e:#}"
    );
    assert_eq!(
        s["bytes_served"].as_u64(),
        Some(196 * size + 4 * (chunks / 2) * 65_536)
    );
    for k in ["check", "head", "range_get", "status"] {
        let p50 = e[k]["p50_ms"].as_f64().expect("p50");
        let p99 = e[k]["p99_ms"].as_f64().expect("p99");
        assert!(p50 > 0.0 && p50 <= p99, "{k}: {e:#}");
    }
    assert!(e.get("token_mint").is_none(), "tokens were signed locally");
}

#[test]
fn a_failure_rate_over_the_threshold_pauses_the_rollout_and_the_run_says_so() {
    let server = Server::start();
    // Tokens minted through the admin API this time, and one GET per image.
    let (out, text, s) = simulate(
        &server,
        &[
            "--devices",
            "120",
            "--concurrency",
            "8",
            "--chunk-size",
            "0",
            "--failure-rate",
            "0.5",
            "--canary-percent",
            "50",
            "--failure-threshold",
            "20",
            "--min-reports",
            "10",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("paused the rollout automatically"),
        "the reason is said: {text}"
    );
    assert_eq!(s["ok"], false);
    assert_eq!(s["rollout"]["state"], "paused", "{s:#}");
    assert_eq!(s["rollout"]["auto_paused"], true);
    assert_eq!(s["rollout"]["phases"].as_array().map(Vec::len), Some(1));
    // A pause loses nothing: every report is still in the log.
    assert_eq!(s["reports"]["lost"], 0, "{s:#}");
    assert_eq!(s["endpoints"]["token_mint"]["requests"], 120, "{s:#}");
    assert!(s["endpoints"].get("head").is_none(), "{s:#}");
}

#[test]
fn devices_may_download_through_the_redirecting_endpoint() {
    let server = Server::start();
    let secret = server.secret_file();
    // HEAD answered by /api/ota/download/{id} itself, each ranged GET redirected to a
    // capability URL with X-OTA-Device-Token carried along, as esp_https_ota does.
    let (out, text, s) = simulate(
        &server,
        &[
            "--jwt-secret-file",
            secret.to_str().expect("UTF-8 path"),
            "--devices",
            "40",
            "--via-download-endpoint",
        ],
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(s["config"]["via_download_endpoint"], true);
    assert_eq!(s["devices"]["updated"], 40, "{s:#}");
    assert_eq!(s["reports"]["lost"], 0);
}

/// The flags of a small staged run: 80 devices, a 64 KiB image, no injected failures.
fn staged_args<'a>(secret: &'a str, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--jwt-secret-file",
        secret,
        "--devices",
        "80",
        "--concurrency",
        "16",
        "--image-size",
        "64K",
        "--failure-rate",
        "0",
        "--rollback-rate",
        "0",
        "--min-reports",
        "5",
        "--max-wait",
        "60",
    ];
    args.extend_from_slice(more);
    args
}

#[test]
fn a_healthy_staged_rollout_reaches_its_last_stage_by_itself() {
    let server = Server::start();
    let secret = server.secret_file();
    let secret = secret.to_str().expect("UTF-8 path");
    let (out, text, s) = simulate(
        &server,
        &staged_args(
            secret,
            &[
                "--stages",
                "10:1,50:1,100",
                "--max-failure",
                "20",
                "--max-crash",
                "10",
            ],
        ),
    );
    assert!(out.status.success(), "{text}");
    let staged = &s["rollout"]["staged"];
    assert_eq!(staged["stage_index"], 2, "{text}");
    let kinds: Vec<&str> = staged["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(kinds, ["stage_advance", "stage_advance"], "{text}");
    assert_eq!(staged["offered"], 80, "{text}");
    assert_eq!(staged["offered_outside_reached_stage"], 0, "{text}");
    // Two soaks of 1 s at least.
    assert!(
        staged["seconds_to_last_stage"].as_f64().expect("reached") >= 2.0,
        "{text}"
    );
    assert_eq!(s["devices"]["updated"], 80, "{text}");
    assert_eq!(s["reports"]["lost"], 0, "{text}");
}

#[test]
fn a_crashing_release_pauses_in_its_first_stage_before_any_later_device_is_offered() {
    let server = Server::start();
    let secret = server.secret_file();
    let secret = secret.to_str().expect("UTF-8 path");
    let (out, text, s) = simulate(
        &server,
        &staged_args(
            secret,
            &[
                "--stages",
                "20:2,100",
                "--max-crash",
                "10",
                "--bad-release",
                "crash:30",
            ],
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("paused the staged rollout in stage 1 of 2 over \"max_crash_percent\""),
        "{text}"
    );
    assert_eq!(s["rollout"]["state"], "paused", "{text}");
    let staged = &s["rollout"]["staged"];
    assert_eq!(staged["stage_index"], 0, "{text}");
    let decisions = staged["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 1, "{text}");
    assert_eq!(decisions[0]["kind"], "auto_pause", "{text}");
    assert_eq!(decisions[0]["limit"], "max_crash_percent", "{text}");
    assert_eq!(staged["offered_outside_first_stage"], 0, "{text}");
    assert!(staged["offered"].as_u64().expect("offered") > 0, "{text}");
    assert!(staged["crashed"].as_u64().expect("crashed") > 0, "{text}");
    // Paused by the gate before the 2 s soak could end.
    assert!(
        staged["seconds_to_pause"].as_f64().expect("paused") < 2.0,
        "{text}"
    );
    assert_eq!(s["reports"]["lost"], 0, "{text}");
}

#[test]
fn silent_devices_are_timed_out_by_the_server() {
    // The tick times out silent devices once no other device checks in any more.
    let server = Server::start_with(&[("OTA_ROLLOUT_TICK_S", "1")]);
    let secret = server.secret_file();
    let secret = secret.to_str().expect("UTF-8 path");
    let (out, text, s) = simulate(
        &server,
        &staged_args(
            secret,
            &[
                "--stages",
                "50:1,100",
                "--silent",
                "10",
                "--install-timeout",
                "1",
            ],
        ),
    );
    assert!(out.status.success(), "{text}");
    let staged = &s["rollout"]["staged"];
    let silent = staged["silent"].as_u64().expect("silent");
    assert!(silent > 0, "{text}");
    assert_eq!(staged["timed_out"].as_u64(), Some(silent), "{text}");
    assert_eq!(
        s["reports"]["in_log"]["timed_out"].as_u64(),
        Some(silent),
        "{text}"
    );
    assert_eq!(s["reports"]["unexpected_in_log"], 0, "{text}");
    assert_eq!(s["reports"]["rollout_counters_match"], true, "{text}");
}
