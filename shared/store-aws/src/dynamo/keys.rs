//! Key formats of every item type (the table of `docs/aws-keys.md`). Releases keep the `FW`
//! prefixes they were first stored under.

use ota_core::ids::Version;

pub fn device_type(name: &str) -> String {
    format!("DT#{name}")
}
pub const POLICY: &str = "POLICY";
pub const VIEW: &str = "VIEW";
/// The (type, version) uniqueness item; sorts before `POLICY` and `VIEW`, so that one Query of
/// `SK >= POLICY` reads exactly the policy and the release view.
pub fn version_claim(v: &Version) -> String {
    format!("FWV#{}", v.sort_key())
}
pub const DEVICE_TYPES: &str = "DTLIST";

pub fn release(id: &str) -> String {
    format!("FW#{id}")
}
pub const RELEASE_SK: &str = "FW";
pub const ALL_RELEASES: &str = "FW";
pub fn releases_of_type(name: &str) -> String {
    format!("FWT#{name}")
}
/// Newest first when read descending. A space separates the parts: it sorts below every
/// character of a version sort key, so a shorter key ranks lower as it must.
pub fn release_order(sort_key: &str, build: u64, id: &str) -> String {
    format!("{sort_key} {build:020} {id}")
}

/// The sparse index partition of the releases of a type whose image has a validation hash:
/// the one a device reporting that hash runs.
pub fn release_image(device_type: &str, image_sha256: &str) -> String {
    format!("IMG#{device_type}#{image_sha256}")
}
/// A release's health counters, in the release's partition.
pub const HEALTH_SK: &str = "HEALTH";
/// Sparse index partition: the health items, so that metrics list them without a scan.
pub const ALL_HEALTH: &str = "RHEALTH";
/// Prefix of a health item's counter of one reset reason (`rst_panic`).
pub const RESET_PREFIX: &str = "rst_";

pub fn rollout(id: &str) -> String {
    format!("RO#{id}")
}
pub const ROLLOUT_SK: &str = "RO";
/// A rollout's offer budget (`offer_budget`), beside its record.
pub const BUDGET_SK: &str = "BUDGET";
/// The GSI3 partition (sharded by device, [`index_shard`]) of a rollout's open attempts.
pub fn open_attempts(rollout_id: &str) -> String {
    format!("OPEN#{rollout_id}")
}
pub const PROGRESS_SK: &str = "PROGRESS";
/// A rollout's counters are split over this many items, each under a partition key of its own
/// (a device's attempts always count in the shard of its id), so that no one item or partition
/// takes every report of a rollout: each shard is written one report at a time (its `rev`),
/// ~35-65 reports a second, ~1,100-2,100 per rollout (docs/aws-keys.md §Contention and limits). 32 keys fit one `BatchGetItem` with the
/// unsharded item written before sharding, which the totals still include.
pub const PROGRESS_SHARDS: u32 = 32;
pub fn progress_shard(rollout_id: &str, shard: u32) -> String {
    format!("RO#{rollout_id}#P{shard:02}")
}
/// The devices a `specific` rollout names, in its partition: sorted slices of at most
/// [`NAMED_CHUNK_IDS`] ids, numbered from 0, read one by one to list them in order.
pub fn named_chunk(chunk: u32) -> String {
    format!("NAMED#{chunk:05}")
}
/// Ids per chunk: 2,000 ids of at most 128 characters are ~262 KB of JSON, under DynamoDB's
/// 400 KB item limit whatever the ids.
pub const NAMED_CHUNK_IDS: usize = 2_000;
pub const ALL_ROLLOUTS: &str = "RO";
pub fn rollouts_of_type(name: &str) -> String {
    format!("ROT#{name}")
}
/// Sparse index partition: only active rollouts carry it.
pub const ACTIVE_ROLLOUTS: &str = "ROACTIVE";

pub fn device(id: &str) -> String {
    format!("{DEVICE_PREFIX}{id}")
}
pub const DEVICE_PREFIX: &str = "DEV#";
/// Sorts before `AN#`, `AT#` and `EV#`: `SK < "B"` reads the device, the rollouts that name it
/// and its attempts, not its log.
pub const DEVICE_SK: &str = "#DEV";
/// The refresh of the device's `last_seen` and `last_boot` written apart from its record
/// (`devices.rs`, `Refresh`): outside every index, so 1 write unit where the record takes 3.
/// Below [`DEVICE_STATE_END`]: the check's one Query reads it with the record.
pub const SEEN_SK: &str = "#SEEN";
pub const DEVICE_STATE_END: &str = "B";
/// The device's membership in a `specific` rollout that names it, in the device's partition:
/// `AN#` sorts after `#DEV` and before `AT#`, below [`DEVICE_STATE_END`], so the check's one
/// Query of the device reads its memberships at no extra request. A device that never checked
/// in can be named: its partition then holds memberships and no `#DEV` item.
pub fn named_in(rollout_id: &str) -> String {
    format!("{NAMED_IN_PREFIX}{rollout_id}")
}
pub const NAMED_IN_PREFIX: &str = "AN#";
pub fn attempt(release_id: &str) -> String {
    format!("AT#{release_id}")
}
pub const ATTEMPT_PREFIX: &str = "AT#";
pub fn event(event_id: &str) -> String {
    format!("EV#{event_id}")
}
pub fn devices_of_type(name: &str) -> String {
    format!("DEVT#{name}")
}
pub const ALL_DEVICES: &str = "DEVALL";

/// The index partitions every status report or device write lands in (all log entries, a
/// release's log entries, all devices, the devices of a type) are split into this many, by the
/// device's id (`item::shard`): one index partition takes ~1,000 writes a second, which a fleet
/// reporting together passes (docs/scale.md). Listings read every shard and merge them
/// (`DynamoMeta::query_partitions`); 16 shards take ~16,000 writes a second.
pub const INDEX_SHARDS: u32 = 16;
/// The shard of the index partition `base` that the items of `device` go to. Device types
/// and release ids have no `#`, so no shard's key is another partition's.
pub fn index_shard(base: &str, device: &str) -> String {
    format!("{base}#{:02}", super::item::shard(device, INDEX_SHARDS))
}
/// Every partition of the sharded index partition `base`: its shards, and `base` itself, where
/// items written before sharding stay until they are rewritten or expire.
pub fn index_shards(base: &str) -> Vec<String> {
    (0..INDEX_SHARDS)
        .map(|n| format!("{base}#{n:02}"))
        .chain([base.to_owned()])
        .collect()
}

pub fn log_of_device(id: &str) -> String {
    format!("LOGD#{id}")
}
pub fn log_of_release(id: &str) -> String {
    format!("LOGF#{id}")
}
pub const ALL_LOGS: &str = "LOG";

pub fn audit(id: &str) -> String {
    format!("AU#{id}")
}
pub const AUDIT_SK: &str = "AU";
pub const ALL_AUDIT: &str = "AUDIT";

/// Counters are sharded by device id so that no single partition takes the whole fleet's
/// writes: each report adds to the hour's outcome counter of its shard and each device move
/// to the fleet counters of its shard, in a transaction (2 WCU), so 32 shards take ~16,000 a
/// second (docs/scale.md). Readers sum every shard, so items counted under fewer shards
/// before (8 until 2026-12-06) still count.
pub const COUNTER_SHARDS: u32 = 32;
pub fn fleet(shard: u32) -> String {
    format!("FLEET#{shard}")
}
pub fn fleet_version(device_type: &str, version: &Version) -> String {
    format!("{device_type}#{version}")
}
pub fn outcomes(shard: u32) -> String {
    format!("OUT#{shard}")
}
pub fn outcome_hour(hour: i64, status: &str) -> String {
    format!("{hour:012}#{status}")
}
pub fn hour_floor(hour: i64) -> String {
    format!("{hour:012}")
}
