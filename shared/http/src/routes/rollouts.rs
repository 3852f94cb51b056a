//! Rollouts: which devices are offered a release, staged and stoppable.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use ota_core::firmware::Firmware;
use ota_core::ids::{DeviceType, Version, new_id};
use ota_core::metrics::RolloutWithProgress;
use ota_core::progress::RolloutProgress;
use ota_core::rollout::{Rollout, RolloutFilter, RolloutState, TargetFilter, TargetType};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit_trail;
use crate::auth::{Admin, Role};
use crate::extract::{ApiJson, ApiQuery};
use crate::pagination::{ListResponse, PageQuery};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRolloutRequest {
    pub name: String,
    pub firmware_id: String,
    pub target_type: TargetType,
    /// 0–100, for `canary`; defaults to 100.
    pub rollout_percentage: Option<f64>,
    #[serde(default)]
    pub target_filter: TargetFilter,
    /// Pause automatically when failed/(failed+success) exceeds this percentage.
    pub failure_threshold_percent: Option<f64>,
    /// Final reports needed before the threshold applies; defaults to 10.
    pub min_reports: Option<u32>,
    #[serde(default)]
    pub allow_downgrade: bool,
}

/// The paku dialect names the release by version and device model.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegacyCreateRolloutRequest {
    pub name: String,
    pub firmware_id: Option<String>,
    pub firmware_version: Option<Version>,
    pub device_model: Option<DeviceType>,
    pub target_type: TargetType,
    pub rollout_percentage: Option<f64>,
    #[serde(default)]
    pub target_filter: TargetFilter,
    pub failure_threshold_percent: Option<f64>,
    pub min_reports: Option<u32>,
    #[serde(default)]
    pub allow_downgrade: bool,
    /// `false` creates the rollout paused.
    pub is_active: Option<bool>,
}

const DEFAULT_MIN_REPORTS: u32 = 10;

fn percentage(field: &str, p: f64) -> ApiResult<f64> {
    if p.is_finite() && (0.0..=100.0).contains(&p) {
        Ok(p)
    } else {
        Err(Problem::bad_request(field, "must be between 0 and 100"))
    }
}

fn check_target(target_type: TargetType, filter: &TargetFilter) -> ApiResult<()> {
    match target_type {
        TargetType::Specific if filter.device_ids.is_empty() => Err(Problem::bad_request(
            "target_filter.device_ids",
            "a specific rollout needs at least one device id",
        )),
        TargetType::Group if filter.groups.is_empty() => Err(Problem::bad_request(
            "target_filter.groups",
            "a group rollout needs at least one group",
        )),
        _ => Ok(()),
    }
}

async fn create_rollout(
    state: &AppState,
    admin: &Admin,
    req: CreateRolloutRequest,
    initial: RolloutState,
    firmware: Firmware,
) -> ApiResult<RolloutWithProgress> {
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Problem::bad_request(
            "name",
            "name must be 1-200 characters",
        ));
    }
    check_target(req.target_type, &req.target_filter)?;
    if !firmware.is_offerable() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "firmware-not-ready",
            format!(
                "firmware {} is {} and {}: only a ready, active release can be rolled out",
                firmware.id,
                firmware.state.as_str(),
                if firmware.is_active {
                    "active"
                } else {
                    "inactive"
                }
            ),
        ));
    }
    let now = state.clock.now();
    let rollout = Rollout {
        id: new_id(),
        name,
        firmware_id: firmware.id.clone(),
        device_type: firmware.device_type.clone(),
        target_type: req.target_type,
        rollout_percentage: percentage(
            "rollout_percentage",
            req.rollout_percentage.unwrap_or(100.0),
        )?,
        target_filter: req.target_filter,
        failure_threshold_percent: req
            .failure_threshold_percent
            .map(|t| percentage("failure_threshold_percent", t))
            .transpose()?,
        min_reports: req.min_reports.unwrap_or(DEFAULT_MIN_REPORTS),
        allow_downgrade: req.allow_downgrade,
        state: initial,
        revision: 1,
        created_at: now,
        updated_at: now,
    };
    state.meta.insert_rollout(&rollout).await?;
    audit_trail::record(
        state,
        admin,
        "rollout.create",
        "rollout",
        &rollout.id,
        serde_json::to_value(&rollout).unwrap_or_default(),
    )
    .await?;
    Ok(RolloutWithProgress {
        rollout,
        progress: RolloutProgress::default(),
    })
}

async fn with_progress(state: &AppState, rollout: Rollout) -> ApiResult<RolloutWithProgress> {
    Ok(RolloutWithProgress {
        progress: state.meta.rollout_progress(&rollout.id).await?,
        rollout,
    })
}

async fn firmware_by_id(state: &AppState, id: &str) -> ApiResult<Firmware> {
    state.meta.get_firmware(id).await?.ok_or_else(|| {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-firmware",
            format!("firmware {id} does not exist"),
        )
    })
}

#[utoipa::path(post, path = "/api/ota/admin/rollouts", tag = "rollouts", request_body = CreateRolloutRequest,
    responses((status = 201, body = RolloutWithProgress), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("admin_token" = [])))]
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<CreateRolloutRequest>,
) -> ApiResult<(StatusCode, Json<RolloutWithProgress>)> {
    admin.require(Role::Admin)?;
    let fw = firmware_by_id(&state, &req.firmware_id).await?;
    let r = create_rollout(&state, &admin, req, RolloutState::Active, fw).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Alias of `POST /api/ota/admin/rollouts` (paku dialect).
#[utoipa::path(post, path = "/api/admin/rollout/create", tag = "rollouts", request_body = LegacyCreateRolloutRequest,
    responses((status = 201, body = RolloutWithProgress), (status = 400, body = Problem), (status = 422, body = Problem)),
    security(("admin_token" = [])))]
pub async fn legacy_create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<LegacyCreateRolloutRequest>,
) -> ApiResult<(StatusCode, Json<RolloutWithProgress>)> {
    admin.require(Role::Admin)?;
    let fw = match (&req.firmware_id, &req.firmware_version, &req.device_model) {
        (Some(id), _, _) => firmware_by_id(&state, id).await?,
        (None, Some(v), Some(m)) => state.meta.find_firmware(m, v).await?.ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-firmware",
                format!("no firmware {v} for device model {m}"),
            )
        })?,
        _ => {
            return Err(Problem::bad_request(
                "firmware_id",
                "name the release by firmware_id, or by firmware_version and device_model",
            ));
        }
    };
    let initial = if req.is_active == Some(false) {
        RolloutState::Paused
    } else {
        RolloutState::Active
    };
    let r = create_rollout(
        &state,
        &admin,
        CreateRolloutRequest {
            name: req.name,
            firmware_id: fw.id.clone(),
            target_type: req.target_type,
            rollout_percentage: req.rollout_percentage,
            target_filter: req.target_filter,
            failure_threshold_percent: req.failure_threshold_percent,
            min_reports: req.min_reports,
            allow_downgrade: req.allow_downgrade,
        },
        initial,
        fw,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RolloutListQuery {
    pub device_type: Option<DeviceType>,
    pub firmware_id: Option<String>,
    pub state: Option<RolloutState>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/ota/admin/rollouts", tag = "rollouts", params(RolloutListQuery),
    responses((status = 200, body = ListResponse<RolloutWithProgress>)), security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<RolloutListQuery>,
) -> ApiResult<Json<ListResponse<RolloutWithProgress>>> {
    admin.require(Role::Viewer)?;
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
    let page = state.meta.list_rollouts(&filter, &page).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for r in page.items {
        items.push(with_progress(&state, r).await?);
    }
    Ok(Json(ListResponse {
        items,
        next_cursor: page.next_cursor,
    }))
}

async fn load(state: &AppState, id: &str) -> ApiResult<Rollout> {
    state
        .meta
        .get_rollout(id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("rollout {id} does not exist")))
}

#[utoipa::path(get, path = "/api/ota/admin/rollouts/{id}", tag = "rollouts", params(("id" = String, Path)),
    responses((status = 200, body = RolloutWithProgress), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<RolloutWithProgress>> {
    admin.require(Role::Viewer)?;
    let r = load(&state, &id).await?;
    with_progress(&state, r).await.map(Json)
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchRolloutRequest {
    pub rollout_percentage: Option<f64>,
    /// `active`, `paused`, `aborted` or `completed` (the last two are final and offer nothing).
    pub state: Option<RolloutState>,
    /// The revision this edit is based on (or send it as `If-Match`); a stale one is 409.
    pub revision: Option<u64>,
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

/// Change the percentage or the state, with optimistic concurrency.
#[utoipa::path(patch, path = "/api/ota/admin/rollouts/{id}", tag = "rollouts", params(("id" = String, Path)),
    request_body = PatchRolloutRequest,
    responses((status = 200, body = RolloutWithProgress), (status = 400, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem, description = "stale revision, or a move out of aborted/completed")),
    security(("admin_token" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PatchRolloutRequest>,
) -> ApiResult<Json<RolloutWithProgress>> {
    admin.require(Role::Admin)?;
    let mut r = load(&state, &id).await?;
    let before = serde_json::json!({
        "state": r.state, "rollout_percentage": r.rollout_percentage, "revision": r.revision,
    });
    let expected = req.revision.or(if_match(&headers)?).unwrap_or(r.revision);
    if expected != r.revision {
        return Err(Problem::conflict(format!(
            "rollout {id} is at revision {}, not {expected}: reload and retry",
            r.revision
        )));
    }
    if let Some(p) = req.rollout_percentage {
        let p = percentage("rollout_percentage", p)?;
        if matches!(r.state, RolloutState::Aborted | RolloutState::Completed) {
            return Err(Problem::conflict(format!(
                "rollout {id} is {}: it can no longer change",
                r.state.as_str()
            )));
        }
        r.rollout_percentage = p;
    }
    if let Some(next) = req.state {
        let finished = matches!(r.state, RolloutState::Aborted | RolloutState::Completed);
        if finished && next != r.state {
            return Err(Problem::conflict(format!(
                "a rollout cannot move from {} to {}",
                r.state.as_str(),
                next.as_str()
            )));
        }
        r.state = next;
    }
    r.revision = expected + 1;
    r.updated_at = state.clock.now();
    state.meta.update_rollout(&r, expected).await?;
    let after = serde_json::json!({
        "state": r.state, "rollout_percentage": r.rollout_percentage, "revision": r.revision,
    });
    audit_trail::record(
        &state,
        &admin,
        "rollout.update",
        "rollout",
        &r.id,
        serde_json::json!({"before": before, "after": after}),
    )
    .await?;
    with_progress(&state, r).await.map(Json)
}
