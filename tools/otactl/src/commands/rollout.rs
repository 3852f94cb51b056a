//! `otactl rollout create|list|get|devices|set|pause|resume|abort|promote|watch`.

use ota_core::health_gate::{DEFAULT_GATE_MIN_REPORTS, HealthGate};
use ota_core::metrics::RolloutWithProgress;
use ota_core::offer_schedule::Schedule;
use ota_core::release::Release;
use serde_json::{Map, Value, json};

use super::{items, page_query, query, watch};
use crate::cli::{Output, RolloutCmd, StagedArgs, Target};
use crate::client::{Client, seg, typed};
use crate::error::{Error, Result};
use crate::{output, views};

/// What `POST /api/ota/admin/rollouts` takes, from the command line.
pub struct NewRollout {
    pub firmware_id: String,
    pub name: Option<String>,
    pub target: Target,
    pub percentage: Option<f64>,
    pub devices: Vec<String>,
    pub groups: Vec<String>,
    pub failure_threshold: Option<f64>,
    pub min_reports: Option<u32>,
    pub allow_downgrade: bool,
    pub staged: StagedArgs,
}

pub async fn create(client: &Client, r: NewRollout) -> Result<Value> {
    match r.target {
        Target::Canary if r.percentage.is_none() && r.staged.stages.is_none() => {
            return Err(Error::usage(
                "--target canary needs --percentage or --stages",
            ));
        }
        Target::Specific if r.devices.is_empty() => {
            return Err(Error::usage(
                "--target specific needs at least one --device",
            ));
        }
        Target::Group if r.groups.is_empty() => {
            return Err(Error::usage("--target group needs at least one --group"));
        }
        _ => {}
    }
    let name = match r.name {
        Some(n) => n,
        None => {
            let v = client
                .get(
                    &format!("/api/ota/admin/firmware/{}", seg(&r.firmware_id)),
                    &[],
                )
                .await?;
            let fw: Release = typed(&v, "release")?;
            format!("{} {} {}", fw.device_type, fw.version, r.target.as_str())
        }
    };
    let mut body = Map::new();
    body.insert("name".into(), json!(name));
    body.insert("firmware_id".into(), json!(r.firmware_id));
    body.insert("target_type".into(), json!(r.target.as_str()));
    if let Some(p) = r.percentage {
        body.insert("rollout_percentage".into(), json!(p));
    }
    if !r.devices.is_empty() || !r.groups.is_empty() {
        let mut filter = Map::new();
        if !r.devices.is_empty() {
            filter.insert("device_ids".into(), json!(r.devices));
        }
        if !r.groups.is_empty() {
            filter.insert("groups".into(), json!(r.groups));
        }
        body.insert("target_filter".into(), Value::Object(filter));
    }
    if let Some(t) = r.failure_threshold {
        body.insert("failure_threshold_percent".into(), json!(t));
    }
    if let Some(n) = r.min_reports {
        body.insert("min_reports".into(), json!(n));
    }
    if r.allow_downgrade {
        body.insert("allow_downgrade".into(), json!(true));
    }
    staged_fields(&r.staged, r.min_reports, &mut body);
    client
        .post("/api/ota/admin/rollouts", &Value::Object(body))
        .await
}

/// The stages, gate, schedule and pacing of a create (docs/api.md §5.4), each only when given.
/// `--min-reports` is the gate's too: one count of final reports before any limit judges.
fn staged_fields(s: &StagedArgs, min_reports: Option<u32>, body: &mut Map<String, Value>) {
    if let Some(stages) = &s.stages {
        body.insert("stages".into(), json!(stages.0));
    }
    if s.max_failure.is_some() || s.max_crash.is_some() {
        let gate = HealthGate {
            max_failure_percent: s.max_failure,
            max_crash_percent: s.max_crash,
            min_reports: min_reports.unwrap_or(DEFAULT_GATE_MIN_REPORTS),
        };
        body.insert("health_gate".into(), json!(gate));
    }
    if s.start_at.is_some() || s.end_at.is_some() || !s.windows.is_empty() {
        let schedule = Schedule {
            start_at: s.start_at,
            end_at: s.end_at,
            windows: s.windows.clone(),
        };
        body.insert("schedule".into(), json!(schedule));
    }
    if let Some(t) = s.install_timeout {
        body.insert("install_timeout_s".into(), json!(t));
    }
    if let Some(n) = s.max_offers_per_hour {
        body.insert("max_offers_per_hour".into(), json!(n));
    }
}

pub async fn run(client: &Client, cmd: RolloutCmd, out: Output) -> Result<()> {
    match cmd {
        RolloutCmd::Create {
            firmware_id,
            name,
            target,
            percentage,
            mut devices,
            devices_file,
            groups,
            failure_threshold,
            min_reports,
            allow_downgrade,
            staged,
        } => {
            if let Some(file) = devices_file {
                devices.extend(device_file(&file).await?);
            }
            let v = create(
                client,
                NewRollout {
                    firmware_id,
                    name,
                    target,
                    percentage,
                    devices,
                    groups,
                    failure_threshold,
                    min_reports,
                    allow_downgrade,
                    staged,
                },
            )
            .await?;
            show(&v, out)
        }
        RolloutCmd::List {
            device_type,
            firmware_id,
            state,
            page,
        } => {
            let mut q = vec![
                ("device_type", device_type),
                ("firmware_id", firmware_id),
                ("state", state),
            ];
            q.extend(page_query(&page));
            let list = client.get("/api/ota/admin/rollouts", &query(q)).await?;
            let rs: Vec<RolloutWithProgress> = items(&list, "rollout list")?;
            output::emit(out, &list, || {
                views::rollout_list(&rs) + &output::more_hint(&list)
            });
            Ok(())
        }
        RolloutCmd::Get { id } => {
            let v = client
                .get(&format!("/api/ota/admin/rollouts/{}", seg(&id)), &[])
                .await?;
            show(&v, out)
        }
        RolloutCmd::Devices { id, page } => {
            let list = client
                .get(
                    &format!("/api/ota/admin/rollouts/{}/devices", seg(&id)),
                    &query(page_query(&page)),
                )
                .await?;
            let named: Vec<views::NamedDevice> = items(&list, "device list")?;
            output::emit(out, &list, || {
                views::named_devices(&named) + &output::more_hint(&list)
            });
            Ok(())
        }
        RolloutCmd::Set {
            id,
            percentage,
            revision,
        } => {
            edit(
                client,
                &id,
                json!({"rollout_percentage": percentage}),
                revision,
                out,
            )
            .await
        }
        RolloutCmd::Pause { id, revision } => state(client, &id, "paused", revision, out).await,
        RolloutCmd::Resume { id, revision } => state(client, &id, "active", revision, out).await,
        RolloutCmd::Abort { id, revision } => state(client, &id, "aborted", revision, out).await,
        RolloutCmd::Promote { id, revision } => {
            edit(client, &id, json!({"action": "promote"}), revision, out).await
        }
        RolloutCmd::Watch { id, every } => watch::run(client, &id, every, out).await,
    }
}

/// The device ids of a `--devices-file`: one a line, blank lines and `#` comments skipped.
async fn device_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| Error::failed(format!("cannot read {}: {e}", path.display())))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

async fn state(
    client: &Client,
    id: &str,
    to: &str,
    revision: Option<u64>,
    out: Output,
) -> Result<()> {
    edit(client, id, json!({"state": to}), revision, out).await
}

async fn edit(
    client: &Client,
    id: &str,
    mut body: Value,
    revision: Option<u64>,
    out: Output,
) -> Result<()> {
    if let (Some(r), Some(map)) = (revision, body.as_object_mut()) {
        map.insert("revision".into(), json!(r));
    }
    let v = client
        .patch(&format!("/api/ota/admin/rollouts/{}", seg(id)), &body)
        .await?;
    show(&v, out)
}

fn show(v: &Value, out: Output) -> Result<()> {
    let r: RolloutWithProgress = typed(v, "rollout")?;
    output::emit(out, v, || views::rollout(&r));
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// The staged fields of the body `rollout create ARGS` sends.
    fn staged_body(args: &[&str]) -> Value {
        let argv = ["otactl", "rollout", "create", "--firmware", "f"];
        let cli = Cli::try_parse_from(argv.iter().chain(args)).unwrap();
        let Command::Rollout(RolloutCmd::Create {
            staged,
            min_reports,
            ..
        }) = cli.command
        else {
            unreachable!("parsed as rollout create");
        };
        let mut body = Map::new();
        staged_fields(&staged, min_reports, &mut body);
        Value::Object(body)
    }

    #[test]
    fn the_staged_fields_go_out_only_when_given() {
        assert_eq!(staged_body(&[]), json!({}));
        assert_eq!(
            staged_body(&["--min-reports", "3"]),
            json!({}),
            "without a limit, --min-reports is rule 4's alone"
        );
        assert_eq!(
            staged_body(&["--max-crash", "2"]),
            json!({"health_gate": {"max_failure_percent": null, "max_crash_percent": 2.0,
                "min_reports": DEFAULT_GATE_MIN_REPORTS}})
        );
        assert_eq!(
            staged_body(&[
                "--stages",
                "5,100",
                "--max-failure",
                "5",
                "--min-reports",
                "3",
                "--end-at",
                "2026-12-10T02:00:00Z",
                "--install-timeout",
                "7200",
                "--max-offers-per-hour",
                "500",
            ]),
            json!({
                "stages": [{"percent": 5.0, "soak_s": 0, "min_devices": 1},
                    {"percent": 100.0, "soak_s": 0, "min_devices": 1}],
                "health_gate": {"max_failure_percent": 5.0, "max_crash_percent": null,
                    "min_reports": 3},
                "schedule": {"start_at": null, "end_at": "2026-12-10T02:00:00Z", "windows": []},
                "install_timeout_s": 7200,
                "max_offers_per_hour": 500,
            })
        );
    }

    #[test]
    fn stages_and_a_percentage_exclude_each_other() {
        let argv = ["otactl", "rollout", "create", "--firmware", "f"];
        let both = ["--stages", "10,100", "--percentage", "10"];
        let err = Cli::try_parse_from(argv.iter().chain(&both)).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
