//! Edits of a release after it was published (docs/api.md §Publishing): what may change
//! (description, notes, channel, whether it is offered, the minimum current version), never its
//! bytes or version. Optimistic: a change is written only over the record it was made to, so a
//! `PATCH` never undoes a concurrent deactivation.

use serde::Serialize;

use crate::access::{Admin, Role};
use crate::audit::AuditEvent;
use crate::error::OpError;
use crate::fields;
use crate::ids::Version;
use crate::ports::StoreError;
use crate::release::Release;
use crate::retry::{self, Round};
use crate::service::Service;

/// The fields a `PATCH` may change: `None` leaves one as it is; for the nullable ones
/// `Some(None)` clears it. Serialized as sent (cleared fields as null) for the audit log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReleaseChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_notes: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_current_version: Option<Option<Version>>,
}

/// Edits meeting concurrent writers give up after this many rounds (409).
const EDIT_ROUNDS: u32 = 16;

impl Service {
    pub async fn edit_release(
        &self,
        admin: &Admin,
        id: &str,
        changes: ReleaseChanges,
    ) -> Result<Release, OpError> {
        admin.require(Role::Admin)?;
        let requested = serde_json::to_value(&changes).unwrap_or_default();
        let description = changes
            .description
            .map(|d| fields::text("description", d, fields::MAX_TEXT_CHARS))
            .transpose()?;
        let release_notes = changes
            .release_notes
            .map(|n| fields::text("release_notes", n, fields::MAX_TEXT_CHARS))
            .transpose()?;
        let channel = changes
            .channel
            .map(|c| fields::channel("channel", Some(c)))
            .transpose()?;
        let event = self.audit_event(admin, "firmware.update", "firmware", id, requested);
        self.change_release(id, &event, |r| {
            if let Some(d) = &description {
                r.description = d.clone();
            }
            if let Some(n) = &release_notes {
                r.release_notes = n.clone();
            }
            if let Some(c) = &channel {
                r.channel = c.clone();
            }
            if let Some(a) = changes.is_active {
                r.is_active = a;
            }
            if let Some(m) = &changes.min_current_version {
                r.min_current_version = m.clone();
            }
        })
        .await
    }

    /// Stops offering a release; never deletes its bytes or history.
    pub async fn deactivate_release(&self, admin: &Admin, id: &str) -> Result<Release, OpError> {
        admin.require(Role::Admin)?;
        let event = self.audit_event(
            admin,
            "firmware.deactivate",
            "firmware",
            id,
            serde_json::json!({}),
        );
        self.change_release(id, &event, |r| r.is_active = false)
            .await
    }

    /// Applies `change` to the stored release and writes it, with its audit `event`, only if
    /// nobody else wrote the release meanwhile, reloading and reapplying otherwise.
    async fn change_release(
        &self,
        id: &str,
        event: &AuditEvent,
        change: impl Fn(&mut Release),
    ) -> Result<Release, OpError> {
        let change = &change;
        let won = retry::until_won(EDIT_ROUNDS, || async move {
            let current = self.load_release(id).await?;
            let mut next = current.clone();
            change(&mut next);
            next.touch(self.now());
            match self.meta.update_release(&next, &current, event).await {
                Ok(()) => Ok(Round::Won(next)),
                Err(StoreError::Conflict(_)) => Ok(Round::Lost),
                Err(e) => Err(OpError::from(e)),
            }
        })
        .await?;
        won.ok_or_else(|| {
            OpError::Conflict(format!("firmware {id} is being changed by others; retry"))
        })
    }
}
