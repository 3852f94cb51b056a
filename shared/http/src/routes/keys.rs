//! The public keys of update manifests (docs/api.md §3.5), so that a device, a factory line or a
//! test can verify what `check` signed.

use axum::Json;
use axum::extract::State;
use ota_core::manifest_keys::JwkSet;

use crate::state::AppState;

/// The public keys of update manifests, as a JWK set.
///
/// The signing key first, then any older key kept published while devices move to the new one.
#[utoipa::path(get, path = "/api/ota/keys", tag = "device", operation_id = "manifest_keys",
    security(()), responses((status = 200, body = JwkSet, content_type = "application/json",
        description = "The keys whose `kid` a manifest's header names")))]
pub async fn keys(State(state): State<AppState>) -> Json<JwkSet> {
    Json(state.manifest_keys.jwks())
}
