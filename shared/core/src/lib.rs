//! The OTA domain: identifiers, releases, rollouts, devices, the update rules and the status
//! state machine, every use case built on them (`cmd`), and the ports both deployments
//! implement. Knows nothing of HTTP, SQLite or AWS. `docs/architecture.md` maps where each rule
//! lives.

pub mod access;
pub mod audit;
pub mod auto_pause;
pub mod capability;
pub mod cmd;
pub mod cursor;
pub mod device;
pub mod device_health;
pub mod device_type;
pub mod error;
pub mod fields;
pub mod health_gate;
pub mod ids;
pub mod image_policy;
pub mod install_timeout;
pub mod last_seen_precision;
pub mod manifest;
pub mod manifest_keys;
pub mod map_only;
pub mod metrics;
pub mod offer_budget;
pub mod offer_schedule;
pub mod percent_limit;
pub mod ports;
pub mod progress;
pub mod release;
pub mod report_plan;
pub mod retry;
pub mod rollout;
pub mod rollout_evaluation;
pub mod rollout_lifecycle;
pub mod rules;
pub mod service;
pub mod stages;
pub mod status;

pub use esp_image;
