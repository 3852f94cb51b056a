//! `otactl upload` and `otactl release` (upload, then a canary rollout).

use ota_core::metrics::RolloutWithProgress;
use ota_core::release::Release;
use serde_json::{Value, json};

use super::rollout::{self, NewRollout};
use crate::cli::{Output, ReleaseArgs, StagedArgs, Target, UploadArgs};
use crate::client::{Client, seg, typed};
use crate::error::{Error, Result};
use crate::upload::{self, Published};
use crate::{output, views};

pub async fn upload(client: &Client, args: &UploadArgs, out: Output) -> Result<()> {
    let published = upload::publish(client, args).await?;
    let fw: Release = typed(&published.release, "release")?;
    let shown = json!({"outcome": published.outcome.as_str(), "firmware": published.release});
    output::emit(out, &shown, || summary(&published, &fw));
    Ok(())
}

fn summary(published: &Published, fw: &Release) -> String {
    format!("{}\n{}", published.outcome.as_str(), views::release(fw))
}

pub async fn release(client: &Client, args: &ReleaseArgs, out: Output) -> Result<()> {
    let published = upload::publish(client, &args.upload).await?;
    let fw: Release = typed(&published.release, "release")?;
    // A re-run after the rollout was created must not start a second one.
    let existing = client
        .get(
            "/api/ota/admin/rollouts",
            &[("firmware_id", fw.id.clone()), ("limit", "500".to_owned())],
        )
        .await?;
    let existing: Vec<(Value, RolloutWithProgress)> = existing
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|v| typed::<RolloutWithProgress>(&v, "rollout").map(|r| (v, r)))
        .collect::<Result<_>>()?;
    let (rollout, created) = match existing.into_iter().next() {
        Some((v, r)) => {
            eprintln!(
                "release {} already has rollout {} ({}): not starting another",
                fw.id,
                r.rollout.id,
                r.rollout.state.as_str()
            );
            (v, false)
        }
        None => {
            let name = args
                .name
                .clone()
                .unwrap_or_else(|| format!("{} {} canary", fw.device_type, fw.version));
            let v = rollout::create(
                client,
                NewRollout {
                    firmware_id: fw.id.clone(),
                    name: Some(name),
                    target: Target::Canary,
                    percentage: Some(args.canary),
                    devices: Vec::new(),
                    groups: Vec::new(),
                    failure_threshold: args.failure_threshold,
                    min_reports: args.min_reports,
                    allow_downgrade: false,
                    staged: StagedArgs::default(),
                },
            )
            .await
            .map_err(|e| match e {
                Error::Refused(p) => Error::failed(format!(
                    "release {} is published but its rollout was refused: {p}; re-run to retry, or `otactl rollout create --firmware {}`",
                    fw.id,
                    seg(&fw.id)
                )),
                other => other,
            })?;
            (v, true)
        }
    };
    let r: RolloutWithProgress = typed(&rollout, "rollout")?;
    let shown = json!({
        "outcome": published.outcome.as_str(),
        "rollout_created": created,
        "firmware": published.release,
        "rollout": rollout,
    });
    output::emit(out, &shown, || {
        format!("{}\n\n{}", summary(&published, &fw), views::rollout(&r))
    });
    Ok(())
}
