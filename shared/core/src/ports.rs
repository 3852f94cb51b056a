//! What the domain needs from the world: metadata (SQLite or DynamoDB), blobs (files or S3), a
//! clock and a way to sign device credentials. Both storage adapters pass one conformance suite,
//! so the commands never know which they talk to.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditFilter};
use crate::device::{CheckIn, Device, DeviceFilter, DeviceSnapshot, LogEntry, LogFilter};
use crate::device_health::HealthCounts;
use crate::device_type::DeviceTypePolicy;
use crate::ids::{DeviceId, DeviceType, Version};
use crate::install_timeout::SilentAttempt;
use crate::metrics::FleetMetrics;
use crate::offer_budget::Taken;
use crate::progress::RolloutProgress;
use crate::release::{Release, ReleaseFilter};
use crate::report_plan::{StatusOutcome, StatusReport};
use crate::rollout::{Rollout, RolloutFilter};
use crate::rollout_evaluation::Change;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A conditional write lost: a duplicate key, a stale revision, a refused state move.
    #[error("{0}")]
    Conflict(String),
    #[error("the pagination cursor is not valid")]
    BadCursor,
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// A record would be larger than the backend stores in one item (DynamoDB's 400 KB): the
    /// request asks for more than can be kept, and nothing of it was stored (422).
    #[error("{0}")]
    ItemTooLarge(String),
    /// The backend is down or throttling; the caller may retry later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupted state; logged, never shown in detail to clients.
    #[error("storage failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 500;
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// One release a device type may be offered: an active rollout and its release.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseOption {
    pub rollout: Rollout,
    pub release: Release,
}

/// Everything `check` needs to know about a device type, fetched in one read and cacheable.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReleaseView {
    pub chip: Option<String>,
    /// Shared, so that an answer can hold the option it offers without copying it.
    pub options: Vec<Arc<ReleaseOption>>,
}

/// How old a cached release view may be when a check answers with an offer from it
/// ([`MetaStore::release_view_to_offer`]): a second, so that a paused rollout stops reaching
/// devices within about that, while the steady poll (which offers nothing) keeps reusing its
/// view for the whole of the store's cache time.
pub const OFFER_VIEW_MAX_AGE: Duration = Duration::from_secs(1);

/// What a check offers a device given its snapshot: None keeps the last offer as it is.
pub type OfferFn<'a> = dyn Fn(&DeviceSnapshot) -> Option<crate::device::Offer> + Send + Sync + 'a;

#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Liveness of the backend, for `/health`.
    async fn ping(&self) -> StoreResult<()>;

    async fn get_device_type(&self, name: &DeviceType) -> StoreResult<Option<DeviceTypePolicy>>;
    async fn list_device_types(&self, page: &PageRequest) -> StoreResult<Page<DeviceTypePolicy>>;
    async fn put_device_type(&self, policy: &DeviceTypePolicy) -> StoreResult<()>;
    /// Creates the policy unless one exists; returns the one in force either way.
    async fn create_device_type_if_absent(
        &self,
        policy: &DeviceTypePolicy,
    ) -> StoreResult<DeviceTypePolicy>;

    /// Conflict when (`device_type`, version) exists.
    async fn insert_release(&self, release: &Release) -> StoreResult<()>;
    async fn get_release(&self, id: &str) -> StoreResult<Option<Release>>;
    async fn find_release(
        &self,
        device_type: &DeviceType,
        version: &Version,
    ) -> StoreResult<Option<Release>>;
    /// Newest version first (SemVer precedence, then build number).
    async fn list_releases(
        &self,
        filter: &ReleaseFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Release>>;
    /// Replaces the record `expect` (as the writer read it) with `release` and records `event`,
    /// both or neither; Conflict unless the stored record is still that one (same state and
    /// `updated_at`), so that writers working from a stale copy never undo each other (reload and
    /// retry), and only the write that made a change has an audit event for it.
    async fn update_release(
        &self,
        release: &Release,
        expect: &Release,
        event: &AuditEvent,
    ) -> StoreResult<()>;

    /// Stores a new rollout and, for a `specific` one, the devices it names (`named`, each
    /// once): each device's membership is read with the device ([`DeviceSnapshot::named_in`])
    /// and listed by [`MetaStore::list_named_devices`]. A rollout is never visible before all
    /// of its memberships are stored; a failure may leave memberships of a rollout that does not
    /// exist, which name nothing.
    async fn insert_rollout(&self, rollout: &Rollout, named: &[DeviceId]) -> StoreResult<()>;
    /// The devices a rollout names, by id (empty for a rollout that names none).
    async fn list_named_devices(
        &self,
        rollout_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<DeviceId>>;
    async fn get_rollout(&self, id: &str) -> StoreResult<Option<Rollout>>;
    async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Rollout>>;
    /// Writes `rollout` (whose revision is already bumped); Conflict unless the stored revision
    /// is still `expect_revision`.
    async fn update_rollout(&self, rollout: &Rollout, expect_revision: u64) -> StoreResult<()>;
    /// Writes a rollout's decision (`rollout_evaluation`): the rollout over
    /// `change.expect_revision` and its audit event, both or neither, so that of two
    /// evaluators deciding together one writes and the other gets Conflict.
    async fn decide_rollout(&self, change: &Change) -> StoreResult<()>;

    /// The active rollouts of a device type with their releases, and the type's chip. Shared,
    /// because stores serve it from a cache on the check path.
    async fn release_view(&self, device_type: &DeviceType) -> StoreResult<Arc<ReleaseView>>;
    /// The release view an answer that offers a release is made from: at most
    /// [`OFFER_VIEW_MAX_AGE`] old, so that a rollout paused anywhere (by rule 4 in another
    /// instance, by an admin) stops being offered by every instance within that. A store whose
    /// view is never stale (SQLite's cache is dropped on write) has nothing more to do.
    async fn release_view_to_offer(
        &self,
        device_type: &DeviceType,
    ) -> StoreResult<Arc<ReleaseView>> {
        self.release_view(device_type).await
    }

    /// Registers or refreshes the device and returns it as `check` needs it (as it was before
    /// any offer). The release `offer` picks from that snapshot, if any, is remembered in the
    /// same write, so that a check costs one read and one write of the device (the AWS store's
    /// request budget). `offer` may run more than once (a store retrying a lost race) and must
    /// be pure. The record is `Device::checked_in` of the stored one, given the release of the
    /// device's type whose `image_sha256` is `check_in.image_to_match(stored)` when that asks
    /// for one (one keyed read; the oldest such release, though validation makes it unique);
    /// the `HealthDelta` it returns is added to that release's counters in the same atomic
    /// write.
    async fn record_check(
        &self,
        check_in: &CheckIn,
        offer: &OfferFn<'_>,
    ) -> StoreResult<DeviceSnapshot>;
    async fn get_device(&self, id: &DeviceId) -> StoreResult<Option<Device>>;
    /// Replaces the device's groups; `NotFound` for a device that never checked in.
    async fn set_device_groups(&self, id: &DeviceId, groups: &[String]) -> StoreResult<Device>;
    async fn list_devices(
        &self,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Device>>;

    /// Records a report as `report_plan` decides, idempotently by (device, event id), all in one
    /// atomic step: the log entry, the attempt, the rollouts' progress and, when rule 4 says so,
    /// the pause and its audit event. A move the state machine refuses is a Conflict and stores
    /// nothing.
    async fn record_status(&self, report: &StatusReport) -> StoreResult<StatusOutcome>;
    /// The attempts counted in rollout `rollout_id` that are open (`downloading` or
    /// `installing`) with their last report at or before `before`, oldest first, at most
    /// `limit`: read from an index of open attempts, never by scanning the devices.
    async fn silent_attempts(
        &self,
        rollout_id: &str,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<SilentAttempt>>;
    /// Takes one first offer at `at` from rollout `rollout_id`'s budget of `limit` an hour
    /// (`offer_budget`), in one write conditioned on the budget as read: of racing takers,
    /// never more than the budget are granted.
    async fn take_offer(
        &self,
        rollout_id: &str,
        limit: u32,
        at: OffsetDateTime,
    ) -> StoreResult<Taken>;
    /// The counters of one rollout (zero before any report).
    async fn rollout_progress(&self, rollout_id: &str) -> StoreResult<RolloutProgress>;
    /// The health counters of one release (zero before any check moved them).
    async fn release_health(&self, firmware_id: &str) -> StoreResult<HealthCounts>;
    /// Fleet metrics from counters kept on write, release health included.
    async fn fleet_metrics(&self, now: OffsetDateTime) -> StoreResult<FleetMetrics>;

    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;
    /// Newest first.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>>;
    /// Retention: drops audit events and OTA log entries older than the given times.
    async fn purge(
        &self,
        audit_before: OffsetDateTime,
        log_before: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Newest first.
    async fn list_logs(
        &self,
        filter: &LogFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<LogEntry>>;
}

/// A byte stream that may borrow from the request it comes from (a multipart field).
pub type BorrowedByteStream<'a> = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'a>>;
pub type ByteStream = BorrowedByteStream<'static>;

/// Size and SHA-256 of a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMeta {
    pub size: u64,
    pub sha256: [u8; 32],
}

#[derive(Debug, Clone, PartialEq)]
pub struct SignedUrl {
    pub url: String,
    pub expires_at: OffsetDateTime,
}

/// Where and how a client uploads bytes directly to blob storage.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadTarget {
    pub url: String,
    pub method: &'static str,
    pub headers: Vec<(String, String)>,
    pub expires_at: OffsetDateTime,
}

/// An inclusive byte range already clamped to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// A capability URL that fetches the object with no other credential until it expires.
    async fn download_url(&self, key: &str, ttl: Duration) -> StoreResult<SignedUrl>;
    /// A capability URL that accepts exactly `size` bytes hashing to `sha256` (hex).
    async fn upload_url(
        &self,
        key: &str,
        size: u64,
        sha256_hex: &str,
        ttl: Duration,
    ) -> StoreResult<UploadTarget>;
    /// Stores a stream atomically (all or nothing), refusing more than `limit` bytes.
    async fn put<'a>(
        &self,
        key: &str,
        body: BorrowedByteStream<'a>,
        limit: u64,
    ) -> StoreResult<BlobMeta>;
    /// Stores a stream only when it is exactly `expect` (size and SHA-256), as a presigned S3
    /// PUT bound to `x-amz-checksum-sha256` does; returns what the stream held either way.
    /// Other bytes are never committed, so an object already at `key` stays as it was.
    async fn put_exact<'a>(
        &self,
        key: &str,
        body: BorrowedByteStream<'a>,
        expect: &BlobMeta,
    ) -> StoreResult<BlobMeta>;
    async fn get(&self, key: &str, range: Option<ByteRange>) -> StoreResult<ByteStream>;
    /// The object's size, or None when it does not exist.
    async fn size(&self, key: &str) -> StoreResult<Option<u64>>;
    async fn delete(&self, key: &str) -> StoreResult<()>;
}

/// Time, behind a port so that tests of expiry need not sleep.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// Signs device credentials (JWTs at the HTTP edge), so that minting one is a command like any
/// other admin action.
pub trait DeviceCredentials: Send + Sync {
    /// A credential for `device_id` of `device_type`, valid until `expires_at` (None: no
    /// expiry); an `Internal` error when it cannot be signed.
    fn mint(
        &self,
        device_id: &DeviceId,
        device_type: &DeviceType,
        expires_at: Option<OffsetDateTime>,
    ) -> StoreResult<String>;
}
