//! Put a device in groups (docs/api.md §Admin endpoints), which `group` rollouts target; a check
//! reads them, so regrouping takes effect on the device's next check.

use crate::access::{Admin, Role};
use crate::device::Device;
use crate::error::OpError;
use crate::fields;
use crate::ids::DeviceId;
use crate::ports::StoreError;
use crate::service::Service;

impl Service {
    /// Replaces the device's groups.
    pub async fn set_device_groups(
        &self,
        admin: &Admin,
        id: &DeviceId,
        groups: Vec<String>,
    ) -> Result<Device, OpError> {
        admin.require(Role::Admin)?;
        let groups = fields::groups("groups", groups)?;
        let device = self
            .meta
            .set_device_groups(id, &groups)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => never_checked_in(id),
                other => other.into(),
            })?;
        self.audit(
            admin,
            "device.groups",
            "device",
            id.as_str(),
            serde_json::json!({"groups": device.groups}),
        )
        .await?;
        Ok(device)
    }
}

pub(super) fn never_checked_in(id: &DeviceId) -> OpError {
    OpError::NotFound(format!("device {id} has never checked in"))
}
