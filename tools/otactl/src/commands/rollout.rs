//! `otactl rollout create|list|get|devices|set|pause|resume|abort`.

use ota_core::metrics::RolloutWithProgress;
use ota_core::release::Release;
use serde_json::{Map, Value, json};

use super::{items, page_query, query};
use crate::cli::{Output, RolloutCmd, Target};
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
}

pub async fn create(client: &Client, r: NewRollout) -> Result<Value> {
    match r.target {
        Target::Canary if r.percentage.is_none() => {
            return Err(Error::usage("--target canary needs --percentage"));
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
    client
        .post("/api/ota/admin/rollouts", &Value::Object(body))
        .await
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
