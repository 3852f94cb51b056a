//! The whole run: publish, canary rollout, devices, widen to 100 %, devices again, then the
//! check that nothing the service acknowledged went missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use futures_util::stream;
use ota_core::ids::DeviceId;
use ota_core::rollout::canary_bucket;
use serde_json::json;

use crate::admin::{Admin, Rollout};
use crate::cli::Args;
use crate::device::{self, AckedReport, DeviceRun, Fleet, Outcome};
use crate::http;
use crate::image;
use crate::latency::Timings;
use crate::plan::{Fate, FleetPlan, SimDevice};
use crate::report::{self, *};
use crate::tokens::Credentials;
use crate::verify::{check_reports, judge};

/// Everything the devices did, merged across phases.
#[derive(Default)]
struct Tally {
    timings: Timings,
    retries: u64,
    bytes: u64,
    acked: Vec<AckedReport>,
    device_time: Duration,
    /// Last outcome other than "not offered" per device.
    outcome: HashMap<String, Outcome>,
    tokens: HashMap<String, Arc<str>>,
    errors: Vec<String>,
}

pub async fn run(args: &Args) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let admin_token = std::fs::read_to_string(&args.admin_token_file)
        .with_context(|| format!("reading {}", args.admin_token_file.display()))?
        .trim()
        .to_owned();
    let client = http::client(args.concurrency)?;
    let base = args.base_url.trim_end_matches('/').to_owned();
    let admin = Admin::new(client.clone(), &base, &admin_token, args.max_attempts);

    let (release, source) = image::release(args, &admin).await?;
    eprintln!(
        "fleet-sim: release {} {} ({} bytes, {})",
        release.id,
        release.version,
        release.file_size,
        source.key()
    );
    let credentials = match &args.jwt_secret_file {
        Some(f) => Credentials::signed_with(f)?,
        None => Credentials::Minted {
            http: client.clone(),
            base: base.clone(),
            admin_token: admin_token.clone(),
        },
    };
    let device_tokens = if args.jwt_secret_file.is_some() {
        "signed"
    } else {
        "minted"
    };
    let device_bases = if args.device_urls.is_empty() {
        vec![base.clone()]
    } else {
        args.device_urls
            .iter()
            .map(|u| u.trim_end_matches('/').to_owned())
            .collect()
    };
    let fleet = Arc::new(Fleet {
        http: client,
        device_bases,
        device_type: args.device_type.clone(),
        from_version: args.from_version.clone(),
        chunk_size: args.chunk_size,
        via_download_endpoint: args.via_download_endpoint,
        max_attempts: args.max_attempts,
        credentials,
        release: release.clone(),
    });
    let plan = FleetPlan::new(
        args.devices,
        args.failure_rate,
        args.rollback_rate,
        args.seed,
    );
    let outcomes_before = admin.outcomes_24h().await?;

    let rollout = admin
        .create_canary(
            &release,
            args.canary_percent,
            args.failure_threshold,
            args.min_reports,
        )
        .await
        .context("creating the canary rollout")?;
    eprintln!(
        "fleet-sim: canary rollout {} at {} % (pauses above {} % failures after {} final reports)",
        rollout.id, args.canary_percent, args.failure_threshold, args.min_reports
    );

    let mut tally = Tally::default();
    let mut phases = Vec::new();
    phases.push(phase(&fleet, &rollout, args, plan.devices.clone(), &mut tally).await);
    let mut state = admin.rollout(&rollout.id).await?;
    if state.state == "active" {
        // Widening: the bucket formula keeps every canary device in, so only the rest is new.
        admin
            .patch_rollout(&rollout.id, json!({"rollout_percentage": 100.0}))
            .await
            .context("widening the rollout to 100 %")?;
        let widened = admin.rollout(&rollout.id).await?;
        let rest: Vec<SimDevice> = plan
            .devices
            .iter()
            .filter(|d| !tally.outcome.contains_key(&d.id))
            .cloned()
            .collect();
        phases.push(phase(&fleet, &widened, args, rest, &mut tally).await);
        state = admin.rollout(&rollout.id).await?;
    }
    let auto_paused = state.state == "paused";

    eprintln!("fleet-sim: reading the OTA log back");
    let log = admin.logs_of(&release.id).await?;
    let outcomes_after = admin.outcomes_24h().await?;
    // Leaves the server ready for the next run (a finished rollout offers nothing).
    let completed = if state.state == "active" {
        admin
            .patch_rollout(&rollout.id, json!({"state": "completed"}))
            .await
            .map_err(|e| eprintln!("fleet-sim: could not mark the rollout completed: {e:#}"))
            .is_ok()
    } else {
        false
    };

    let device_time = tally.device_time;
    let endpoints = tally.timings.summary(device_time);
    let requests_total: u64 = endpoints.values().map(|e| e.requests).sum();
    let count = |want: fn(&Outcome) -> bool| tally.outcome.values().filter(|o| want(o)).count();
    let devices = DeviceCounts {
        total: plan.devices.len(),
        updated: count(|o| *o == Outcome::Updated),
        failed: count(|o| *o == Outcome::Failed),
        rolled_back: count(|o| *o == Outcome::RolledBack),
        failed_injected: plan.count(Fate::Fail),
        rolled_back_injected: plan.count(Fate::RollBack),
        not_updated: plan.devices.len() - tally.outcome.len(),
        errors: count(|o| matches!(o, Outcome::Error(_))),
    };
    let reports = check_reports(
        &tally.acked,
        &log,
        &outcomes_before,
        &outcomes_after,
        &state,
        &devices,
    );
    let problems = judge(&devices, &reports, &phases, &state, args);
    Ok(Summary {
        schema: report::SCHEMA,
        ok: problems.is_empty(),
        problems,
        config: Config {
            base_url: args.base_url.clone(),
            devices: args.devices,
            concurrency: args.concurrency,
            chunk_size: args.chunk_size,
            via_download_endpoint: args.via_download_endpoint,
            failure_rate: args.failure_rate,
            rollback_rate: args.rollback_rate,
            canary_percent: args.canary_percent,
            seed: args.seed,
            device_type: args.device_type.clone(),
            from_version: args.from_version.clone(),
            failure_threshold_percent: args.failure_threshold,
            min_reports: args.min_reports,
            device_tokens,
        },
        release: ReleaseSummary {
            id: release.id.clone(),
            version: release.version.clone(),
            file_size: release.file_size,
            file_hash: release.file_hash.clone(),
            source: source.key(),
        },
        rollout: RolloutSummary {
            id: rollout.id.clone(),
            state: state.state.clone(),
            auto_paused,
            phases,
            progress_devices: state.progress.devices,
            success_reports: state.progress.success_reports,
            failure_reports: state.progress.failure_reports,
            completed,
        },
        devices,
        reports,
        requests_total,
        requests_per_s: requests_total as f64 / device_time.as_secs_f64().max(1e-9),
        endpoints,
        retries: tally.retries,
        bytes_served: tally.bytes,
        device_time_s: device_time.as_secs_f64(),
        wall_time_s: started.elapsed().as_secs_f64(),
        error_samples: tally.errors.iter().take(20).cloned().collect(),
    })
}

/// Runs `devices` against the rollout as it stands, `concurrency` at a time.
async fn phase(
    fleet: &Arc<Fleet>,
    rollout: &Rollout,
    args: &Args,
    devices: Vec<SimDevice>,
    tally: &mut Tally,
) -> PhaseSummary {
    let pct = rollout.rollout_percentage;
    eprintln!("fleet-sim: {} devices check in at {pct} %", devices.len());
    let started = Instant::now();
    let n = devices.len();
    let known: HashMap<String, Arc<str>> = tally.tokens.clone();
    let mut runs = stream::iter(devices.into_iter().map(|d| {
        let fleet = Arc::clone(fleet);
        let token = known.get(&d.id).cloned();
        async move {
            let mut early = Timings::default();
            let mut retries = 0;
            let token = match token {
                Some(t) => t,
                None => match device::credential(&fleet, &d.id, &mut early, &mut retries).await {
                    Ok(t) => Arc::from(t),
                    Err(e) => {
                        let run = DeviceRun {
                            outcome: Outcome::Error(format!("{}: {e:#}", d.id)),
                            timings: early,
                            retries,
                            bytes: 0,
                            acked: Vec::new(),
                        };
                        return (d, None, run);
                    }
                },
            };
            let mut run = device::run(fleet, d.clone(), Arc::clone(&token)).await;
            run.timings.merge(early);
            run.retries += retries;
            (d, Some(token), run)
        }
    }))
    .buffer_unordered(args.concurrency);

    let mut offered = 0;
    let mut offered_outside = 0;
    let mut missed_inside = 0;
    let mut done = 0usize;
    let mut last_note = Instant::now();
    while let Some((d, token, run)) = runs.next().await {
        done += 1;
        if let Some(t) = token {
            tally.tokens.insert(d.id.clone(), t);
        }
        let was_offered = !matches!(run.outcome, Outcome::NotOffered | Outcome::Error(_));
        offered += usize::from(was_offered);
        if !matches!(run.outcome, Outcome::Error(_)) {
            match (in_canary(&rollout.id, &d.id, pct), was_offered) {
                (false, true) => offered_outside += 1,
                (true, false) => missed_inside += 1,
                _ => {}
            }
        }
        tally.timings.merge(run.timings);
        tally.retries += run.retries;
        tally.bytes += run.bytes;
        tally.acked.extend(run.acked);
        if let Outcome::Error(e) = &run.outcome {
            tally.errors.push(e.clone());
        }
        if run.outcome != Outcome::NotOffered {
            tally.outcome.insert(d.id, run.outcome);
        }
        if last_note.elapsed() >= Duration::from_secs(10) {
            eprintln!("fleet-sim:   {done}/{n} devices done, {offered} offered");
            last_note = Instant::now();
        }
    }
    let took = started.elapsed();
    tally.device_time += took;
    PhaseSummary {
        percentage: pct,
        devices: n,
        offered,
        offered_outside_canary: offered_outside,
        not_offered_inside_canary: missed_inside,
        seconds: took.as_secs_f64(),
    }
}

/// docs/api.md §Update rules, rule 2, the canary bucket; ids the service would refuse are never
/// "in".
fn in_canary(rollout_id: &str, device_id: &str, pct: f64) -> bool {
    DeviceId::parse(device_id)
        .is_ok_and(|id| f64::from(canary_bucket(rollout_id, &id)) < pct * 100.0)
}
