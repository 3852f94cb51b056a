//! `MetaStore` on one DynamoDB table. The key design and the request budget of every operation
//! are in `docs/aws-keys.md`; this module follows it.

mod catalog;
mod devices;
mod error;
mod health;
mod item;
mod keys;
mod observe;
mod offer_budgets;
mod open_attempts;
mod ops;
mod reports;
mod rollouts;
mod store;
mod table;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use ota_core::ports::ReleaseView;

pub use table::{INDEXES, KeyPair, TTL_ATTRIBUTE, TableDefinition, create_table, table_definition};

/// The default of `OTA_LAST_SEEN_PRECISION_S`, 6 hours: a fleet polling hourly writes one
/// check in six, and `last_seen` stays far finer than the days over which a silent device is
/// looked for (docs/aws-keys.md §Access patterns).
pub const LAST_SEEN_PRECISION_S: u64 = 6 * 3600;

/// Settings of the DynamoDB store beyond the table name.
#[derive(Debug, Clone)]
pub struct DynamoOptions {
    /// How long a Lambda instance reuses a device type's release view (`OTA_VIEW_CACHE_S`): a
    /// rollout created, edited or paused reaches devices served by a warm instance at most this
    /// late. Zero reads the view on every check.
    pub view_cache: Duration,
    /// OTA log entries expire (DynamoDB TTL) this long after they are written.
    pub log_retention: Duration,
    /// Audit events expire this long after they are written.
    pub audit_retention: Duration,
    /// How long one DynamoDB request may take (`OTA_DYNAMODB_TIMEOUT_MS`); the whole call,
    /// with the SDK's retries, may take two and a half times as long. Past it the caller gets
    /// `Unavailable` (503 with `Retry-After`): a device's HTTP client gives up after seconds,
    /// so a hung table must not hold its request longer.
    pub request_timeout: Duration,
    /// How stale a device's stored `last_seen` may be before a check that changes nothing else
    /// writes it (`OTA_LAST_SEEN_PRECISION_S`, `ota_core::last_seen_precision`): the steady
    /// poll then makes one read and no write. Zero writes on every check.
    pub last_seen_precision: Duration,
}

impl Default for DynamoOptions {
    fn default() -> Self {
        Self {
            view_cache: Duration::from_secs(5),
            log_retention: Duration::from_secs(90 * 86_400),
            audit_retention: Duration::from_secs(365 * 86_400),
            request_timeout: Duration::from_secs(2),
            last_seen_precision: Duration::from_secs(LAST_SEEN_PRECISION_S),
        }
    }
}

/// A device type's release view as this instance last read it. `generation` counts the
/// instance's own writes to the type: a read that began before a write must not be cached
/// after it.
#[derive(Default)]
struct CachedView {
    generation: u64,
    read: Option<(Instant, Arc<ReleaseView>)>,
}

/// Metadata in one DynamoDB table.
pub struct DynamoMeta {
    client: Client,
    table: String,
    options: DynamoOptions,
    views: Mutex<HashMap<String, CachedView>>,
    /// Reports moving one shard of a rollout's progress take turns within this process: they
    /// would otherwise race for the shard's condition, and every loser redo its reads.
    /// Across processes (Lambda instances) the condition still decides.
    progress_turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last commit time handed out (µs), so that this process's commits never tie.
    last_commit: AtomicI64,
}

impl DynamoMeta {
    /// A client from the shared SDK configuration with bounded waits (`request_timeout`): a
    /// DynamoDB that does not answer becomes a 503 within seconds rather than a request that
    /// hangs until the Lambda or the device gives up. Retries stay the SDK's standard ones.
    pub fn new(
        sdk: &aws_config::SdkConfig,
        table: impl Into<String>,
        options: DynamoOptions,
    ) -> Self {
        let attempt = options.request_timeout;
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(attempt)
            .operation_attempt_timeout(attempt)
            .operation_timeout(attempt * 5 / 2)
            .build();
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .build();
        Self::from_client(Client::from_conf(config), table, options)
    }

    /// For a caller that configures the client itself (tests counting requests do).
    pub fn from_client(client: Client, table: impl Into<String>, options: DynamoOptions) -> Self {
        Self {
            client,
            table: table.into(),
            options,
            views: Mutex::new(HashMap::new()),
            progress_turns: Mutex::new(HashMap::new()),
            last_commit: AtomicI64::new(0),
        }
    }

    /// Waits for this process's turn at the progress items `shards` (in a fixed order, so two
    /// reports never hold one each while waiting for the other).
    async fn progress_turn(&self, shards: &[String]) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut ids: Vec<&str> = shards.iter().map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        let locks: Vec<_> = match self.progress_turns.lock() {
            Ok(mut turns) => ids
                .into_iter()
                .map(|id| turns.entry(id.to_owned()).or_default().clone())
                .collect(),
            // A poisoned map only costs the optimisation: the conditions still decide.
            Err(_) => Vec::new(),
        };
        let mut guards = Vec::new();
        for lock in locks {
            guards.push(lock.lock_owned().await);
        }
        guards
    }

    /// Now, but later than every time this process handed out before, than every position in
    /// `after` (micros), and not before `at`: the position of a log entry committed now.
    fn commit_time(
        &self,
        at: time::OffsetDateTime,
        after: impl Iterator<Item = i64>,
    ) -> time::OffsetDateTime {
        let now = item::micros(time::OffsetDateTime::now_utc().max(at));
        let now = after.fold(now, |t, a| t.max(a.saturating_add(1)));
        let mut last = self.last_commit.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_commit.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return time::OffsetDateTime::from_unix_timestamp_nanos(
                        i128::from(next) * 1000,
                    )
                    .unwrap_or(at);
                }
                Err(seen) => last = seen,
            }
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
