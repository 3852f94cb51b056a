//! TEMPORARY while the adapter is written.
use async_trait::async_trait;
use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::device::*;
use ota_core::device_type::DeviceTypePolicy;
use ota_core::firmware::{Firmware, FirmwareFilter};
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::metrics::FleetMetrics;
use ota_core::ports::*;
use ota_core::progress::RolloutProgress;
use ota_core::rollout::{Rollout, RolloutFilter};
use time::OffsetDateTime;

#[async_trait]
impl MetaStore for super::DynamoMeta {
    #[allow(unused_variables)]
    async fn ping(&self) -> StoreResult<()> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn get_device_type(&self, name: &DeviceType) -> StoreResult<Option<DeviceTypePolicy>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn list_device_types(&self, page: &PageRequest) -> StoreResult<Page<DeviceTypePolicy>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn put_device_type(&self, policy: &DeviceTypePolicy) -> StoreResult<()> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn create_device_type_if_absent( &self, policy: &DeviceTypePolicy, ) -> StoreResult<DeviceTypePolicy> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn insert_firmware(&self, firmware: &Firmware) -> StoreResult<()> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn get_firmware(&self, id: &str) -> StoreResult<Option<Firmware>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn find_firmware( &self, device_type: &DeviceType, version: &Version, ) -> StoreResult<Option<Firmware>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn list_firmware( &self, filter: &FirmwareFilter, page: &PageRequest, ) -> StoreResult<Page<Firmware>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn update_firmware(&self, firmware: &Firmware, expect: &Firmware) -> StoreResult<()> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn delete_pending_firmware(&self, id: &str) -> StoreResult<()> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn insert_rollout(&self, rollout: &Rollout) -> StoreResult<()> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn get_rollout(&self, id: &str) -> StoreResult<Option<Rollout>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn list_rollouts( &self, filter: &RolloutFilter, page: &PageRequest, ) -> StoreResult<Page<Rollout>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn update_rollout(&self, rollout: &Rollout, expect_revision: u64) -> StoreResult<()> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn release_view(&self, device_type: &DeviceType) -> StoreResult<ReleaseView> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn record_check( &self, check_in: &CheckIn, offer: &OfferFn<'_>, ) -> StoreResult<DeviceSnapshot> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn get_device(&self, id: &DeviceId) -> StoreResult<Option<Device>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn set_device_groups(&self, id: &DeviceId, groups: &[String]) -> StoreResult<Device> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn list_devices( &self, filter: &DeviceFilter, page: &PageRequest, ) -> StoreResult<Page<Device>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn record_status(&self, report: &StatusReport) -> StoreResult<StatusOutcome> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn rollout_progress(&self, rollout_id: &str) -> StoreResult<RolloutProgress> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn fleet_metrics(&self, now: OffsetDateTime) -> StoreResult<FleetMetrics> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn list_audit( &self, filter: &AuditFilter, page: &PageRequest, ) -> StoreResult<Page<AuditEvent>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn purge( &self, audit_before: OffsetDateTime, log_before: OffsetDateTime, ) -> StoreResult<()> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
    #[allow(unused_variables)]
    async fn list_logs( &self, filter: &LogFilter, page: &PageRequest, ) -> StoreResult<Page<LogEntry>> { Err(StoreError::Internal("the DynamoDB adapter is being written".into())) }
}
