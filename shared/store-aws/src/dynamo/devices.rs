//! The device registry: one item per device, one per attempt (device, release), one per
//! `specific` rollout that names the device and the refresh of its `last_seen`, in the device's
//! partition, read together by one Query; a check costs that read and at most one write.

use std::collections::HashMap;

use ota_core::cursor;
use ota_core::device::{CheckIn, Device, DeviceFilter, DeviceSnapshot};
use ota_core::device_health::LastBoot;
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::last_seen_precision::{self, Due};
use ota_core::ports::{OfferFn, Page, PageRequest, StoreError, StoreResult};
use ota_core::report_plan::Attempt;

use ota_core::retry;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::DynamoMeta;
use super::item::{Item, doc, get_n, get_s, item, key, micros, n, s, shard};
use super::keys;
use super::open_attempts;
use super::ops::{Query, Range, Take, TxFail, put, update};

/// One device's attempt at one release, with its item's write counter (the condition of the
/// next write).
#[derive(Debug, Clone)]
pub struct StoredAttempt {
    pub attempt: Attempt,
    pub revision: i64,
}

/// A steady poll's refresh of `last_seen` and `last_boot`, written apart from the device's
/// record (`keys::SEEN_SK`) when it is all that changed: a put of ~200 bytes outside the
/// indexes, 1 write unit, where the record (in two indexes) takes 3. Readers apply it to the
/// record when it is the newer (`apply`); a record written later carries the refreshed values.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Refresh {
    #[serde(with = "time::serde::rfc3339")]
    last_seen: OffsetDateTime,
    last_boot: Option<LastBoot>,
}

impl Refresh {
    fn of(d: &Device) -> Self {
        Self {
            last_seen: d.last_seen,
            last_boot: d.last_boot.clone(),
        }
    }

    fn item(&self, id: &str) -> StoreResult<Item> {
        item(
            keys::device(id),
            keys::SEEN_SK,
            self,
            [("t", n(micros(self.last_seen)))],
        )
    }

    /// `d` as of this refresh, when it is later than the record's own `last_seen`.
    fn apply(self, d: &mut Device) {
        if self.last_seen > d.last_seen {
            d.last_seen = self.last_seen;
            if self.last_boot.is_some() {
                d.last_boot = self.last_boot;
            }
        }
    }
}

/// A device's item (its refresh applied), attempts and memberships as read.
pub struct DeviceState {
    pub device: Option<(Device, i64)>,
    pub attempts: HashMap<String, StoredAttempt>,
    /// The ids of the rollouts that name the device, in id order (its `AN#` items, present
    /// whether or not the device itself is).
    pub named_in: Vec<String>,
}

impl DeviceState {
    pub fn snapshot(&self, device: Device) -> DeviceSnapshot {
        DeviceSnapshot::new(
            device,
            self.attempts
                .iter()
                .map(|(release, a)| (release.as_str(), &a.attempt)),
            self.named_in.clone(),
        )
    }
}

pub fn device_item(d: &Device, revision: i64) -> StoreResult<Item> {
    let id = d.device_id.as_str();
    item(
        keys::device(id),
        keys::DEVICE_SK,
        d,
        [
            ("rev", n(revision)),
            (
                "GSI1PK",
                s(keys::index_shard(
                    &keys::devices_of_type(d.device_type.as_str()),
                    id,
                )),
            ),
            ("GSI1SK", s(id)),
            ("GSI2PK", s(keys::index_shard(keys::ALL_DEVICES, id))),
            ("GSI2SK", s(id)),
        ],
    )
}

impl DynamoMeta {
    pub(super) async fn device_state(&self, id: &DeviceId) -> StoreResult<DeviceState> {
        let items = self
            .query(
                &Query {
                    index: None,
                    pk: keys::device(id.as_str()),
                    range: Range::Below(keys::DEVICE_STATE_END.to_owned()),
                    descending: false,
                },
                usize::MAX,
                |_| Take::Keep,
            )
            .await?;
        let mut state = DeviceState {
            device: None,
            attempts: HashMap::new(),
            named_in: Vec::new(),
        };
        let mut refresh: Option<Refresh> = None;
        for it in &items {
            let sk = get_s(it, "SK").unwrap_or_default();
            if sk == keys::DEVICE_SK {
                state.device = Some((doc(it)?, get_n(it, "rev").unwrap_or(0)));
            } else if sk == keys::SEEN_SK {
                refresh = Some(doc(it)?);
            } else if let Some(rollout) = sk.strip_prefix(keys::NAMED_IN_PREFIX) {
                state.named_in.push(rollout.to_owned());
            } else if let Some(fw) = sk.strip_prefix(keys::ATTEMPT_PREFIX)
                && let Some(attempt) = open_attempts::attempt(it)
            {
                state.attempts.insert(
                    fw.to_owned(),
                    StoredAttempt {
                        attempt,
                        revision: get_n(it, "rev").unwrap_or(0),
                    },
                );
            }
        }
        if let (Some(r), Some((d, _))) = (refresh, state.device.as_mut()) {
            r.apply(d);
        }
        Ok(state)
    }

    /// Writes `d`'s refresh apart from its record, unless a later one is there already.
    async fn write_refresh(&self, d: &Device) -> StoreResult<()> {
        let refresh = Refresh::of(d);
        match self
            .put_item(
                refresh.item(d.device_id.as_str())?,
                Some("attribute_not_exists(t) OR t < :t"),
                &[(":t", n(micros(refresh.last_seen)))],
            )
            .await
        {
            // A concurrent check of the same device wrote a later one: that stands.
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The counter move of a device that appeared or changed type or version.
    fn fleet_moves(
        &self,
        id: &DeviceId,
        before: Option<(&DeviceType, &Version)>,
        after: (&DeviceType, &Version),
    ) -> StoreResult<Vec<aws_sdk_dynamodb::types::TransactWriteItem>> {
        if before == Some(after) {
            return Ok(Vec::new());
        }
        let pk = keys::fleet(shard(id.as_str(), keys::COUNTER_SHARDS));
        let mut moves = Vec::new();
        for ((dt, v), delta) in before.map(|b| (b, -1)).into_iter().chain([(after, 1)]) {
            moves.push(update(
                key(&pk, keys::fleet_version(dt.as_str(), v)),
                "ADD ndev :d SET fdt = :dt, fver = :v",
                &[],
                &[
                    (":d", n(delta)),
                    (":dt", s(dt.as_str())),
                    (":v", s(v.to_string())),
                ],
                &self.table,
            )?);
        }
        Ok(moves)
    }

    pub(super) async fn check_in(
        &self,
        c: &CheckIn,
        offer: &OfferFn<'_>,
    ) -> StoreResult<DeviceSnapshot> {
        // The release of the running image, looked up once whatever rounds follow: the hash
        // is the check's, and a release's image never changes.
        let mut matched: Option<Option<String>> = None;
        for round in 0..retry::ROUNDS {
            let state = self.device_state(&c.device_id).await?;
            let before = state.device.as_ref().map(|(d, _)| d.clone());
            let revision = state.device.as_ref().map(|(_, r)| *r);
            let mut moves = self.fleet_moves(
                &c.device_id,
                before
                    .as_ref()
                    .map(|d| (&d.device_type, &d.current_version)),
                (&c.device_type, &c.current_version),
            )?;
            let running = match (c.image_to_match(before.as_ref()), &matched) {
                (Some(_), Some(found)) => found.clone(),
                (Some(sha), None) => {
                    let found = self.release_by_image(&c.device_type, sha).await?;
                    matched = Some(found.clone());
                    found
                }
                (None, _) => None,
            };
            let registration = Device::checked_in(before, c, running);
            if let Some(delta) = &registration.health {
                // In the device's transaction, which is conditioned on the device's revision:
                // a boot or a crash is counted once however checks race.
                moves.push(self.health_write(delta)?);
            }
            let device = registration.device;
            let snapshot = state.snapshot(device.clone());
            let mut stored = device;
            if let Some(o) = offer(&snapshot) {
                stored.last_offer = Some(o);
            }
            let stored_before = state.device.as_ref().map(|(d, _)| d);
            let due = if moves.is_empty() {
                last_seen_precision::write_due(
                    stored_before,
                    &stored,
                    self.options.last_seen_precision,
                )
            } else {
                Due::Record
            };
            match due {
                // The steady poll: one read, no write.
                Due::Nothing => return Ok(snapshot),
                // The same, once every `last_seen_precision`: one read, one small put.
                Due::Refresh => {
                    self.write_refresh(&stored).await?;
                    return Ok(snapshot);
                }
                Due::Record => {}
            }
            let it = device_item(&stored, revision.unwrap_or(0) + 1)?;
            let (cond, values) = match revision {
                Some(r) => ("rev = :rev", vec![(":rev", n(r))]),
                None => ("attribute_not_exists(PK)", vec![]),
            };
            let outcome = if moves.is_empty() {
                // The common check: one conditional put.
                match self.put_item(it, Some(cond), &values).await {
                    Ok(()) => Ok(()),
                    Err(StoreError::Conflict(_)) => Err(None),
                    Err(e) => Err(Some(e)),
                }
            } else {
                let mut writes = vec![put(it, Some(cond), &values, &self.table)?];
                writes.extend(moves);
                match self.transact(writes).await {
                    Ok(()) => Ok(()),
                    Err(TxFail::Cancelled(_)) => Err(None),
                    Err(TxFail::Store(e)) => Err(Some(e)),
                }
            };
            match outcome {
                Ok(()) => return Ok(snapshot),
                // Another check or a groups change won the race: read again.
                Err(None) => retry::backoff(round).await,
                Err(Some(e)) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "device {} is written too often concurrently; retry",
            c.device_id
        )))
    }

    /// The device with its refresh applied (one Query of its state).
    pub(super) async fn get_device_doc(&self, id: &DeviceId) -> StoreResult<Option<Device>> {
        Ok(self.device_state(id).await?.device.map(|(d, _)| d))
    }

    pub(super) async fn set_groups(&self, id: &DeviceId, groups: &[String]) -> StoreResult<Device> {
        for round in 0..retry::ROUNDS {
            let Some(it) = self
                .get(&keys::device(id.as_str()), keys::DEVICE_SK)
                .await?
            else {
                return Err(StoreError::NotFound);
            };
            let revision = get_n(&it, "rev").unwrap_or(0);
            let mut d: Device = doc(&it)?;
            d.groups = groups.to_vec();
            match self
                .put_item(
                    device_item(&d, revision + 1)?,
                    Some("rev = :rev"),
                    &[(":rev", n(revision))],
                )
                .await
            {
                Ok(()) => return Ok(d),
                Err(StoreError::Conflict(_)) => retry::backoff(round).await,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "device {id} is busy; retry"
        )))
    }

    pub(super) async fn list_device_docs(
        &self,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Device>> {
        let after: Option<String> = cursor::decode(page.cursor.as_deref())?;
        let (index, pk) = match &filter.device_type {
            Some(dt) => ("GSI1", keys::devices_of_type(dt.as_str())),
            None => ("GSI2", keys::ALL_DEVICES.to_owned()),
        };
        let items = self
            .query_partitions(
                index,
                keys::index_shards(&pk),
                &after.map_or(Range::All, Range::Above),
                false,
                page.limit as usize + 1,
                &|it| match doc::<Device>(it) {
                    Ok(d) if filter.matches(&d) => Take::Keep,
                    Ok(_) => Take::Skip,
                    Err(_) => Take::Keep,
                },
            )
            .await?;
        let devices = items
            .iter()
            .map(doc)
            .collect::<StoreResult<Vec<Device>>>()?;
        let mut page = cursor::paginate(devices, page.limit, |d| d.device_id.to_string());
        self.apply_refreshes(&mut page.items).await?;
        Ok(page)
    }

    /// Applies to `devices` (read from an index, which holds the records only) their
    /// refreshes: one `BatchGetItem` a hundred devices.
    async fn apply_refreshes(&self, devices: &mut [Device]) -> StoreResult<()> {
        let keys: Vec<(String, String)> = devices
            .iter()
            .map(|d| (keys::device(d.device_id.as_str()), keys::SEEN_SK.to_owned()))
            .collect();
        let mut refreshes: HashMap<String, Refresh> = HashMap::new();
        for it in self.batch_get(&keys).await? {
            if let Some(pk) = get_s(&it, "PK") {
                refreshes.insert(pk.to_owned(), doc(&it)?);
            }
        }
        for d in devices {
            if let Some(r) = refreshes.remove(&keys::device(d.device_id.as_str())) {
                r.apply(d);
            }
        }
        Ok(())
    }
}
