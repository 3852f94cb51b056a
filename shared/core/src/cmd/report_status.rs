//! `status`: a device reports progress or the outcome of an update (docs/api.md §Status
//! reports). The report is checked against the release it names and recorded as
//! `report_plan` decides, in one atomic step of the store.

use crate::access::DeviceGrant;
use crate::error::OpError;
use crate::fields;
use crate::ids::{DeviceId, DeviceType, Version, new_id};
use crate::release::Release;
use crate::report_plan::{StatusOutcome, StatusReport};
use crate::service::Service;
use crate::status::OtaStatus;

/// The release a report is about.
#[derive(Debug, Clone, PartialEq)]
pub enum Reported {
    Id(String),
    /// The paku dialect names a version of the device's own type: the one its credential names,
    /// else the one it registered with (`device_type` None).
    Version {
        device_type: Option<DeviceType>,
        version: Version,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusInput {
    pub device_id: DeviceId,
    pub release: Reported,
    pub status: OtaStatus,
    pub bytes_downloaded: Option<u64>,
    pub progress_percent: Option<u8>,
    pub error_message: Option<String>,
    /// The idempotency key; absent, the report gets one of its own.
    pub event_id: Option<String>,
}

impl Service {
    pub async fn report_status(
        &self,
        grant: &DeviceGrant,
        input: StatusInput,
    ) -> Result<StatusOutcome, OpError> {
        if input.status == OtaStatus::TimedOut {
            return Err(OpError::invalid(
                "status",
                "timed_out is the server's verdict on a silent device, not a report",
            ));
        }
        let release = self.reported_release(grant, &input).await?;
        if input.progress_percent.is_some_and(|p| p > 100) {
            return Err(OpError::invalid(
                "progress_percent",
                "must be between 0 and 100",
            ));
        }
        let error_message = fields::text(
            "error_message",
            input.error_message,
            fields::MAX_ERROR_MESSAGE_CHARS,
        )?;
        let event_id = match input.event_id {
            Some(e) => {
                fields::opaque_key("event_id", &e)?;
                e
            }
            None => new_id(),
        };
        let report = StatusReport {
            event_id,
            device_id: input.device_id,
            device_type: release.device_type,
            firmware_id: release.id,
            version: release.version,
            status: input.status,
            bytes_downloaded: fields::stored_integer("bytes_downloaded", input.bytes_downloaded)?,
            progress_percent: input.progress_percent,
            error_message,
            at: self.now(),
            silent_since: None,
        };
        let outcome = self.meta.record_status(&report).await?;
        self.evaluate_after(&report, &outcome).await?;
        Ok(outcome)
    }

    /// After a report is recorded: a final one that moved its attempt changes the numbers of
    /// its rollout's gate and stage.
    pub(super) async fn evaluate_after(
        &self,
        report: &StatusReport,
        outcome: &StatusOutcome,
    ) -> Result<(), OpError> {
        match &outcome.entry.rollout_id {
            Some(id) if outcome.changed && report.status.is_final() => {
                self.evaluate_reported(&report.device_type, id).await
            }
            _ => Ok(()),
        }
    }

    async fn reported_release(
        &self,
        grant: &DeviceGrant,
        input: &StatusInput,
    ) -> Result<Release, OpError> {
        match &input.release {
            Reported::Id(id) => {
                let release =
                    self.meta.get_release(id).await?.ok_or_else(|| {
                        OpError::NotFound(format!("firmware {id} does not exist"))
                    })?;
                grant.check_type(&release.device_type)?;
                Ok(release)
            }
            Reported::Version {
                device_type,
                version,
            } => {
                let device_type = match device_type {
                    Some(t) => t.clone(),
                    None => self
                        .meta
                        .get_device(&input.device_id)
                        .await?
                        .map(|d| d.device_type)
                        .ok_or_else(|| {
                            OpError::NotFound("unknown device: it must check in first".to_owned())
                        })?,
                };
                self.meta
                    .find_release(&device_type, version)
                    .await?
                    .ok_or_else(|| {
                        OpError::NotFound(format!("no firmware {version} for {device_type}"))
                    })
            }
        }
    }
}
