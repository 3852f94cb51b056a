//! The index of open attempts (`docs/aws-keys.md`): an attempt in `downloading` or `installing`
//! counted in a rollout is in GSI3 under `OPEN#{rollout}#{nn}` (`nn` the device's index shard),
//! sorted by the time of its last report, so that the install timeout finds a rollout's silent
//! devices by one Query a shard, never by scanning them. A final report takes it out (the
//! attempt is rewritten without the index keys).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use ota_core::ids::DeviceId;
use ota_core::install_timeout::SilentAttempt;
use ota_core::ports::StoreResult;
use ota_core::report_plan::Attempt;
use ota_core::status::OtaStatus;
use time::OffsetDateTime;

use super::DynamoMeta;
use super::item::{Item, get_n, get_s, micros, n, s, time_key};
use super::keys;
use super::ops::{Range, Take};

const INDEX: &str = "GSI3";

/// The attributes of attempt `a` of `device` beside its keys: its status, strikes, rollout, the
/// time of its last report, and while it is open and counted in a rollout, its index keys.
pub(super) fn attributes(device: &str, a: &Attempt) -> HashMap<String, AttributeValue> {
    let mut it = HashMap::new();
    it.insert("status".into(), s(a.status.as_str()));
    it.insert("failures".into(), n(a.failures));
    if let Some(id) = &a.rollout_id {
        it.insert("rollout".into(), s(id));
    }
    if let Some(at) = a.last_report_at {
        it.insert("at".into(), n(micros(at)));
    }
    if let (Some(rollout), Some(since)) = (&a.rollout_id, a.silent_since()) {
        it.insert(
            "GSI3PK".into(),
            s(keys::index_shard(&keys::open_attempts(rollout), device)),
        );
        it.insert("GSI3SK".into(), s(time_key(since, device)));
    }
    it
}

/// The attempt an item of [`attributes`] holds (None for a status this build does not know).
pub(super) fn attempt(it: &Item) -> Option<Attempt> {
    let status = get_s(it, "status").and_then(OtaStatus::parse)?;
    Some(Attempt {
        status,
        failures: u32::try_from(get_n(it, "failures").unwrap_or(0)).unwrap_or(0),
        rollout_id: get_s(it, "rollout").map(str::to_owned),
        last_report_at: get_n(it, "at").and_then(from_micros),
    })
}

fn from_micros(us: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()
}

impl DynamoMeta {
    /// `MetaStore::silent_attempts`: the shards of the rollout's partition of the index, below
    /// the first sort key after `before`, merged oldest first. The index is eventually
    /// consistent: an attempt that just spoke may still be listed, which the timeout's own
    /// condition (`StatusReport::silent_since`, judged on a strongly consistent read) catches.
    pub(super) async fn open_attempts_before(
        &self,
        rollout_id: &str,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<SilentAttempt>> {
        let bound = format!("{:020}", micros(before).saturating_add(1).max(0));
        let items = self
            .query_partitions(
                INDEX,
                keys::index_shards(&keys::open_attempts(rollout_id)),
                &Range::Below(bound),
                false,
                usize::try_from(limit).unwrap_or(usize::MAX),
                &|_| Take::Keep,
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|it| {
                let device = get_s(it, "PK")?.strip_prefix(keys::DEVICE_PREFIX)?;
                let firmware_id = get_s(it, "SK")?.strip_prefix(keys::ATTEMPT_PREFIX)?;
                let a = attempt(it)?;
                Some(SilentAttempt {
                    device_id: DeviceId::parse(device).ok()?,
                    firmware_id: firmware_id.to_owned(),
                    status: a.status,
                    since: a.silent_since()?,
                })
            })
            .collect())
    }
}
