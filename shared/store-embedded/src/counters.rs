//! Counters maintained inside the transactions that change what they count: device versions
//! per type, each rollout's progress, status reports per hour, each release's resets, crashes,
//! devices and crashed devices. Metrics and the health gates read only these.

use std::collections::BTreeMap;

use ota_core::device_health::{HealthCounts, HealthDelta, ReleaseHealth};
use ota_core::ids::{DeviceType, Version};
use ota_core::metrics::{FleetMetrics, RolloutWithProgress, first_outcome_hour, outcome_hour};
use ota_core::ports::StoreResult;
use ota_core::progress::{RolloutProgress, StatusCounts};
use ota_core::release::Release;
use ota_core::rollout::{Rollout, RolloutState};
use ota_core::status::OtaStatus;
use rusqlite::{OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use crate::sql::{db_err, docs, from_doc, sql_int, to_doc};

fn add_version(tx: &Transaction<'_>, dt: &DeviceType, v: &Version, delta: i64) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO fleet_versions (device_type, version, devices) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_type, version) DO UPDATE SET devices = devices + ?3",
        params![dt.as_str(), v.to_string(), delta],
    )
    .map_err(db_err)?;
    Ok(())
}

/// A device appeared (`before` is None) or reported another type or version.
pub fn device_moved(
    tx: &Transaction<'_>,
    before: Option<(&DeviceType, &Version)>,
    after: (&DeviceType, &Version),
) -> StoreResult<()> {
    if before == Some(after) {
        return Ok(());
    }
    if let Some((dt, v)) = before {
        add_version(tx, dt, v, -1)?;
    }
    add_version(tx, after.0, after.1, 1)
}

/// A check reported a new boot or crashes of a device running `delta`'s release.
pub fn release_health_moved(tx: &Transaction<'_>, delta: &HealthDelta) -> StoreResult<()> {
    if let Some(reason) = &delta.reset_reason {
        tx.prepare_cached(
            "INSERT INTO release_resets (firmware_id, reason, count) VALUES (?1, ?2, 1)
             ON CONFLICT (firmware_id, reason) DO UPDATE SET count = count + 1",
        )
        .and_then(|mut stmt| stmt.execute(params![delta.firmware_id, reason]))
        .map_err(db_err)?;
    }
    if delta.crashes > 0 {
        tx.prepare_cached(
            "INSERT INTO release_crashes (firmware_id, count) VALUES (?1, ?2)
             ON CONFLICT (firmware_id) DO UPDATE SET count = count + ?2",
        )
        .and_then(|mut stmt| stmt.execute(params![delta.firmware_id, sql_int(delta.crashes)]))
        .map_err(db_err)?;
    }
    if delta.new_device || delta.new_crashed_device {
        tx.prepare_cached(
            "INSERT INTO release_devices (firmware_id, devices, crashed) VALUES (?1, ?2, ?3)
             ON CONFLICT (firmware_id) DO UPDATE
                 SET devices = devices + ?2, crashed = crashed + ?3",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                delta.firmware_id,
                i64::from(delta.new_device),
                i64::from(delta.new_crashed_device)
            ])
        })
        .map_err(db_err)?;
    }
    Ok(())
}

/// One release's counters (zero before any check moved them).
pub fn release_counts(tx: &Transaction<'_>, firmware_id: &str) -> StoreResult<HealthCounts> {
    let mut counts = HealthCounts::default();
    let mut stmt = tx
        .prepare_cached("SELECT reason, count FROM release_resets WHERE firmware_id = ?1")
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![firmware_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
        })
        .map_err(db_err)?;
    for row in rows {
        let (reason, n) = row.map_err(db_err)?;
        counts.resets_by_reason.insert(reason, n);
    }
    counts.crashes = tx
        .query_row(
            "SELECT count FROM release_crashes WHERE firmware_id = ?1",
            params![firmware_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?
        .unwrap_or(0);
    (counts.devices, counts.crashed_devices) = tx
        .query_row(
            "SELECT devices, crashed FROM release_devices WHERE firmware_id = ?1",
            params![firmware_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db_err)?
        .unwrap_or((0, 0));
    Ok(counts)
}

/// Every release's counters, by release id: the releases with any, then each one's.
fn release_health(tx: &Transaction<'_>) -> StoreResult<Vec<ReleaseHealth>> {
    let releases: Vec<Release> = docs(
        tx,
        "SELECT doc FROM firmware WHERE id IN
           (SELECT firmware_id FROM release_resets UNION SELECT firmware_id FROM release_crashes
            UNION SELECT firmware_id FROM release_devices)
         ORDER BY id",
        &[],
    )?;
    releases
        .into_iter()
        .map(|r| {
            Ok(ReleaseHealth {
                counts: release_counts(tx, &r.id)?,
                firmware_id: r.id,
                device_type: r.device_type,
                version: r.version,
            })
        })
        .collect()
}

pub fn progress(tx: &Transaction<'_>, rollout_id: &str) -> StoreResult<RolloutProgress> {
    let doc: Option<String> = tx
        .query_row(
            "SELECT doc FROM rollout_progress WHERE rollout_id = ?1",
            params![rollout_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    doc.map_or(Ok(RolloutProgress::default()), |d| from_doc(&d))
}

/// Stores a rollout's counters as `report_plan` moved them.
pub fn save_progress(
    tx: &Transaction<'_>,
    rollout_id: &str,
    p: &RolloutProgress,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO rollout_progress (rollout_id, doc) VALUES (?1, ?2)
         ON CONFLICT (rollout_id) DO UPDATE SET doc = ?2",
        params![rollout_id, to_doc(p)?],
    )
    .map_err(db_err)?;
    Ok(())
}

/// One more stored status report.
pub fn report_stored(
    tx: &Transaction<'_>,
    at: OffsetDateTime,
    status: OtaStatus,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO outcome_hours (hour, status, count) VALUES (?1, ?2, 1)
         ON CONFLICT (hour, status) DO UPDATE SET count = count + 1",
        params![outcome_hour(at), status.as_str()],
    )
    .map_err(db_err)?;
    Ok(())
}

/// The buckets of hours that can no longer be in any 24-hour window.
pub fn purge_hours_before(tx: &Transaction<'_>, before: OffsetDateTime) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM outcome_hours WHERE hour < ?1",
        params![outcome_hour(before)],
    )
    .map_err(db_err)?;
    Ok(())
}

pub fn with_progress(
    tx: &Transaction<'_>,
    rollouts: Vec<Rollout>,
) -> StoreResult<Vec<RolloutWithProgress>> {
    rollouts
        .into_iter()
        .map(|rollout| {
            Ok(RolloutWithProgress {
                health: None,
                progress: progress(tx, &rollout.id)?,
                rollout,
            })
        })
        .collect()
}

pub fn fleet_metrics(tx: &Transaction<'_>, now: OffsetDateTime) -> StoreResult<FleetMetrics> {
    let mut m = FleetMetrics::default();
    let mut stmt = tx
        .prepare_cached(
            "SELECT device_type, version, devices FROM fleet_versions WHERE devices > 0",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, u64>(2)?,
            ))
        })
        .map_err(db_err)?;
    for row in rows {
        let (dt, v, n) = row.map_err(db_err)?;
        m.devices_total += n;
        *m.devices_by_type.entry(dt.clone()).or_default() += n;
        m.versions_by_type
            .entry(dt)
            .or_insert_with(BTreeMap::new)
            .insert(v, n);
    }
    let first_hour = first_outcome_hour(now);
    let mut stmt = tx
        .prepare_cached(
            "SELECT status, SUM(count) FROM outcome_hours WHERE hour >= ?1 GROUP BY status",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![first_hour], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?))
        })
        .map_err(db_err)?;
    let mut outcomes = StatusCounts::default();
    for row in rows {
        let (status, n) = row.map_err(db_err)?;
        if let Some(s) = OtaStatus::parse(&status) {
            *outcomes.slot(s) = n;
        }
    }
    m.outcomes_24h = outcomes;
    let active: Vec<Rollout> = docs(
        tx,
        "SELECT doc FROM rollouts WHERE state = ?1 ORDER BY id",
        &[&RolloutState::Active.as_str()],
    )?;
    m.active_rollouts = with_progress(tx, active)?;
    m.release_health = release_health(tx)?;
    Ok(m)
}
