//! Route groups. Each Lambda mounts the groups it owns; `ota-server` mounts them all.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::openapi;
use crate::problem::Problem;
use crate::routes::{
    blob, device_protocol, device_registry, device_types, health, keys, logs, observe, paku,
    releases, rollouts,
};
use crate::state::AppState;

/// JSON bodies are small; only the upload routes and the rollout creates take more.
const JSON_BODY_LIMIT: usize = 256 * 1024;

/// A rollout create may name up to `MAX_NAMED_DEVICES` (100,000) devices: ids of ~45
/// characters on average fit, and the request, escaped inside a Lambda event, stays under
/// Lambda's 6 MB payload.
pub const ROLLOUT_BODY_LIMIT: usize = 5 * 1024 * 1024;

/// `check`: the device poll.
pub fn check_routes() -> Router<AppState> {
    Router::new()
        .route("/api/ota/check", post(device_protocol::check))
        .route("/api/firmware/check", get(paku::check))
}

/// `download`: redirects to capability URLs, HEAD with Content-Length.
pub fn download_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/ota/download/{firmware_id}",
            get(device_protocol::download).head(device_protocol::download_head),
        )
        .route(
            "/api/firmware/download/{version}",
            get(paku::download).head(paku::download_head),
        )
}

/// `status`: device progress reports.
pub fn status_routes() -> Router<AppState> {
    Router::new()
        .route("/api/ota/status", post(device_protocol::status))
        .route("/api/device/{device_id}/update-status", post(paku::status))
}

/// `admin-upload`: publishing releases.
pub fn upload_routes() -> Router<AppState> {
    // The multipart route streams to storage, which enforces the upload cap itself.
    Router::new()
        .route(
            "/api/ota/admin/upload",
            post(releases::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/ota/admin/firmware",
            post(releases::create).get(releases::list),
        )
        .route(
            "/api/ota/admin/firmware/{id}/finalize",
            post(releases::finalize),
        )
}

/// `admin-rollout`: releases, device types, rollouts, devices.
pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/ota/admin/firmware/{id}",
            get(releases::get)
                .patch(releases::patch)
                .delete(releases::deactivate),
        )
        .route("/api/ota/admin/device-types", get(device_types::list))
        .route(
            "/api/ota/admin/device-types/{name}",
            get(device_types::get).put(device_types::put),
        )
        .route(
            "/api/ota/admin/rollouts",
            post(rollouts::create)
                .layer(DefaultBodyLimit::max(ROLLOUT_BODY_LIMIT))
                .get(rollouts::list),
        )
        .route(
            "/api/ota/admin/rollouts/{id}",
            get(rollouts::get).patch(rollouts::patch),
        )
        .route(
            "/api/ota/admin/rollouts/{id}/devices",
            get(rollouts::named_devices),
        )
        .route(
            "/api/admin/rollout/create",
            post(paku::create_rollout).layer(DefaultBodyLimit::max(ROLLOUT_BODY_LIMIT)),
        )
        .route("/api/ota/admin/devices", get(device_registry::list))
        .route(
            "/api/ota/admin/devices/{id}",
            get(device_registry::get).patch(device_registry::patch),
        )
        .route(
            "/api/ota/admin/devices/{id}/token",
            post(device_registry::mint_token),
        )
}

/// `admin-metrics`: OTA log, fleet metrics, audit log.
pub fn observe_routes() -> Router<AppState> {
    Router::new()
        .route("/api/ota/admin/logs", get(logs::list))
        .route("/api/ota/admin/metrics", get(observe::metrics))
        .route("/api/ota/admin/audit", get(observe::audit))
}

/// Health, the published contract and the manifest keys: what every function answers alike.
pub fn meta_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::health))
        .route("/api/ota/openapi.json", get(openapi::serve))
        .route("/api/ota/keys", get(keys::keys))
}

/// The embedded server's own capability endpoint (AWS mode uses presigned S3 URLs instead).
pub fn blob_routes() -> Router<AppState> {
    Router::new().route(
        "/api/ota/blob/{*key}",
        get(blob::get_blob)
            .head(blob::head_blob)
            .put(blob::put_blob)
            .layer(DefaultBodyLimit::disable()),
    )
}

/// Every route, as `ota-server` serves them.
pub fn full_router(state: AppState) -> Router {
    finish(
        Router::new()
            .merge(check_routes())
            .merge(download_routes())
            .merge(status_routes())
            .merge(upload_routes())
            .merge(admin_routes())
            .merge(observe_routes())
            .merge(meta_routes())
            .merge(blob_routes()),
        state,
    )
}

/// Common layers: problem+json for unknown routes and methods, panics caught as a 500 problem
/// (a bug, but never a dropped connection).
pub fn finish(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(middleware::from_fn(close_after_refused_body))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// An error is often answered before the request body is read (a bad credential, an expired
/// upload URL, an upload over the limit), and hyper then closes the connection rather than read
/// the rest. Saying so (RFC 9112 §9.6) keeps a keep-alive client, such as a device or CI, from
/// sending its next request into a closed socket.
async fn close_after_refused_body(req: Request, next: Next) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    let mut resp = next.run(req).await;
    if has_body && (resp.status().is_client_error() || resp.status().is_server_error()) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this route does not accept that method",
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "an internal error occurred",
    )
    .into_response()
}
