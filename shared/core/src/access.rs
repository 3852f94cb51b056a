//! Who may do what (docs/api.md §Credentials). The HTTP edge turns a verified credential into
//! an [`Admin`] or a [`DeviceGrant`]; the commands decide with them.

use serde::{Deserialize, Serialize};

use crate::error::OpError;
use crate::ids::{DeviceId, DeviceType};

/// Admin roles, each allowed what the ones below it are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every read.
    Viewer,
    /// Reads, and publishing releases (upload, create, finalize).
    Publisher,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Publisher => "publisher",
            Self::Admin => "admin",
        }
    }
}

/// An authenticated admin or CI caller: the actor the audit log names, and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub actor: String,
    pub role: Role,
}

impl Admin {
    /// Forbidden unless the caller's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), OpError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(OpError::Forbidden(format!(
                "this action needs the role '{}' or above",
                role.as_str()
            )))
        }
    }
}

/// What a device credential reaches: one device of one type. Deployments that turn device
/// authentication off (`OTA_DEVICE_AUTH=off`) grant everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceGrant {
    Any,
    /// The credential's subject and device type, as it names them.
    Device {
        device_id: String,
        device_type: String,
    },
}

impl DeviceGrant {
    /// Forbidden unless the credential is the device's own (and of `device_type`, when given).
    pub fn check_device(
        &self,
        id: &DeviceId,
        device_type: Option<&DeviceType>,
    ) -> Result<(), OpError> {
        if let Self::Device { device_id, .. } = self
            && device_id != id.as_str()
        {
            return Err(OpError::Forbidden(
                "a device may act only as itself".to_owned(),
            ));
        }
        device_type.map_or(Ok(()), |dt| self.check_type(dt))
    }

    /// Forbidden unless the credential may touch releases of `device_type`.
    pub fn check_type(&self, device_type: &DeviceType) -> Result<(), OpError> {
        match self {
            Self::Device {
                device_type: own, ..
            } if own != device_type.as_str() => Err(OpError::Forbidden(
                "the credential belongs to another device type".to_owned(),
            )),
            _ => Ok(()),
        }
    }

    /// The device type the credential names, when it names one.
    pub fn device_type(&self) -> Result<Option<DeviceType>, OpError> {
        match self {
            Self::Any => Ok(None),
            Self::Device { device_type, .. } => DeviceType::parse(device_type)
                .map(Some)
                .map_err(|e| OpError::Forbidden(e.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> DeviceGrant {
        DeviceGrant::Device {
            device_id: "d1".into(),
            device_type: "demo".into(),
        }
    }

    #[test]
    fn roles_are_ordered() {
        let publisher = Admin {
            actor: "ci".into(),
            role: Role::Publisher,
        };
        assert!(publisher.require(Role::Viewer).is_ok());
        assert!(publisher.require(Role::Publisher).is_ok());
        assert_eq!(
            publisher.require(Role::Admin),
            Err(OpError::Forbidden(
                "this action needs the role 'admin' or above".into()
            ))
        );
    }

    #[test]
    fn a_device_acts_only_as_itself_on_its_own_type() {
        let (d1, d2) = (
            DeviceId::parse("d1").unwrap(),
            DeviceId::parse("d2").unwrap(),
        );
        let (demo, other) = (
            DeviceType::parse("demo").unwrap(),
            DeviceType::parse("other").unwrap(),
        );
        assert!(grant().check_device(&d1, Some(&demo)).is_ok());
        assert!(matches!(
            grant().check_device(&d2, None),
            Err(OpError::Forbidden(_))
        ));
        assert!(matches!(
            grant().check_device(&d1, Some(&other)),
            Err(OpError::Forbidden(_))
        ));
        assert!(DeviceGrant::Any.check_device(&d2, Some(&other)).is_ok());
        assert_eq!(grant().device_type(), Ok(Some(demo)));
        assert_eq!(DeviceGrant::Any.device_type(), Ok(None));
        let bad = DeviceGrant::Device {
            device_id: "d1".into(),
            device_type: "Not A Type".into(),
        };
        assert!(matches!(bad.device_type(), Err(OpError::Forbidden(_))));
    }
}
