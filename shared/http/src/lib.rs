//! The HTTP edge of the OTA service: one axum router for every route of docs/api.md, JWT auth,
//! problem+json errors and the OpenAPI document. Served by `ota-server` and by each Lambda.
//! Handlers only translate: a request into a command of `ota_core::cmd`, its outcome or error
//! into a response.

pub mod auth;
pub mod changed_state;
pub mod config;
pub mod extract;
pub mod openapi;
pub mod pagination;
pub mod problem;
mod range;
pub mod router;
pub mod routes;
pub mod schema;
pub mod state;
pub mod throttle;
pub mod verified_tokens;

pub use changed_state::ChangedState;
pub use router::full_router;
pub use state::{AppShared, AppState, Settings};
