//! The `check` use case: register the device, complete an update it finished, pick what to offer.

use std::sync::Arc;
use std::time::Duration;

use crate::device::{CheckIn, DeviceSnapshot, Offer};
use crate::error::OpError;
use crate::ports::{BlobStore, MetaStore, ReleaseOption, SignedUrl, StatusReport};
use crate::rules;
use crate::status::OtaStatus;

/// What to tell the device.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckAnswer {
    UpToDate,
    Update {
        option: Arc<ReleaseOption>,
        url: SignedUrl,
    },
}

pub async fn check(
    meta: &dyn MetaStore,
    blobs: &dyn BlobStore,
    check_in: &CheckIn,
    url_ttl: Duration,
) -> Result<CheckAnswer, OpError> {
    // The view first: the offer is decided inside the device's write (see `record_check`).
    let view = meta.release_view(&check_in.device_type).await?;
    let offer_from = |snapshot: &DeviceSnapshot| {
        let option = rules::decide(&view, check_in, snapshot)?;
        let already_offered = snapshot.device.last_offer.as_ref().is_some_and(|o| {
            o.firmware_id == option.firmware.id && o.rollout_id == option.rollout.id
        });
        (!already_offered).then(|| Offer {
            firmware_id: option.firmware.id.clone(),
            version: option.firmware.version.clone(),
            rollout_id: option.rollout.id.clone(),
            at: check_in.at,
        })
    };
    // A check that completes the last offer records the completion first: the report must
    // count toward the rollout of that offer, so the new offer waits for a second write.
    let new_offer = |snapshot: &DeviceSnapshot| {
        if rules::completes_offer(check_in, snapshot).is_some() {
            None
        } else {
            offer_from(snapshot)
        }
    };
    let snapshot = meta.record_check(check_in, &new_offer).await?;
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
        };
        match meta.record_status(&report).await {
            // A final state reported meanwhile wins; the check-in has nothing to add.
            Ok(_) | Err(crate::ports::StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        // Rare (once per update), so its extra device write is outside the check budget. The
        // offer is decided from the same snapshot as before the completion, as it always was.
        if offer_from(&snapshot).is_some() {
            meta.record_check(check_in, &|_| offer_from(&snapshot))
                .await?;
        }
    }
    let Some(option) = rules::decide(&view, check_in, &snapshot) else {
        return Ok(CheckAnswer::UpToDate);
    };
    let url = blobs
        .download_url(&option.firmware.blob_key(), url_ttl)
        .await?;
    Ok(CheckAnswer::Update {
        option: option.clone(),
        url,
    })
}
