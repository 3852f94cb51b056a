//! The contract as OpenAPI 3.1, generated from the handlers and types themselves.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{device, devices, firmware, health, logs, observe, rollouts};

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        let jwt = || {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            )
        };
        components.add_security_scheme("admin_token", jwt());
        components.add_security_scheme("device_token", jwt());
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ESP32 OTA service",
        description = "Over-the-air firmware updates for ESP32 fleets. Errors are RFC 9457 problem \
details (application/problem+json). Unknown JSON fields are refused with 400. Lists take \
`limit` (1-500, default 50) and an opaque `cursor`. Device endpoints also accept the device \
token in `X-OTA-Device-Token`. Capability URLs (`download_url`, upload URLs) need no credential."
    ),
    modifiers(&Security),
    paths(
        device::check_handler, device::download, device::download_head, device::status_handler,
        device::legacy_check, device::legacy_download, device::legacy_download_head,
        device::legacy_status,
        firmware::upload, firmware::create, firmware::finalize, firmware::list, firmware::get,
        firmware::patch, firmware::deactivate, firmware::list_device_types,
        firmware::get_device_type, firmware::put_device_type,
        rollouts::create, rollouts::legacy_create, rollouts::list, rollouts::get, rollouts::patch,
        devices::list, devices::get, devices::patch, devices::mint_token,
        logs::list, observe::metrics, observe::audit, health::health, serve,
    )
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/ota/openapi.json", tag = "health",
    responses((status = 200, description = "The contract as OpenAPI 3.1", content_type = "application/json")))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
