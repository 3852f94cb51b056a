//! Policy per product line: which chip it runs and what images it accepts.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::ids::DeviceType;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeviceTypePolicy {
    pub name: DeviceType,
    /// Chip name as in docs/esp-image.md (`esp32c3`, ...).
    pub chip: String,
    /// Largest image accepted, in bytes; `null` means only the upload limit applies.
    pub max_image_size: Option<u64>,
    pub require_signature: bool,
    /// Lowercase hex SHA-256 digests of trusted Secure Boot V2 public keys.
    pub signing_key_digests: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}
