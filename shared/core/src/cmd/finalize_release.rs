//! The last step of the two-step flow (docs/api.md §Publishing): validate the uploaded bytes and
//! make the release `ready`, or `rejected` with every reason. Idempotent: finalizing a ready
//! release returns it again, and racing finalizes all answer with the outcome the first one
//! stored. Only the finalize that settles the release records `firmware.finalize`, in the same
//! store write as the new state, so that repeated or racing finalizes leave one event.

use crate::access::{Admin, Role};
use crate::error::OpError;
use crate::ports::StoreError;
use crate::release::{Release, ReleaseState};
use crate::retry::{self, Round};
use crate::service::Service;

use super::release_summary;

/// Each round reads and validates the whole image again, so finalize gives up sooner than a
/// cheap write: only another finalize (which settles the release) or an edit can come between.
const FINALIZE_ROUNDS: u32 = 3;

impl Service {
    pub async fn finalize_release(&self, admin: &Admin, id: &str) -> Result<Release, OpError> {
        admin.require(Role::Publisher)?;
        retry::until_won(FINALIZE_ROUNDS, || self.finalize_round(admin, id))
            .await?
            .ok_or_else(|| {
                OpError::Conflict(format!(
                    "firmware {id} kept changing while it was being finalized; retry"
                ))
            })
    }

    /// One look at the release; Lost when another finalize or an edit changed it meanwhile. A
    /// release already settled is answered as it is, without an audit event.
    async fn finalize_round(&self, admin: &Admin, id: &str) -> Result<Round<Release>, OpError> {
        let release = self.load_release(id).await?;
        match release.state {
            ReleaseState::Ready => return Ok(Round::Won(release)),
            ReleaseState::Rejected => {
                return Err(OpError::ImageRejected(release.rejection_reasons));
            }
            ReleaseState::PendingUpload => {}
        }
        if self.blobs.size(&release.blob_key()).await?.is_none() {
            return Err(OpError::Conflict(format!(
                "firmware {id} has no uploaded bytes yet: PUT them to the upload URL first"
            )));
        }
        let now = self.now();
        let (next, details, outcome) = match self.validate_release(&release, now).await? {
            Ok(ready) => (ready.clone(), release_summary(&ready), Ok(ready)),
            Err(problems) => {
                let mut rejected = release.clone();
                rejected.state = ReleaseState::Rejected;
                rejected.rejection_reasons = problems.clone();
                rejected.touch(now);
                let details = serde_json::json!({
                    "state": "rejected",
                    "reasons": problems.iter().map(|p| p.code.as_str()).collect::<Vec<_>>(),
                });
                (rejected, details, Err(OpError::ImageRejected(problems)))
            }
        };
        let event = self.audit_event(admin, "firmware.finalize", "firmware", id, details);
        match self.meta.update_release(&next, &release, &event).await {
            Ok(()) => outcome.map(Round::Won),
            Err(StoreError::Conflict(_)) => Ok(Round::Lost),
            Err(e) => Err(e.into()),
        }
    }
}
