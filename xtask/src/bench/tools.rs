//! The load-test tools, installed from Debian when missing: nginx (the static ceiling), wrk (the
//! load generator: a Lua script sends the device's POST with its token, and its `done` hook
//! prints percentiles as JSON) and llvm (for `llvm-strip`, which strips aarch64 binaries on an
//! `x86_64` machine; binutils' `strip` only knows the host's format).
//!
//! Pinned to Debian 12 (bookworm)'s series rather than to an exact package revision: security
//! updates replace revisions (1.22.1-9+deb12u9 → u11), and an exact pin would stop installing.
//! The versions found are recorded in results.json with every run.

use std::process::Command;

use anyhow::{Context, bail};

/// What each tool must report, matching bookworm's packages.
const NGINX_SERIES: &str = "nginx/1.22.";
const WRK_SERIES: &str = "wrk debian/4.1.";

pub struct Tools {
    pub nginx: String,
    pub wrk: String,
    pub llvm_strip: String,
    pub versions: Vec<(String, String)>,
}

/// Installs nginx, wrk and llvm with apt-get when any is missing (idempotent: nothing is run
/// when all are there), then checks their versions.
pub fn ensure() -> anyhow::Result<Tools> {
    let missing: Vec<&str> = [("nginx", "nginx"), ("wrk", "wrk"), ("llvm-strip", "llvm")]
        .into_iter()
        .filter(|(bin, _)| which(bin).is_none())
        .map(|(_, package)| package)
        .collect();
    if !missing.is_empty() {
        eprintln!("xtask bench: installing {missing:?} with apt-get");
        // The distribution's nginx package may start its system service on a machine whose
        // policy allows it; this bench never uses that service (its own nginx listens on an
        // ephemeral port with its own configuration).
        crate::run(Command::new("apt-get").arg("update").arg("-qq"))?;
        crate::run(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let nginx = which("nginx").context("nginx is not on PATH after installing it")?;
    let wrk = which("wrk").context("wrk is not on PATH after installing it")?;
    let llvm_strip =
        which("llvm-strip").context("llvm-strip is not on PATH after installing llvm")?;
    // nginx -v and wrk -v print to stderr; wrk -v exits 1.
    let nginx_v = version_line(&nginx, "-v")?;
    let wrk_v = version_line(&wrk, "-v")?;
    let strip_v = version_line(&llvm_strip, "--version")?;
    if !nginx_v.contains(NGINX_SERIES) {
        bail!("expected {NGINX_SERIES}x (Debian 12), found '{nginx_v}'");
    }
    if !wrk_v.contains(WRK_SERIES) {
        bail!("expected {WRK_SERIES}x (Debian 12), found '{wrk_v}'");
    }
    Ok(Tools {
        nginx,
        wrk,
        llvm_strip,
        versions: vec![
            ("nginx".into(), nginx_v),
            ("wrk".into(), wrk_v),
            ("llvm-strip".into(), strip_v),
        ],
    })
}

fn which(bin: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(bin))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

fn version_line(bin: &str, flag: &str) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .arg(flag)
        .output()
        .with_context(|| format!("running {bin} {flag}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // llvm-strip names itself on the first line and its version on the second.
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    Ok(lines
        .find(|l| l.contains("LLVM version"))
        .unwrap_or(first)
        .to_owned())
}
