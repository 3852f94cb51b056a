//! Writing the audit log from admin handlers: who changed what, after the change took effect.

use ota_core::audit::AuditEvent;
use serde_json::Value;

use crate::auth::Admin;
use crate::problem::ApiResult;
use crate::state::AppState;

pub async fn record(
    state: &AppState,
    admin: &Admin,
    action: &str,
    target_type: &str,
    target_id: &str,
    details: Value,
) -> ApiResult<()> {
    let event = AuditEvent::new(
        &admin.0.sub,
        action,
        target_type,
        target_id,
        details,
        state.clock.now(),
    );
    state.meta.record_audit(&event).await?;
    Ok(())
}
