//! The admin's device registry (docs/api.md §Admin endpoints): list, detail with recent OTA
//! history, groups, device credentials.

use axum::Json;
use axum::extract::State;
use ota_core::access::Admin;
use ota_core::cmd::mint_device_token::MintToken;
use ota_core::device::{Device, DeviceDetail, DeviceFilter};
use ota_core::ids::{DeviceId, DeviceType, Version};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListResponse, PageQuery};
use crate::problem::{ApiResult, Problem};
use crate::schema::GroupName;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeviceListQuery {
    pub device_type: Option<DeviceType>,
    pub version: Option<Version>,
    #[param(value_type = Option<GroupName>)]
    pub group: Option<String>,
    /// 1-500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Opaque, from the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The device registry, filtered.
#[utoipa::path(get, path = "/api/ota/admin/devices", tag = "devices", operation_id = "list_devices", params(DeviceListQuery),
    responses((status = 200, body = ListResponse<Device>)), security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<DeviceListQuery>,
) -> ApiResult<Json<ListResponse<Device>>> {
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
    Ok(Json(
        state.ota.list_devices(&admin, &filter, &page).await?.into(),
    ))
}

fn parse_id(id: &str) -> ApiResult<DeviceId> {
    DeviceId::parse(id).map_err(|e| Problem::bad_request("device_id", e.0))
}

/// One device with its newest OTA log entries.
#[utoipa::path(get, path = "/api/ota/admin/devices/{id}", tag = "devices", operation_id = "get_device", params(("id" = DeviceId, Path)),
    responses((status = 200, body = DeviceDetail), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<DeviceDetail>> {
    let id = parse_id(&id)?;
    Ok(Json(state.ota.device_detail(&admin, &id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchDeviceRequest {
    /// Replaces the device's groups (at most 32).
    #[schema(value_type = Vec<GroupName>, max_items = 32)]
    pub groups: Vec<String>,
}

/// Replace a device's groups.
#[utoipa::path(patch, path = "/api/ota/admin/devices/{id}", tag = "devices", operation_id = "patch_device", params(("id" = DeviceId, Path)),
    request_body = PatchDeviceRequest,
    responses((status = 200, body = Device), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("admin_token" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PatchDeviceRequest>,
) -> ApiResult<Json<Device>> {
    let id = parse_id(&id)?;
    Ok(Json(
        state.ota.set_device_groups(&admin, &id, req.groups).await?,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintTokenRequest {
    /// Defaults to the device's registered type.
    pub device_type: Option<DeviceType>,
    /// Lifetime in seconds (at most 100 years); omitted means the token does not expire.
    #[schema(minimum = 1, maximum = 3_153_600_000_u64)]
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
#[utoipa::path(post, path = "/api/ota/admin/devices/{id}/token", tag = "devices", operation_id = "mint_device_token", params(("id" = DeviceId, Path)),
    request_body = Option<MintTokenRequest>,
    responses((status = 200, body = MintedToken), (status = 400, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem, description = "no device_type given for a device that has never checked in")),
    security(("admin_token" = [])))]
pub async fn mint_token(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<MintedToken>> {
    let id = parse_id(&id)?;
    // The body is optional: an empty one, or JSON `null`, means "all defaults".
    let req: MintTokenRequest = if body.trim_ascii().is_empty() || body.trim_ascii() == b"null" {
        MintTokenRequest::default()
    } else {
        crate::extract::decode_json(&body)?
    };
    let input = MintToken {
        device_type: req.device_type,
        ttl_s: req.ttl_s,
    };
    let minted = state
        .ota
        .mint_device_token(&admin, state.auth.as_ref(), &id, input)
        .await?;
    Ok(Json(MintedToken {
        token: minted.token,
        device_id: id.to_string(),
        device_type: minted.device_type.to_string(),
        expires_at: minted.expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    /// The document's bound on `ttl_s` is the rule's.
    #[test]
    fn ttl_bound_is_the_rules() {
        let schema = serde_json::to_value(super::MintTokenRequest::schema()).unwrap();
        assert_eq!(
            schema["properties"]["ttl_s"]["maximum"].as_u64(),
            Some(ota_core::cmd::mint_device_token::MAX_TTL_S)
        );
    }
}
