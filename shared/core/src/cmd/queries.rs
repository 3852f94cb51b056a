//! The reads of the admin API and `/health`: no rule of their own beyond the caller's role
//! (every read needs `viewer`), so they are gathered here rather than one file each.

use crate::access::{Admin, Role};
use crate::audit::{AuditEvent, AuditFilter};
use crate::cursor;
use crate::device::{Device, DeviceDetail, DeviceFilter, LogEntry, LogFilter};
use crate::device_type::DeviceTypePolicy;
use crate::error::OpError;
use crate::fields;
use crate::ids::{DeviceId, DeviceType};
use crate::metrics::{FleetMetrics, RolloutWithProgress};
use crate::ports::{Page, PageRequest, StoreResult};
use crate::release::{Release, ReleaseDetail, ReleaseFilter};
use crate::rollout::{Rollout, RolloutFilter};
use crate::service::Service;

use super::set_device_groups::never_checked_in;

/// How much of its OTA log a device's detail shows.
const RECENT_LOG_ENTRIES: u32 = 20;

impl Service {
    /// Whether the metadata store answers.
    pub async fn health(&self) -> StoreResult<()> {
        self.meta.ping().await
    }

    /// Releases, newest version first.
    pub async fn list_releases(
        &self,
        admin: &Admin,
        filter: &ReleaseFilter,
        page: &PageRequest,
    ) -> Result<Page<Release>, OpError> {
        admin.require(Role::Viewer)?;
        if let Some(channel) = &filter.channel {
            // A channel no release can have matches nothing: say so instead.
            fields::channel("channel", Some(channel.clone()))?;
        }
        Ok(self.meta.list_releases(filter, page).await?)
    }

    /// A release with its devices' health counters.
    pub async fn get_release(&self, admin: &Admin, id: &str) -> Result<ReleaseDetail, OpError> {
        admin.require(Role::Viewer)?;
        let release = self.load_release(id).await?;
        Ok(ReleaseDetail {
            health: self.meta.release_health(id).await?,
            release,
        })
    }

    pub async fn list_device_types(
        &self,
        admin: &Admin,
        page: &PageRequest,
    ) -> Result<Page<DeviceTypePolicy>, OpError> {
        admin.require(Role::Viewer)?;
        Ok(self.meta.list_device_types(page).await?)
    }

    pub async fn get_device_type(
        &self,
        admin: &Admin,
        name: &DeviceType,
    ) -> Result<DeviceTypePolicy, OpError> {
        admin.require(Role::Viewer)?;
        self.meta
            .get_device_type(name)
            .await?
            .ok_or_else(|| OpError::NotFound(format!("device type {name} does not exist")))
    }

    /// Rollouts, newest first, each with its progress.
    pub async fn list_rollouts(
        &self,
        admin: &Admin,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> Result<Page<RolloutWithProgress>, OpError> {
        admin.require(Role::Viewer)?;
        let page = self.meta.list_rollouts(filter, page).await?;
        let mut items = Vec::with_capacity(page.items.len());
        for r in page.items {
            items.push(self.with_progress(r).await?);
        }
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    pub async fn get_rollout(
        &self,
        admin: &Admin,
        id: &str,
    ) -> Result<RolloutWithProgress, OpError> {
        admin.require(Role::Viewer)?;
        let r = self.load_rollout(id).await?;
        self.one_rollout(r).await
    }

    /// The devices a `specific` rollout names, by id.
    pub async fn list_named_devices(
        &self,
        admin: &Admin,
        id: &str,
        page: &PageRequest,
    ) -> Result<Page<DeviceId>, OpError> {
        admin.require(Role::Viewer)?;
        let r = self.load_rollout(id).await?;
        if r.target_filter.device_ids.is_empty() {
            return Ok(self.meta.list_named_devices(id, page).await?);
        }
        // A rollout stored before memberships existed (a DynamoDB table is not migrated) keeps
        // its devices in its record.
        let after: Option<DeviceId> = cursor::decode(page.cursor.as_deref())?;
        let mut ids = r.target_filter.device_ids;
        ids.sort_unstable();
        ids.dedup();
        ids.retain(|d| after.as_ref().is_none_or(|a| d > a));
        ids.truncate(page.limit as usize + 1);
        Ok(cursor::paginate(ids, page.limit, DeviceId::clone))
    }

    pub(super) async fn load_rollout(&self, id: &str) -> Result<Rollout, OpError> {
        self.meta
            .get_rollout(id)
            .await?
            .ok_or_else(|| OpError::NotFound(format!("rollout {id} does not exist")))
    }

    pub(super) async fn with_progress(
        &self,
        rollout: Rollout,
    ) -> Result<RolloutWithProgress, OpError> {
        Ok(RolloutWithProgress {
            progress: self.meta.rollout_progress(&rollout.id).await?,
            health: None,
            rollout,
        })
    }

    /// A rollout as the answers about one rollout show it: with its progress and, when it
    /// decides by itself, where its gate and stage stand.
    pub(super) async fn one_rollout(
        &self,
        rollout: Rollout,
    ) -> Result<RolloutWithProgress, OpError> {
        let health = self.rollout_health(&rollout).await?;
        Ok(RolloutWithProgress {
            health,
            ..self.with_progress(rollout).await?
        })
    }

    pub async fn list_devices(
        &self,
        admin: &Admin,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> Result<Page<Device>, OpError> {
        admin.require(Role::Viewer)?;
        if let Some(group) = &filter.group {
            // A name no device can have matches nothing: say so instead.
            fields::groups("group", vec![group.clone()])?;
        }
        Ok(self.meta.list_devices(filter, page).await?)
    }

    /// A device with its newest OTA log entries.
    pub async fn device_detail(
        &self,
        admin: &Admin,
        id: &DeviceId,
    ) -> Result<DeviceDetail, OpError> {
        admin.require(Role::Viewer)?;
        let device = self
            .meta
            .get_device(id)
            .await?
            .ok_or_else(|| never_checked_in(id))?;
        let log = self
            .meta
            .list_logs(
                &LogFilter {
                    device_id: Some(id.clone()),
                    ..LogFilter::default()
                },
                &PageRequest {
                    limit: RECENT_LOG_ENTRIES,
                    cursor: None,
                },
            )
            .await?;
        Ok(DeviceDetail {
            device,
            recent_log: log.items,
        })
    }

    /// The OTA log, newest first.
    pub async fn list_logs(
        &self,
        admin: &Admin,
        filter: &LogFilter,
        page: &PageRequest,
    ) -> Result<Page<LogEntry>, OpError> {
        admin.require(Role::Viewer)?;
        Ok(self.meta.list_logs(filter, page).await?)
    }

    /// The audit log, newest first.
    pub async fn list_audit(
        &self,
        admin: &Admin,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>, OpError> {
        admin.require(Role::Viewer)?;
        Ok(self.meta.list_audit(filter, page).await?)
    }

    /// Fleet metrics, from counters kept on write.
    pub async fn fleet_metrics(&self, admin: &Admin) -> Result<FleetMetrics, OpError> {
        admin.require(Role::Viewer)?;
        Ok(self.meta.fleet_metrics(self.now()).await?)
    }
}
