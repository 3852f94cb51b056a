//! `MetaStore` on SQLite. One connection behind a mutex, used from the blocking pool: SQLite
//! has one writer at a time anyway, and a single connection makes every method one transaction.
//! Status reports are the exception: a thread of their own writes them in batches, one
//! transaction for all the reports waiting (`reports`).
//! What a check reads is served from memory while nothing it was read from changes (release
//! views in `view_cache`, devices in `device_cache`), and a check that changes nothing but
//! `last_seen` writes nothing at once (`last_seen`): a device polling again costs no SQLite
//! call and no hand-off to the blocking pool.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::device::{CheckIn, Device, DeviceFilter, DeviceSnapshot, LogEntry, LogFilter, Offer};
use ota_core::device_health::HealthCounts;
use ota_core::device_type::DeviceTypePolicy;
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::install_timeout::SilentAttempt;
use ota_core::metrics::{FleetMetrics, OUTCOME_HOURS_KEPT};
use ota_core::offer_budget::{OfferBudget, Taken};
use ota_core::ports::{
    MetaStore, OfferFn, Page, PageRequest, ReleaseOption, ReleaseView, StoreError, StoreResult,
};
use ota_core::progress::RolloutProgress;
use ota_core::release::{Release, ReleaseFilter, ReleaseState};
use ota_core::report_plan::{StatusOutcome, StatusReport};
use ota_core::rollout::{Rollout, RolloutFilter, RolloutState};
use ota_core::rollout_evaluation::Change;
use ota_core::status::OtaStatus;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use time::OffsetDateTime;

use crate::audit;
use crate::counters;
use crate::device_cache::DeviceCache;
use crate::last_seen::LastSeen;
use crate::reports::{self, ATTEMPT_COLUMNS, ReportWriter, attempt_row};
use crate::schema;
use crate::sql::{
    db_err, docs, fetch_limit, from_doc, micros, newest_first, one_doc, sql_int, to_doc,
};
use crate::view_cache::ViewCache;
use ota_core::cursor::{self, paginate};

#[derive(Clone)]
pub struct SqliteMeta {
    db: Arc<Db>,
    views: Arc<ViewCache>,
    reports: Arc<ReportWriter>,
}

/// The connection, the devices read through it and the `last_seen` times waiting for it.
pub(crate) struct Db {
    conn: Mutex<Connection>,
    devices: DeviceCache,
    seen: LastSeen,
}

impl Db {
    /// Holds the connection: no one else reads or writes through it until the guard drops.
    pub(crate) fn lock(&self) -> StoreResult<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Internal("database mutex poisoned".into()))
    }

    /// Runs `f` in one IMMEDIATE transaction on `conn` (this Db's, held by the caller), after
    /// writing the waiting `last_seen` times so that `f` reads and rewrites devices as they are.
    pub(crate) fn transaction<T>(
        &self,
        conn: &mut Connection,
        f: impl FnOnce(&Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.seen.flush(conn)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let out = f(&tx)?;
        tx.commit().map_err(db_err)?;
        Ok(out)
    }
}

impl Drop for Db {
    /// The last clone of the store is going: write what waits (a clean shutdown loses none).
    fn drop(&mut self) {
        if let Ok(mut conn) = self.conn.lock()
            && let Err(e) = self.seen.flush(&mut conn)
        {
            tracing::error!(error = %e, "could not write the waiting last_seen times");
        }
    }
}

impl SqliteMeta {
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = schema::open(path).map_err(db_err)?;
        let views = ViewCache::default();
        views.watch(&conn).map_err(db_err)?;
        let devices = DeviceCache::default();
        devices.watch(&conn).map_err(db_err)?;
        let db = Arc::new(Db {
            conn: Mutex::new(conn),
            devices,
            seen: LastSeen::default(),
        });
        Ok(Self {
            reports: Arc::new(ReportWriter::start(db.clone())?),
            db,
            views: Arc::new(views),
        })
    }

    /// Runs `f` on the connection, on the blocking pool, outside any transaction: for reads
    /// that need no snapshot beyond what holding the only connection already gives.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Db) -> StoreResult<T> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&mut *db.lock()?, &db))
            .await
            .map_err(|e| StoreError::Internal(format!("blocking task failed: {e}")))?
    }

    /// Runs `f` in one transaction (`Db::transaction`) on the blocking pool.
    async fn tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.read(move |conn, db| db.transaction(conn, f)).await
    }

    /// The steady-state check: a known device saying what it said before. Returns the
    /// snapshot it was read as and the one after the check when the check changes nothing but
    /// `last_seen` and `last_boot` (the same image, no counter to move), None when it must be
    /// written.
    async fn unchanged_check_in(
        &self,
        c: &CheckIn,
    ) -> StoreResult<Option<(Arc<DeviceSnapshot>, DeviceSnapshot)>> {
        let stored = match self.db.devices.get(&c.device_id) {
            Some(hit) => hit,
            None => {
                let id = c.device_id.to_string();
                let read = self.read(move |conn, db| {
                    let Some(device) = load_device(conn, &id)? else {
                        return Ok(None);
                    };
                    let snapshot = Arc::new(device_snapshot(conn, device)?);
                    db.devices.put(snapshot.clone());
                    Ok(Some(snapshot))
                });
                match read.await? {
                    Some(snapshot) => snapshot,
                    None => return Ok(None),
                }
            }
        };
        if c.image_to_match(Some(&stored.device)).is_some() {
            return Ok(None);
        }
        let registration = Device::checked_in(Some(stored.device.clone()), c, None);
        if registration.health.is_some() {
            return Ok(None);
        }
        let mut after = registration.device;
        let (seen, boot) = (after.last_seen, after.last_boot.take());
        // Compared with what is stored of the fields a steady-state poll may move.
        after.last_seen = stored.device.last_seen;
        after.last_boot.clone_from(&stored.device.last_boot);
        if after != stored.device {
            return Ok(None);
        }
        after.last_seen = seen;
        after.last_boot = boot;
        let refreshed = DeviceSnapshot {
            device: after,
            failures: stored.failures.clone(),
            last_offer_status: stored.last_offer_status,
            named_in: stored.named_in.clone(),
        };
        Ok(Some((stored, refreshed)))
    }

    /// Registers or refreshes the device in one transaction; the snapshot `check` reads.
    async fn check_in(&self, c: &CheckIn) -> StoreResult<DeviceSnapshot> {
        let c = c.clone();
        self.tx(move |tx| {
            let before = load_device(tx, c.device_id.as_str())?;
            counters::device_moved(
                tx,
                before
                    .as_ref()
                    .map(|d| (&d.device_type, &d.current_version)),
                (&c.device_type, &c.current_version),
            )?;
            let matched = match c.image_to_match(before.as_ref()) {
                Some(sha) => release_by_image(tx, &c.device_type, sha)?,
                None => None,
            };
            let registration = Device::checked_in(before, &c, matched);
            if let Some(delta) = &registration.health {
                counters::release_health_moved(tx, delta)?;
            }
            write_device(tx, &registration.device)?;
            device_snapshot(tx, registration.device)
        })
        .await
    }

    /// A second transaction is harmless here: SQLite's only cost is latency, and a crash
    /// between the two merely offers the release again on the next check.
    async fn remember_offer(&self, device_id: &DeviceId, offer: Offer) -> StoreResult<()> {
        let id = device_id.to_string();
        self.tx(move |tx| {
            let mut d = load_device(tx, &id)?.ok_or(StoreError::NotFound)?;
            d.last_offer = Some(offer);
            write_device(tx, &d)
        })
        .await
    }
}

#[cfg(test)]
impl SqliteMeta {
    /// Runs `f` on the store's own connection: for tests that watch or bend what it does.
    pub(crate) fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        f(&self.db.lock().expect("the connection"))
    }
}

/// The id of the oldest release of `device_type` whose image has the validation hash `sha`, by
/// the index `firmware_by_image`.
fn release_by_image(
    tx: &Connection,
    device_type: &DeviceType,
    sha: &str,
) -> StoreResult<Option<String>> {
    tx.prepare_cached(
        "SELECT id FROM firmware
         WHERE device_type = ?1 AND json_extract(doc, '$.image_sha256') = ?2
         ORDER BY id LIMIT 1",
    )
    .and_then(|mut stmt| {
        stmt.query_row(params![device_type.as_str(), sha], |r| r.get(0))
            .optional()
    })
    .map_err(db_err)
}

fn device_snapshot(tx: &Connection, device: Device) -> StoreResult<DeviceSnapshot> {
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT {ATTEMPT_COLUMNS}, firmware_id FROM attempts WHERE device_id = ?1"
        ))
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![device.device_id.as_str()], |r| {
            Ok((r.get::<_, String>(4)?, attempt_row(r)?))
        })
        .map_err(db_err)?;
    let mut attempts = Vec::new();
    for row in rows {
        if let (release, Some(attempt)) = row.map_err(db_err)? {
            attempts.push((release, attempt));
        }
    }
    let named_in = tx
        .prepare_cached("SELECT rollout_id FROM rollout_targets WHERE device_id = ?1")
        .and_then(|mut stmt| {
            stmt.query_map(params![device.device_id.as_str()], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(db_err)?;
    Ok(DeviceSnapshot::new(
        device,
        attempts.iter().map(|(r, a)| (r.as_str(), a)),
        named_in,
    ))
}

fn write_device(tx: &Transaction<'_>, d: &Device) -> StoreResult<()> {
    let (groups, doc) = (to_doc(&d.groups)?, to_doc(d)?);
    tx.prepare_cached(
        "INSERT INTO devices (device_id, device_type, version, groups, doc) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (device_id) DO UPDATE SET device_type = ?2, version = ?3, groups = ?4, doc = ?5",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            d.device_id.as_str(),
            d.device_type.as_str(),
            d.current_version.to_string(),
            groups,
            doc
        ])
    })
    .map_err(db_err)?;
    Ok(())
}

pub(crate) fn load_device(tx: &Connection, id: &str) -> StoreResult<Option<Device>> {
    one_doc(
        tx,
        "SELECT doc FROM device_docs WHERE device_id = ?1",
        &[&id],
    )
}

/// Replaces rollout `r` (stored as `doc`) when its stored revision is `expect_revision`.
fn write_rollout(tx: &Connection, r: &Rollout, doc: &str, expect_revision: u64) -> StoreResult<()> {
    let n = tx
        .execute(
            "UPDATE rollouts SET state = ?2, revision = ?3, doc = ?4 WHERE id = ?1 AND revision = ?5",
            params![r.id, r.state.as_str(), sql_int(r.revision), doc, sql_int(expect_revision)],
        )
        .map_err(db_err)?;
    if n > 0 {
        return Ok(());
    }
    let exists: Option<i64> = tx
        .query_row("SELECT 1 FROM rollouts WHERE id = ?1", params![r.id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db_err)?;
    Err(match exists {
        None => StoreError::NotFound,
        Some(_) => StoreError::Conflict(format!(
            "rollout {} was changed by someone else (expected revision {expect_revision})",
            r.id
        )),
    })
}

pub(crate) fn load_rollout(tx: &Connection, id: &str) -> StoreResult<Option<Rollout>> {
    one_doc(tx, "SELECT doc FROM rollouts WHERE id = ?1", &[&id])
}

#[async_trait]
impl MetaStore for SqliteMeta {
    async fn ping(&self) -> StoreResult<()> {
        self.tx(|tx| tx.query_row("SELECT 1", [], |_| Ok(())).map_err(db_err))
            .await
    }

    async fn get_device_type(&self, name: &DeviceType) -> StoreResult<Option<DeviceTypePolicy>> {
        let name = name.to_string();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM device_types WHERE name = ?1", &[&name]))
            .await
    }

    async fn list_device_types(&self, page: &PageRequest) -> StoreResult<Page<DeviceTypePolicy>> {
        let after: Option<String> = cursor::decode(page.cursor.as_deref())?;
        let limit = page.limit;
        self.tx(move |tx| {
            let items = docs(
                tx,
                "SELECT doc FROM device_types WHERE (?1 IS NULL OR name > ?1) ORDER BY name LIMIT ?2",
                &[&after, &(i64::from(limit) + 1)],
            )?;
            Ok(paginate(items, limit, |p: &DeviceTypePolicy| p.name.to_string()))
        })
        .await
    }

    async fn put_device_type(&self, policy: &DeviceTypePolicy) -> StoreResult<()> {
        let name = policy.name.to_string();
        let doc = to_doc(policy)?;
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO device_types (name, doc) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET doc = ?2",
                params![name, doc],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn create_device_type_if_absent(
        &self,
        policy: &DeviceTypePolicy,
    ) -> StoreResult<DeviceTypePolicy> {
        let name = policy.name.to_string();
        let doc = to_doc(policy)?;
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO device_types (name, doc) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, doc],
            )
            .map_err(db_err)?;
            one_doc(tx, "SELECT doc FROM device_types WHERE name = ?1", &[&name])?
                .ok_or_else(|| StoreError::Internal("device type vanished".into()))
        })
        .await
    }

    async fn insert_release(&self, f: &Release) -> StoreResult<()> {
        let f = f.clone();
        let doc = to_doc(&f)?;
        self.tx(move |tx| {
            let inserted = tx
                .execute(
                    "INSERT INTO firmware (id, device_type, version, sort_key, build_number, channel, state, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                    params![
                        f.id,
                        f.device_type.as_str(),
                        f.version.to_string(),
                        f.version.sort_key(),
                        sql_int(f.build_number),
                        f.channel,
                        f.state.as_str(),
                        doc
                    ],
                )
                .map_err(db_err)?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "version {} of device type {} already exists",
                    f.version, f.device_type
                )));
            }
            Ok(())
        })
        .await
    }

    async fn get_release(&self, id: &str) -> StoreResult<Option<Release>> {
        let id = id.to_owned();
        self.tx(move |tx| one_doc(tx, "SELECT doc FROM firmware WHERE id = ?1", &[&id]))
            .await
    }

    async fn find_release(
        &self,
        device_type: &DeviceType,
        version: &Version,
    ) -> StoreResult<Option<Release>> {
        let dt = device_type.to_string();
        let key = version.sort_key();
        self.tx(move |tx| {
            one_doc(
                tx,
                "SELECT doc FROM firmware WHERE device_type = ?1 AND sort_key = ?2",
                &[&dt, &key],
            )
        })
        .await
    }

    async fn list_releases(
        &self,
        filter: &ReleaseFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Release>> {
        let after: Option<(String, i64, String)> = cursor::decode(page.cursor.as_deref())?;
        let (a_key, a_build, a_id) = match after {
            Some((k, b, i)) => (Some(k), Some(b), Some(i)),
            None => (None, None, None),
        };
        let dt = filter.device_type.as_ref().map(ToString::to_string);
        let channel = filter.channel.clone();
        let state = filter.state.map(ReleaseState::as_str);
        let limit = page.limit;
        let fetch = fetch_limit(page);
        self.tx(move |tx| {
            let items = docs(
                tx,
                "SELECT doc FROM firmware
                 WHERE (?1 IS NULL OR device_type = ?1) AND (?2 IS NULL OR channel = ?2)
                   AND (?3 IS NULL OR state = ?3)
                   AND (?4 IS NULL OR (sort_key, build_number, id) < (?4, ?5, ?6))
                 ORDER BY sort_key DESC, build_number DESC, id DESC LIMIT ?7",
                &[&dt, &channel, &state, &a_key, &a_build, &a_id, &fetch],
            )?;
            Ok(paginate(items, limit, |f: &Release| {
                (f.version.sort_key(), sql_int(f.build_number), f.id.clone())
            }))
        })
        .await
    }

    async fn update_release(
        &self,
        f: &Release,
        expect: &Release,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        let f = f.clone();
        let event = event.clone();
        let doc = to_doc(&f)?;
        let expect_state = expect.state.as_str();
        let expect_at = expect
            .updated_at
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.tx(move |tx| {
            let n = tx
                .execute(
                    "UPDATE firmware SET channel = ?2, state = ?3, doc = ?4
                     WHERE id = ?1 AND state = ?5 AND json_extract(doc, '$.updated_at') = ?6",
                    params![f.id, f.channel, f.state.as_str(), doc, expect_state, expect_at],
                )
                .map_err(db_err)?;
            if n == 0 {
                let exists: Option<i64> = tx
                    .query_row("SELECT 1 FROM firmware WHERE id = ?1", params![f.id], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(db_err)?;
                return Err(match exists {
                    None => StoreError::NotFound,
                    Some(_) => StoreError::Conflict(format!(
                        "firmware {} was changed meanwhile (expected it {expect_state} as of {expect_at})",
                        f.id
                    )),
                });
            }
            audit::insert(tx, &event)
        })
        .await
    }

    async fn insert_rollout(&self, r: &Rollout, named: &[DeviceId]) -> StoreResult<()> {
        let r = r.clone();
        let named = named.to_vec();
        let doc = to_doc(&r)?;
        self.tx(move |tx| {
            tx.execute(
                "INSERT INTO rollouts (id, device_type, firmware_id, state, revision, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![r.id, r.device_type.as_str(), r.firmware_id, r.state.as_str(), sql_int(r.revision), doc],
            )
            .map_err(db_err)?;
            let mut stmt = tx
                .prepare_cached("INSERT INTO rollout_targets (device_id, rollout_id) VALUES (?1, ?2)")
                .map_err(db_err)?;
            for device in &named {
                stmt.execute(params![device.as_str(), r.id]).map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_named_devices(
        &self,
        rollout_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<DeviceId>> {
        let after: Option<String> = cursor::decode(page.cursor.as_deref())?;
        let id = rollout_id.to_owned();
        let limit = page.limit;
        let fetch = fetch_limit(page);
        self.tx(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT device_id FROM rollout_targets
                     WHERE rollout_id = ?1 AND (?2 IS NULL OR device_id > ?2)
                     ORDER BY device_id LIMIT ?3",
                )
                .map_err(db_err)?;
            let ids = stmt
                .query_map(params![id, after, fetch], |r| r.get::<_, String>(0))
                .map_err(db_err)?
                .map(|id| {
                    let id = id.map_err(db_err)?;
                    DeviceId::parse(&id).map_err(|e| StoreError::Internal(e.to_string()))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(paginate(ids, limit, DeviceId::to_string))
        })
        .await
    }

    async fn get_rollout(&self, id: &str) -> StoreResult<Option<Rollout>> {
        let id = id.to_owned();
        self.tx(move |tx| load_rollout(tx, &id)).await
    }

    async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Rollout>> {
        let after: Option<String> = cursor::decode(page.cursor.as_deref())?;
        let dt = filter.device_type.as_ref().map(ToString::to_string);
        let fw = filter.firmware_id.clone();
        let state = filter.state.map(RolloutState::as_str);
        let limit = page.limit;
        let fetch = fetch_limit(page);
        self.tx(move |tx| {
            // Ids are UUIDv7, so id order is creation order.
            let items = docs(
                tx,
                "SELECT doc FROM rollouts
                 WHERE (?1 IS NULL OR device_type = ?1) AND (?2 IS NULL OR firmware_id = ?2)
                   AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR id < ?4)
                 ORDER BY id DESC LIMIT ?5",
                &[&dt, &fw, &state, &after, &fetch],
            )?;
            Ok(paginate(items, limit, |r: &Rollout| r.id.clone()))
        })
        .await
    }

    async fn update_rollout(&self, r: &Rollout, expect_revision: u64) -> StoreResult<()> {
        let (r, doc) = (r.clone(), to_doc(r)?);
        self.tx(move |tx| write_rollout(tx, &r, &doc, expect_revision))
            .await
    }

    async fn decide_rollout(&self, change: &Change) -> StoreResult<()> {
        let (c, doc) = (change.clone(), to_doc(&change.rollout)?);
        self.tx(move |tx| {
            write_rollout(tx, &c.rollout, &doc, c.expect_revision)?;
            audit::insert(tx, &c.audit)
        })
        .await
    }

    async fn release_view(&self, device_type: &DeviceType) -> StoreResult<Arc<ReleaseView>> {
        if let Some(view) = self.views.get(device_type) {
            return Ok(view);
        }
        let dt = device_type.to_string();
        let views = self.views.clone();
        let (generation, view) = self
            .tx(move |tx| {
                let generation = views.generation();
                let policy: Option<DeviceTypePolicy> =
                    one_doc(tx, "SELECT doc FROM device_types WHERE name = ?1", &[&dt])?;
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT r.doc, f.doc FROM rollouts r JOIN firmware f ON f.id = r.firmware_id
                         WHERE r.device_type = ?1 AND r.state = ?2",
                    )
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(params![dt, RolloutState::Active.as_str()], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })
                    .map_err(db_err)?;
                let mut options = Vec::new();
                for row in rows {
                    let (r, f) = row.map_err(db_err)?;
                    options.push(Arc::new(ReleaseOption {
                        rollout: from_doc(&r)?,
                        release: from_doc(&f)?,
                    }));
                }
                Ok((
                    generation,
                    Arc::new(ReleaseView {
                        chip: policy.map(|p| p.chip),
                        options,
                    }),
                ))
            })
            .await?;
        self.views.put(device_type, generation, view.clone());
        Ok(view)
    }

    async fn record_check(&self, c: &CheckIn, offer: &OfferFn<'_>) -> StoreResult<DeviceSnapshot> {
        if let Some((read, snapshot)) = self.unchanged_check_in(c).await?
            && offer(&snapshot).is_none()
        {
            let boot = snapshot.device.last_boot.clone();
            // The cached entry's `last_seen` is never read (the check compares without it), so
            // it is replaced only when the boot report it keeps has moved on.
            if boot != read.device.last_boot {
                self.db.devices.refresh(&read, Arc::new(snapshot.clone()));
            }
            if self.db.seen.note(&c.device_id, c.at, boot) {
                // Written beside this answer, not before it: the poll that happened to fill
                // the batch need not wait for five seconds' worth of other devices' times. A
                // failed write leaves them waiting for the next flush or transaction.
                let db = self.db.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = db.lock().and_then(|mut conn| db.seen.flush(&mut conn)) {
                        tracing::warn!(error = %e, "could not write the waiting last_seen times");
                    }
                });
            }
            return Ok(snapshot);
        }
        let snapshot = self.check_in(c).await?;
        if let Some(offer) = offer(&snapshot) {
            self.remember_offer(&c.device_id, offer).await?;
        }
        Ok(snapshot)
    }

    async fn get_device(&self, id: &DeviceId) -> StoreResult<Option<Device>> {
        let id = id.to_string();
        self.tx(move |tx| load_device(tx, &id)).await
    }

    async fn set_device_groups(&self, id: &DeviceId, groups: &[String]) -> StoreResult<Device> {
        let id = id.to_string();
        let groups = groups.to_vec();
        self.tx(move |tx| {
            let mut d = load_device(tx, &id)?.ok_or(StoreError::NotFound)?;
            d.groups = groups;
            write_device(tx, &d)?;
            Ok(d)
        })
        .await
    }

    async fn list_devices(
        &self,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Device>> {
        let after: Option<String> = cursor::decode(page.cursor.as_deref())?;
        let dt = filter.device_type.as_ref().map(ToString::to_string);
        let version = filter.version.as_ref().map(ToString::to_string);
        let group = filter.group.clone();
        let limit = page.limit;
        let fetch = fetch_limit(page);
        self.tx(move |tx| {
            let items = docs(
                tx,
                "SELECT doc FROM device_docs
                 WHERE (?1 IS NULL OR device_type = ?1) AND (?2 IS NULL OR version = ?2)
                   AND (?3 IS NULL OR EXISTS (SELECT 1 FROM json_each(device_docs.groups) WHERE value = ?3))
                   AND (?4 IS NULL OR device_id > ?4)
                 ORDER BY device_id LIMIT ?5",
                &[&dt, &version, &group, &after, &fetch],
            )?;
            Ok(paginate(items, limit, |d: &Device| d.device_id.to_string()))
        })
        .await
    }

    async fn record_status(&self, report: &StatusReport) -> StoreResult<StatusOutcome> {
        self.reports.record(report.clone()).await
    }

    async fn silent_attempts(
        &self,
        rollout_id: &str,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<SilentAttempt>> {
        let id = rollout_id.to_owned();
        self.read(move |conn, _| reports::silent_attempts(conn, &id, before, limit))
            .await
    }

    async fn take_offer(
        &self,
        rollout_id: &str,
        limit: u32,
        at: OffsetDateTime,
    ) -> StoreResult<Taken> {
        let id = rollout_id.to_owned();
        self.tx(move |tx| {
            let mut budget: OfferBudget = one_doc(
                tx,
                "SELECT doc FROM offer_budgets WHERE rollout_id = ?1",
                &[&id],
            )?
            .unwrap_or_default();
            let taken = budget.take(limit, at);
            if taken == Taken::Granted {
                tx.execute(
                    "INSERT INTO offer_budgets (rollout_id, doc) VALUES (?1, ?2)
                     ON CONFLICT (rollout_id) DO UPDATE SET doc = ?2",
                    params![id, to_doc(&budget)?],
                )
                .map_err(db_err)?;
            }
            Ok(taken)
        })
        .await
    }

    async fn rollout_progress(&self, rollout_id: &str) -> StoreResult<RolloutProgress> {
        let id = rollout_id.to_owned();
        self.tx(move |tx| counters::progress(tx, &id)).await
    }

    async fn release_health(&self, firmware_id: &str) -> StoreResult<HealthCounts> {
        let id = firmware_id.to_owned();
        self.tx(move |tx| counters::release_counts(tx, &id)).await
    }

    async fn fleet_metrics(&self, now: OffsetDateTime) -> StoreResult<FleetMetrics> {
        self.tx(move |tx| counters::fleet_metrics(tx, now)).await
    }

    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        let e = event.clone();
        self.tx(move |tx| audit::insert(tx, &e)).await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        let (filter, page) = (filter.clone(), page.clone());
        self.tx(move |tx| audit::list(tx, &filter, &page)).await
    }

    async fn purge(
        &self,
        audit_before: OffsetDateTime,
        log_before: OffsetDateTime,
    ) -> StoreResult<()> {
        self.tx(move |tx| {
            tx.execute(
                "DELETE FROM audit WHERE at < ?1",
                params![micros(audit_before)],
            )
            .map_err(db_err)?;
            tx.execute(
                "DELETE FROM ota_log WHERE created_at < ?1",
                params![micros(log_before)],
            )
            .map_err(db_err)?;
            // Hour buckets older than a day are never read again.
            counters::purge_hours_before(tx, OffsetDateTime::now_utc() - OUTCOME_HOURS_KEPT)
        })
        .await
    }

    async fn list_logs(
        &self,
        filter: &LogFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<LogEntry>> {
        let before: Option<i64> = cursor::decode(page.cursor.as_deref())?;
        let device = filter.device_id.as_ref().map(ToString::to_string);
        let fw = filter.firmware_id.clone();
        let status = filter.status.map(OtaStatus::as_str);
        let since = filter.since.map(micros);
        let limit = page.limit;
        let fetch = fetch_limit(page);
        self.tx(move |tx| {
            newest_first(
                tx,
                "SELECT seq, doc FROM ota_log
                 WHERE (?1 IS NULL OR device_id = ?1) AND (?2 IS NULL OR firmware_id = ?2)
                   AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR created_at >= ?4)
                   AND (?5 IS NULL OR seq < ?5)
                 ORDER BY seq DESC LIMIT ?6",
                &[&device, &fw, &status, &since, &before, &fetch],
                limit,
            )
        })
        .await
    }
}
