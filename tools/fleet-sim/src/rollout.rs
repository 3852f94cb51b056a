//! The whole run: publish, canary rollout, devices, widen to 100 %, devices again, then the
//! check that nothing the service acknowledged went missing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use futures_util::stream;
use ota_core::ids::DeviceId;
use ota_core::rollout;
use ota_core::rollout_evaluation::DecisionKind;
use ota_core::stages::Stage;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::admin::{Admin, Release, Rollout};
use crate::cli::{Args, Stages};
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
        args.bad_release.unwrap_or(0.0),
        args.silent,
    );
    let outcomes_before = admin.outcomes_24h().await?;

    let mut tally = Tally::default();
    let (state, phases, staged) = match &args.stages {
        Some(Stages(stages)) => {
            let (state, phases, staged) =
                staged_run(&admin, &fleet, &release, stages, args, &plan, &mut tally).await?;
            (state, phases, Some(staged))
        }
        None => {
            let (state, phases) =
                canary_run(&admin, &fleet, &release, args, &plan, &mut tally).await?;
            (state, phases, None)
        }
    };
    let auto_paused = state.state == "paused";

    eprintln!("fleet-sim: reading the OTA log back");
    let log = admin.logs_of(&release.id).await?;
    let outcomes_after = admin.outcomes_24h().await?;
    // Leaves the server ready for the next run (a finished rollout offers nothing).
    let completed = if state.state == "active" {
        admin
            .patch_rollout(&state.id, json!({"state": "completed"}))
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
    let problems = judge(&devices, &reports, &phases, &state, staged.as_ref(), args);
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
            id: state.id.clone(),
            state: state.state.clone(),
            auto_paused,
            phases,
            progress_devices: state.progress.devices,
            success_reports: state.progress.success_reports,
            failure_reports: state.progress.failure_reports,
            completed,
            staged,
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

/// Canary at --canary-percent, every device, widen to 100 %, the devices not offered yet.
async fn canary_run(
    admin: &Admin,
    fleet: &Arc<Fleet>,
    release: &Release,
    args: &Args,
    plan: &FleetPlan,
    tally: &mut Tally,
) -> anyhow::Result<(Rollout, Vec<PhaseSummary>)> {
    let rollout = admin
        .create_canary(
            release,
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
    let pct = rollout.rollout_percentage;
    let checked = round(fleet, pct, args, plan.devices.clone(), tally).await;
    let mut phases = vec![summarize(&rollout.id, pct, pct, &checked)];
    let mut state = admin.rollout(&rollout.id).await?;
    if state.state == "active" {
        // Widening: the bucket formula keeps every canary device in, so only the rest is new.
        admin
            .patch_rollout(&rollout.id, json!({"rollout_percentage": 100.0}))
            .await
            .context("widening the rollout to 100 %")?;
        let pct = admin.rollout(&rollout.id).await?.rollout_percentage;
        let checked = round(fleet, pct, args, not_offered(plan, tally), tally).await;
        phases.push(summarize(&rollout.id, pct, pct, &checked));
        state = admin.rollout(&rollout.id).await?;
    }
    Ok((state, phases))
}

/// The devices no check has offered the release yet.
fn not_offered(plan: &FleetPlan, tally: &Tally) -> Vec<SimDevice> {
    plan.devices
        .iter()
        .filter(|d| !tally.outcome.contains_key(&d.id))
        .cloned()
        .collect()
}

/// A rollout with stages: the devices not offered yet poll every --poll-every seconds while
/// the server widens it, until it pauses, or it is in its last stage with every device offered
/// and every silent device timed out, or --max-wait.
async fn staged_run(
    admin: &Admin,
    fleet: &Arc<Fleet>,
    release: &Release,
    stages: &[Stage],
    args: &Args,
    plan: &FleetPlan,
    tally: &mut Tally,
) -> anyhow::Result<(Rollout, Vec<PhaseSummary>, StagedSummary)> {
    let mut staging = json!({"stages": stages});
    if args.max_failure.is_some() || args.max_crash.is_some() {
        staging["health_gate"] = json!({
            "max_failure_percent": args.max_failure,
            "max_crash_percent": args.max_crash,
            "min_reports": args.min_reports,
        });
    }
    if let Some(t) = args.install_timeout {
        staging["install_timeout_s"] = json!(t);
    }
    let rollout = admin
        .create_staged(release, staging)
        .await
        .context("creating the staged rollout")?;
    eprintln!(
        "fleet-sim: staged rollout {} ({} stages), the server widens it",
        rollout.id,
        stages.len()
    );
    let created = Instant::now();
    let last = u32::try_from(stages.len() - 1).expect("at most 20 stages");
    let mut state = rollout;
    let mut phases = Vec::new();
    loop {
        let waiting = not_offered(plan, tally);
        let started_in_last = state.staging.stage_index == last;
        if !waiting.is_empty() {
            let lo = state.rollout_percentage;
            let id = state.id.clone();
            // The stage may pass during the round (a check evaluates it): a device is judged
            // against the share before the round for "missed" and after it for "outside".
            let checked = round(fleet, lo, args, waiting, tally).await;
            state = admin.rollout(&id).await?;
            phases.push(summarize(&id, lo, state.rollout_percentage, &checked));
        } else {
            state = admin.rollout(&state.id).await?;
        }
        let silent = tally
            .outcome
            .values()
            .filter(|o| **o == Outcome::Silent)
            .count();
        let timed_out = state.health.as_ref().map_or(0, |h| h.numbers.timed_out);
        let settled = started_in_last
            && state.staging.stage_index == last
            && not_offered(plan, tally).is_empty()
            && timed_out >= silent as u64;
        if state.state != "active" || settled {
            break;
        }
        if created.elapsed() >= Duration::from_secs(args.max_wait) {
            eprintln!("fleet-sim: giving up after --max-wait {} s", args.max_wait);
            break;
        }
        tokio::time::sleep(Duration::from_secs_f64(args.poll_every)).await;
    }
    let staged = staged_summary(&state, stages, plan, tally);
    Ok((state, phases, staged))
}

fn staged_summary(
    state: &Rollout,
    stages: &[Stage],
    plan: &FleetPlan,
    tally: &Tally,
) -> StagedSummary {
    let offered: Vec<&SimDevice> = plan
        .devices
        .iter()
        .filter(|d| {
            tally
                .outcome
                .get(&d.id)
                .is_some_and(|o| !matches!(o, Outcome::Error(_)))
        })
        .collect();
    let outside = |pct: f64| {
        offered
            .iter()
            .filter(|d| !in_canary(&state.id, &d.id, pct))
            .count()
    };
    let since_creation = |at: OffsetDateTime| (at - state.created_at).as_seconds_f64();
    let decisions = &state.staging.decisions;
    StagedSummary {
        stages: stages.to_vec(),
        stage_index: state.staging.stage_index,
        decisions: decisions
            .iter()
            .map(|d| DecisionSummary {
                kind: d.kind,
                at: d.at.format(&Rfc3339).unwrap_or_default(),
                from_stage: d.from_stage,
                to_stage: d.to_stage,
                limit: d.limit,
            })
            .collect(),
        offered: offered.len(),
        offered_outside_first_stage: outside(stages[0].percent),
        offered_outside_reached_stage: outside(state.rollout_percentage),
        crashed: offered
            .iter()
            .filter(|d| d.crashes && tally.outcome[&d.id] == Outcome::Updated)
            .count(),
        silent: offered
            .iter()
            .filter(|d| tally.outcome[&d.id] == Outcome::Silent)
            .count(),
        timed_out: state.health.as_ref().map_or(0, |h| h.numbers.timed_out),
        seconds_to_pause: decisions
            .iter()
            .find(|d| d.kind == DecisionKind::AutoPause)
            .map(|d| since_creation(d.at)),
        seconds_to_last_stage: decisions
            .iter()
            // A pause in the last stage has it as to_stage too.
            .find(|d| d.to_stage as usize == stages.len() - 1 && d.kind != DecisionKind::AutoPause)
            .map(|d| since_creation(d.at)),
    }
}

/// One turn of `devices` checking in, `concurrency` at a time.
struct Round {
    /// Each device that got an answer, and whether it was offered the release.
    checked: Vec<(String, bool)>,
    seconds: f64,
}

/// Runs `devices` against the rollout as it stands (`pct` is for the progress line).
async fn round(
    fleet: &Arc<Fleet>,
    pct: f64,
    args: &Args,
    devices: Vec<SimDevice>,
    tally: &mut Tally,
) -> Round {
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

    let mut checked = Vec::with_capacity(n);
    let mut offered = 0;
    let mut last_note = Instant::now();
    while let Some((d, token, run)) = runs.next().await {
        if let Some(t) = token {
            tally.tokens.insert(d.id.clone(), t);
        }
        let was_offered = !matches!(run.outcome, Outcome::NotOffered | Outcome::Error(_));
        offered += usize::from(was_offered);
        if !matches!(run.outcome, Outcome::Error(_)) {
            checked.push((d.id.clone(), was_offered));
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
            eprintln!(
                "fleet-sim:   {}/{n} devices done, {offered} offered",
                checked.len()
            );
            last_note = Instant::now();
        }
    }
    let took = started.elapsed();
    tally.device_time += took;
    Round {
        checked,
        seconds: took.as_secs_f64(),
    }
}

/// A round judged against the canary buckets: offered devices must be inside the share `hi`
/// (the share at the round's end), devices inside `lo` (at its start) must have been offered.
fn summarize(rollout_id: &str, lo: f64, hi: f64, r: &Round) -> PhaseSummary {
    let count = |want: &dyn Fn(&str, bool) -> bool| {
        r.checked
            .iter()
            .filter(|(id, offered)| want(id, *offered))
            .count()
    };
    PhaseSummary {
        percentage: lo,
        devices: r.checked.len(),
        offered: count(&|_, offered| offered),
        offered_outside_canary: count(&|id, offered| offered && !in_canary(rollout_id, id, hi)),
        not_offered_inside_canary: count(&|id, offered| !offered && in_canary(rollout_id, id, lo)),
        seconds: r.seconds,
    }
}

/// docs/api.md §Update rules, rule 2, the canary bucket; ids the service would refuse are never
/// "in".
fn in_canary(rollout_id: &str, device_id: &str, pct: f64) -> bool {
    DeviceId::parse(device_id).is_ok_and(|id| rollout::in_canary(rollout_id, &id, pct))
}
