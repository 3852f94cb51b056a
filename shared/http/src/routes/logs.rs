//! The OTA log: every accepted status report, newest first.

use axum::Json;
use axum::extract::State;
use ota_core::access::Admin;
use ota_core::device::{LogEntry, LogFilter};
use ota_core::ids::DeviceId;
use ota_core::status::OtaStatus;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::extract::ApiQuery;
use crate::pagination::{ListResponse, PageQuery, since};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    pub device_id: Option<DeviceId>,
    pub firmware_id: Option<String>,
    pub status: Option<OtaStatus>,
    /// RFC 3339; only entries at or after it.
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Opaque, from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The OTA log: every accepted status report, newest first.
#[utoipa::path(get, path = "/api/ota/admin/logs", tag = "logs", operation_id = "list_logs", params(LogQuery),
    responses((status = 200, body = ListResponse<LogEntry>), (status = 400, body = Problem)),
    security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<ListResponse<LogEntry>>> {
    let since = since(q.since.as_deref())?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .into_request()?;
    let filter = LogFilter {
        device_id: q.device_id,
        firmware_id: q.firmware_id,
        status: q.status,
        since,
    };
    Ok(Json(
        state.ota.list_logs(&admin, &filter, &page).await?.into(),
    ))
}
