//! The device-facing commands on the in-memory stores: check, download and status reports.

mod support;

use ota_core::access::DeviceGrant;
use ota_core::cmd::check::{CheckAnswer, CheckInput};
use ota_core::cmd::create_rollout::{CreateRollout, RolloutOf};
use ota_core::cmd::download::Wanted;
use ota_core::cmd::report_status::{Reported, StatusInput};
use ota_core::error::OpError;
use ota_core::ids::{DeviceId, DeviceType, Version};
use ota_core::metrics::RolloutWithProgress;
use ota_core::ports::MetaStore;
use ota_core::release::Release;
use ota_core::rollout::{RolloutState, TargetFilter, TargetType};
use ota_core::status::OtaStatus;
use support::{World, admin, device, invalid};

fn check(id: &str, version: &str) -> CheckInput {
    CheckInput {
        device_id: DeviceId::parse(id).unwrap(),
        device_type: DeviceType::parse("demo").unwrap(),
        current_version: Version::parse(version).unwrap(),
        current_build: None,
        secure_version: None,
        channel: None,
        nonce: None,
        running_image_sha256: None,
        boot: None,
    }
}

fn status(id: &str, release: &Release, st: OtaStatus, event: &str) -> StatusInput {
    StatusInput {
        device_id: DeviceId::parse(id).unwrap(),
        release: Reported::Id(release.id.clone()),
        status: st,
        bytes_downloaded: None,
        progress_percent: None,
        error_message: None,
        event_id: Some(event.into()),
    }
}

async fn rollout(w: &World, release: &Release, threshold: Option<f64>) -> RolloutWithProgress {
    let input = CreateRollout {
        name: format!("all of {}", release.version),
        release: RolloutOf::Id(release.id.clone()),
        target_type: TargetType::All,
        rollout_percentage: None,
        target_filter: TargetFilter::default(),
        failure_threshold_percent: threshold,
        min_reports: Some(2),
        allow_downgrade: false,
        paused: false,
        stages: Vec::new(),
        health_gate: None,
        schedule: None,
        install_timeout_s: None,
        max_offers_per_hour: None,
    };
    w.ota.create_rollout(&admin(), input).await.unwrap()
}

fn offered(answer: &CheckAnswer) -> Option<String> {
    match answer {
        CheckAnswer::UpToDate | CheckAnswer::Deferred { .. } => None,
        CheckAnswer::Update { option, .. } => Some(option.release.version.to_string()),
    }
}

#[tokio::test]
async fn a_device_is_offered_the_rollout_and_its_check_on_the_new_version_completes_it() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    assert_eq!(
        offered(&w.ota.check(check("d1", "1.0.0")).await.unwrap()),
        None
    );
    let r = rollout(&w, &fw, None).await;
    let answer = w.ota.check(check("d1", "1.0.0")).await.unwrap();
    assert_eq!(offered(&answer).as_deref(), Some("1.1.0"));
    let CheckAnswer::Update { url, .. } = answer else {
        unreachable!()
    };
    assert!(url.url.starts_with("memory:///firmware/"), "{}", url.url);
    // Running the offered version completes the attempt (rule 5), counted in the rollout.
    let done = w.ota.check(check("d1", "1.1.0")).await.unwrap();
    assert_eq!(done, CheckAnswer::UpToDate);
    let log = w
        .meta
        .list_logs(&Default::default(), &Default::default())
        .await
        .unwrap();
    assert_eq!(log.items.len(), 1);
    assert_eq!(log.items[0].event_id, format!("check-in:d1:{}", fw.id));
    assert_eq!(log.items[0].status, OtaStatus::Success);
    let progress = w.meta.rollout_progress(&r.rollout.id).await.unwrap();
    assert_eq!(progress.success_reports, 1);
    // Another check changes nothing more.
    w.ota.check(check("d1", "1.1.0")).await.unwrap();
    assert_eq!(
        w.meta.rollout_progress(&r.rollout.id).await.unwrap(),
        progress
    );
}

#[tokio::test]
async fn check_refuses_a_bad_channel() {
    let w = World::new();
    let mut input = check("d1", "1.0.0");
    input.channel = Some("no spaces".into());
    invalid(w.ota.check(input).await, "channel");
}

#[tokio::test]
async fn check_refuses_a_bad_nonce_before_registering_the_device() {
    let w = World::new();
    let mut input = check("d1", "1.0.0");
    input.nonce = Some("not hex at all!!".into());
    invalid(w.ota.check(input).await, "nonce");
    assert!(
        w.ota
            .meta
            .get_device(&DeviceId::parse("d1").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn three_failures_end_the_offers_of_a_release() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    rollout(&w, &fw, None).await;
    let grant = device("d1", "demo");
    for attempt in 0..3 {
        assert!(offered(&w.ota.check(check("d1", "1.0.0")).await.unwrap()).is_some());
        for st in [OtaStatus::Downloading, OtaStatus::Failed] {
            let event = format!("{attempt}-{}", st.as_str());
            w.ota
                .report_status(&grant, status("d1", &fw, st, &event))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        w.ota.check(check("d1", "1.0.0")).await.unwrap(),
        CheckAnswer::UpToDate
    );
}

#[tokio::test]
async fn reports_are_checked_against_the_release_and_the_credential() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    let grant = device("d1", "demo");
    let mut unknown = status("d1", &fw, OtaStatus::Downloading, "e1");
    unknown.release = Reported::Id("nope".into());
    assert_eq!(
        w.ota.report_status(&grant, unknown).await,
        Err(OpError::NotFound("firmware nope does not exist".into()))
    );
    let other_type = device("d1", "other");
    assert!(matches!(
        w.ota
            .report_status(&other_type, status("d1", &fw, OtaStatus::Downloading, "e1"))
            .await,
        Err(OpError::Forbidden(_))
    ));
    let mut over = status("d1", &fw, OtaStatus::Downloading, "e1");
    over.progress_percent = Some(101);
    invalid(w.ota.report_status(&grant, over).await, "progress_percent");
    let mut long = status("d1", &fw, OtaStatus::Failed, "e1");
    long.error_message = Some("x".repeat(1025));
    invalid(w.ota.report_status(&grant, long).await, "error_message");
    invalid(
        w.ota
            .report_status(&grant, status("d1", &fw, OtaStatus::Failed, "has space"))
            .await,
        "event_id",
    );
    // Nothing of the refused reports was stored.
    let log = w
        .meta
        .list_logs(&Default::default(), &Default::default())
        .await
        .unwrap();
    assert!(log.items.is_empty());
}

#[tokio::test]
async fn a_repeated_event_is_answered_the_same_and_a_backward_move_is_refused() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    let grant = DeviceGrant::Any;
    let first = w
        .ota
        .report_status(&grant, status("d1", &fw, OtaStatus::Success, "e1"))
        .await
        .unwrap();
    let again = w
        .ota
        .report_status(&grant, status("d1", &fw, OtaStatus::Downloading, "e1"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.entry, first.entry);
    assert!(matches!(
        w.ota.report_status(&grant, status("d1", &fw, OtaStatus::Downloading, "e2")).await,
        Err(OpError::Conflict(m)) if m == "status 'downloading' cannot follow the final status 'success'"
    ));
    // Without an event id every report is a new one.
    let mut anonymous = status("d1", &fw, OtaStatus::Success, "x");
    anonymous.event_id = None;
    let a = w
        .ota
        .report_status(&grant, anonymous.clone())
        .await
        .unwrap();
    let b = w.ota.report_status(&grant, anonymous).await.unwrap();
    assert_ne!(a.entry.event_id, b.entry.event_id);
}

#[tokio::test]
async fn the_paku_dialect_names_the_release_by_version_of_the_registered_type() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    let by_version = |device_type: Option<&str>| StatusInput {
        release: Reported::Version {
            device_type: device_type.map(|t| DeviceType::parse(t).unwrap()),
            version: Version::parse("1.1.0").unwrap(),
        },
        ..status("d1", &fw, OtaStatus::Downloading, "e1")
    };
    assert_eq!(
        w.ota
            .report_status(&DeviceGrant::Any, by_version(None))
            .await,
        Err(OpError::NotFound(
            "unknown device: it must check in first".into()
        ))
    );
    w.ota.check(check("d1", "1.0.0")).await.unwrap();
    let out = w
        .ota
        .report_status(&DeviceGrant::Any, by_version(None))
        .await
        .unwrap();
    assert_eq!(out.entry.firmware_id, fw.id);
    assert_eq!(
        w.ota
            .report_status(&DeviceGrant::Any, by_version(Some("other")))
            .await,
        Err(OpError::NotFound("no firmware 1.1.0 for other".into()))
    );
}

#[tokio::test]
async fn the_crossing_report_pauses_the_rollout_once() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    let r = rollout(&w, &fw, Some(40.0)).await;
    let mut paused = Vec::new();
    for (i, st) in [
        OtaStatus::Success,
        OtaStatus::Failed,
        OtaStatus::Failed,
        OtaStatus::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("d{i}");
        w.ota.check(check(&id, "1.0.0")).await.unwrap();
        let out = w
            .ota
            .report_status(&DeviceGrant::Any, status(&id, &fw, st, "final"))
            .await
            .unwrap();
        paused.push(out.paused_rollout.is_some());
    }
    // 1 of 2 = 50 % > 40 % with min_reports 2: the second report pauses, and only it.
    assert_eq!(paused, [false, true, false, false]);
    let stored = w.meta.get_rollout(&r.rollout.id).await.unwrap().unwrap();
    assert_eq!(stored.state, RolloutState::Paused);
    assert_eq!(stored.revision, 2);
    assert!(
        w.audit_actions()
            .await
            .contains(&"rollout.auto_pause".to_owned())
    );
    // A paused rollout offers nothing.
    assert_eq!(
        w.ota.check(check("d9", "1.0.0")).await.unwrap(),
        CheckAnswer::UpToDate
    );
}

#[tokio::test]
async fn downloads_need_an_offerable_release_of_the_credentials_type() {
    let w = World::new();
    let fw = w.publish("demo", "1.1.0").await;
    let grant = device("d1", "demo");
    let url = w
        .ota
        .download(&grant, &Wanted::Id(fw.id.clone()))
        .await
        .unwrap();
    assert!(url.url.contains(&fw.id));
    let by_version = Wanted::Version {
        device_type: DeviceType::parse("demo").unwrap(),
        version: Version::parse("1.1.0").unwrap(),
    };
    assert_eq!(
        w.ota.downloadable(&grant, &by_version).await.unwrap().id,
        fw.id
    );
    assert!(matches!(
        w.ota
            .download(&device("d1", "other"), &Wanted::Id(fw.id.clone()))
            .await,
        Err(OpError::Forbidden(_))
    ));
    w.ota.deactivate_release(&admin(), &fw.id).await.unwrap();
    assert_eq!(
        w.ota.download(&grant, &Wanted::Id(fw.id.clone())).await,
        Err(OpError::NotFound("no such active firmware".into()))
    );
}
