//! A release `ota-server` on the embedded default (SQLite and files in a fresh data directory),
//! started for one bench and stopped when dropped, and the admin calls that prepare it: publish
//! an image, roll it out to the whole type, mint device tokens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::aws_local::http;

/// The device type every bench device belongs to.
pub const DEVICE_TYPE: &str = "bench";
/// The version the bench devices report; the published release is newer.
pub const RUNNING_VERSION: &str = "1.0.0";
pub const RELEASE_VERSION: &str = "1.1.0";

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: String,
}

impl Server {
    /// Starts `bin` with its data in `data_dir` (emptied first) on an ephemeral port of
    /// 127.0.0.1 and the settings `env`, waits for its "listening" line, and reads the admin
    /// token it wrote.
    pub fn start(bin: &Path, data_dir: &Path, env: &[(&str, &str)]) -> anyhow::Result<Server> {
        if data_dir.exists() {
            std::fs::remove_dir_all(data_dir)
                .with_context(|| format!("removing {}", data_dir.display()))?;
        }
        std::fs::create_dir_all(data_dir)?;
        let log = data_dir.with_extension("log");
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        for (name, _) in std::env::vars_os() {
            // Only the settings below: an OTA_TABLE or AWS_* from the shell would switch the
            // storage away from the embedded default.
            let n = name.to_string_lossy();
            if n.starts_with("OTA_") || n.starts_with("AWS_") {
                cmd.env_remove(&name);
            }
        }
        let child = cmd
            .env("OTA_LISTEN", "127.0.0.1:0")
            .env("OTA_DATA_DIR", data_dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.to_owned(),
            admin_token: String::new(),
        };
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(rest) = text
                .lines()
                .find_map(|l| l.strip_prefix("ota-server listening on http://"))
            {
                server.addr = rest.trim().parse().context("the listening address")?;
                break;
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("ota-server exited with {status} before listening:\n{text}");
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("ota-server did not print its address within 30 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        server.admin_token = std::fs::read_to_string(data_dir.join("admin-token"))?
            .trim()
            .to_owned();
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Peak resident set (`VmHWM`) so far, in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM in /proc/<pid>/status")?;
        Ok(kb * 1024)
    }

    fn admin(&self, method: &str, path: &str, ctype: &str, body: &[u8]) -> anyhow::Result<Value> {
        let auth = format!("Bearer {}", self.admin_token);
        let answer = http::request(
            self.addr,
            method,
            path,
            &[("Authorization", &auth), ("Content-Type", ctype)],
            body,
        )?;
        if !(200..300).contains(&answer.status) {
            bail!("{method} {path}: {} {}", answer.status, answer.body);
        }
        serde_json::from_str(&answer.body).with_context(|| format!("{method} {path}: not JSON"))
    }

    /// Uploads `image` as release `RELEASE_VERSION` of `DEVICE_TYPE`; returns the firmware id.
    pub fn publish(&self, image: &[u8]) -> anyhow::Result<String> {
        let boundary = "xtask-bench-boundary-7d1f";
        let body = ota_testkit::multipart::form(
            boundary,
            &[("device_type", DEVICE_TYPE), ("version", RELEASE_VERSION)],
            image,
        );
        let fw = self.admin(
            "POST",
            "/api/ota/admin/upload",
            &format!("multipart/form-data; boundary={boundary}"),
            &body,
        )?;
        fw["id"]
            .as_str()
            .map(str::to_owned)
            .context("the upload answer has no id")
    }

    /// Rolls `firmware_id` out to every device of the type.
    pub fn roll_out(&self, firmware_id: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({
            "name": "bench", "firmware_id": firmware_id, "target_type": "all",
        });
        self.admin(
            "POST",
            "/api/ota/admin/rollouts",
            "application/json",
            body.to_string().as_bytes(),
        )?;
        Ok(())
    }

    /// A device credential for `device_id`.
    pub fn device_token(&self, device_id: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({ "device_type": DEVICE_TYPE });
        let answer = self.admin(
            "POST",
            &format!("/api/ota/admin/devices/{device_id}/token"),
            "application/json",
            body.to_string().as_bytes(),
        )?;
        answer["token"]
            .as_str()
            .map(str::to_owned)
            .context("the token answer has no token")
    }

    /// One check as `device_id`, running `version`: the status and the raw body of the answer.
    pub fn check(
        &self,
        device_id: &str,
        token: &str,
        version: &str,
    ) -> anyhow::Result<(u16, String)> {
        let auth = format!("Bearer {token}");
        let answer = http::request(
            self.addr,
            "POST",
            "/api/ota/check",
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            check_body(device_id, version).as_bytes(),
        )?;
        Ok((answer.status, answer.body))
    }
}

/// The body a bench device running `version` sends to `POST /api/ota/check`: no nonce, as
/// `esp_https_ota` integrations without the project's client send it. (A nonce makes every
/// answer a signed manifest: `docs/performance.md` says what that costs.)
pub fn check_body(device_id: &str, version: &str) -> String {
    format!(
        r#"{{"device_id":"{device_id}","device_type":"{DEVICE_TYPE}","current_version":"{version}"}}"#
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        // Our own child only, by its pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
