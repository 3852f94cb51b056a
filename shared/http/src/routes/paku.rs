//! The paku OTA service's dialect (docs/api.md §Device endpoints, aliases): devices flashed with
//! that client name a release by version and their type as `device_model`, and its admin tools
//! create rollouts the same way. Each alias runs the same command as its `/api/ota` route.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json};
use ota_core::access::{Admin, DeviceGrant};
use ota_core::cmd::check::CheckInput;
use ota_core::cmd::create_rollout::{CreateRollout, RolloutOf};
use ota_core::cmd::download::Wanted;
use ota_core::cmd::report_status::{Reported, StatusInput};
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::metrics::RolloutWithProgress;
use ota_core::rollout::{TargetFilter, TargetType};
use ota_core::status::OtaStatus;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::changed_state::ChangedState;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::problem::{ApiResult, Problem};
use crate::routes::device_protocol::{
    CheckResponse, DownloadUrl, StatusResponse, head_answer, marked, redirect, run_check,
};
use crate::schema::{Channel, Nonce, Percent, ReportedStatus, RolloutName, Text, U32};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LegacyCheckQuery {
    pub device_id: DeviceId,
    pub device_model: DeviceType,
    pub current_version: Version,
    /// Defaults to `stable`.
    #[param(value_type = Option<Channel>)]
    pub channel: Option<String>,
    /// Asks for a signed manifest even when no update is offered; echoed in it.
    #[param(value_type = Option<Nonce>)]
    pub nonce: Option<String>,
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
#[utoipa::path(get, path = "/api/firmware/check", tag = "device (paku aliases)", operation_id = "legacy_check", params(LegacyCheckQuery),
    responses((status = 200, body = LegacyCheckResponse), (status = 400, body = Problem)),
    security(("device_token" = [])))]
pub async fn check(
    State(state): State<AppState>,
    grant: DeviceGrant,
    ApiQuery(q): ApiQuery<LegacyCheckQuery>,
) -> ApiResult<(Extension<ChangedState>, Json<LegacyCheckResponse>)> {
    grant.check_device(&q.device_id, Some(&q.device_model))?;
    state.admit_device(&q.device_id)?;
    let current_version = q.current_version.to_string();
    let input = CheckInput {
        device_id: q.device_id,
        device_type: q.device_model,
        current_version: q.current_version,
        current_build: None,
        secure_version: None,
        channel: q.channel,
        nonce: q.nonce,
        // The paku dialect's query carries neither.
        running_image_sha256: None,
        boot: None,
    };
    let check = run_check(&state, input).await?;
    Ok(marked(
        check.update_available,
        LegacyCheckResponse {
            latest_version: check.version.clone(),
            checksum_sha256: check.file_hash.clone(),
            current_version,
            check,
        },
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LegacyDownloadQuery {
    pub device_model: DeviceType,
}

fn by_version(version: &str, q: LegacyDownloadQuery) -> ApiResult<Wanted> {
    let version = Version::parse(version).map_err(|e| Problem::bad_request("version", e.0))?;
    Ok(Wanted::Version {
        device_type: q.device_model,
        version,
    })
}

/// Alias of `GET /api/ota/download/{firmware_id}` addressed by version.
#[utoipa::path(get, path = "/api/firmware/download/{version}", tag = "device (paku aliases)", operation_id = "legacy_download",
    params(("version" = Version, Path), LegacyDownloadQuery,
        ("Accept" = Option<String>, Header, description = "`application/json` for the JSON form instead of a redirect")),
    responses((status = 302, description = "Redirect to a fresh capability URL",
                  headers(("Location" = String, description = "The capability URL"))),
              (status = 200, body = DownloadUrl, description = "With `Accept: application/json`"),
              (status = 404, body = Problem)), security(("device_token" = [])))]
pub async fn download(
    State(state): State<AppState>,
    grant: DeviceGrant,
    ApiPath(version): ApiPath<String>,
    ApiQuery(q): ApiQuery<LegacyDownloadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let url = state
        .ota
        .download(&grant, &by_version(&version, q)?)
        .await?;
    Ok(redirect(url, &headers))
}

/// Alias of `HEAD /api/ota/download/{firmware_id}`: 200 with Content-Length, no redirect.
#[utoipa::path(head, path = "/api/firmware/download/{version}", tag = "device (paku aliases)", operation_id = "legacy_download_head",
    params(("version" = Version, Path), LegacyDownloadQuery),
    responses((status = 200, description = "Content-Length of the image"), (status = 404, body = Problem)),
    security(("device_token" = [])))]
pub async fn download_head(
    State(state): State<AppState>,
    grant: DeviceGrant,
    ApiPath(version): ApiPath<String>,
    ApiQuery(q): ApiQuery<LegacyDownloadQuery>,
) -> ApiResult<Response> {
    let release = state
        .ota
        .downloadable(&grant, &by_version(&version, q)?)
        .await?;
    Ok(head_answer(&release))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyStatusRequest {
    pub device_id: Option<DeviceId>,
    pub firmware_version: Version,
    #[schema(value_type = ReportedStatus)]
    pub status: OtaStatus,
    #[schema(maximum = 100)]
    pub progress_percent: Option<u8>,
    #[schema(value_type = Option<Text<1024>>)]
    pub error_message: Option<String>,
}

/// Alias of `POST /api/ota/status` for paku-dialect devices; the release is named by version.
#[utoipa::path(post, path = "/api/device/{device_id}/update-status", tag = "device (paku aliases)", operation_id = "legacy_status",
    params(("device_id" = String, Path)), request_body = LegacyStatusRequest,
    responses((status = 200, body = StatusResponse), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("device_token" = [])))]
pub async fn status(
    State(state): State<AppState>,
    grant: DeviceGrant,
    ApiPath(device_id): ApiPath<String>,
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
    grant.check_device(&device_id, None)?;
    state.admit_device(&device_id)?;
    let input = StatusInput {
        device_id,
        release: Reported::Version {
            device_type: grant.device_type()?,
            version: req.firmware_version,
        },
        status: req.status,
        bytes_downloaded: None,
        progress_percent: req.progress_percent,
        error_message: req.error_message,
        event_id: None,
    };
    let outcome = state.ota.report_status(&grant, input).await?;
    Ok(Json(outcome.into()))
}

/// The paku dialect names the release by version and device model.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyCreateRolloutRequest {
    #[schema(value_type = RolloutName)]
    pub name: String,
    pub firmware_id: Option<String>,
    pub firmware_version: Option<Version>,
    pub device_model: Option<DeviceType>,
    pub target_type: TargetType,
    #[schema(value_type = Option<Percent>)]
    pub rollout_percentage: Option<f64>,
    #[serde(default)]
    pub target_filter: TargetFilter,
    #[schema(value_type = Option<Percent>)]
    pub failure_threshold_percent: Option<f64>,
    #[schema(value_type = Option<U32>)]
    pub min_reports: Option<u32>,
    #[serde(default)]
    pub allow_downgrade: bool,
    /// `false` creates the rollout paused.
    pub is_active: Option<bool>,
}

/// Alias of `POST /api/ota/admin/rollouts` (paku dialect).
#[utoipa::path(post, path = "/api/admin/rollout/create", tag = "rollouts", operation_id = "legacy_create", request_body = LegacyCreateRolloutRequest,
    responses((status = 201, body = RolloutWithProgress), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("admin_token" = [])))]
pub async fn create_rollout(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<LegacyCreateRolloutRequest>,
) -> ApiResult<(StatusCode, Json<RolloutWithProgress>)> {
    let release = match (req.firmware_id, req.firmware_version, req.device_model) {
        (Some(id), _, _) => RolloutOf::Id(id),
        (None, Some(version), Some(device_type)) => RolloutOf::Version {
            device_type,
            version,
        },
        _ => {
            return Err(Problem::bad_request(
                "firmware_id",
                "name the release by firmware_id, or by firmware_version and device_model",
            ));
        }
    };
    let input = CreateRollout {
        name: req.name,
        release,
        target_type: req.target_type,
        rollout_percentage: req.rollout_percentage,
        target_filter: req.target_filter,
        failure_threshold_percent: req.failure_threshold_percent,
        min_reports: req.min_reports,
        allow_downgrade: req.allow_downgrade,
        paused: req.is_active == Some(false),
        stages: Vec::new(),
        health_gate: None,
        schedule: None,
        install_timeout_s: None,
        max_offers_per_hour: None,
    };
    let r = state.ota.create_rollout(&admin, input).await?;
    Ok((StatusCode::CREATED, Json(r)))
}
