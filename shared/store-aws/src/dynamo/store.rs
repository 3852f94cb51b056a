//! The `MetaStore` port on DynamoDB: each method delegates to the module that owns its items.

use std::sync::Arc;

use async_trait::async_trait;
use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::device::{CheckIn, Device, DeviceFilter, DeviceSnapshot, LogEntry, LogFilter};
use ota_core::device_health::HealthCounts;
use ota_core::device_type::DeviceTypePolicy;
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::install_timeout::SilentAttempt;
use ota_core::metrics::FleetMetrics;
use ota_core::offer_budget::Taken;
use ota_core::ports::{
    MetaStore, OFFER_VIEW_MAX_AGE, OfferFn, Page, PageRequest, ReleaseView, StoreError, StoreResult,
};
use ota_core::progress::RolloutProgress;
use ota_core::release::{Release, ReleaseFilter};
use ota_core::report_plan::{StatusOutcome, StatusReport};
use ota_core::rollout::{Rollout, RolloutFilter};
use ota_core::rollout_evaluation::Change;
use time::OffsetDateTime;

use super::DynamoMeta;
use super::error::store_error;
use super::rollouts::Expect;

#[async_trait]
impl MetaStore for DynamoMeta {
    async fn ping(&self) -> StoreResult<()> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| match store_error("DescribeTable", &e) {
                // A missing table is a deployment fault, not a blip.
                StoreError::Internal(m) => StoreError::Internal(m),
                other => other,
            })
    }

    async fn get_device_type(&self, name: &DeviceType) -> StoreResult<Option<DeviceTypePolicy>> {
        self.get_policy(name).await
    }

    async fn list_device_types(&self, page: &PageRequest) -> StoreResult<Page<DeviceTypePolicy>> {
        self.list_policies(page).await
    }

    async fn put_device_type(&self, policy: &DeviceTypePolicy) -> StoreResult<()> {
        self.write_policy(policy, false).await.map(|_| ())
    }

    async fn create_device_type_if_absent(
        &self,
        policy: &DeviceTypePolicy,
    ) -> StoreResult<DeviceTypePolicy> {
        if self.write_policy(policy, true).await? {
            return Ok(policy.clone());
        }
        self.get_policy(&policy.name)
            .await?
            .ok_or_else(|| StoreError::Internal("device type vanished".into()))
    }

    async fn insert_release(&self, release: &Release) -> StoreResult<()> {
        self.put_new_release(release).await
    }

    async fn get_release(&self, id: &str) -> StoreResult<Option<Release>> {
        self.release_doc(id).await
    }

    async fn find_release(
        &self,
        device_type: &DeviceType,
        version: &Version,
    ) -> StoreResult<Option<Release>> {
        self.find_release_doc(device_type, version).await
    }

    async fn list_releases(
        &self,
        filter: &ReleaseFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Release>> {
        self.list_release_docs(filter, page).await
    }

    async fn update_release(
        &self,
        release: &Release,
        expect: &Release,
        event: &AuditEvent,
    ) -> StoreResult<()> {
        self.replace_release(release, expect, event).await
    }

    async fn insert_rollout(&self, rollout: &Rollout, named: &[DeviceId]) -> StoreResult<()> {
        self.insert_rollout_naming(rollout, named).await
    }

    async fn list_named_devices(
        &self,
        rollout_id: &str,
        page: &PageRequest,
    ) -> StoreResult<Page<DeviceId>> {
        self.named_devices(rollout_id, page).await
    }

    async fn get_rollout(&self, id: &str) -> StoreResult<Option<Rollout>> {
        self.get_rollout_doc(id).await
    }

    async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Rollout>> {
        self.list_rollout_docs(filter, page).await
    }

    async fn update_rollout(&self, rollout: &Rollout, expect_revision: u64) -> StoreResult<()> {
        self.write_rollout(rollout, Expect::Revision(expect_revision), None)
            .await
    }

    async fn decide_rollout(&self, change: &Change) -> StoreResult<()> {
        self.write_rollout(
            &change.rollout,
            Expect::Revision(change.expect_revision),
            Some(&change.audit),
        )
        .await
    }

    async fn release_view(&self, device_type: &DeviceType) -> StoreResult<Arc<ReleaseView>> {
        self.release_view_cached(device_type, self.options.view_cache)
            .await
    }

    async fn release_view_to_offer(
        &self,
        device_type: &DeviceType,
    ) -> StoreResult<Arc<ReleaseView>> {
        let max_age = self.options.view_cache.min(OFFER_VIEW_MAX_AGE);
        self.release_view_cached(device_type, max_age).await
    }

    async fn record_check(
        &self,
        check_in: &CheckIn,
        offer: &OfferFn<'_>,
    ) -> StoreResult<DeviceSnapshot> {
        self.check_in(check_in, offer).await
    }

    async fn get_device(&self, id: &DeviceId) -> StoreResult<Option<Device>> {
        self.get_device_doc(id).await
    }

    async fn set_device_groups(&self, id: &DeviceId, groups: &[String]) -> StoreResult<Device> {
        self.set_groups(id, groups).await
    }

    async fn list_devices(
        &self,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Device>> {
        self.list_device_docs(filter, page).await
    }

    async fn record_status(&self, report: &StatusReport) -> StoreResult<StatusOutcome> {
        self.report(report).await
    }

    async fn silent_attempts(
        &self,
        rollout_id: &str,
        before: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<SilentAttempt>> {
        self.open_attempts_before(rollout_id, before, limit).await
    }

    async fn take_offer(
        &self,
        rollout_id: &str,
        limit: u32,
        at: OffsetDateTime,
    ) -> StoreResult<Taken> {
        self.take_from_budget(rollout_id, limit, at).await
    }

    async fn rollout_progress(&self, rollout_id: &str) -> StoreResult<RolloutProgress> {
        self.read_progress(rollout_id).await
    }

    async fn release_health(&self, firmware_id: &str) -> StoreResult<HealthCounts> {
        self.release_counts(firmware_id).await
    }

    async fn fleet_metrics(&self, now: OffsetDateTime) -> StoreResult<FleetMetrics> {
        self.metrics(now).await
    }

    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        self.put_item(
            self.audit_item(event)?,
            Some("attribute_not_exists(PK)"),
            &[],
        )
        .await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        self.list_audit_events(filter, page).await
    }

    async fn purge(
        &self,
        audit_before: OffsetDateTime,
        log_before: OffsetDateTime,
    ) -> StoreResult<()> {
        self.purge_before(audit_before, log_before).await
    }

    async fn list_logs(
        &self,
        filter: &LogFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<LogEntry>> {
        self.list_log(filter, page).await
    }
}
