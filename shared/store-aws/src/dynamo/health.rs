//! What devices report of the image they run (`ota_core::device_health`): the release a hash
//! belongs to, found through the sparse index partition of its (type, hash), and each release's
//! counters of resets, crashes, devices and crashed devices, one item per release moved by
//! atomic ADDs in the check's own transaction (not the type's release view item, which every
//! check reads and is big already).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::TransactWriteItem;
use futures_util::future::try_join_all;
use ota_core::device_health::{HealthCounts, HealthDelta, ReleaseHealth};
use ota_core::ids::DeviceType;
use ota_core::ports::StoreResult;

use super::DynamoMeta;
use super::item::{Item, get_n, get_s, key, n, s};
use super::keys;
use super::ops::{Query, Range, Take, update};

impl DynamoMeta {
    /// The id of the oldest release of `device_type` whose image has the validation hash
    /// `sha`: one Query of its index partition (eventually consistent, which is fine for a
    /// release published before any device can run it).
    pub(super) async fn release_by_image(
        &self,
        device_type: &DeviceType,
        sha: &str,
    ) -> StoreResult<Option<String>> {
        let found = self
            .query(
                &Query {
                    index: Some("GSI3"),
                    pk: keys::release_image(device_type.as_str(), sha),
                    range: Range::All,
                    descending: false,
                },
                1,
                |_| Take::Keep,
            )
            .await?;
        Ok(found
            .first()
            .and_then(|it| get_s(it, "GSI3SK"))
            .map(str::to_owned))
    }

    /// The counter moves of `delta`, for the check's transaction.
    pub(super) fn health_write(&self, delta: &HealthDelta) -> StoreResult<TransactWriteItem> {
        let mut adds = Vec::new();
        let mut names = Vec::new();
        let mut values = vec![(":hp", s(keys::ALL_HEALTH)), (":id", s(&delta.firmware_id))];
        if let Some(reason) = &delta.reset_reason {
            // A reason is a token of `fields::reset_reason`: a valid attribute name's tail.
            adds.push("#r :one");
            names.push(("#r", format!("{}{reason}", keys::RESET_PREFIX)));
        }
        if delta.crashes > 0 {
            adds.push("ncrash :c");
            values.push((":c", n(delta.crashes)));
        }
        if delta.new_device {
            adds.push("ndev :one");
        }
        if delta.new_crashed_device {
            adds.push("ncrashed :one");
        }
        if delta.reset_reason.is_some() || delta.new_device || delta.new_crashed_device {
            values.push((":one", n(1)));
        }
        update(
            key(keys::release(&delta.firmware_id), keys::HEALTH_SK),
            &format!("SET GSI3PK = :hp, GSI3SK = :id ADD {}", adds.join(", ")),
            &names,
            &values,
            &self.table,
        )
    }

    /// One release's counters: one `GetItem` of its health item.
    pub(super) async fn release_counts(&self, firmware_id: &str) -> StoreResult<HealthCounts> {
        let it = self
            .get(&keys::release(firmware_id), keys::HEALTH_SK)
            .await?;
        Ok(it.as_ref().map(counts).unwrap_or_default())
    }

    /// Every release's counters, by release id: one Query of the health partition, then the
    /// releases they count for (their type and version), read side by side.
    pub(super) async fn release_health(&self) -> StoreResult<Vec<ReleaseHealth>> {
        let items = self
            .query(
                &Query {
                    index: Some("GSI3"),
                    pk: keys::ALL_HEALTH.to_owned(),
                    range: Range::All,
                    descending: false,
                },
                usize::MAX,
                |_| Take::Keep,
            )
            .await?;
        let releases = try_join_all(items.iter().map(|it| {
            let id = get_s(it, "GSI3SK").unwrap_or_default().to_owned();
            async move { self.release_doc(&id).await }
        }))
        .await?;
        // Counters of a release that is gone (none are ever deleted) are not shown.
        Ok(items
            .iter()
            .zip(releases)
            .filter_map(|(it, release)| {
                let r = release?;
                Some(ReleaseHealth {
                    counts: counts(it),
                    firmware_id: r.id,
                    device_type: r.device_type,
                    version: r.version,
                })
            })
            .collect())
    }
}

/// The counters a health item holds.
fn counts(it: &Item) -> HealthCounts {
    let count = |name: &str| u64::try_from(get_n(it, name).unwrap_or(0)).unwrap_or(0);
    HealthCounts {
        resets_by_reason: it
            .keys()
            .filter_map(|name| {
                let reason = name.strip_prefix(keys::RESET_PREFIX)?;
                Some((reason.to_owned(), count(name)))
            })
            .collect::<BTreeMap<_, _>>(),
        crashes: count("ncrash"),
        devices: count("ndev"),
        crashed_devices: count("ncrashed"),
    }
}
