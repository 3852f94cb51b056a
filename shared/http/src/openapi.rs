//! The contract as OpenAPI 3.1, generated from the handlers and types themselves.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{
    device_protocol, device_registry, device_types, health, logs, observe, paku, releases, rollouts,
};

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
        device_protocol::check, device_protocol::download, device_protocol::download_head,
        device_protocol::status,
        paku::check, paku::download, paku::download_head, paku::status,
        releases::upload, releases::create, releases::finalize, releases::list, releases::get,
        releases::patch, releases::deactivate,
        device_types::list, device_types::get, device_types::put,
        rollouts::create, paku::create_rollout, rollouts::list, rollouts::get, rollouts::patch,
        device_registry::list, device_registry::get, device_registry::patch,
        device_registry::mint_token,
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
