//! Mint a device credential (docs/api.md §Credentials), for a factory line or a bench: bound to
//! one device id and device type, optionally expiring. The token itself never reaches the audit
//! log.

use crate::access::{Admin, Role};
use crate::error::OpError;
use crate::ids::{DeviceId, DeviceType};
use crate::ports::DeviceCredentials;
use crate::service::Service;

/// Longest lifetime of a device token that expires: 100 years (a device outlives no more).
pub const MAX_TTL_S: u64 = 100 * 365 * 24 * 3600;

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
                // Well formed, but the registry does not know the device yet: a state, not input.
                .ok_or_else(|| {
                    OpError::Unprocessable(
                        "device_type is required for a device that has never checked in".into(),
                    )
                })?,
        };
        let expires_at = match input.ttl_s {
            Some(s) if !(1..=MAX_TTL_S).contains(&s) => {
                return Err(OpError::invalid(
                    "ttl_s",
                    format!("must be between 1 and {MAX_TTL_S} seconds"),
                ));
            }
            Some(s) => Some(self.now() + std::time::Duration::from_secs(s)),
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
