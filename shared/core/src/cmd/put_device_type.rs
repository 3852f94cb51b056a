//! Create or replace a device type's policy (docs/api.md §Admin endpoints): the chip it runs
//! (fixed once the type exists), the largest image, and whether images must carry a Secure Boot
//! V2 signature by one of its pinned keys.

use esp_image::Chip;

use crate::access::{Admin, Role};
use crate::device_type::DeviceTypePolicy;
use crate::error::OpError;
use crate::fields;
use crate::ids::DeviceType;
use crate::service::Service;

#[derive(Debug, Clone, PartialEq)]
pub struct PutDeviceType {
    pub name: DeviceType,
    /// A chip name as in docs/esp-image.md (`esp32`, `esp32c3`, ...).
    pub chip: String,
    pub max_image_size: Option<u64>,
    pub require_signature: bool,
    pub signing_key_digests: Vec<String>,
}

impl Service {
    pub async fn put_device_type(
        &self,
        admin: &Admin,
        input: PutDeviceType,
    ) -> Result<DeviceTypePolicy, OpError> {
        admin.require(Role::Admin)?;
        let chip = Chip::from_name(&input.chip)
            .ok_or_else(|| OpError::invalid("chip", format!("unknown chip '{}'", input.chip)))?;
        let digests = input
            .signing_key_digests
            .iter()
            .map(|d| fields::sha256_hex("signing_key_digests", d))
            .collect::<Result<Vec<_>, _>>()?;
        if input.require_signature && digests.is_empty() {
            return Err(OpError::invalid(
                "signing_key_digests",
                "require_signature needs at least one trusted key digest",
            ));
        }
        let now = self.now();
        let name = input.name;
        let existing = self.meta.get_device_type(&name).await?;
        if let Some(e) = &existing
            && e.chip != chip.name()
        {
            return Err(OpError::Conflict(format!(
                "device type {name} runs {}; its chip cannot change",
                e.chip
            )));
        }
        let policy = DeviceTypePolicy {
            name,
            chip: chip.name().to_owned(),
            max_image_size: fields::stored_integer("max_image_size", input.max_image_size)?,
            require_signature: input.require_signature,
            signing_key_digests: digests,
            created_at: existing.map_or(now, |e| e.created_at),
            updated_at: now,
        };
        self.meta.put_device_type(&policy).await?;
        self.audit(
            admin,
            "device_type.put",
            "device_type",
            policy.name.as_str(),
            serde_json::to_value(&policy).unwrap_or_default(),
        )
        .await?;
        Ok(policy)
    }
}
