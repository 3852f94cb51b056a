//! `check`: register the device, complete an update it finished (rule 5), and pick what to offer
//! (docs/api.md §Update rules).

use std::sync::Arc;

use crate::device::{CheckIn, DeviceSnapshot, Offer};
use crate::device_health::BootReport;
use crate::error::OpError;
use crate::fields;
use crate::ids::{DeviceId, DeviceType, Version};
use crate::offer_budget::{self, Taken};
use crate::ports::{ReleaseOption, SignedUrl, StoreError};
use crate::report_plan::StatusReport;
use crate::rollout::canary_bucket;
use crate::rules;
use crate::service::Service;
use crate::status::OtaStatus;

/// What a device says about itself when it asks.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckInput {
    pub device_id: DeviceId,
    pub device_type: DeviceType,
    pub current_version: Version,
    pub current_build: Option<u64>,
    pub secure_version: Option<u32>,
    /// Absent: `stable`.
    pub channel: Option<String>,
    /// Asks for a signed manifest even without an offer, echoing it (`manifest.rs`).
    pub nonce: Option<String>,
    /// The validation hash of the running app, as `esp_partition_get_sha256` gives it.
    pub running_image_sha256: Option<String>,
    pub boot: Option<BootReport>,
}

/// What to tell the device.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckAnswer {
    UpToDate,
    /// An offer is due but its rollout's offer budget is spent for now (`offer_budget`): no
    /// update, and come back in this many seconds.
    Deferred {
        retry_in_s: u64,
    },
    Update {
        option: Arc<ReleaseOption>,
        url: SignedUrl,
    },
}

impl Service {
    pub async fn check(&self, input: CheckInput) -> Result<CheckAnswer, OpError> {
        // Refused before anything is recorded: the answer could not be signed as asked.
        fields::nonce("nonce", input.nonce.as_deref())?;
        let running_image_sha256 = input
            .running_image_sha256
            .map(|h| fields::sha256_hex("running_image_sha256", &h))
            .transpose()?;
        let check_in = CheckIn {
            device_id: input.device_id,
            device_type: input.device_type,
            current_version: input.current_version,
            current_build: fields::stored_integer("current_build", input.current_build)?,
            secure_version: input.secure_version.unwrap_or(0),
            channel: fields::channel("channel", input.channel)?,
            running_image_sha256,
            boot: input.boot.map(BootReport::validated).transpose()?,
            at: self.now(),
        };
        let check_in = &check_in;
        // The view first: the offer is decided inside the device's write (see `record_check`),
        // after any stage that passed by now moved on.
        let mut view = self.meta.release_view(&check_in.device_type).await?;
        if self.evaluate_due(&view, check_in).await? {
            view = self.meta.release_view(&check_in.device_type).await?;
        }
        let offer_from = |snapshot: &DeviceSnapshot| {
            let option = rules::decide(&view, check_in, snapshot)?;
            let already_offered = snapshot.device.last_offer.as_ref().is_some_and(|o| {
                o.firmware_id == option.release.id && o.rollout_id == option.rollout.id
            });
            (!already_offered).then(|| Offer {
                firmware_id: option.release.id.clone(),
                version: option.release.version.clone(),
                rollout_id: option.rollout.id.clone(),
                at: check_in.at,
            })
        };
        // A first offer of a rollout with an offer budget is remembered only once the budget
        // granted it (below): a device refused is offered nothing, and asks again.
        let budget_of = |rollout_id: &str| {
            view.options
                .iter()
                .find(|o| o.rollout.id == rollout_id)
                .and_then(|o| o.rollout.staging.max_offers_per_hour)
        };
        let unbudgeted = |snapshot: &DeviceSnapshot| {
            offer_from(snapshot).filter(|o| budget_of(&o.rollout_id).is_none())
        };
        // A check that completes the last offer records the completion first: the report must
        // count toward the rollout of that offer, so the new offer waits for a second write.
        let new_offer = |snapshot: &DeviceSnapshot| {
            if rules::completes_offer(check_in, snapshot).is_some() {
                None
            } else {
                unbudgeted(snapshot)
            }
        };
        let snapshot = self.meta.record_check(check_in, &new_offer).await?;
        // A crash now counted may take a rollout over its gate: paused before an offer is made.
        self.evaluate_crashes(&view, check_in).await?;
        if let Some(firmware_id) = rules::completes_offer(check_in, &snapshot) {
            // A deterministic event id makes the completion idempotent when checks race.
            let report = StatusReport {
                event_id: format!("check-in:{}:{}", check_in.device_id, firmware_id),
                device_id: check_in.device_id.clone(),
                device_type: check_in.device_type.clone(),
                firmware_id: firmware_id.to_owned(),
                version: check_in.current_version.clone(),
                status: OtaStatus::Success,
                bytes_downloaded: None,
                progress_percent: Some(100),
                error_message: None,
                at: check_in.at,
                silent_since: None,
            };
            match self.meta.record_status(&report).await {
                Ok(outcome) => self.evaluate_after(&report, &outcome).await?,
                // A final state reported meanwhile wins; the check-in has nothing to add.
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            // Rare (once per update), so its extra device write is outside the check budget. The
            // offer is decided from the same snapshot as before the completion, as it always was.
            if unbudgeted(&snapshot).is_some() {
                self.meta
                    .record_check(check_in, &|_| unbudgeted(&snapshot))
                    .await?;
            }
        }
        if let Some(first) = offer_from(&snapshot)
            && let Some(limit) = budget_of(&first.rollout_id)
        {
            match self
                .meta
                .take_offer(&first.rollout_id, limit, check_in.at)
                .await?
            {
                // Rare (once per device and rollout), as the completion's write above.
                Taken::Granted => {
                    self.meta
                        .record_check(check_in, &|_| Some(first.clone()))
                        .await?;
                }
                Taken::Full { frees_at } => {
                    let spread = canary_bucket(&first.rollout_id, &check_in.device_id);
                    return Ok(CheckAnswer::Deferred {
                        retry_in_s: offer_budget::retry_in_s(frees_at, check_in.at, spread),
                    });
                }
            }
        }
        if rules::decide(&view, check_in, &snapshot).is_none() {
            return Ok(CheckAnswer::UpToDate);
        }
        // An offer only from a view at most `OFFER_VIEW_MAX_AGE` old: a rollout paused since
        // this instance cached its view is offered no more. (An offer remembered above from
        // the older view stays unanswered; it is only ever completed by a device running it.)
        let fresh = self
            .meta
            .release_view_to_offer(&check_in.device_type)
            .await?;
        let Some(option) = rules::decide(&fresh, check_in, &snapshot) else {
            return Ok(CheckAnswer::UpToDate);
        };
        let url = self
            .blobs
            .download_url(&option.release.blob_key(), self.settings.url_ttl)
            .await?;
        Ok(CheckAnswer::Update {
            option: option.clone(),
            url,
        })
    }
}
