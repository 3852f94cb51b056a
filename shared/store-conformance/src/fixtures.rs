//! Records to store, with just the fields each case cares about varied.

use std::sync::Arc;

use ota_core::audit::{AuditEvent, AuditFilter};
use ota_core::cmd::check::CheckInput;
use ota_core::device::{CheckIn, Offer};
use ota_core::device_health::BootReport;
use ota_core::ids::{DeviceId, DeviceType, Version, new_id};
use ota_core::ports::{BlobStore, MetaStore, PageRequest, SystemClock};
use ota_core::release::{Release, ReleaseState};
use ota_core::report_plan::StatusReport;
use ota_core::rollout::{Rollout, RolloutState, Staging, TargetFilter, TargetType};
use ota_core::service::{Service, Settings};
use ota_core::status::OtaStatus;
use time::OffsetDateTime;

pub fn now() -> OffsetDateTime {
    // Whole microseconds: what every backend can store exactly.
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
        .unwrap_or(t)
}

pub fn dt(s: &str) -> DeviceType {
    DeviceType::parse(s).expect("valid device type")
}

pub fn dev(s: &str) -> DeviceId {
    DeviceId::parse(s).expect("valid device id")
}

pub fn ver(s: &str) -> Version {
    Version::parse(s).expect("valid version")
}

pub fn release(device_type: &str, version: &str, state: ReleaseState) -> Release {
    let now = now();
    Release {
        id: new_id(),
        device_type: dt(device_type),
        version: ver(version),
        build_number: 0,
        channel: "stable".into(),
        file_size: 1024,
        file_hash: "00".repeat(32),
        secure_version: 0,
        chip: Some("esp32c3".into()),
        project_name: Some("demo".into()),
        idf_version: Some("v5.4".into()),
        image_sha256: None,
        min_current_version: None,
        description: None,
        release_notes: None,
        state,
        is_active: true,
        rejection_reasons: Vec::new(),
        created_at: now,
        updated_at: now,
        released_at: None,
    }
}

pub fn rollout(fw: &Release, state: RolloutState) -> Rollout {
    let now = now();
    Rollout {
        id: new_id(),
        name: format!("rollout of {}", fw.version),
        firmware_id: fw.id.clone(),
        device_type: fw.device_type.clone(),
        target_type: TargetType::All,
        rollout_percentage: 100.0,
        target_filter: TargetFilter::default(),
        named_devices: 0,
        failure_threshold_percent: None,
        min_reports: 10,
        allow_downgrade: false,
        state,
        staging: Staging::default(),
        revision: 1,
        created_at: now,
        updated_at: now,
    }
}

pub fn check_in(device: &str, device_type: &str, version: &str) -> CheckIn {
    CheckIn {
        device_id: dev(device),
        device_type: dt(device_type),
        current_version: ver(version),
        current_build: None,
        secure_version: 0,
        channel: "stable".into(),
        running_image_sha256: None,
        boot: None,
        at: now(),
    }
}

/// `check_in` of a device that reports the validation hash of the app it runs and its boot.
pub fn running(
    device: &str,
    device_type: &str,
    image_sha256: Option<&str>,
    boot: Option<BootReport>,
) -> CheckIn {
    CheckIn {
        running_image_sha256: image_sha256.map(str::to_owned),
        boot,
        ..check_in(device, device_type, "1.0.0")
    }
}

/// A boot report with every member.
pub fn boot(reason: &str, boots_since_update: u32, crashes: u32, uptime_s: u64) -> BootReport {
    BootReport {
        reset_reason: Some(reason.to_owned()),
        boots_since_update: Some(boots_since_update),
        crashes_since_last_check: Some(crashes),
        uptime_s: Some(uptime_s),
    }
}

/// A ready release whose image has the validation hash `image_sha256`.
pub fn release_of_image(device_type: &str, version: &str, image_sha256: &str) -> Release {
    Release {
        image_sha256: Some(image_sha256.to_owned()),
        ..release(device_type, version, ReleaseState::Ready)
    }
}

/// What a device sends when it asks, as the `check` command takes it.
pub fn check_input(device: &str, device_type: &str, version: &str) -> CheckInput {
    CheckInput {
        device_id: dev(device),
        device_type: dt(device_type),
        current_version: ver(version),
        current_build: None,
        secure_version: None,
        channel: None,
        nonce: None,
        running_image_sha256: None,
        boot: None,
    }
}

/// The commands on these stores, with the system clock and the default settings.
pub fn service(meta: Arc<dyn MetaStore>, blobs: Arc<dyn BlobStore>) -> Service {
    Service {
        meta,
        blobs,
        clock: Arc::new(SystemClock),
        settings: Arc::new(Settings::default()),
        evaluations: Arc::default(),
    }
}

/// Checks `device` in (running 0.1.0) and remembers an offer of `fw` by `rollout`: its reports
/// count toward that rollout.
pub async fn offered(s: &dyn MetaStore, device: &str, fw: &Release, rollout: &Rollout) {
    let offer = Offer {
        firmware_id: fw.id.clone(),
        version: fw.version.clone(),
        rollout_id: rollout.id.clone(),
        at: now(),
    };
    s.record_check(&check_in(device, fw.device_type.as_str(), "0.1.0"), &|_| {
        Some(offer.clone())
    })
    .await
    .unwrap();
}

pub fn report(device: &str, fw: &Release, status: OtaStatus, event_id: &str) -> StatusReport {
    StatusReport {
        event_id: event_id.to_owned(),
        device_id: dev(device),
        device_type: fw.device_type.clone(),
        firmware_id: fw.id.clone(),
        version: fw.version.clone(),
        status,
        bytes_downloaded: None,
        progress_percent: None,
        error_message: None,
        at: now(),
        silent_since: None,
    }
}

/// The audit events of automatic pauses (rule 4), newest first (one page: the cases pause a
/// rollout or two).
pub async fn auto_pauses(s: &dyn MetaStore) -> Vec<AuditEvent> {
    s.list_audit(
        &AuditFilter {
            action: Some("rollout.auto_pause".into()),
            ..AuditFilter::default()
        },
        &PageRequest::default(),
    )
    .await
    .unwrap()
    .items
}
