//! Liveness for load balancers and humans.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::problem::{ApiResult, Problem};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

/// Whether this deployment can reach its storage.
#[utoipa::path(get, path = "/health", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
pub async fn health(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    state.ota.health().await.map_err(|e| {
        tracing::warn!(error = %e, "health check failed");
        Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the metadata store is not answering",
        )
    })?;
    Ok(Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    }))
}
