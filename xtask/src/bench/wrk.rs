//! One wrk run: a fixed number of connections for a fixed time, with a Lua script that builds
//! the requests and, in wrk's `done` hook, prints the result as one JSON line.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde_json::Value;

/// Printed by every script's `done` hook in front of its JSON.
const MARKER: &str = "XTASK_BENCH_JSON ";

/// wrk's `done` hook: totals, error counts and latency percentiles (microseconds).
const DONE_HOOK: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'XTASK_BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d,"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"#;

/// A script that GETs `path` on every request.
pub fn get_script(path: &str) -> String {
    format!("wrk.method = \"GET\"\nwrk.path = \"{path}\"\n{DONE_HOOK}")
}

/// A script that POSTs to `path` as the devices of `devices` (id, token) in turn, each running
/// `version`, each request with its own device's credential and body. wrk's threads start half
/// the fleet apart, so that no device is asked for by both at once. The server is sent it at
/// `/api/ota/check`, nginx at its static twin of the answer: the same requests, built by the
/// same Lua on the same cores, so that the client's cost weighs on both sides alike.
pub fn check_script(devices: &[(String, String)], version: &str, path: &str) -> String {
    let mut lua = String::from("local devices = {\n");
    for (id, token) in devices {
        lua.push_str(&format!(
            "  {{ body = '{}', auth = 'Bearer {token}' }},\n",
            super::server::check_body(id, version)
        ));
    }
    lua.push_str(
        &r#"}
local threads = 0
setup = function(thread)
  thread:set("offset", threads * math.floor(#devices / 2))
  threads = threads + 1
end
local n = 0
init = function(args)
  n = offset or 0
end
request = function()
  n = n + 1
  local d = devices[(n % #devices) + 1]
  return wrk.format("POST", "PATH",
    { ["Content-Type"] = "application/json", ["Authorization"] = d.auth }, d.body)
end
"#
        .replace("PATH", path),
    );
    lua.push_str(DONE_HOOK);
    lua
}

/// The measured numbers of one run, plus derived rates.
pub fn run(
    wrk: &str,
    script: &Path,
    base_url: &str,
    connections: u32,
    seconds: u32,
) -> anyhow::Result<Value> {
    let stdout = crate::stdout_of(
        Command::new(wrk)
            .args(["-t2", "--latency", "--timeout", "10s"])
            .arg(format!("-c{connections}"))
            .arg(format!("-d{seconds}s"))
            .arg("-s")
            .arg(script)
            .arg(base_url),
        "wrk",
    )?;
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix(MARKER))
        .with_context(|| format!("wrk printed no result line:\n{stdout}"))?;
    let mut v: Value = serde_json::from_str(json).context("wrk's result line")?;
    let secs = v["duration_us"].as_f64().unwrap_or(0.0) / 1e6;
    let requests = v["requests"].as_f64().unwrap_or(0.0);
    let bytes = v["bytes"].as_f64().unwrap_or(0.0);
    if secs > 0.0 {
        v["requests_per_s"] = (requests / secs).round().into();
        v["mib_per_s"] = ((bytes / secs / 1_048_576.0 * 10.0).round() / 10.0).into();
    }
    v["connections"] = connections.into();
    v["threads"] = 2.into();
    Ok(v)
}
