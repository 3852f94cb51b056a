//! What devices call (docs/api.md §Device endpoints): check, download and status, translated to
//! the commands of `ota_core::cmd` and back.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ota_core::access::DeviceGrant;
use ota_core::cmd::check::{CheckAnswer, CheckInput};
use ota_core::cmd::download::Wanted;
use ota_core::cmd::report_status::{Reported, StatusInput};
use ota_core::device_health::BootReport;
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::manifest;
use ota_core::ports::SignedUrl;
use ota_core::release::Release;
use ota_core::report_plan::StatusOutcome;
use ota_core::status::OtaStatus;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::changed_state::ChangedState;
use crate::extract::{ApiJson, ApiPath};
use crate::problem::{ApiResult, Problem};
use crate::schema::{
    Channel, Count, EventId, Nonce, ReportedStatus, ResetReason, Sha256Hex, Text, U32,
};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub device_id: DeviceId,
    pub device_type: DeviceType,
    pub current_version: Version,
    #[schema(value_type = Option<Count>)]
    pub current_build: Option<u64>,
    #[schema(value_type = Option<U32>)]
    pub secure_version: Option<u32>,
    /// Defaults to `stable`.
    #[schema(value_type = Option<Channel>)]
    pub channel: Option<String>,
    /// Asks for a signed manifest even when no update is offered; echoed in it.
    #[schema(value_type = Option<Nonce>)]
    pub nonce: Option<String>,
    /// The validation hash of the running app: the SHA-256 appended to its image, as
    /// `esp_partition_get_sha256` gives it for the running partition (stored lowercase).
    #[schema(value_type = Option<Sha256Hex>)]
    pub running_image_sha256: Option<String>,
    /// What the device knows of its current boot.
    #[serde(default, deserialize_with = "ota_core::map_only::option")]
    pub boot: Option<BootRequest>,
}

/// A check's `boot` object (docs/api.md §3.1): every member optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BootRequest {
    /// `esp_reset_reason()` of this boot, lowercased without `ESP_RST_`.
    #[schema(value_type = Option<ResetReason>)]
    pub reset_reason: Option<String>,
    /// Boots since the device last installed an update.
    #[schema(value_type = Option<U32>)]
    pub boots_since_update: Option<u32>,
    /// Crashes counted since the last successful check (the device then starts again at 0).
    #[schema(value_type = Option<U32>)]
    pub crashes_since_last_check: Option<u32>,
    /// Seconds since this boot.
    #[schema(value_type = Option<Count>)]
    pub uptime_s: Option<u64>,
}

impl From<BootRequest> for BootReport {
    fn from(b: BootRequest) -> Self {
        BootReport {
            reset_reason: b.reset_reason,
            boots_since_update: b.boots_since_update,
            crashes_since_last_check: b.crashes_since_last_check,
            uptime_s: b.uptime_s,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckResponse {
    pub update_available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secure_version: Option<u32>,
    /// Capability URL: no credential needed, Range supported, valid until `url_expires_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option",
        default
    )]
    pub url_expires_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    /// Seconds until the next check: the deployment's interval, or sooner when an offer waits
    /// for its rollout's hourly budget of first offers.
    pub poll_interval_s: u64,
    /// The answer signed (JWS compact, ES256; keys at `/api/ota/keys`): with every offer, and
    /// with every answer to a check that sent a `nonce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

/// Asks the `check` command and says what it answered, signed when core says so.
pub(crate) async fn run_check(state: &AppState, input: CheckInput) -> ApiResult<CheckResponse> {
    let asked = input.clone();
    let answer = state.ota.check(input).await?;
    let claims = manifest::claims(&asked, &answer, state.ota.now(), state.ota.settings.url_ttl);
    let manifest = claims.map(|c| state.manifest_keys.sign(&c));
    let poll_interval_s = state.ota.settings.poll_interval_s;
    let no_update = |poll_interval_s| CheckResponse {
        update_available: false,
        firmware_id: None,
        version: None,
        build_number: None,
        file_size: None,
        file_hash: None,
        secure_version: None,
        download_url: None,
        url_expires_at: None,
        release_notes: None,
        rollout_id: None,
        poll_interval_s,
        manifest: manifest.clone(),
    };
    Ok(match answer {
        CheckAnswer::UpToDate => no_update(poll_interval_s),
        // Sooner than usual: the offer is only waiting for its rollout's budget.
        CheckAnswer::Deferred { retry_in_s } => no_update(poll_interval_s.min(retry_in_s)),
        CheckAnswer::Update { option, url } => {
            let r = &option.release;
            CheckResponse {
                update_available: true,
                firmware_id: Some(r.id.clone()),
                version: Some(r.version.to_string()),
                build_number: Some(r.build_number),
                file_size: Some(r.file_size),
                file_hash: Some(r.file_hash.clone()),
                secure_version: Some(r.secure_version),
                download_url: Some(url.url),
                url_expires_at: Some(url.expires_at),
                release_notes: r.release_notes.clone(),
                rollout_id: Some(option.rollout.id.clone()),
                poll_interval_s,
                manifest,
            }
        }
    })
}

/// Ask whether an update is available; registers or refreshes the device.
#[utoipa::path(post, path = "/api/ota/check", tag = "device", operation_id = "check_handler", request_body = CheckRequest,
    responses((status = 200, body = CheckResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 415, body = Problem)),
    security(("device_token" = [])))]
pub async fn check(
    State(state): State<AppState>,
    grant: DeviceGrant,
    ApiJson(req): ApiJson<CheckRequest>,
) -> ApiResult<(Extension<ChangedState>, Json<CheckResponse>)> {
    grant.check_device(&req.device_id, Some(&req.device_type))?;
    state.admit_device(&req.device_id)?;
    let input = CheckInput {
        device_id: req.device_id,
        device_type: req.device_type,
        current_version: req.current_version,
        current_build: req.current_build,
        secure_version: req.secure_version,
        channel: req.channel,
        nonce: req.nonce,
        running_image_sha256: req.running_image_sha256,
        boot: req.boot.map(BootReport::from),
    };
    let check = run_check(&state, input).await?;
    Ok(marked(check.update_available, check))
}

/// A check's answer with whether it offered: its one decision worth a log line.
pub(crate) fn marked<T>(offered: bool, answer: T) -> (Extension<ChangedState>, Json<T>) {
    (Extension(ChangedState(offered)), Json(answer))
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadUrl {
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A 302 to the capability URL, or the URL as JSON when the client asks for JSON.
pub(crate) fn redirect(url: SignedUrl, headers: &HeaderMap) -> Response {
    if wants_json(headers) {
        return Json(DownloadUrl {
            url: url.url,
            expires_at: url.expires_at,
        })
        .into_response();
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, url.url),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

/// Answers HEAD itself: ESP-IDF's partial download needs 200 + Content-Length, which a
/// presigned S3 URL would refuse (docs/esp-image.md §5).
pub(crate) fn head_answer(release: &Release) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_LENGTH, release.file_size.to_string()),
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::ACCEPT_RANGES, "bytes".to_owned()),
            (header::ETAG, format!("\"{}\"", release.file_hash)),
        ],
    )
        .into_response()
}

/// Redirect to a fresh capability URL (or return it as JSON with `Accept: application/json`).
#[utoipa::path(get, path = "/api/ota/download/{firmware_id}", tag = "device",
    params(("firmware_id" = String, Path),
        ("Accept" = Option<String>, Header, description = "`application/json` for the JSON form instead of a redirect")),
    responses((status = 302, description = "Redirect to a fresh capability URL",
                  headers(("Location" = String, description = "The capability URL"))),
              (status = 200, body = DownloadUrl, description = "With `Accept: application/json`"),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("device_token" = [])))]
pub async fn download(
    State(state): State<AppState>,
    grant: DeviceGrant,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let url = state.ota.download(&grant, &Wanted::Id(id)).await?;
    Ok(redirect(url, &headers))
}

/// 200 with Content-Length, no redirect.
#[utoipa::path(head, path = "/api/ota/download/{firmware_id}", tag = "device",
    params(("firmware_id" = String, Path)),
    responses((status = 200, description = "Content-Length of the image"), (status = 404)),
    security(("device_token" = [])))]
pub async fn download_head(
    State(state): State<AppState>,
    grant: DeviceGrant,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let release = state.ota.downloadable(&grant, &Wanted::Id(id)).await?;
    Ok(head_answer(&release))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub device_id: DeviceId,
    pub firmware_id: String,
    #[schema(value_type = ReportedStatus)]
    pub status: OtaStatus,
    #[schema(value_type = Option<Count>)]
    pub bytes_downloaded: Option<u64>,
    #[schema(maximum = 100)]
    pub progress_percent: Option<u8>,
    /// At most 1024 characters.
    #[schema(value_type = Option<Text<1024>>)]
    pub error_message: Option<String>,
    /// Idempotency key: a repeated event id is stored once and answered the same.
    #[schema(value_type = Option<EventId>)]
    pub event_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    pub accepted: bool,
    pub log_id: String,
    pub event_id: String,
    pub device_id: String,
    pub firmware_id: String,
    pub status: OtaStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

impl From<StatusOutcome> for StatusResponse {
    fn from(outcome: StatusOutcome) -> Self {
        let e = outcome.entry;
        StatusResponse {
            accepted: true,
            log_id: e.id,
            event_id: e.event_id,
            device_id: e.device_id.to_string(),
            firmware_id: e.firmware_id,
            status: e.status,
            recorded_at: e.created_at,
        }
    }
}

/// Report progress or the outcome of an update.
#[utoipa::path(post, path = "/api/ota/status", tag = "device", operation_id = "status_handler", request_body = StatusRequest,
    responses((status = 200, body = StatusResponse), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "a move backwards from a final state")),
    security(("device_token" = [])))]
pub async fn status(
    State(state): State<AppState>,
    grant: DeviceGrant,
    ApiJson(req): ApiJson<StatusRequest>,
) -> ApiResult<Json<StatusResponse>> {
    grant.check_device(&req.device_id, None)?;
    state.admit_device(&req.device_id)?;
    let input = StatusInput {
        device_id: req.device_id,
        release: Reported::Id(req.firmware_id),
        status: req.status,
        bytes_downloaded: req.bytes_downloaded,
        progress_percent: req.progress_percent,
        error_message: req.error_message,
        event_id: req.event_id,
    };
    let outcome = state.ota.report_status(&grant, input).await?;
    Ok(Json(outcome.into()))
}
