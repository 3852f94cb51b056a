//! The audit log: every admin change and every automatic action, with who and why.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::ids::new_id;

/// Actor of changes the service makes by itself.
pub const SYSTEM_ACTOR: &str = "system";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The admin token's `sub`, or `system`.
    pub actor: String,
    /// Dotted verb, e.g. `firmware.create`, `rollout.update`, `rollout.auto_pause`.
    pub action: String,
    /// `firmware`, `rollout`, `device`, `device_type`.
    pub target_type: String,
    pub target_id: String,
    /// What changed, or the numbers behind an automatic action.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl AuditEvent {
    pub fn new(
        actor: &str,
        action: &str,
        target_type: &str,
        target_id: &str,
        details: serde_json::Value,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            id: new_id(),
            at,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target_type: target_type.to_owned(),
            target_id: target_id.to_owned(),
            details,
        }
    }
}

/// Filters of `GET /api/ota/admin/audit`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub target_id: Option<String>,
    pub since: Option<OffsetDateTime>,
}

impl AuditFilter {
    /// Whether `e` passes every filter given but `since`, which each store reads as a range of
    /// the order its log is kept in.
    pub fn matches(&self, e: &AuditEvent) -> bool {
        self.action.as_ref().is_none_or(|a| *a == e.action)
            && self.target_id.as_ref().is_none_or(|t| *t == e.target_id)
    }
}
