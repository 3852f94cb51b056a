//! A service on the in-memory stores with a clock the test moves, and the callers it serves.

#![allow(dead_code)] // each test file uses a different part

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use firmware_samples::{ImageSpec, Target};
use ota_core::access::{Admin, DeviceGrant, Role};
use ota_core::cmd::upload_release::{UploadForm, UploadPart};
use ota_core::error::OpError;
use ota_core::ports::{Clock, MetaStore};
use ota_core::release::Release;
use ota_core::service::{Service, Settings};
use ota_store_memory::{MemoryBlobs, MemoryMeta};
use time::OffsetDateTime;

pub struct TestClock(Mutex<OffsetDateTime>);

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

pub struct World {
    pub ota: Service,
    pub meta: MemoryMeta,
    pub blobs: MemoryBlobs,
    clock: Arc<TestClock>,
}

impl World {
    pub fn new() -> World {
        let (meta, blobs) = (MemoryMeta::new(), MemoryBlobs::new());
        let clock = Arc::new(TestClock(Mutex::new(
            OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        )));
        World {
            ota: Service {
                meta: Arc::new(meta.clone()),
                blobs: Arc::new(blobs.clone()),
                clock: clock.clone(),
                settings: Arc::new(Settings::default()),
                evaluations: Arc::default(),
            },
            meta,
            blobs,
            clock,
        }
    }

    pub fn advance(&self, d: time::Duration) {
        *self.clock.0.lock().unwrap() += d;
    }

    /// A release of `device_type` `version` for an esp32c3, uploaded and ready.
    pub async fn publish(&self, device_type: &str, version: &str) -> Release {
        let image = ImageSpec::new(Target::Esp32c3, version).build();
        self.ota
            .upload_release(&admin(), &mut form(device_type, version, image))
            .await
            .unwrap()
    }

    /// The details of the audit events of `action`, oldest first.
    pub async fn meta_audit_details(&self, action: &str) -> Vec<serde_json::Value> {
        let page = self
            .meta
            .list_audit(&Default::default(), &Default::default())
            .await
            .unwrap();
        page.items
            .into_iter()
            .rev()
            .filter(|e| e.action == action)
            .map(|e| e.details)
            .collect()
    }

    /// Every audit action, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        let page = self
            .meta
            .list_audit(&Default::default(), &Default::default())
            .await
            .unwrap();
        page.items.into_iter().map(|e| e.action).rev().collect()
    }
}

pub fn caller(role: Role) -> Admin {
    Admin {
        actor: format!("{}-1", role.as_str()),
        role,
    }
}

pub fn admin() -> Admin {
    caller(Role::Admin)
}

pub fn device(id: &str, device_type: &str) -> DeviceGrant {
    DeviceGrant::Device {
        device_id: id.into(),
        device_type: device_type.into(),
    }
}

/// An upload form: the parts in the order given.
pub struct Parts(pub Vec<(String, Vec<u8>)>);

#[async_trait]
impl UploadForm for Parts {
    async fn next_part(&mut self) -> Result<Option<UploadPart<'_>>, OpError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let (name, value) = self.0.remove(0);
        let bytes = Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(value))]));
        Ok(Some(if name == "file" {
            UploadPart::File(bytes)
        } else {
            UploadPart::Text { name, value: bytes }
        }))
    }
}

pub fn form(device_type: &str, version: &str, image: Vec<u8>) -> Parts {
    Parts(vec![
        ("device_type".into(), device_type.into()),
        ("version".into(), version.into()),
        ("file".into(), image),
    ])
}

#[track_caller]
pub fn invalid<T: std::fmt::Debug>(r: Result<T, OpError>, field: &str) {
    match r {
        Err(OpError::Invalid { field: f, .. }) if f == field => {}
        other => panic!("expected {field} refused as invalid, got {other:?}"),
    }
}
