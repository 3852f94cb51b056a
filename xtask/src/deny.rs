//! `cargo deny check licenses bans sources` against `deny.toml`, with cargo-deny pinned and
//! installed into `target/tools/` when missing. It runs offline (`--frozen`): the advisories
//! check, the one that needs a database from the network, is not run.

use std::path::Path;
use std::process::Command;

use crate::install::CargoTool;

/// 0.20.2 builds with rustc 1.88 or newer.
const CARGO_DENY: CargoTool = CargoTool {
    name: "cargo-deny",
    version: "0.20.2",
    features: &[],
    needs: "building cargo-deny needs crates.io and rustc >= 1.88",
};

/// Fails on any error of the three checks; warnings (two versions of a crate, see `deny.toml`)
/// only show in the counts it prints.
pub fn check(root: &Path) -> anyhow::Result<()> {
    let bin = crate::install::cargo_tool(&root.join("target/tools"), &CARGO_DENY)?;
    // cargo-deny reads `cargo metadata`, which wants every package of Cargo.lock, for every
    // platform, in cargo's cache; the builds before it only fetched this machine's. Once there,
    // this is a no-op, and cargo-deny needs no network.
    crate::run(crate::cargo().args(["fetch", "--locked"]))?;
    let mut deny = Command::new(&bin);
    deny.current_dir(root);
    ota_testkit::cargo_env::scrub(&mut deny);
    crate::run(deny.args([
        "--frozen",
        "--log-level",
        "error",
        "check",
        "--show-stats",
        "licenses",
        "bans",
        "sources",
    ]))?;
    eprintln!(
        "xtask: cargo deny ok; its warnings do not fail lint, `{} check bans` lists them",
        bin.display()
    );
    Ok(())
}
