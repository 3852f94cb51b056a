//! The device registry: list, detail with recent OTA history, groups, device credentials.

use axum::Json;
use axum::extract::{Path, State};
use ota_core::device::{Device, DeviceFilter, LogEntry, LogFilter};
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::ports::PageRequest;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::audit_trail;
use crate::auth::{Admin, Role};
use crate::extract::{ApiJson, ApiQuery};
use crate::pagination::{ListResponse, PageQuery};
use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

const RECENT_LOG_ENTRIES: u32 = 20;
const MAX_GROUPS: usize = 32;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeviceListQuery {
    pub device_type: Option<DeviceType>,
    pub version: Option<Version>,
    pub group: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/ota/admin/devices", tag = "devices", params(DeviceListQuery),
    responses((status = 200, body = ListResponse<Device>)), security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<DeviceListQuery>,
) -> ApiResult<Json<ListResponse<Device>>> {
    admin.require(Role::Viewer)?;
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .into_request()?;
    let filter = DeviceFilter {
        device_type: q.device_type,
        version: q.version,
        group: q.group,
    };
    Ok(Json(state.meta.list_devices(&filter, &page).await?.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceDetail {
    #[serde(flatten)]
    pub device: Device,
    /// The newest OTA log entries of this device.
    pub recent_log: Vec<LogEntry>,
}

fn parse_id(id: &str) -> ApiResult<DeviceId> {
    DeviceId::parse(id).map_err(|e| Problem::bad_request("device_id", e.0))
}

#[utoipa::path(get, path = "/api/ota/admin/devices/{id}", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = DeviceDetail), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceDetail>> {
    admin.require(Role::Viewer)?;
    let id = parse_id(&id)?;
    let device = state
        .meta
        .get_device(&id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("device {id} has never checked in")))?;
    let log = state
        .meta
        .list_logs(
            &LogFilter {
                device_id: Some(id),
                ..LogFilter::default()
            },
            &PageRequest {
                limit: RECENT_LOG_ENTRIES,
                cursor: None,
            },
        )
        .await?;
    Ok(Json(DeviceDetail {
        device,
        recent_log: log.items,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDeviceRequest {
    /// Replaces the device's groups (each 1–64 characters of `[A-Za-z0-9_.:-]`).
    pub groups: Vec<String>,
}

#[utoipa::path(patch, path = "/api/ota/admin/devices/{id}", tag = "devices", params(("id" = String, Path)),
    request_body = PatchDeviceRequest,
    responses((status = 200, body = Device), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("admin_token" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchDeviceRequest>,
) -> ApiResult<Json<Device>> {
    admin.require(Role::Admin)?;
    let id = parse_id(&id)?;
    if req.groups.len() > MAX_GROUPS {
        return Err(Problem::bad_request(
            "groups",
            format!("at most {MAX_GROUPS} groups"),
        ));
    }
    for g in &req.groups {
        let ok = !g.is_empty()
            && g.len() <= 64
            && g.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
        if !ok {
            return Err(Problem::bad_request(
                "groups",
                format!("invalid group name '{g}'"),
            ));
        }
    }
    let mut groups = req.groups;
    groups.sort();
    groups.dedup();
    let device = state
        .meta
        .set_device_groups(&id, &groups)
        .await
        .map_err(|e| match e {
            ota_core::ports::StoreError::NotFound => {
                Problem::not_found(format!("device {id} has never checked in"))
            }
            other => other.into(),
        })?;
    audit_trail::record(
        &state,
        &admin,
        "device.groups",
        "device",
        id.as_str(),
        serde_json::json!({"groups": device.groups}),
    )
    .await?;
    Ok(Json(device))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintTokenRequest {
    /// Defaults to the device's registered type.
    pub device_type: Option<DeviceType>,
    /// Lifetime in seconds; omitted means the token does not expire.
    pub ttl_s: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MintedToken {
    pub token: String,
    pub device_id: String,
    pub device_type: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

/// Mint a device credential (admin only).
#[utoipa::path(post, path = "/api/ota/admin/devices/{id}/token", tag = "devices", params(("id" = String, Path)),
    request_body = MintTokenRequest,
    responses((status = 200, body = MintedToken), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("admin_token" = [])))]
pub async fn mint_token(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<MintedToken>> {
    admin.require(Role::Admin)?;
    let id = parse_id(&id)?;
    // The body is optional: an empty one means "all defaults".
    let req: MintTokenRequest = if body.iter().all(u8::is_ascii_whitespace) {
        MintTokenRequest::default()
    } else {
        crate::extract::decode_json(&body)?
    };
    let device_type = match req.device_type {
        Some(t) => t,
        None => state
            .meta
            .get_device(&id)
            .await?
            .map(|d| d.device_type)
            .ok_or_else(|| {
                Problem::bad_request(
                    "device_type",
                    "device_type is required for a device that has never checked in",
                )
            })?,
    };
    let expires_at = match req.ttl_s {
        Some(0) => return Err(Problem::bad_request("ttl_s", "must be positive")),
        Some(s) => {
            let secs = i64::try_from(s).map_err(|_| Problem::bad_request("ttl_s", "too large"))?;
            Some(
                state
                    .clock
                    .now()
                    .checked_add(time::Duration::seconds(secs))
                    .ok_or_else(|| Problem::bad_request("ttl_s", "too large"))?,
            )
        }
        None => None,
    };
    let token =
        state
            .auth
            .mint_device(&id, &device_type, expires_at.map(|t| t.unix_timestamp()))?;
    // The token itself never goes into the audit log.
    audit_trail::record(
        &state,
        &admin,
        "device.token_mint",
        "device",
        id.as_str(),
        serde_json::json!({"device_type": device_type, "expires_at": expires_at.map(|t| t.unix_timestamp())}),
    )
    .await?;
    Ok(Json(MintedToken {
        token,
        device_id: id.to_string(),
        device_type: device_type.to_string(),
        expires_at,
    }))
}
