//! Rollouts (docs/api.md §Rollouts): which devices are offered a release, staged and stoppable.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use ota_core::access::Admin;
use ota_core::cmd::create_rollout::{CreateRollout, RolloutOf};
use ota_core::cmd::update_rollout::RolloutEdit;
use ota_core::health_gate::HealthGate;
use ota_core::ids::{DeviceId, DeviceType};
use ota_core::metrics::RolloutWithProgress;
use ota_core::offer_schedule::Schedule;
use ota_core::rollout::{RolloutFilter, RolloutState, TargetFilter, TargetType};
use ota_core::stages::Stage;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListResponse, PageQuery};
use crate::problem::{ApiResult, Problem};
use crate::schema::{Percent, RolloutName, U32};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRolloutRequest {
    #[schema(value_type = RolloutName)]
    pub name: String,
    pub firmware_id: String,
    pub target_type: TargetType,
    /// 0-100, for `canary`; defaults to 100.
    #[schema(value_type = Option<Percent>)]
    pub rollout_percentage: Option<f64>,
    #[serde(default)]
    pub target_filter: TargetFilter,
    /// Pause automatically when failed/(failed+success) exceeds this percentage.
    #[schema(value_type = Option<Percent>)]
    pub failure_threshold_percent: Option<f64>,
    /// Final reports needed before the threshold applies; defaults to 10.
    #[schema(value_type = Option<U32>)]
    pub min_reports: Option<u32>,
    #[serde(default)]
    pub allow_downgrade: bool,
    /// Stages that widen the offer by themselves (§9.5); then leave `rollout_percentage` out.
    #[serde(default, deserialize_with = "ota_core::map_only::list")]
    #[schema(max_items = 20)]
    pub stages: Vec<Stage>,
    /// Limits over which the rollout pauses itself, and under which a stage may pass.
    #[serde(default, deserialize_with = "ota_core::map_only::option")]
    pub health_gate: Option<HealthGate>,
    /// When new offers may be made (UTC).
    #[serde(default, deserialize_with = "ota_core::map_only::option")]
    pub schedule: Option<Schedule>,
    /// Seconds a device may stay silent after `downloading` or `installing` before the server
    /// records `timed_out`, a failure (§9.7).
    #[schema(minimum = 1, maximum = 2_592_000)]
    pub install_timeout_s: Option<u64>,
    /// At most this many devices get their first offer of this rollout in any rolling hour
    /// (§9.6); the others hear `update_available: false` and a shorter `poll_interval_s`.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_offers_per_hour: Option<u32>,
}

/// Roll a ready release out to every device of its type, a canary share, named devices or groups.
#[utoipa::path(post, path = "/api/ota/admin/rollouts", tag = "rollouts", operation_id = "create_rollout", request_body = CreateRolloutRequest,
    responses((status = 201, body = RolloutWithProgress), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateRolloutRequest>,
) -> ApiResult<(StatusCode, Json<RolloutWithProgress>)> {
    let input = CreateRollout {
        name: req.name,
        release: RolloutOf::Id(req.firmware_id),
        target_type: req.target_type,
        rollout_percentage: req.rollout_percentage,
        target_filter: req.target_filter,
        failure_threshold_percent: req.failure_threshold_percent,
        min_reports: req.min_reports,
        allow_downgrade: req.allow_downgrade,
        paused: false,
        stages: req.stages,
        health_gate: req.health_gate,
        schedule: req.schedule,
        install_timeout_s: req.install_timeout_s,
        max_offers_per_hour: req.max_offers_per_hour,
    };
    let r = state.ota.create_rollout(&admin, input).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RolloutListQuery {
    pub device_type: Option<DeviceType>,
    pub firmware_id: Option<String>,
    pub state: Option<RolloutState>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Opaque, from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Rollouts with their progress, newest first.
#[utoipa::path(get, path = "/api/ota/admin/rollouts", tag = "rollouts", operation_id = "list_rollouts", params(RolloutListQuery),
    responses((status = 200, body = ListResponse<RolloutWithProgress>)), security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<RolloutListQuery>,
) -> ApiResult<Json<ListResponse<RolloutWithProgress>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .into_request()?;
    let filter = RolloutFilter {
        device_type: q.device_type,
        firmware_id: q.firmware_id,
        state: q.state,
    };
    Ok(Json(
        state
            .ota
            .list_rollouts(&admin, &filter, &page)
            .await?
            .into(),
    ))
}

/// One rollout with its progress.
#[utoipa::path(get, path = "/api/ota/admin/rollouts/{id}", tag = "rollouts", operation_id = "get_rollout", params(("id" = String, Path)),
    responses((status = 200, body = RolloutWithProgress), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<RolloutWithProgress>> {
    Ok(Json(state.ota.get_rollout(&admin, &id).await?))
}

/// One device a `specific` rollout names.
#[derive(Debug, Serialize, ToSchema)]
pub struct NamedDevice {
    pub device_id: DeviceId,
}

/// The devices a `specific` rollout names, by id (none for the other target types).
#[utoipa::path(get, path = "/api/ota/admin/rollouts/{id}/devices", tag = "rollouts", operation_id = "list_rollout_devices",
    params(("id" = String, Path), PageQuery),
    responses((status = 200, body = ListResponse<NamedDevice>), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn named_devices(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListResponse<NamedDevice>>> {
    let page = state
        .ota
        .list_named_devices(&admin, &id, &q.into_request()?)
        .await?;
    Ok(Json(ListResponse {
        items: page
            .items
            .into_iter()
            .map(|device_id| NamedDevice { device_id })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRolloutRequest {
    #[schema(value_type = Option<Percent>)]
    pub rollout_percentage: Option<f64>,
    /// `active`, `paused`, `aborted` or `completed` (the last two are final and offer nothing).
    pub state: Option<RolloutState>,
    /// The revision this edit is based on (or send it as `If-Match`); a stale one is 409.
    pub revision: Option<u64>,
    /// `promote`: start the next stage now (a staged rollout not in its last stage).
    pub action: Option<RolloutAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAction {
    Promote,
}

fn if_match(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_matches('"'))
        .and_then(|s| s.parse().ok())
        .map(Some)
        .ok_or_else(|| Problem::bad_request("If-Match", "must be a rollout revision number"))
}

/// Change the percentage or the state, or promote to the next stage, with optimistic concurrency.
#[utoipa::path(patch, path = "/api/ota/admin/rollouts/{id}", tag = "rollouts", operation_id = "patch_rollout", params(("id" = String, Path)),
    request_body = PatchRolloutRequest,
    responses((status = 200, body = RolloutWithProgress), (status = 400, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "stale revision, a move out of aborted/completed, a percentage of a staged rollout, a promotion of a rollout in its last stage or without stages"),
              (status = 422, body = Problem, description = "on DynamoDB, a re-activation whose rollouts would exceed the 400 KB item")),
    security(("admin_token" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PatchRolloutRequest>,
) -> ApiResult<Json<RolloutWithProgress>> {
    let edit = RolloutEdit {
        rollout_percentage: req.rollout_percentage,
        state: req.state,
        revision: req.revision.or(if_match(&headers)?),
        promote: req.action == Some(RolloutAction::Promote),
    };
    Ok(Json(state.ota.update_rollout(&admin, &id, edit).await?))
}
