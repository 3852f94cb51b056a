//! Offline validation of the SAM template `infra/template.yaml` with cfn-lint (pinned in
//! `xtask/requirements-cfn-lint.txt`, installed into `target/cfn-lint-venv`). cfn-lint runs the
//! SAM transform itself, so the resources it generates (the functions, their permissions, the
//! HTTP API's routes and stage) are checked as CloudFormation would see them. No AWS account or
//! network is involved once installed. Any finding fails, warnings and notes included.

use std::path::Path;
use std::process::Command;

/// The template, relative to the workspace root.
pub const TEMPLATE: &str = "infra/template.yaml";

/// `cfn-lint` on the template; fails on any error, warning or informational finding.
pub fn lint_template(root: &Path) -> anyhow::Result<()> {
    let venv = super::python::ensure_venv(
        root,
        "cfn-lint-venv",
        "xtask/requirements-cfn-lint.txt",
        |python| {
            Command::new(python.with_file_name("cfn-lint"))
                .arg("--version")
                .status()
                .is_ok_and(|s| s.success())
        },
    )?;
    super::run(
        Command::new(venv.join("bin/cfn-lint"))
            .current_dir(root)
            .args([
                "--include-checks",
                "I",
                "--non-zero-exit-code",
                "informational",
                "--",
                TEMPLATE,
            ]),
    )
}
