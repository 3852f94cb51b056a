//! Device endpoints: check, download, status, and the paku-dialect aliases.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ota_core::check::{CheckAnswer, check};
use ota_core::device::CheckIn;
use ota_core::firmware::Firmware;
use ota_core::ids::{DeviceId, DeviceType, Version, new_id};
use ota_core::ports::StatusReport;
use ota_core::status::OtaStatus;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::DeviceAuth;
use crate::extract::{ApiJson, ApiQuery};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;
use crate::validate;

const MAX_ERROR_MESSAGE_CHARS: usize = 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub device_id: DeviceId,
    pub device_type: DeviceType,
    pub current_version: Version,
    pub current_build: Option<u64>,
    pub secure_version: Option<u32>,
    /// Defaults to `stable`.
    pub channel: Option<String>,
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
    pub poll_interval_s: u64,
}

async fn run_check(state: &AppState, check_in: CheckIn) -> ApiResult<CheckResponse> {
    let answer = check(
        state.meta.as_ref(),
        state.blobs.as_ref(),
        &check_in,
        state.settings.url_ttl,
    )
    .await?;
    let poll_interval_s = state.settings.poll_interval_s;
    Ok(match answer {
        CheckAnswer::UpToDate => CheckResponse {
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
        },
        CheckAnswer::Update { option, url } => {
            let fw = &option.firmware;
            CheckResponse {
                update_available: true,
                firmware_id: Some(fw.id.clone()),
                version: Some(fw.version.to_string()),
                build_number: Some(fw.build_number),
                file_size: Some(fw.file_size),
                file_hash: Some(fw.file_hash.clone()),
                secure_version: Some(fw.secure_version),
                download_url: Some(url.url),
                url_expires_at: Some(url.expires_at),
                release_notes: fw.release_notes.clone(),
                rollout_id: Some(option.rollout.id.clone()),
                poll_interval_s,
            }
        }
    })
}

/// Ask whether an update is available; registers or refreshes the device.
#[utoipa::path(post, path = "/api/ota/check", tag = "device", request_body = CheckRequest,
    responses((status = 200, body = CheckResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 415, body = Problem)),
    security(("device_token" = [])))]
pub async fn check_handler(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiJson(req): ApiJson<CheckRequest>,
) -> ApiResult<Json<CheckResponse>> {
    auth.require_device(&req.device_id, Some(&req.device_type))?;
    state.admit_device(&req.device_id)?;
    let check_in = CheckIn {
        device_id: req.device_id,
        device_type: req.device_type,
        current_version: req.current_version,
        current_build: req.current_build,
        secure_version: req.secure_version.unwrap_or(0),
        channel: validate::channel("channel", req.channel)?,
        at: state.clock.now(),
    };
    run_check(&state, check_in).await.map(Json)
}

/// A firmware a device may fetch: exists, active, of its own type.
fn downloadable(auth: &DeviceAuth, fw: Option<Firmware>) -> ApiResult<Firmware> {
    let fw = fw
        .filter(|f| f.is_offerable())
        .ok_or_else(|| Problem::not_found("no such active firmware"))?;
    auth.require_type(Some(&fw.device_type))?;
    Ok(fw)
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

async fn redirect_to_blob(
    state: &AppState,
    fw: &Firmware,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let url = state
        .blobs
        .download_url(&fw.blob_key(), state.settings.url_ttl)
        .await?;
    if wants_json(headers) {
        return Ok(Json(DownloadUrl {
            url: url.url,
            expires_at: url.expires_at,
        })
        .into_response());
    }
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, url.url),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response())
}

/// Answers HEAD itself: ESP-IDF's partial download needs 200 + Content-Length, which a
/// presigned S3 URL would refuse (ESP-IMAGE.md §5).
fn head_answer(fw: &Firmware) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_LENGTH, fw.file_size.to_string()),
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::ACCEPT_RANGES, "bytes".to_owned()),
            (header::ETAG, format!("\"{}\"", fw.file_hash)),
        ],
    )
        .into_response()
}

/// Redirect to a fresh capability URL (or return it as JSON with `Accept: application/json`).
#[utoipa::path(get, path = "/api/ota/download/{firmware_id}", tag = "device",
    params(("firmware_id" = String, Path)),
    responses((status = 302, description = "Location: capability URL"), (status = 200, body = DownloadUrl),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("device_token" = [])))]
pub async fn download(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let fw = downloadable(&auth, state.meta.get_firmware(&id).await?)?;
    redirect_to_blob(&state, &fw, &headers).await
}

/// 200 with Content-Length, no redirect.
#[utoipa::path(head, path = "/api/ota/download/{firmware_id}", tag = "device",
    params(("firmware_id" = String, Path)),
    responses((status = 200, description = "Content-Length of the image"), (status = 404)),
    security(("device_token" = [])))]
pub async fn download_head(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let fw = downloadable(&auth, state.meta.get_firmware(&id).await?)?;
    Ok(head_answer(&fw))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    pub device_id: DeviceId,
    pub firmware_id: String,
    pub status: OtaStatus,
    pub bytes_downloaded: Option<u64>,
    pub progress_percent: Option<u8>,
    /// At most 1024 characters.
    pub error_message: Option<String>,
    /// Idempotency key: a repeated event id is stored once and answered the same.
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

struct ReportInput {
    device_id: DeviceId,
    firmware: Firmware,
    status: OtaStatus,
    bytes_downloaded: Option<u64>,
    progress_percent: Option<u8>,
    error_message: Option<String>,
    event_id: Option<String>,
}

async fn record_report(state: &AppState, input: ReportInput) -> ApiResult<StatusResponse> {
    if input.progress_percent.is_some_and(|p| p > 100) {
        return Err(Problem::bad_request(
            "progress_percent",
            "must be between 0 and 100",
        ));
    }
    let error_message = validate::text(
        "error_message",
        input.error_message,
        MAX_ERROR_MESSAGE_CHARS,
    )?;
    let event_id = match input.event_id {
        Some(e) => {
            validate::opaque_key("event_id", &e)?;
            e
        }
        None => new_id(),
    };
    let report = StatusReport {
        event_id,
        device_id: input.device_id,
        device_type: input.firmware.device_type.clone(),
        firmware_id: input.firmware.id.clone(),
        version: input.firmware.version.clone(),
        status: input.status,
        bytes_downloaded: input.bytes_downloaded,
        progress_percent: input.progress_percent,
        error_message,
        at: state.clock.now(),
    };
    let outcome = state.meta.record_status(&report).await?;
    let e = outcome.entry;
    Ok(StatusResponse {
        accepted: true,
        log_id: e.id,
        event_id: e.event_id,
        device_id: e.device_id.to_string(),
        firmware_id: e.firmware_id,
        status: e.status,
        recorded_at: e.created_at,
    })
}

/// Report progress or the outcome of an update.
#[utoipa::path(post, path = "/api/ota/status", tag = "device", request_body = StatusRequest,
    responses((status = 200, body = StatusResponse), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "a move backwards from a final state")),
    security(("device_token" = [])))]
pub async fn status_handler(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiJson(req): ApiJson<StatusRequest>,
) -> ApiResult<Json<StatusResponse>> {
    auth.require_device(&req.device_id, None)?;
    state.admit_device(&req.device_id)?;
    let firmware = state
        .meta
        .get_firmware(&req.firmware_id)
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!("firmware {} does not exist", req.firmware_id))
        })?;
    auth.require_type(Some(&firmware.device_type))?;
    record_report(
        &state,
        ReportInput {
            device_id: req.device_id,
            firmware,
            status: req.status,
            bytes_downloaded: req.bytes_downloaded,
            progress_percent: req.progress_percent,
            error_message: req.error_message,
            event_id: req.event_id,
        },
    )
    .await
    .map(Json)
}

// ---- paku OTA service dialect -------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
pub struct LegacyCheckQuery {
    pub device_id: DeviceId,
    pub device_model: DeviceType,
    pub current_version: Version,
    pub channel: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyCheckResponse {
    #[serde(flatten)]
    pub check: CheckResponse,
    pub current_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<String>,
}

/// Alias of `POST /api/ota/check` for paku-dialect devices.
#[utoipa::path(get, path = "/api/firmware/check", tag = "device (paku aliases)", params(LegacyCheckQuery),
    responses((status = 200, body = LegacyCheckResponse), (status = 400, body = Problem)),
    security(("device_token" = [])))]
pub async fn legacy_check(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ApiQuery(q): ApiQuery<LegacyCheckQuery>,
) -> ApiResult<Json<LegacyCheckResponse>> {
    auth.require_device(&q.device_id, Some(&q.device_model))?;
    state.admit_device(&q.device_id)?;
    let current_version = q.current_version.to_string();
    let check_in = CheckIn {
        device_id: q.device_id,
        device_type: q.device_model,
        current_version: q.current_version,
        current_build: None,
        secure_version: 0,
        channel: validate::channel("channel", q.channel)?,
        at: state.clock.now(),
    };
    let check = run_check(&state, check_in).await?;
    Ok(Json(LegacyCheckResponse {
        latest_version: check.version.clone(),
        checksum_sha256: check.file_hash.clone(),
        current_version,
        check,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct LegacyDownloadQuery {
    pub device_model: DeviceType,
}

async fn legacy_firmware(
    state: &AppState,
    auth: &DeviceAuth,
    version: &str,
    model: &DeviceType,
) -> ApiResult<Firmware> {
    let version = Version::parse(version).map_err(|e| Problem::bad_request("version", e.0))?;
    auth.require_type(Some(model))?;
    downloadable(auth, state.meta.find_firmware(model, &version).await?)
}

/// Alias of `GET /api/ota/download/{firmware_id}` addressed by version.
#[utoipa::path(get, path = "/api/firmware/download/{version}", tag = "device (paku aliases)",
    params(("version" = String, Path), LegacyDownloadQuery),
    responses((status = 302), (status = 404, body = Problem)), security(("device_token" = [])))]
pub async fn legacy_download(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(version): Path<String>,
    ApiQuery(q): ApiQuery<LegacyDownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let fw = legacy_firmware(&state, &auth, &version, &q.device_model).await?;
    redirect_to_blob(&state, &fw, &headers).await
}

/// Alias of `HEAD /api/ota/download/{firmware_id}`: 200 with Content-Length, no redirect.
#[utoipa::path(head, path = "/api/firmware/download/{version}", tag = "device (paku aliases)",
    params(("version" = String, Path), LegacyDownloadQuery),
    responses((status = 200, description = "Content-Length of the image"), (status = 404, body = Problem)),
    security(("device_token" = [])))]
pub async fn legacy_download_head(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(version): Path<String>,
    ApiQuery(q): ApiQuery<LegacyDownloadQuery>,
) -> ApiResult<Response> {
    let fw = legacy_firmware(&state, &auth, &version, &q.device_model).await?;
    Ok(head_answer(&fw))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyStatusRequest {
    pub device_id: Option<DeviceId>,
    pub firmware_version: Version,
    pub status: OtaStatus,
    pub progress_percent: Option<u8>,
    pub error_message: Option<String>,
}

/// Alias of `POST /api/ota/status` for paku-dialect devices; the release is named by version.
#[utoipa::path(post, path = "/api/device/{device_id}/update-status", tag = "device (paku aliases)",
    params(("device_id" = String, Path)), request_body = LegacyStatusRequest,
    responses((status = 200, body = StatusResponse), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("device_token" = [])))]
pub async fn legacy_status(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(device_id): Path<String>,
    ApiJson(req): ApiJson<LegacyStatusRequest>,
) -> ApiResult<Json<StatusResponse>> {
    let device_id =
        DeviceId::parse(&device_id).map_err(|e| Problem::bad_request("device_id", e.0))?;
    if req.device_id.as_ref().is_some_and(|d| *d != device_id) {
        return Err(Problem::bad_request(
            "device_id",
            "the body's device_id differs from the path's",
        ));
    }
    auth.require_device(&device_id, None)?;
    state.admit_device(&device_id)?;
    let device_type = match &auth.0 {
        Some(c) => DeviceType::parse(&c.device_type).map_err(|e| Problem::forbidden(e.0))?,
        None => state
            .meta
            .get_device(&device_id)
            .await?
            .map(|d| d.device_type)
            .ok_or_else(|| Problem::not_found("unknown device: it must check in first"))?,
    };
    let firmware = state
        .meta
        .find_firmware(&device_type, &req.firmware_version)
        .await?
        .ok_or_else(|| {
            Problem::not_found(format!(
                "no firmware {} for {device_type}",
                req.firmware_version
            ))
        })?;
    record_report(
        &state,
        ReportInput {
            device_id,
            firmware,
            status: req.status,
            bytes_downloaded: None,
            progress_percent: req.progress_percent,
            error_message: req.error_message,
            event_id: None,
        },
    )
    .await
    .map(Json)
}
