//! The OTA domain: identifiers, releases, rollouts, devices, the update rules and the status
//! state machine, the use cases built on them, and the storage ports both deployments
//! implement. Knows nothing of HTTP, SQLite or AWS.

pub mod audit;
pub mod capability;
pub mod check;
pub mod cursor;
pub mod device;
pub mod device_type;
pub mod error;
pub mod firmware;
pub mod ids;
pub mod image_policy;
pub mod metrics;
pub mod ports;
pub mod progress;
pub mod publish;
pub mod rollout;
pub mod rules;
pub mod status;

pub use esp_image;
