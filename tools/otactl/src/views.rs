//! How each server record reads as text. The typed views come from `ota-core`, the same types
//! the server serialises, so a renamed field breaks the build here rather than a table.

use ota_core::device::{Device, LogEntry};
use ota_core::health_gate::HealthGate;
use ota_core::metrics::{FleetMetrics, RolloutHealth, RolloutWithProgress};
use ota_core::offer_schedule::Schedule;
use ota_core::progress::StatusCounts;
use ota_core::release::Release;
use ota_core::rollout::{Rollout, TargetType};
use ota_core::rollout_evaluation::Decision;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::staging;
use crate::table::{Table, fields, opt};

pub fn ts(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

pub fn release_list(items: &[Release]) -> String {
    let mut t = Table::new(&[
        "id",
        "device type",
        "version",
        "build",
        "channel",
        "state",
        "active",
        "size",
        "chip",
        "created",
    ]);
    for f in items {
        t.row(vec![
            f.id.clone(),
            f.device_type.to_string(),
            f.version.to_string(),
            f.build_number.to_string(),
            f.channel.clone(),
            f.state.as_str().to_owned(),
            f.is_active.to_string(),
            f.file_size.to_string(),
            opt(&f.chip),
            ts(&f.created_at),
        ]);
    }
    t.render()
}

pub fn release(f: &Release) -> String {
    let mut pairs = vec![
        ("id", f.id.clone()),
        ("device type", f.device_type.to_string()),
        ("version", f.version.to_string()),
        ("build", f.build_number.to_string()),
        ("channel", f.channel.clone()),
        ("state", f.state.as_str().to_owned()),
        ("active", f.is_active.to_string()),
        ("size", f.file_size.to_string()),
        ("sha256", f.file_hash.clone()),
        ("chip", opt(&f.chip)),
        ("project", opt(&f.project_name)),
        ("idf", opt(&f.idf_version)),
        ("secure version", f.secure_version.to_string()),
        ("min current version", opt(&f.min_current_version)),
        ("description", opt(&f.description)),
        ("release notes", opt(&f.release_notes)),
        ("created", ts(&f.created_at)),
        ("released", f.released_at.as_ref().map_or("-".into(), ts)),
    ];
    for r in &f.rejection_reasons {
        pairs.push(("rejected because", format!("{}: {}", r.code, r.message)));
    }
    fields(&pairs)
}

fn counts(c: &StatusCounts) -> String {
    format!(
        "pending {} downloading {} installing {} success {} failed {} rolled_back {}",
        c.pending, c.downloading, c.installing, c.success, c.failed, c.rolled_back
    )
}

pub fn rollout_list(items: &[RolloutWithProgress]) -> String {
    let mut t = Table::new(&[
        "id",
        "name",
        "device type",
        "firmware",
        "target",
        "percent",
        "state",
        "rev",
        "success",
        "failed",
    ]);
    for r in items {
        let p = &r.progress;
        t.row(vec![
            r.rollout.id.clone(),
            r.rollout.name.clone(),
            r.rollout.device_type.to_string(),
            r.rollout.firmware_id.clone(),
            r.rollout.target_type.as_str().to_owned(),
            r.rollout.rollout_percentage.to_string(),
            r.rollout.state.as_str().to_owned(),
            r.rollout.revision.to_string(),
            p.success_reports.to_string(),
            p.failure_reports.to_string(),
        ]);
    }
    t.render()
}

pub fn rollout(r: &RolloutWithProgress) -> String {
    let o = &r.rollout;
    let mut pairs = vec![
        ("id", o.id.clone()),
        ("name", o.name.clone()),
        ("device type", o.device_type.to_string()),
        ("firmware", o.firmware_id.clone()),
        ("target", o.target_type.as_str().to_owned()),
        ("percentage", o.rollout_percentage.to_string()),
        ("state", o.state.as_str().to_owned()),
        ("revision", o.revision.to_string()),
        ("failure threshold", opt(&o.failure_threshold_percent)),
        ("min reports", o.min_reports.to_string()),
        ("allow downgrade", o.allow_downgrade.to_string()),
        ("devices", counts(&r.progress.devices)),
        (
            "final reports",
            format!(
                "success {} failure {}",
                r.progress.success_reports, r.progress.failure_reports
            ),
        ),
        ("created", ts(&o.created_at)),
        ("updated", ts(&o.updated_at)),
    ];
    if o.target_type == TargetType::Specific {
        pairs.push(("named devices", o.named_devices.to_string()));
    }
    // Rollouts stored before the named devices were kept apart still list them.
    if !o.target_filter.device_ids.is_empty() {
        let ids: Vec<String> = o
            .target_filter
            .device_ids
            .iter()
            .map(ToString::to_string)
            .collect();
        pairs.push(("device ids", ids.join(", ")));
    }
    if !o.target_filter.groups.is_empty() {
        pairs.push(("groups", o.target_filter.groups.join(", ")));
    }
    let st = &o.staging;
    if !st.stages.is_empty() {
        pairs.push(("stages", staging::stages_spec(&st.stages)));
        pairs.push(("stage", stage(o)));
    }
    if let Some(g) = &st.health_gate {
        pairs.push(("health gate", health_gate(g)));
    }
    if let Some(s) = &st.schedule {
        pairs.push(("schedule", schedule(s)));
    }
    if let Some(t) = st.install_timeout_s {
        pairs.push(("install timeout", format!("{t} s")));
    }
    if let Some(n) = st.max_offers_per_hour {
        pairs.push(("max offers an hour", n.to_string()));
    }
    if let Some(h) = &r.health {
        pairs.push(("health", health(h)));
        pairs.push((
            "next evaluation",
            h.next_evaluation_at.as_ref().map_or("-".into(), ts),
        ));
    }
    if let Some(d) = st.decisions.last() {
        pairs.push(("last decision", decision(d)));
    }
    fields(&pairs)
}

/// Where a rollout's stages stand: `2 of 3 (10%, started T)`; `-` without stages.
pub fn stage(o: &Rollout) -> String {
    let stages = &o.staging.stages;
    let index = usize::try_from(o.staging.stage_index).unwrap_or(usize::MAX);
    match stages.get(index) {
        None => "-".into(),
        Some(s) => format!(
            "{} of {} ({}%, started {})",
            index + 1,
            stages.len(),
            s.percent,
            o.staging.stage_started_at.as_ref().map_or("-".into(), ts)
        ),
    }
}

fn health_gate(g: &HealthGate) -> String {
    let limit = |p: Option<f64>| p.map_or("-".into(), |p| format!("{p}%"));
    format!(
        "max failure {}, max crash {}, min reports {}",
        limit(g.max_failure_percent),
        limit(g.max_crash_percent),
        g.min_reports
    )
}

fn schedule(s: &Schedule) -> String {
    let windows: Vec<String> = s.windows.iter().map(staging::window_spec).collect();
    format!(
        "start {}, end {}, windows {}",
        s.start_at.as_ref().map_or("-".into(), ts),
        s.end_at.as_ref().map_or("-".into(), ts),
        if windows.is_empty() {
            "-".into()
        } else {
            windows.join(" ")
        }
    )
}

/// The numbers a rollout's gate reads (docs/api.md §9.5).
pub fn health(h: &RolloutHealth) -> String {
    let n = &h.numbers;
    let share = |p: Option<f64>| p.map_or("-".into(), |p| format!("{p:.1}%"));
    format!(
        "failure {} ({} of {} final outcomes), crash {} ({} of {} devices on the release), \
         completed devices {}",
        share(h.failure_percent),
        n.failures,
        n.final_outcomes,
        share(h.crash_percent),
        n.crashed_devices,
        n.devices_on_release,
        n.completed_devices
    )
}

/// One decision, stages counted from 1 as `stage` shows them.
pub fn decision(d: &Decision) -> String {
    let limit = d
        .limit
        .map(|l| format!(", over {}", staging::wire(&l)))
        .unwrap_or_default();
    format!(
        "{} {}: stage {} -> {}{limit}, by {}",
        ts(&d.at),
        staging::wire(&d.kind),
        u64::from(d.from_stage) + 1,
        u64::from(d.to_stage) + 1,
        d.actor
    )
}

/// An item of `GET .../rollouts/{id}/devices`.
#[derive(Debug, Deserialize)]
pub struct NamedDevice {
    pub device_id: String,
}

pub fn named_devices(items: &[NamedDevice]) -> String {
    let mut t = Table::new(&["device id"]);
    for d in items {
        t.row(vec![d.device_id.clone()]);
    }
    t.render()
}

pub fn device_list(items: &[Device]) -> String {
    let mut t = Table::new(&[
        "device id",
        "device type",
        "version",
        "channel",
        "groups",
        "last seen",
    ]);
    for d in items {
        t.row(vec![
            d.device_id.to_string(),
            d.device_type.to_string(),
            d.current_version.to_string(),
            d.channel.clone(),
            d.groups.join(","),
            ts(&d.last_seen),
        ]);
    }
    t.render()
}

/// `GET .../devices/{id}`: the device with its recent log.
#[derive(Debug, Deserialize)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    #[serde(default)]
    pub recent_log: Vec<LogEntry>,
}

pub fn device(d: &DeviceDetail) -> String {
    let v = &d.device;
    let mut out = fields(&[
        ("device id", v.device_id.to_string()),
        ("device type", v.device_type.to_string()),
        ("version", v.current_version.to_string()),
        ("build", opt(&v.current_build)),
        ("secure version", v.secure_version.to_string()),
        ("channel", v.channel.clone()),
        ("groups", v.groups.join(", ")),
        (
            "last offer",
            v.last_offer.as_ref().map_or("-".into(), |o| {
                format!(
                    "{} ({}) by rollout {}",
                    o.version, o.firmware_id, o.rollout_id
                )
            }),
        ),
        ("first seen", ts(&v.first_seen)),
        ("last seen", ts(&v.last_seen)),
    ]);
    if !d.recent_log.is_empty() {
        out.push('\n');
        out.push_str(&log_list(&d.recent_log));
    }
    out
}

pub fn log_list(items: &[LogEntry]) -> String {
    let mut t = Table::new(&[
        "time",
        "device id",
        "version",
        "status",
        "progress",
        "error",
    ]);
    for e in items {
        t.row(log_cells(e));
    }
    t.render()
}

pub fn log_cells(e: &LogEntry) -> Vec<String> {
    vec![
        ts(&e.created_at),
        e.device_id.to_string(),
        e.version.to_string(),
        e.status.as_str().to_owned(),
        e.progress_percent
            .map_or_else(|| "-".to_owned(), |p| format!("{p}%")),
        e.error_message.clone().unwrap_or_else(|| "-".to_owned()),
    ]
}

/// One log entry as a line of text, for `logs --follow`.
pub fn log_line(e: &LogEntry) -> String {
    log_cells(e).join("  ")
}

pub fn metrics(m: &FleetMetrics) -> String {
    let mut out = fields(&[
        ("devices", m.devices_total.to_string()),
        ("last 24 h", counts(&m.outcomes_24h)),
    ]);
    let mut t = Table::new(&["device type", "devices", "versions"]);
    for (dt, n) in &m.devices_by_type {
        let versions = m
            .versions_by_type
            .get(dt)
            .map(|vs| {
                vs.iter()
                    .map(|(v, n)| format!("{v}: {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        t.row(vec![dt.clone(), n.to_string(), versions]);
    }
    out.push('\n');
    out.push_str(&t.render());
    if !m.active_rollouts.is_empty() {
        out.push('\n');
        out.push_str(&rollout_list(&m.active_rollouts));
    }
    out
}
