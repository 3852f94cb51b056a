//! `MetaStore` and `BlobStore` in memory: test support, not a product backend (nothing survives
//! the process).
//! It passes the same conformance suite as SQLite and DynamoDB, so the use cases of `ota-core`
//! can be tested against it in microseconds. Every method holds one lock for its whole run,
//! which makes each an atomic step, as a transaction is on the real stores; a report is recorded
//! as `report_plan` decides, like everywhere else.

mod blobs;

pub use blobs::MemoryBlobs;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::cursor::{self, paginate};
use ota_core::device::{CheckIn, Device, DeviceFilter, DeviceSnapshot, LogEntry, LogFilter};
use ota_core::device_health::{HealthCounts, ReleaseHealth};
use ota_core::device_type::DeviceTypePolicy;
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::install_timeout::SilentAttempt;
use ota_core::metrics::{FleetMetrics, RolloutWithProgress, first_outcome_hour, outcome_hour};
use ota_core::offer_budget::{OfferBudget, Taken};
use ota_core::ports::{
    MetaStore, OfferFn, Page, PageRequest, ReleaseOption, ReleaseView, StoreError, StoreResult,
};
use ota_core::progress::{RolloutProgress, StatusCounts};
use ota_core::release::{Release, ReleaseFilter};
use ota_core::report_plan::{self, Attempt, Seen, StatusOutcome, StatusReport};
use ota_core::rollout::{Rollout, RolloutFilter, RolloutState};
use ota_core::rollout_evaluation::Change;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

#[derive(Default)]
struct State {
    device_types: BTreeMap<String, DeviceTypePolicy>,
    releases: HashMap<String, Release>,
    rollouts: HashMap<String, Rollout>,
    /// Rollout -> the devices it names, by id.
    named: HashMap<String, Vec<DeviceId>>,
    /// Device -> the rollouts that name it.
    named_in: HashMap<String, Vec<String>>,
    progress: HashMap<String, RolloutProgress>,
    devices: BTreeMap<String, Device>,
    /// (device, release) -> attempt.
    attempts: HashMap<(String, String), Attempt>,
    /// In the order stored; a position is its index plus one.
    log: Vec<LogEntry>,
    audit: Vec<AuditEvent>,
    /// Stored reports per (hour, status).
    outcome_hours: BTreeMap<(i64, &'static str), u64>,
    /// By release id.
    health: BTreeMap<String, ReleaseHealth>,
    /// By rollout id.
    offer_budgets: HashMap<String, OfferBudget>,
}

/// The metadata store in memory. Clones share one store.
#[derive(Clone, Default)]
pub struct MemoryMeta {
    state: Arc<Mutex<State>>,
}

impl MemoryMeta {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| StoreError::Internal("the memory store's lock is poisoned".into()))
    }
}

/// The position of a release in "newest first" order.
fn release_order(r: &Release) -> (String, u64, String) {
    (r.version.sort_key(), r.build_number, r.id.clone())
}

impl State {
    /// Replaces the stored rollout when its revision is `expect_revision`.
    fn replace_rollout(&mut self, rollout: &Rollout, expect_revision: u64) -> StoreResult<()> {
        let stored = self
            .rollouts
            .get_mut(&rollout.id)
            .ok_or(StoreError::NotFound)?;
        conflict_if(stored.revision != expect_revision, || {
            format!(
                "rollout {} was changed by someone else (expected revision {expect_revision})",
                rollout.id
            )
        })?;
        *stored = rollout.clone();
        Ok(())
    }

    fn release_of(&self, device_type: &DeviceType, version: &Version) -> Option<&Release> {
        let key = version.sort_key();
        self.releases
            .values()
            .find(|r| r.device_type == *device_type && r.version.sort_key() == key)
    }

    /// The oldest release of `device_type` whose image has the validation hash `sha`.
    fn release_by_image(&self, device_type: &DeviceType, sha: &str) -> Option<&Release> {
        self.releases
            .values()
            .filter(|r| r.device_type == *device_type && r.image_sha256.as_deref() == Some(sha))
            .min_by(|a, b| a.id.cmp(&b.id))
    }

    fn snapshot(&self, device: Device) -> DeviceSnapshot {
        let id = device.device_id.to_string();
        let attempts = self
            .attempts
            .iter()
            .filter(|((d, _), _)| *d == id)
            .map(|((_, release), a)| (release.as_str(), a));
        let named_in = self.named_in.get(&id).cloned().unwrap_or_default();
        DeviceSnapshot::new(device, attempts, named_in)
    }
}

/// One page of `items` in the order of `key` (descending or not), after the position the
/// cursor holds, as every store pages: `limit` items and a cursor when more follow.
fn page_by<T, P>(
    mut items: Vec<T>,
    page: &PageRequest,
    descending: bool,
    key: impl Fn(&T) -> P,
) -> StoreResult<Page<T>>
where
    P: Ord + Serialize + DeserializeOwned,
{
    let after: Option<P> = cursor::decode(page.cursor.as_deref())?;
    items.sort_by(|a, b| {
        let order = key(a).cmp(&key(b));
        if descending { order.reverse() } else { order }
    });
    if let Some(after) = after {
        items.retain(|i| {
            if descending {
                key(i) < after
            } else {
                key(i) > after
            }
        });
    }
    items.truncate(page.limit as usize + 1);
    Ok(paginate(items, page.limit, key))
}

fn conflict_if(cond: bool, msg: impl FnOnce() -> String) -> StoreResult<()> {
    if cond {
        Err(StoreError::Conflict(msg()))
    } else {
        Ok(())
    }
}

#[async_trait]
impl MetaStore for MemoryMeta {
    async fn ping(&self) -> StoreResult<()> {
        self.lock().map(|_| ())
    }

    async fn get_device_type(&self, name: &DeviceType) -> StoreResult<Option<DeviceTypePolicy>> {
        Ok(self.lock()?.device_types.get(name.as_str()).cloned())
    }

    async fn list_device_types(&self, page: &PageRequest) -> StoreResult<Page<DeviceTypePolicy>> {
        let items = self.lock()?.device_types.values().cloned().collect();
        page_by(items, page, false, |p: &DeviceTypePolicy| {
            p.name.to_string()
        })
    }

    async fn put_device_type(&self, policy: &DeviceTypePolicy) -> StoreResult<()> {
        let mut s = self.lock()?;
        s.device_types
            .insert(policy.name.to_string(), policy.clone());
        Ok(())
    }

    async fn create_device_type_if_absent(
        &self,
        policy: &DeviceTypePolicy,
    ) -> StoreResult<DeviceTypePolicy> {
        let mut s = self.lock()?;
        Ok(s.device_types
            .entry(policy.name.to_string())
            .or_insert_with(|| policy.clone())
            .clone())
    }

    async fn insert_release(&self, release: &Release) -> StoreResult<()> {
        let mut s = self.lock()?;
        conflict_if(
            s.release_of(&release.device_type, &release.version)
                .is_some(),
            || {
                format!(
                    "version {} of device type {} already exists",
                    release.version, release.device_type
                )
            },
        )?;
        conflict_if(s.releases.contains_key(&release.id), || {
            format!("a release with id {} already exists", release.id)
        })?;
        s.releases.insert(release.id.clone(), release.clone());
        Ok(())
    }

    async fn get_release(&self, id: &str) -> StoreResult<Option<Release>> {
        Ok(self.lock()?.releases.get(id).cloned())
    }

    async fn find_release(
        &self,
        device_type: &DeviceType,
        version: &Version,
    ) -> StoreResult<Option<Release>> {
        Ok(self.lock()?.release_of(device_type, version).cloned())
    }

    async fn list_releases(
        &self,
        filter: &ReleaseFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Release>> {
        let items = self
            .lock()?
            .releases
            .values()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        page_by(items, page, true, release_order)
    }

    async fn update_release(
        &self,
        release: &Release,
        expect: &Release,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let mut s = self.lock()?;
        let stored = s
            .releases
            .get_mut(&release.id)
            .ok_or(StoreError::NotFound)?;
        conflict_if(
            stored.state != expect.state || stored.updated_at != expect.updated_at,
            || format!("firmware {} was changed meanwhile", release.id),
        )?;
        *stored = release.clone();
        s.audit.push(event.clone());
        Ok(())
    }

    async fn insert_rollout(&self, rollout: &Rollout, named: &[DeviceId]) -> StoreResult<()> {
        let mut s = self.lock()?;
        conflict_if(s.rollouts.contains_key(&rollout.id), || {
            format!("rollout {} already exists", rollout.id)
        })?;
        for device in named {
            s.named_in
                .entry(device.as_str().to_owned())
                .or_default()
                .push(rollout.id.clone());
        }
        if !named.is_empty() {
            s.named.insert(rollout.id.clone(), named.to_vec());
        }
        s.rollouts.insert(rollout.id.clone(), rollout.clone());
        Ok(())
    }

    async fn list_named_devices(
        &self,
        rollout_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<DeviceId>> {
        let named = self
            .lock()?
            .named
            .get(rollout_id)
            .cloned()
            .unwrap_or_default();
        page_by(named, page, false, DeviceId::clone)
    }

    async fn get_rollout(&self, id: &str) -> StoreResult<Option<Rollout>> {
        Ok(self.lock()?.rollouts.get(id).cloned())
    }

    async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Rollout>> {
        let items = self
            .lock()?
            .rollouts
            .values()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        // Ids are UUIDv7: descending id order is newest first.
        page_by(items, page, true, |r: &Rollout| r.id.clone())
    }

    async fn update_rollout(&self, rollout: &Rollout, expect_revision: u64) -> StoreResult<()> {
        self.lock()?.replace_rollout(rollout, expect_revision)
    }

    async fn decide_rollout(&self, change: &Change) -> StoreResult<()> {
        let mut s = self.lock()?;
        s.replace_rollout(&change.rollout, change.expect_revision)?;
        s.audit.push(change.audit.clone());
        Ok(())
    }

    async fn release_view(&self, device_type: &DeviceType) -> StoreResult<Arc<ReleaseView>> {
        let s = self.lock()?;
        let options = s
            .rollouts
            .values()
            .filter(|r| r.device_type == *device_type && r.state.offers())
            .filter_map(|r| {
                let release = s.releases.get(&r.firmware_id)?;
                Some(Arc::new(ReleaseOption {
                    rollout: r.clone(),
                    release: release.clone(),
                }))
            })
            .collect();
        Ok(Arc::new(ReleaseView {
            chip: s
                .device_types
                .get(device_type.as_str())
                .map(|p| p.chip.clone()),
            options,
        }))
    }

    async fn record_check(
        &self,
        check_in: &CheckIn,
        offer: &OfferFn<'_>,
    ) -> StoreResult<DeviceSnapshot> {
        let mut s = self.lock()?;
        let before = s.devices.get(check_in.device_id.as_str()).cloned();
        let matched = check_in
            .image_to_match(before.as_ref())
            .and_then(|sha| s.release_by_image(&check_in.device_type, sha))
            .map(|r| r.id.clone());
        let registration = Device::checked_in(before, check_in, matched);
        if let Some(delta) = &registration.health {
            // The release exists: its id came from the releases, now or at an earlier check.
            let Some(release) = s.releases.get(&delta.firmware_id) else {
                return Err(StoreError::Internal(format!(
                    "release {} of a device's check is gone",
                    delta.firmware_id
                )));
            };
            let zero = ReleaseHealth {
                firmware_id: release.id.clone(),
                device_type: release.device_type.clone(),
                version: release.version.clone(),
                counts: HealthCounts::default(),
            };
            s.health
                .entry(delta.firmware_id.clone())
                .or_insert(zero)
                .counts
                .add(delta);
        }
        let snapshot = s.snapshot(registration.device);
        let mut stored = snapshot.device.clone();
        if let Some(o) = offer(&snapshot) {
            stored.last_offer = Some(o);
        }
        s.devices.insert(check_in.device_id.to_string(), stored);
        Ok(snapshot)
    }

    async fn get_device(&self, id: &DeviceId) -> StoreResult<Option<Device>> {
        Ok(self.lock()?.devices.get(id.as_str()).cloned())
    }

    async fn set_device_groups(&self, id: &DeviceId, groups: &[String]) -> StoreResult<Device> {
        let mut s = self.lock()?;
        let d = s.devices.get_mut(id.as_str()).ok_or(StoreError::NotFound)?;
        d.groups = groups.to_vec();
        Ok(d.clone())
    }

    async fn list_devices(
        &self,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Device>> {
        let items = self
            .lock()?
            .devices
            .values()
            .filter(|d| filter.matches(d))
            .cloned()
            .collect();
        page_by(items, page, false, |d: &Device| d.device_id.to_string())
    }

    async fn record_status(&self, report: &StatusReport) -> StoreResult<StatusOutcome> {
        let mut s = self.lock()?;
        if let Some(stored) = s
            .log
            .iter()
            .find(|e| e.device_id == report.device_id && e.event_id == report.event_id)
        {
            return Ok(report_plan::duplicate(stored.clone()));
        }
        let key = (report.device_id.to_string(), report.firmware_id.clone());
        let last_offer = s
            .devices
            .get(report.device_id.as_str())
            .and_then(|d| d.last_offer.as_ref());
        let seen = Seen::new(
            s.attempts.get(&key).cloned(),
            last_offer,
            &report.firmware_id,
        );
        let attribution = seen
            .attribute(report)
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        let rollout = attribution
            .pause_candidate(report)
            .and_then(|id| s.rollouts.get(id));
        let plan = attribution.plan(
            report,
            |id| s.progress.get(id).copied().unwrap_or_default(),
            rollout,
        );
        s.log.push(plan.entry.clone());
        *s.outcome_hours
            .entry((outcome_hour(report.at), report.status.as_str()))
            .or_default() += 1;
        if let Some(a) = &plan.attempt {
            s.attempts.insert(key, a.clone());
        }
        for (id, p) in &plan.progress {
            s.progress.insert(id.clone(), *p);
        }
        if let Some(pause) = &plan.pause {
            s.rollouts
                .insert(pause.rollout.id.clone(), pause.rollout.clone());
            s.audit.push(pause.audit.clone());
        }
        Ok(plan.outcome())
    }

    async fn silent_attempts(
        &self,
        rollout_id: &str,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<SilentAttempt>> {
        let s = self.lock()?;
        let mut silent: Vec<SilentAttempt> = s
            .attempts
            .iter()
            .filter(|(_, a)| a.rollout_id.as_deref() == Some(rollout_id))
            .filter_map(|((device, firmware), a)| {
                let since = a.silent_since().filter(|t| *t <= before)?;
                Some(SilentAttempt {
                    device_id: DeviceId::parse(device).ok()?,
                    firmware_id: firmware.clone(),
                    status: a.status,
                    since,
                })
            })
            .collect();
        silent.sort_by_key(|a| a.since);
        silent.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(silent)
    }

    async fn take_offer(
        &self,
        rollout_id: &str,
        limit: u32,
        at: OffsetDateTime,
    ) -> StoreResult<Taken> {
        Ok(self
            .lock()?
            .offer_budgets
            .entry(rollout_id.to_owned())
            .or_default()
            .take(limit, at))
    }

    async fn rollout_progress(&self, rollout_id: &str) -> StoreResult<RolloutProgress> {
        Ok(self
            .lock()?
            .progress
            .get(rollout_id)
            .copied()
            .unwrap_or_default())
    }

    async fn release_health(&self, firmware_id: &str) -> StoreResult<HealthCounts> {
        let s = self.lock()?;
        Ok(s.health
            .get(firmware_id)
            .map(|h| h.counts.clone())
            .unwrap_or_default())
    }

    async fn fleet_metrics(&self, now: OffsetDateTime) -> StoreResult<FleetMetrics> {
        let s = self.lock()?;
        let mut m = FleetMetrics::default();
        for d in s.devices.values() {
            m.devices_total += 1;
            let t = d.device_type.to_string();
            *m.devices_by_type.entry(t.clone()).or_default() += 1;
            *m.versions_by_type
                .entry(t)
                .or_default()
                .entry(d.current_version.to_string())
                .or_default() += 1;
        }
        let first_hour = first_outcome_hour(now);
        let mut outcomes = StatusCounts::default();
        for ((hour, status), n) in &s.outcome_hours {
            if let Some(st) = ota_core::status::OtaStatus::parse(status)
                && *hour >= first_hour
            {
                *outcomes.slot(st) += n;
            }
        }
        m.outcomes_24h = outcomes;
        let mut active: Vec<&Rollout> = s
            .rollouts
            .values()
            .filter(|r| r.state == RolloutState::Active)
            .collect();
        active.sort_by(|a, b| a.id.cmp(&b.id));
        m.active_rollouts = active
            .into_iter()
            .map(|r| RolloutWithProgress {
                health: None,
                rollout: r.clone(),
                progress: s.progress.get(&r.id).copied().unwrap_or_default(),
            })
            .collect();
        m.release_health = s.health.values().cloned().collect();
        Ok(m)
    }

    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.lock()?.audit.push(event.clone());
        Ok(())
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        let s = self.lock()?;
        let items = positioned(&s.audit, |e| {
            filter.matches(e) && filter.since.is_none_or(|since| e.at >= since)
        });
        newest_first(items, page)
    }

    async fn purge(
        &self,
        audit_before: OffsetDateTime,
        log_before: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut s = self.lock()?;
        s.audit.retain(|e| e.at >= audit_before);
        s.log.retain(|e| e.created_at >= log_before);
        Ok(())
    }

    async fn list_logs(
        &self,
        filter: &LogFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<LogEntry>> {
        let s = self.lock()?;
        let items = positioned(&s.log, |e| {
            filter.matches(e) && filter.since.is_none_or(|since| e.created_at >= since)
        });
        newest_first(items, page)
    }
}

/// The entries `keep` selects, each with its position in the order stored.
fn positioned<T: Clone>(entries: &[T], keep: impl Fn(&T) -> bool) -> Vec<(usize, T)> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| keep(e))
        .map(|(i, e)| (i, e.clone()))
        .collect()
}

/// Logs page newest first by the order they were stored in.
fn newest_first<T>(items: Vec<(usize, T)>, page: &PageRequest) -> StoreResult<Page<T>> {
    let page = page_by(items, page, true, |(i, _)| *i)?;
    Ok(Page {
        items: page.items.into_iter().map(|(_, e)| e).collect(),
        next_cursor: page.next_cursor,
    })
}
