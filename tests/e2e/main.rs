//! End-to-end tests of the OTA service over real HTTP.
//!
//! Each test starts its own `ota-server` (the real binary) on an ephemeral port with a fresh
//! data directory; see `harness.rs`. Run with `cargo test -p ota-server --test e2e`; with
//! `OTA_E2E_STORE=aws` (and the local AWS stack's variables, as `cargo xtask test` sets them) the
//! same tests run against the AWS storage (DynamoDB + S3).

mod api;
mod harness;
mod lambda_watch;
mod proxy;

mod auth;
mod auto_pause;
mod aws_faults;
mod device_health;
mod device_loop;
mod devices;
mod download;
mod edges;
mod errors;
mod esp_idf_device;
mod faults;
mod firmware;
mod fleet;
mod logs;
mod manifests;
mod meta;
mod metrics;
mod restart;
mod staged_rollouts;
mod status;
mod walkthrough;
