//! `cargo run` and `cargo test` set variables that describe the crate they run (its manifest,
//! package, binaries). A cargo started from that crate (`cargo xtask`'s builds, the e2e suite's
//! `cargo lambda watch`, a test building `ota-server`) inherits them, and cargo fingerprints the
//! variables that build scripts track from its own environment: ring's build script tracks
//! `CARGO_MANIFEST_DIR` and `CARGO_PKG_NAME`/`CARGO_PKG_VERSION_*`, so a build with the outer
//! crate's values and a build from a shell would rebuild ring, rustls and the AWS SDK for each
//! other. Only the variables that describe the outer crate go; `CARGO`, `CARGO_HOME`,
//! `CARGO_TARGET_DIR` and the like are the runner's settings and stay.

use std::process::Command;

/// Removes the variables of [`is_crate_var`] that this process has from `cmd`'s environment.
pub fn scrub(cmd: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if is_crate_var(&name.to_string_lossy()) {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// Whether cargo set `name` for the crate it runs rather than the runner for every build.
pub fn is_crate_var(name: &str) -> bool {
    const NAMES: &[&str] = &[
        // Tracked by ring's build script.
        "CARGO_MANIFEST_DIR",
        // The outer crate's as well (the last two where cargo compiles it, so in a build
        // script's or proc macro's environment); no build script of the workspace's
        // dependencies tracks them today, and one that did would rebuild just the same.
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        // Set where cargo compiles an integration test: that test's scratch directory.
        "CARGO_TARGET_TMPDIR",
    ];
    const PREFIXES: &[&str] = &[
        // The outer package's manifest fields; ring tracks CARGO_PKG_NAME and the version's.
        "CARGO_PKG_",
        // CARGO_BIN_NAME and CARGO_BIN_EXE_<name> (integration tests): the outer crate's
        // binaries.
        "CARGO_BIN_",
    ];
    NAMES.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outer_crate_goes_and_the_runner_stays() {
        for name in [
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_TARGET_TMPDIR",
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_BIN_NAME",
            "CARGO_BIN_EXE_ota-server",
        ] {
            assert!(is_crate_var(name), "{name} should be removed");
        }
        for name in [
            "CARGO",
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_INCREMENTAL",
            "CARGO_TERM_COLOR",
            "PATH",
        ] {
            assert!(!is_crate_var(name), "{name} should stay");
        }
    }

    #[test]
    fn scrub_removes_what_cargo_test_set_here() {
        let mut cmd = Command::new("true");
        scrub(&mut cmd);
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(name, _)| name.to_string_lossy().into_owned())
            .collect();
        for name in ["CARGO_MANIFEST_DIR", "CARGO_PKG_NAME"] {
            assert!(removed.iter().any(|r| r == name), "{name} in {removed:?}");
        }
        assert!(removed.iter().all(|name| is_crate_var(name)), "{removed:?}");
    }
}
