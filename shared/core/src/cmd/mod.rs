//! The use cases, one file each, as methods of [`Service`](crate::service::Service). Each takes
//! a typed input (and, for admin actions, the [`Admin`](crate::access::Admin) calling, whose
//! role it checks and whom its audit event names) and returns a typed outcome or an
//! [`OpError`](crate::error::OpError). The HTTP edge only translates requests into these calls
//! and their outcomes into responses.

pub mod check;
pub mod create_release;
pub mod create_rollout;
pub mod download;
pub mod edit_release;
pub mod evaluate_rollouts;
pub mod finalize_release;
pub mod mint_device_token;
pub mod put_device_type;
pub mod queries;
pub mod report_status;
pub mod set_device_groups;
pub mod update_rollout;
pub mod upload_release;
mod validate_release;

use serde_json::Value;
use time::OffsetDateTime;

use crate::access::Admin;
use crate::audit::AuditEvent;
use crate::error::OpError;
use crate::fields;
use crate::ids::{DeviceType, Version};
use crate::release::{Release, ReleaseState};
use crate::service::Service;

impl Service {
    /// Records what `admin` changed, after the change took effect.
    async fn audit(
        &self,
        admin: &Admin,
        action: &str,
        target_type: &str,
        target_id: &str,
        details: Value,
    ) -> Result<(), OpError> {
        let event = self.audit_event(admin, action, target_type, target_id, details);
        Ok(self.meta.record_audit(&event).await?)
    }

    /// The audit event of what `admin` does now, for a store to record with the change itself.
    fn audit_event(
        &self,
        admin: &Admin,
        action: &str,
        target_type: &str,
        target_id: &str,
        details: Value,
    ) -> AuditEvent {
        AuditEvent::new(
            &admin.actor,
            action,
            target_type,
            target_id,
            details,
            self.now(),
        )
    }
}

/// What the audit log keeps of a release.
fn release_summary(r: &Release) -> Value {
    serde_json::json!({
        "device_type": r.device_type,
        "version": r.version,
        "build_number": r.build_number,
        "channel": r.channel,
        "file_size": r.file_size,
        "file_hash": r.file_hash,
        "state": r.state,
    })
}

/// What an admin declares about a new release, in either way of publishing it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRelease {
    pub device_type: DeviceType,
    pub version: Version,
    pub build_number: Option<u64>,
    /// Absent: `stable`.
    pub channel: Option<String>,
    pub description: Option<String>,
    pub min_current_version: Option<Version>,
    pub release_notes: Option<String>,
}

impl NewRelease {
    /// The record of a release `id` whose bytes are `size` long and hash to `hash`, waiting for
    /// validation.
    fn record(
        self,
        id: String,
        size: u64,
        hash: String,
        now: OffsetDateTime,
    ) -> Result<Release, OpError> {
        Ok(Release {
            id,
            device_type: self.device_type,
            version: self.version,
            build_number: fields::stored_integer("build_number", self.build_number)?.unwrap_or(0),
            channel: fields::channel("channel", self.channel)?,
            file_size: size,
            file_hash: hash,
            secure_version: 0,
            chip: None,
            project_name: None,
            idf_version: None,
            image_sha256: None,
            min_current_version: self.min_current_version,
            description: fields::text("description", self.description, fields::MAX_TEXT_CHARS)?,
            release_notes: fields::text(
                "release_notes",
                self.release_notes,
                fields::MAX_TEXT_CHARS,
            )?,
            state: ReleaseState::PendingUpload,
            is_active: true,
            rejection_reasons: Vec::new(),
            created_at: now,
            updated_at: now,
            released_at: None,
        })
    }
}

impl Service {
    /// The release `id`, or `NotFound`.
    async fn load_release(&self, id: &str) -> Result<Release, OpError> {
        self.meta
            .get_release(id)
            .await?
            .ok_or_else(|| OpError::NotFound(format!("firmware {id} does not exist")))
    }

    /// A (device type, version) is published once: a second one is a Conflict.
    async fn refuse_duplicate(&self, release: &Release) -> Result<(), OpError> {
        let (dt, v) = (&release.device_type, &release.version);
        if self.meta.find_release(dt, v).await?.is_some() {
            return Err(OpError::Conflict(format!(
                "version {v} of device type {dt} already exists"
            )));
        }
        Ok(())
    }
}
