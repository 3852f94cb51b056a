//! Mint a device credential (docs/api.md §Credentials), for a factory line or a bench: bound to
//! one device id and device type, optionally expiring. The token itself never reaches the audit
//! log.

use crate::access::{Admin, Role};
use crate::error::OpError;
use crate::ids::{DeviceId, DeviceType};
use crate::ports::DeviceCredentials;
use crate::service::Service;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MintToken {
    /// Absent: the device's registered type.
    pub device_type: Option<DeviceType>,
    /// Lifetime in seconds; absent: the token does not expire.
    pub ttl_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MintedToken {
    pub token: String,
    pub device_type: DeviceType,
    pub expires_at: Option<time::OffsetDateTime>,
}

impl Service {
    pub async fn mint_device_token(
        &self,
        admin: &Admin,
        credentials: &dyn DeviceCredentials,
        id: &DeviceId,
        input: MintToken,
    ) -> Result<MintedToken, OpError> {
        admin.require(Role::Admin)?;
        let device_type = match input.device_type {
            Some(t) => t,
            None => self
                .meta
                .get_device(id)
                .await?
                .map(|d| d.device_type)
                .ok_or_else(|| {
                    OpError::invalid(
                        "device_type",
                        "device_type is required for a device that has never checked in",
                    )
                })?,
        };
        let expires_at = match input.ttl_s {
            Some(0) => return Err(OpError::invalid("ttl_s", "must be positive")),
            Some(s) => {
                let secs = i64::try_from(s).map_err(|_| OpError::invalid("ttl_s", "too large"))?;
                Some(
                    self.now()
                        .checked_add(time::Duration::seconds(secs))
                        .ok_or_else(|| OpError::invalid("ttl_s", "too large"))?,
                )
            }
            None => None,
        };
        let token = credentials.mint(id, &device_type, expires_at)?;
        self.audit(
            admin,
            "device.token_mint",
            "device",
            id.as_str(),
            serde_json::json!({
                "device_type": device_type,
                "expires_at": expires_at.map(time::OffsetDateTime::unix_timestamp),
            }),
        )
        .await?;
        Ok(MintedToken {
            token,
            device_type,
            expires_at,
        })
    }
}
