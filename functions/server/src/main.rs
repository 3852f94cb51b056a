//! `ota-server`: every route of the OTA service in one process, on SQLite and local files (the
//! default) or on a DynamoDB table and an S3 bucket (`OTA_TABLE`, `OTA_BUCKET`).

mod body_stall_timeout;
mod config;
mod connection_timeouts;
mod secret;
mod serve;
mod workers;

/// jemalloc, not glibc's malloc: 17 % more steady polls a second for 10 MiB more peak memory
/// (docs/performance.md); hyper allocates an 8 KiB read buffer a request, past glibc's per-thread
/// cache, so each one took the arena lock and consolidated free chunks.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::Arc;

use anyhow::Context;
use ota_core::capability::CapabilitySigner;
use ota_core::ports::{BlobStore, MetaStore, SystemClock};
use ota_core::service::Service;
use ota_http::auth::Role;
use ota_http::throttle::DeviceThrottle;
use ota_http::{AppShared, AppState, full_router};
use ota_store_aws::DynamoOptions;
use ota_store_embedded::{LocalBlobs, SqliteMeta};
use std::time::Duration;

use crate::config::{Config, Storage};

/// Lifetime of the admin token printed at start.
const START_TOKEN_TTL_S: i64 = 30 * 24 * 3600;
/// Where the start token is written, beside the secret and as private.
const TOKEN_FILE: &str = "admin-token";

/// The main thread accepts connections and runs the hourly retention; connections are served
/// by threads of their own (`workers`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // A filter that does not parse is refused like any other setting, not silently replaced.
    let filter = match ota_http::config::var("RUST_LOG") {
        Some(directives) => tracing_subscriber::EnvFilter::try_new(&directives)
            .with_context(|| format!("RUST_LOG is not a log filter: '{directives}'"))?,
        None => tracing_subscriber::EnvFilter::new("info,tower_http=warn"),
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = Config::from_env()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let (secret, generated) =
        secret::load_or_create(&config.data_dir, config.common.jwt_secret.as_deref())?;
    let (manifest_keys, generated_keys) = secret::manifest_keys_or_create(
        &config.data_dir,
        config.common.manifest_keys.as_ref(),
        config.manifest_keys_file.as_deref(),
    )?;

    // Bound before anything hands out URLs: with port 0 only the bound address is reachable.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));

    let (meta, blobs, capability) = open_stores(&config, &secret, &public_url).await?;
    let auth = config.common.auth(&secret)?;

    let token = auth
        .mint_admin("ota-server", Role::Admin, START_TOKEN_TTL_S)
        .map_err(|p| anyhow::anyhow!("minting the start token: {}", p.detail))?;
    let token_path = config.data_dir.join(TOKEN_FILE);
    secret::write_private(&token_path, format!("{token}\n").as_bytes())?;

    let state = AppState::new(AppShared {
        ota: Service {
            meta,
            blobs,
            clock: Arc::new(SystemClock),
            settings: Arc::new(config.common.settings()),
            evaluations: Arc::default(),
        },
        auth: Arc::new(auth),
        capability,
        manifest_keys: Arc::new(manifest_keys),
        throttle: Arc::new(DeviceThrottle::new(config.common.device_rate_per_min)),
    });

    tokio::spawn(rollout_tick(state.ota.clone(), config.rollout_tick));
    tokio::spawn(retention(
        state.ota.meta.clone(),
        config.common.audit_retention,
        config.common.log_retention,
    ));

    // Tests and scripts read this line to find an ephemeral port.
    println!("ota-server listening on http://{addr}");
    println!("data directory: {}", config.data_dir.display());
    if let Storage::Aws { table, bucket, .. } = &config.storage {
        println!("storage: DynamoDB table {table}, S3 bucket {bucket}");
    }
    if let Some(signer) = &config.cloudfront {
        println!(
            "downloads: signed CloudFront URLs of https://{}/ (key {})",
            signer.domain(),
            signer.key_pair_id()
        );
    }
    if generated {
        println!(
            "generated a new JWT secret in {}",
            config.data_dir.join(secret::SECRET_FILE).display()
        );
        println!(
            "admin token (valid 30 days, also in {}):\n{token}",
            token_path.display()
        );
    } else {
        println!("admin token written to {}", token_path.display());
    }
    if let Some(path) = generated_keys {
        println!(
            "generated a manifest signing key in {} (published at /api/ota/keys)",
            path.display()
        );
    }
    if !config.common.device_auth {
        println!("warning: OTA_DEVICE_AUTH=off: device endpoints accept unauthenticated requests");
    }
    let app = full_router(state).layer(axum::middleware::from_fn_with_state(
        config.timeouts.body_stall,
        body_stall_timeout::body_stall_timeout,
    ));
    serve::serve(listener, app, config.timeouts, shutdown())
        .await
        .context("starting the serving threads")
}

type Stores = (
    Arc<dyn MetaStore>,
    Arc<dyn BlobStore>,
    Option<CapabilitySigner>,
);

/// The metadata and blob stores, and the signer of this process's own capability URLs (only
/// the embedded storage serves blobs itself; on S3 devices get signed CloudFront URLs when a
/// distribution is configured, else presigned S3 URLs).
async fn open_stores(config: &Config, secret: &[u8], public_url: &str) -> anyhow::Result<Stores> {
    match &config.storage {
        Storage::Embedded => {
            let meta = SqliteMeta::open(&config.data_dir.join("ota.sqlite3"))
                .map_err(|e| anyhow::anyhow!("opening the database: {e}"))?;
            let blobs = LocalBlobs::open(
                &config.data_dir.join("blobs"),
                public_url,
                CapabilitySigner::from_secret(secret),
            )
            .map_err(|e| anyhow::anyhow!("opening the blob directory: {e}"))?;
            Ok((
                Arc::new(meta),
                Arc::new(blobs),
                Some(CapabilitySigner::from_secret(secret)),
            ))
        }
        Storage::Aws { .. } => {
            let options = DynamoOptions {
                view_cache: config.common.view_cache,
                log_retention: config.common.log_retention,
                audit_retention: config.common.audit_retention,
                request_timeout: config.common.dynamodb_timeout,
                last_seen_precision: config.common.last_seen_precision,
            };
            let (meta, mut blobs) = ota_store_aws::stores_from_env(options)
                .await
                .map_err(|e| anyhow::anyhow!("configuring the AWS storage: {e}"))?;
            if let Some(signer) = &config.cloudfront {
                blobs = blobs.with_cloudfront(signer.clone());
            }
            Ok((Arc::new(meta), Arc::new(blobs), None))
        }
    }
}

/// Drops audit events and OTA log entries past their retention, at start and then hourly.
async fn retention(meta: Arc<dyn MetaStore>, audit: Duration, log: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = time::OffsetDateTime::now_utc();
        if let Err(e) = meta.purge(now - audit, now - log).await {
            tracing::warn!(error = %e, "retention purge failed; retrying in an hour");
        }
    }
}

/// Evaluates every rollout with stages or a health gate each `every` (docs/api.md §9.5): the
/// decisions no check or report set off (a soak that ended in a quiet hour).
async fn rollout_tick(ota: Service, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = ota.evaluate_rollouts().await {
            tracing::warn!(error = %e, "evaluating the rollouts failed; retrying at the next tick");
        }
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
