//! The metadata contract against DynamoDB Local (started by `cargo xtask test`): the same cases
//! as the embedded store, each on a new table of its own.

use std::sync::Arc;

use ota_core::ports::MetaStore;
use ota_store_aws::{DynamoMeta, DynamoOptions};

/// The SDK configuration of the local stack. Fails (never skips) without it.
async fn sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default();
    assert!(
        !endpoint.is_empty(),
        "AWS_ENDPOINT_URL_DYNAMODB is not set: these tests need the local AWS stack. Run them \
         with `cargo xtask test`, or start the stack with `cargo xtask local-aws` and paste the \
         export lines it prints before `cargo test -p ota-store-aws`."
    );
    ota_store_aws::load_sdk_config().await
}

/// A store on a new, empty table of its own.
async fn fresh() -> (Arc<dyn MetaStore>, ()) {
    let sdk = sdk_config().await;
    let table = format!("ota-test-{}", uuid::Uuid::new_v4().simple());
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    ota_store_aws::create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = DynamoMeta::from_client(client, table, DynamoOptions::default());
    (Arc::new(store), ())
}

ota_store_conformance::meta_store_tests!(fresh);

/// Expired log entries and audit events are not listed, though TTL has not deleted them yet
/// (DynamoDB Local never runs TTL; in AWS it can lag by days).
#[tokio::test]
async fn expired_log_entries_and_audit_events_are_not_listed() {
    use std::time::Duration;

    use ota_core::audit::{AuditEvent, AuditFilter};
    use ota_core::device::LogFilter;
    use ota_core::ports::PageRequest;
    use ota_core::release::ReleaseState;
    use ota_core::status::OtaStatus;
    use ota_store_conformance::fixtures::{now, release, report};

    let sdk = sdk_config().await;
    let table = format!("ota-test-{}", uuid::Uuid::new_v4().simple());
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    ota_store_aws::create_table(&client, &table).await.unwrap();
    let open = |retention| {
        DynamoMeta::from_client(
            client.clone(),
            &table,
            DynamoOptions {
                log_retention: retention,
                audit_retention: retention,
                ..DynamoOptions::default()
            },
        )
    };
    // Written one after the other: the older two expire after a second, the newer two keep.
    let short = open(Duration::from_secs(1));
    let long = open(Duration::from_secs(3600));
    let fw = release("demo", "1.0.0", ReleaseState::Ready);
    long.insert_release(&fw).await.unwrap();
    let audit = |id: &str| {
        AuditEvent::new(
            "admin",
            "test.action",
            "release",
            id,
            serde_json::json!({}),
            now(),
        )
    };
    short
        .record_status(&report("d1", &fw, OtaStatus::Downloading, "old"))
        .await
        .unwrap();
    short.record_audit(&audit("old")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    long.record_status(&report("d2", &fw, OtaStatus::Downloading, "new"))
        .await
        .unwrap();
    long.record_audit(&audit("new")).await.unwrap();

    let page = PageRequest::default();
    let logs = long.list_logs(&LogFilter::default(), &page).await.unwrap();
    let events: Vec<&str> = logs.items.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(events, ["new"]);
    let d1 = LogFilter {
        device_id: Some(ota_store_conformance::fixtures::dev("d1")),
        ..LogFilter::default()
    };
    assert!(long.list_logs(&d1, &page).await.unwrap().items.is_empty());
    let audited = long
        .list_audit(&AuditFilter::default(), &page)
        .await
        .unwrap();
    let targets: Vec<&str> = audited.items.iter().map(|e| e.target_id.as_str()).collect();
    assert_eq!(targets, ["new"]);
}

/// Rollouts whose named devices no longer fit an item (DynamoDB's 400 KB) are refused as too
/// large, never a storage failure, and nothing of them is stored.
#[tokio::test]
async fn a_rollout_too_large_for_an_item_is_refused_and_stores_nothing() {
    use ota_core::ids::DeviceId;
    use ota_core::ports::StoreError;
    use ota_core::release::ReleaseState;
    use ota_core::rollout::{RolloutState, TargetType};
    use ota_store_conformance::fixtures::{dt, release, rollout};

    let (s, ()) = fresh().await;
    let fw = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&fw).await.unwrap();
    let named = |n: usize, tag: &str| {
        let mut r = rollout(&fw, RolloutState::Active);
        r.target_type = TargetType::Specific;
        r.target_filter.device_ids = (0..n)
            .map(|i| DeviceId::parse(&format!("{tag}-device-{i:06}")).unwrap())
            .collect();
        r
    };
    // 19,000 ids of 17 bytes: ~380 KB of JSON, in the rollout's item and the type's view.
    let first = named(19_000, "a");
    s.insert_rollout(&first).await.unwrap();
    let second = named(19_000, "b");
    let err = s.insert_rollout(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::ItemTooLarge(_)), "{err:?}");
    assert_eq!(s.get_rollout(&second.id).await.unwrap(), None);
    let view = s.release_view(&dt("demo")).await.unwrap();
    assert_eq!(view.options.len(), 1, "the first rollout only");
}
