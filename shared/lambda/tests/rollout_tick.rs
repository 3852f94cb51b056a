//! The `rollout-tick` function's invocation against DynamoDB Local (started by `cargo xtask
//! test`): a staged rollout whose stage has passed advances on the tick, with its audit event,
//! while a rollout that decides nothing by itself is left alone; a device silent past its
//! rollout's install timeout is timed out by the tick.

use std::sync::Arc;

use ota_core::audit::AuditFilter;
use ota_core::ports::{MetaStore, PageRequest};
use ota_core::release::ReleaseState;
use ota_core::report_plan::StatusReport;
use ota_core::rollout::RolloutState;
use ota_core::rollout_evaluation::DecisionKind;
use ota_core::service::Service;
use ota_core::stages::Stage;
use ota_core::status::OtaStatus;
use ota_store_aws::{DynamoMeta, DynamoOptions, S3Blobs};
use ota_store_conformance::fixtures::{now, offered, release, report, rollout, service};
use serde_json::json;
use time::Duration;

/// The SDK configuration of the local stack. Fails (never skips) without it.
async fn local_stack() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok_and(|v| !v.is_empty()),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: this test needs the local AWS stack. Run it with \
         `cargo xtask test`, or start the stack with `cargo xtask local-aws` and paste the export \
         lines it prints before `cargo test -p ota-lambda`."
    );
    ota_store_aws::load_sdk_config().await
}

/// A store on a new, empty table of the local stack.
async fn fresh_table() -> (aws_config::SdkConfig, Arc<DynamoMeta>) {
    let sdk = local_stack().await;
    let table = format!("ota-tick-{}", ota_core::ids::new_id());
    let meta = Arc::new(DynamoMeta::new(&sdk, table, DynamoOptions::default()));
    ota_store_aws::create_table(meta.client(), meta.table())
        .await
        .unwrap();
    (sdk, meta)
}

/// The use cases on `meta`. The tick touches no object, so the bucket need not exist.
fn tick_service(sdk: &aws_config::SdkConfig, meta: Arc<DynamoMeta>) -> Service {
    service(meta, Arc::new(S3Blobs::new(sdk, "unused")))
}

#[tokio::test]
async fn a_tick_advances_a_stage_that_passed_and_only_once() {
    let (sdk, meta) = fresh_table().await;
    let svc = tick_service(&sdk, meta.clone());

    let fw = release("tick", "1.1.0", ReleaseState::Ready);
    meta.insert_release(&fw).await.unwrap();
    // Staged: the first stage passes at once (no soak, no device needed), the last never does.
    let mut staged = rollout(&fw, RolloutState::Active);
    staged.staging.stages = [10.0, 100.0]
        .map(|percent| Stage {
            percent,
            soak_s: 0,
            min_devices: 0,
        })
        .to_vec();
    staged.staging.stage_started_at = Some(staged.created_at);
    staged.rollout_percentage = 10.0;
    meta.insert_rollout(&staged, &[]).await.unwrap();
    // Active too, but without stages or a gate: nothing for the tick to decide.
    let other = release("tick-other", "2.0.0", ReleaseState::Ready);
    meta.insert_release(&other).await.unwrap();
    let plain = rollout(&other, RolloutState::Active);
    meta.insert_rollout(&plain, &[]).await.unwrap();

    let answer = ota_lambda::rollout_tick::tick(&svc).await.unwrap();
    assert_eq!(
        answer,
        json!({"evaluated": 1, "decided": 1, "timed_out": 0})
    );
    let moved = meta.get_rollout(&staged.id).await.unwrap().unwrap();
    assert_eq!(
        (moved.staging.stage_index, moved.rollout_percentage),
        (1, 100.0),
        "the next stage"
    );
    let decision = moved
        .staging
        .decisions
        .last()
        .expect("the decision is kept");
    assert_eq!(
        (decision.kind, decision.from_stage, decision.to_stage),
        (DecisionKind::StageAdvance, 0, 1)
    );
    let audit = meta
        .list_audit(
            &AuditFilter {
                target_id: Some(staged.id.clone()),
                ..AuditFilter::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["rollout.stage_advance"], "its audit event");
    assert_eq!(
        meta.get_rollout(&plain.id).await.unwrap().unwrap(),
        plain,
        "the unstaged rollout is unchanged"
    );

    // The last stage never passes by itself: the next tick evaluates it and decides nothing.
    let answer = ota_lambda::rollout_tick::tick(&svc).await.unwrap();
    assert_eq!(
        answer,
        json!({"evaluated": 1, "decided": 0, "timed_out": 0})
    );
    assert_eq!(meta.get_rollout(&staged.id).await.unwrap().unwrap(), moved);
}

#[tokio::test]
async fn a_tick_times_out_a_device_silent_past_its_rollouts_install_timeout() {
    let (sdk, meta) = fresh_table().await;
    let svc = tick_service(&sdk, meta.clone());
    let fw = release("tick", "1.1.0", ReleaseState::Ready);
    meta.insert_release(&fw).await.unwrap();
    let mut r = rollout(&fw, RolloutState::Active);
    r.staging.install_timeout_s = Some(60);
    meta.insert_rollout(&r, &[]).await.unwrap();
    // Two devices downloading: one silent for two minutes, one that spoke just now.
    for (device, silent_s) in [("silent", 120), ("talking", 0)] {
        offered(meta.as_ref(), device, &fw, &r).await;
        let downloading = StatusReport {
            at: now() - Duration::seconds(silent_s),
            ..report(device, &fw, OtaStatus::Downloading, device)
        };
        meta.record_status(&downloading).await.unwrap();
    }

    let answer = ota_lambda::rollout_tick::tick(&svc).await.unwrap();
    assert_eq!(
        answer,
        json!({"evaluated": 1, "decided": 0, "timed_out": 1})
    );
    let progress = meta.rollout_progress(&r.id).await.unwrap();
    assert_eq!(
        (progress.devices.timed_out, progress.devices.downloading),
        (1, 1),
        "the silent device timed out, the other still downloading"
    );
}

/// A store that does not answer fails the invocation with the cause, rather than answering as
/// if nothing were due (Lambda then counts the error).
#[tokio::test]
async fn a_tick_whose_store_fails_fails_the_invocation() {
    let sdk = local_stack().await;
    let missing = DynamoMeta::new(&sdk, "ota-tick-no-such-table", DynamoOptions::default());
    let svc = tick_service(&sdk, Arc::new(missing));
    let e = ota_lambda::rollout_tick::tick(&svc).await.unwrap_err();
    assert_eq!(e.error_type, "EvaluateRolloutsFailed");
    assert!(!e.error_message.is_empty());
}
