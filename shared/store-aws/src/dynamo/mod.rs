//! `MetaStore` on one DynamoDB table. The key design and the request budget of every operation
//! are in `docs/aws-keys.md`; this module follows it.

mod catalog;
mod devices;
mod error;
mod item;
mod keys;
mod observe;
mod ops;
mod reports;
mod rollouts;
mod store;
mod table;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use ota_core::ports::ReleaseView;

pub use table::{INDEXES, TTL_ATTRIBUTE, create_table};

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
}

impl Default for DynamoOptions {
    fn default() -> Self {
        Self {
            view_cache: Duration::from_secs(5),
            log_retention: Duration::from_secs(90 * 86_400),
            audit_retention: Duration::from_secs(365 * 86_400),
        }
    }
}

/// Metadata in one DynamoDB table.
pub struct DynamoMeta {
    client: Client,
    table: String,
    options: DynamoOptions,
    views: Mutex<HashMap<String, (Instant, ReleaseView)>>,
    /// Reports moving one rollout's progress take turns within this process: they would
    /// otherwise all race for the progress item's condition, and every loser redo its reads.
    /// Across processes (Lambda instances) the condition still decides.
    progress_turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl DynamoMeta {
    /// A client from the shared SDK configuration with bounded waits: a DynamoDB that does not
    /// answer becomes a 503 within seconds rather than a request that hangs until the Lambda
    /// or the device gives up. Retries stay the SDK's standard ones (3 attempts, jittered).
    pub fn new(
        sdk: &aws_config::SdkConfig,
        table: impl Into<String>,
        options: DynamoOptions,
    ) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(2))
            .operation_attempt_timeout(Duration::from_secs(5))
            .operation_timeout(Duration::from_secs(12))
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
        }
    }

    /// Waits for this process's turn at the progress of `rollouts` (in a fixed order, so two
    /// reports never hold one each while waiting for the other).
    async fn progress_turn(&self, rollouts: &[&String]) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut ids: Vec<&String> = rollouts.to_vec();
        ids.sort();
        ids.dedup();
        let locks: Vec<_> = match self.progress_turns.lock() {
            Ok(mut turns) => ids
                .into_iter()
                .map(|id| turns.entry(id.clone()).or_default().clone())
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

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }
}
