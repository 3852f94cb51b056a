//! Device types (docs/api.md §Admin endpoints): the policy of each product line.

use axum::Json;
use axum::extract::State;
use ota_core::access::Admin;
use ota_core::cmd::put_device_type::PutDeviceType;
use ota_core::device_type::DeviceTypePolicy;
use ota_core::ids::DeviceType;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{ListResponse, PageQuery};
use crate::problem::{ApiResult, Problem};
use crate::schema::{ChipName, Count, Sha256Hex};
use crate::state::AppState;

/// Device types and their image policies.
#[utoipa::path(get, path = "/api/ota/admin/device-types", tag = "device types", operation_id = "list_device_types", params(PageQuery),
    responses((status = 200, body = ListResponse<DeviceTypePolicy>)), security(("admin_token" = [])))]
pub async fn list(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListResponse<DeviceTypePolicy>>> {
    let page = q.into_request()?;
    Ok(Json(
        state.ota.list_device_types(&admin, &page).await?.into(),
    ))
}

fn parse_name(name: &str) -> ApiResult<DeviceType> {
    DeviceType::parse(name).map_err(|e| Problem::bad_request("name", e.0))
}

/// One device type's image policy.
#[utoipa::path(get, path = "/api/ota/admin/device-types/{name}", tag = "device types", operation_id = "get_device_type", params(("name" = DeviceType, Path)),
    responses((status = 200, body = DeviceTypePolicy), (status = 404, body = Problem)), security(("admin_token" = [])))]
pub async fn get(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<DeviceTypePolicy>> {
    let name = parse_name(&name)?;
    Ok(Json(state.ota.get_device_type(&admin, &name).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDeviceTypeRequest {
    /// Chip name as in docs/esp-image.md (`esp32`, `esp32c3`, ...).
    #[schema(value_type = ChipName)]
    pub chip: String,
    #[schema(value_type = Option<Count>)]
    pub max_image_size: Option<u64>,
    /// Needs at least one digest in `signing_key_digests`.
    #[serde(default)]
    pub require_signature: bool,
    #[serde(default)]
    #[schema(value_type = Vec<Sha256Hex>)]
    pub signing_key_digests: Vec<String>,
}

/// Create or replace a device type's policy. Its chip is fixed once it exists.
#[utoipa::path(put, path = "/api/ota/admin/device-types/{name}", tag = "device types", operation_id = "put_device_type", params(("name" = DeviceType, Path)),
    request_body = PutDeviceTypeRequest,
    responses((status = 200, body = DeviceTypePolicy), (status = 400, body = Problem), (status = 409, body = Problem)),
    security(("admin_token" = [])))]
pub async fn put(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PutDeviceTypeRequest>,
) -> ApiResult<Json<DeviceTypePolicy>> {
    let input = PutDeviceType {
        name: parse_name(&name)?,
        chip: req.chip,
        max_image_size: req.max_image_size,
        require_signature: req.require_signature,
        signing_key_digests: req.signing_key_digests,
    };
    Ok(Json(state.ota.put_device_type(&admin, input).await?))
}
