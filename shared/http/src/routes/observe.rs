//! Fleet metrics and the audit log.

use axum::Json;
use axum::extract::State;
use ota_core::access::Admin;
use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::metrics::FleetMetrics;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::extract::ApiQuery;
use crate::pagination::{ListResponse, PageQuery, since};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

/// Devices by type and version, the last 24 hours' outcomes, active rollouts with progress;
/// read from counters kept on write.
#[utoipa::path(get, path = "/api/ota/admin/metrics", tag = "observability",
    responses((status = 200, body = FleetMetrics), (status = 401, body = Problem)),
    security(("admin_token" = [])))]
pub async fn metrics(State(state): State<AppState>, admin: Admin) -> ApiResult<Json<FleetMetrics>> {
    Ok(Json(state.ota.fleet_metrics(&admin).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// e.g. `rollout.auto_pause`, `firmware.create`.
    pub action: Option<String>,
    pub target_id: Option<String>,
    /// RFC 3339; only events at or after it.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Opaque, from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// Every admin change and every automatic pause, newest first.
#[utoipa::path(get, path = "/api/ota/admin/audit", tag = "observability", params(AuditQuery),
    responses((status = 200, body = ListResponse<AuditEvent>), (status = 400, body = Problem)),
    security(("admin_token" = [])))]
pub async fn audit(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<ListResponse<AuditEvent>>> {
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .into_request()?;
    let filter = AuditFilter {
        action: q.action,
        target_id: q.target_id,
        since: since(q.since.as_deref())?,
    };
    Ok(Json(
        state.ota.list_audit(&admin, &filter, &page).await?.into(),
    ))
}
