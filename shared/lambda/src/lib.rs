//! What every Lambda function of the OTA service shares: the state built once per instance from
//! the environment, JSON logs, EMF metrics, and serving a function's routes through
//! `lambda_http` (or, for `rollout-tick`, its scheduled events through `lambda_runtime`). Each
//! function's `main` is one call: `ota_lambda::run(Function::Check)`.

pub mod access_log;
pub mod emf;
mod function;
pub mod request_log;
pub mod rollout_tick;
pub mod secret;

use std::sync::Arc;

use ota_core::ports::SystemClock;
use ota_core::service::Service;
use ota_http::config::{CommonConfig, ConfigError};
use ota_http::throttle::DeviceThrottle;
use ota_http::{AppShared, AppState};
use ota_store_aws::{CloudFrontSigner, DynamoMeta, DynamoOptions, S3Blobs};

pub use function::Function;
/// The error a function's `main` returns.
pub type Error = lambda_http::Error;

/// Why a Lambda instance could not start: the message says which setting to fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InitError(pub String);

impl From<ConfigError> for InitError {
    fn from(e: ConfigError) -> Self {
        InitError(e.0)
    }
}

/// The state of one Lambda instance from its environment: `OTA_TABLE`, `OTA_BUCKET`, the AWS
/// SDK's own variables, the JWT secret (`OTA_JWT_SECRET_ARN` in Secrets Manager, or `OTA_JWT_SECRET`; [`secret`]),
/// the manifest keys (`OTA_MANIFEST_KEYS_ARN` or `OTA_MANIFEST_KEYS`, likewise),
/// `OTA_VIEW_CACHE_S` (5) and the shared `OTA_*` settings of [`CommonConfig`]. Devices get signed
/// CloudFront URLs with `OTA_CLOUDFRONT_DOMAIN` (its key from `OTA_CLOUDFRONT_KEY_ARN` or
/// `OTA_CLOUDFRONT_PRIVATE_KEY`, likewise), else presigned S3 URLs, so there is no capability
/// signer. The device rate limit (`OTA_DEVICE_RATE_PER_MIN`) is kept per instance.
pub async fn state_from_env() -> Result<AppState, InitError> {
    let common = CommonConfig::from_env()?;
    let source = secret::SecretSource::from_env(common.jwt_secret.clone())?;
    let keys_source = secret::KeysSource::from_env(common.manifest_keys.clone())?;
    let cloudfront_source = secret::CloudFrontKeySource::from_env(common.cloudfront.as_ref())?;
    let sdk = ota_store_aws::load_sdk_config().await;
    let secret = source.resolve(&sdk).await?;
    let manifest_keys = keys_source.resolve(&sdk).await?;
    let (meta, mut blobs) =
        ota_store_aws::stores_from_sdk(&sdk, dynamo_options(&common)).map_err(InitError)?;
    // There is a key source exactly when a distribution is configured (`from_env`).
    if let (Some(config), Some(key_source)) = (&common.cloudfront, cloudfront_source) {
        let key = key_source.resolve(&sdk).await?;
        blobs = blobs.with_cloudfront(CloudFrontSigner::new(
            &config.domain,
            &config.key_pair_id,
            key,
        ));
    }
    Ok(AppState::new(AppShared {
        ota: service(&common, meta, blobs),
        auth: Arc::new(common.auth(secret.as_bytes())?),
        capability: None,
        manifest_keys: Arc::new(manifest_keys),
        throttle: Arc::new(DeviceThrottle::new(common.device_rate_per_min)),
    }))
}

/// The use cases alone, on the table and bucket of the environment (`OTA_TABLE`, `OTA_BUCKET`,
/// the SDK's variables and the shared `OTA_*` settings): what a function that answers no
/// request needs (`rollout-tick`). No secret is read, so its role needs none.
pub async fn service_from_env() -> Result<Service, InitError> {
    let common = CommonConfig::from_env()?;
    let sdk = ota_store_aws::load_sdk_config().await;
    let (meta, blobs) =
        ota_store_aws::stores_from_sdk(&sdk, dynamo_options(&common)).map_err(InitError)?;
    Ok(service(&common, meta, blobs))
}

fn dynamo_options(common: &CommonConfig) -> DynamoOptions {
    DynamoOptions {
        view_cache: common.view_cache,
        log_retention: common.log_retention,
        audit_retention: common.audit_retention,
        request_timeout: common.dynamodb_timeout,
        last_seen_precision: common.last_seen_precision,
    }
}

fn service(common: &CommonConfig, meta: DynamoMeta, blobs: S3Blobs) -> Service {
    Service {
        meta: Arc::new(meta),
        blobs: Arc::new(blobs),
        clock: Arc::new(SystemClock),
        settings: Arc::new(common.settings()),
        evaluations: Arc::default(),
    }
}

/// JSON logs, one line per event, with the fields of the current span (the `request` span of
/// [`request_log::RequestLogLayer`] carries the Lambda request id). `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// Serves `function` until the Lambda runtime stops the instance. The state is built once,
/// before the first invocation; a configuration error ends the instance at init with its
/// message in the log.
pub async fn run(function: Function) -> Result<(), Error> {
    init_logging();
    match function.routes() {
        Some(routes) => serve_http(function, routes).await,
        // EventBridge invokes it on its schedule, with an event that is not a request.
        None => rollout_tick::run(function).await,
    }
}

/// Serves `routes` (with the common layers) to the API Gateway requests of `function`.
async fn serve_http(function: Function, routes: axum::Router<AppState>) -> Result<(), Error> {
    let started = async {
        let log = request_log::RequestLogLayer::from_env(function.name())?;
        Ok::<_, InitError>((log, state_from_env().await?))
    };
    let (log, state) = ready(function, started.await)?;
    let service = tower::ServiceBuilder::new()
        .layer(log)
        .service(ota_http::router::finish(routes, state));
    lambda_http::run(service).await
}

/// What the instance of `function` built at init, or why it could not (logged: the instance
/// ends with it, and the log is where the operator looks).
fn ready<T>(function: Function, init: Result<T, InitError>) -> Result<T, Error> {
    match init {
        Ok(built) => {
            tracing::info!(function = function.name(), "ready");
            Ok(built)
        }
        Err(e) => {
            tracing::error!(function = function.name(), error = %e, "cannot start");
            Err(e.into())
        }
    }
}
