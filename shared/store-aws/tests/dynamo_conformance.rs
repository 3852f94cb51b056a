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
    let (store, _, _) = fresh_table().await;
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

/// A store on a new table, and the raw client and table name to look at its items.
async fn fresh_table() -> (DynamoMeta, aws_sdk_dynamodb::Client, String) {
    let sdk = sdk_config().await;
    let table = format!("ota-test-{}", uuid::Uuid::new_v4().simple());
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    ota_store_aws::create_table(&client, &table)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = DynamoMeta::from_client(client.clone(), &table, DynamoOptions::default());
    (store, client, table)
}

/// The bytes of an item's `doc` attribute (0 when the item is absent).
async fn doc_len(client: &aws_sdk_dynamodb::Client, table: &str, pk: &str, sk: &str) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = client
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S(pk.to_owned()))
        .key("SK", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item
        .and_then(|it| it.get("doc").and_then(|d| d.as_s().ok()).map(String::len))
        .unwrap_or(0)
}

/// A `specific` rollout naming 20,000 devices (what used to overflow the 400 KB item twice
/// over with a second such rollout) stores them apart: its record and its type's view stay
/// small, every named device reads its membership with itself (checked in before or not), and
/// the rollout lists them all, in order, once each, across chunk boundaries.
#[tokio::test]
async fn a_specific_rollout_names_twenty_thousand_devices_apart() {
    use std::time::Instant;

    use ota_core::ports::{PageRequest, StoreError};
    use ota_core::release::ReleaseState;
    use ota_core::rollout::{RolloutState, TargetType};
    use ota_store_conformance::fixtures::{check_in, dev, release, rollout};

    const NAMED: usize = 20_000;
    let (s, client, table) = fresh_table().await;
    let fw = release("demo", "1.1.0", ReleaseState::Ready);
    s.insert_release(&fw).await.unwrap();
    // Checked in before it is named, and one that is never named.
    for d in ["dev-000100", "outsider"] {
        let snap = s
            .record_check(&check_in(d, "demo", "1.0.0"), &|_| None)
            .await
            .unwrap();
        assert!(snap.named_in.is_empty(), "{d}");
    }

    let named: Vec<_> = (0..NAMED).map(|i| dev(&format!("dev-{i:06}"))).collect();
    let mut r = rollout(&fw, RolloutState::Active);
    r.target_type = TargetType::Specific;
    r.named_devices = u32::try_from(NAMED).unwrap();
    let started = Instant::now();
    s.insert_rollout(&r, &named).await.unwrap();
    eprintln!(
        "insert_rollout naming {NAMED} devices: {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // Neither the rollout's item nor the type's view grows with the devices it names.
    let view = doc_len(&client, &table, "DT#demo", "VIEW").await;
    let record = doc_len(&client, &table, &format!("RO#{}", r.id), "RO").await;
    assert!(view > 0 && view < 8_192, "release view: {view} bytes");
    assert!(record > 0 && record < 4_096, "rollout item: {record} bytes");
    let stored = s.get_rollout(&r.id).await.unwrap().unwrap();
    assert!(stored.target_filter.device_ids.is_empty());
    assert_eq!(stored.named_devices, 20_000);

    // The memberships come with the device: checked in before, never checked in (its
    // partition held memberships only: it registers as new), and not named.
    for (d, expect) in [
        ("dev-000100", vec![r.id.clone()]),
        ("dev-019999", vec![r.id.clone()]),
        ("outsider", vec![]),
    ] {
        let snap = s
            .record_check(&check_in(d, "demo", "1.0.0"), &|_| None)
            .await
            .unwrap();
        assert_eq!(snap.named_in, expect, "{d}");
        assert!(
            s.get_device(&dev(d)).await.unwrap().is_some(),
            "{d} registered"
        );
    }
    // Named again by a second rollout: both memberships, in id order.
    let mut again = rollout(&fw, RolloutState::Active);
    again.target_type = TargetType::Specific;
    again.named_devices = 1;
    s.insert_rollout(&again, &[dev("dev-000100")])
        .await
        .unwrap();
    let snap = s
        .record_check(&check_in("dev-000100", "demo", "1.0.0"), &|_| None)
        .await
        .unwrap();
    let mut both = vec![r.id.clone(), again.id.clone()];
    both.sort();
    assert_eq!(snap.named_in, both);

    // Listed by id, every one once: pages that end on chunk boundaries (500) and pages that
    // straddle them (333).
    let started = Instant::now();
    for limit in [500, 333] {
        let mut listed = Vec::with_capacity(NAMED);
        let mut cursor = None;
        let mut pages = 0;
        loop {
            let p = s
                .list_named_devices(&r.id, &PageRequest { limit, cursor })
                .await
                .unwrap();
            pages += 1;
            assert!(p.items.len() <= limit as usize);
            assert!(p.next_cursor.is_none() || p.items.len() == limit as usize);
            listed.extend(p.items);
            match p.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(listed.len(), NAMED, "limit {limit}");
        assert!(
            listed == named,
            "limit {limit}: every named device once, by id"
        );
        assert_eq!(pages, NAMED.div_ceil(limit as usize), "limit {limit}");
    }
    eprintln!(
        "listing {NAMED} named devices twice: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let second = s
        .list_named_devices(&again.id, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(second.items, [dev("dev-000100")]);
    assert_eq!(second.next_cursor, None);
    let none = s
        .list_named_devices("no-such-rollout", &PageRequest::default())
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next_cursor.is_none());
    let bad = PageRequest {
        limit: 10,
        cursor: Some("not a cursor".into()),
    };
    assert_eq!(
        s.list_named_devices(&r.id, &bad).await.unwrap_err(),
        StoreError::BadCursor
    );
}

/// What can still outgrow an item: a device type's active rollouts are stored together in its
/// release view, each with its groups. A change whose view would exceed DynamoDB's 400 KB is
/// refused as too large, never a storage failure, and nothing of it is stored.
#[tokio::test]
async fn a_rollout_too_large_for_the_view_is_refused_and_stores_nothing() {
    use ota_core::ports::StoreError;
    use ota_core::release::ReleaseState;
    use ota_core::rollout::{RolloutState, TargetType};
    use ota_store_conformance::fixtures::{dt, release, rollout};

    let (s, ()) = fresh().await;
    let fw = release("demo", "1.0.0", ReleaseState::Ready);
    s.insert_release(&fw).await.unwrap();
    let grouped = |tag: &str| {
        let mut r = rollout(&fw, RolloutState::Active);
        r.target_type = TargetType::Group;
        r.target_filter.groups = (0..3_100)
            .map(|i| format!("{tag}-group-{i:05}-{}", "x".repeat(50)))
            .collect();
        r
    };
    // 3,100 groups of 64 characters: ~208 KB of JSON each, in the rollout's item and the
    // type's view: one fits, two do not.
    let first = grouped("a");
    s.insert_rollout(&first, &[]).await.unwrap();
    let second = grouped("b");
    let err = s.insert_rollout(&second, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::ItemTooLarge(_)), "{err:?}");
    assert_eq!(s.get_rollout(&second.id).await.unwrap(), None);
    let view = s.release_view(&dt("demo")).await.unwrap();
    assert_eq!(view.options.len(), 1, "the first rollout only");
}

/// Answers `BatchWriteItem`s as if DynamoDB had left an item unprocessed (the first `times`
/// of them): a marker item of its own key, which the store must send again.
#[derive(Debug)]
struct LeaveUnprocessed {
    table: String,
    times: std::sync::atomic::AtomicU32,
    left: std::sync::atomic::AtomicU32,
}

impl aws_sdk_dynamodb::config::Intercept for LeaveUnprocessed {
    fn name(&self) -> &'static str {
        "LeaveUnprocessed"
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextMut<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use std::sync::atomic::Ordering;

        use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
        use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

        let Some(Ok(out)) = context.inner_mut().output_or_error_mut() else {
            return Ok(());
        };
        let Some(batch) = out.downcast_mut::<BatchWriteItemOutput>() else {
            return Ok(());
        };
        if self
            .times
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| t.checked_sub(1))
            .is_err()
        {
            return Ok(());
        }
        let n = self.left.fetch_add(1, Ordering::SeqCst);
        let marker = PutRequest::builder()
            .item("PK", AttributeValue::S("TEST#unprocessed".into()))
            .item("SK", AttributeValue::S(format!("{n:010}")))
            .build()?;
        batch.unprocessed_items = Some(std::collections::HashMap::from([(
            self.table.clone(),
            vec![WriteRequest::builder().put_request(marker).build()],
        )]));
        Ok(())
    }
}

/// A store on a new table whose first `times` batch writes leave an item unprocessed.
async fn leaving_unprocessed(
    times: u32,
) -> (
    DynamoMeta,
    aws_sdk_dynamodb::Client,
    String,
    Arc<LeaveUnprocessed>,
) {
    let (_, client, table) = fresh_table().await;
    let fault = Arc::new(LeaveUnprocessed {
        table: table.clone(),
        times: times.into(),
        left: 0.into(),
    });
    let faulty = aws_sdk_dynamodb::Client::from_conf(
        client
            .config()
            .to_builder()
            .interceptor(ArcIntercept(fault.clone()))
            .build(),
    );
    let store = DynamoMeta::from_client(faulty, &table, DynamoOptions::default());
    (store, client, table, fault)
}

/// `Intercept` for a shared interceptor whose counters the test reads.
#[derive(Debug)]
struct ArcIntercept(Arc<LeaveUnprocessed>);

impl aws_sdk_dynamodb::config::Intercept for ArcIntercept {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextMut<'_>,
        components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        self.0
            .modify_before_attempt_completion(context, components, cfg)
    }
}

/// Items a batch write leaves unprocessed are sent again, and the rollout is stored once they
/// all are.
#[tokio::test]
async fn unprocessed_memberships_are_sent_again() {
    use std::sync::atomic::Ordering;

    use ota_core::ports::PageRequest;
    use ota_core::release::ReleaseState;
    use ota_core::rollout::{RolloutState, TargetType};
    use ota_store_conformance::fixtures::{check_in, dev, release, rollout};

    let (s, client, table, fault) = leaving_unprocessed(3).await;
    let fw = release("demo", "1.1.0", ReleaseState::Ready);
    s.insert_release(&fw).await.unwrap();
    let named: Vec<_> = (0..60).map(|i| dev(&format!("d{i:02}"))).collect();
    let mut r = rollout(&fw, RolloutState::Active);
    r.target_type = TargetType::Specific;
    r.named_devices = 60;
    s.insert_rollout(&r, &named).await.unwrap();
    assert_eq!(
        fault.left.load(Ordering::SeqCst),
        3,
        "three batches left one each"
    );
    for n in 0..3 {
        // `doc_len` is 0 for an absent item and for one without `doc`: look at the key.
        let got = client
            .get_item()
            .table_name(&table)
            .key(
                "PK",
                aws_sdk_dynamodb::types::AttributeValue::S("TEST#unprocessed".into()),
            )
            .key(
                "SK",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("{n:010}")),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        assert!(got.item.is_some(), "unprocessed item {n} sent again");
    }
    let listed = s
        .list_named_devices(
            &r.id,
            &PageRequest {
                limit: 100,
                cursor: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items, named);
    let snap = s
        .record_check(&check_in("d59", "demo", "1.0.0"), &|_| None)
        .await
        .unwrap();
    assert_eq!(snap.named_in, [r.id.clone()]);
}

/// A batch write that DynamoDB keeps leaving unprocessed ends `Unavailable` after the bounded
/// rounds, and the rollout is not stored: it is never visible without all of its memberships.
#[tokio::test]
async fn a_create_whose_memberships_stay_unprocessed_stores_no_rollout() {
    use ota_core::ports::StoreError;
    use ota_core::release::ReleaseState;
    use ota_core::rollout::{RolloutState, TargetType};
    use ota_store_conformance::fixtures::{dev, dt, release, rollout};

    let (s, _, _, _) = leaving_unprocessed(u32::MAX).await;
    let fw = release("demo", "1.1.0", ReleaseState::Ready);
    s.insert_release(&fw).await.unwrap();
    let mut r = rollout(&fw, RolloutState::Active);
    r.target_type = TargetType::Specific;
    r.named_devices = 3;
    let err = s
        .insert_rollout(&r, &[dev("a"), dev("b"), dev("c")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(s.get_rollout(&r.id).await.unwrap(), None);
    assert!(
        s.release_view(&dt("demo"))
            .await
            .unwrap()
            .options
            .is_empty()
    );
}

/// Every log entry and device goes to one of the shards of its index partitions (so that no
/// partition takes a whole fleet's reports), and listings merge the shards, and the unsharded
/// partition where items written before sharding stay, into one order across pages; retention
/// purges them all.
#[tokio::test]
async fn logs_and_devices_are_sharded_and_listed_in_one_order() {
    use std::collections::BTreeSet;

    use aws_sdk_dynamodb::types::AttributeValue;
    use ota_core::device::{DeviceFilter, LogFilter};
    use ota_core::release::ReleaseState;
    use ota_core::status::OtaStatus;
    use ota_store_conformance::fixtures::{check_in, now, release, report};

    let (store, client, table) = fresh_table().await;
    let fw = release("shards", "1.0.0", ReleaseState::Ready);
    store.insert_release(&fw).await.unwrap();
    let devices: Vec<String> = (0..40).map(|i| format!("sh-{i:02}")).collect();
    for d in &devices {
        store
            .record_check(&check_in(d, "shards", "0.9.0"), &|_| None)
            .await
            .unwrap();
        store
            .record_status(&report(d, &fw, OtaStatus::Downloading, &format!("ev-{d}")))
            .await
            .unwrap();
    }
    // One device and one log entry as stored before sharding: in the unsharded partitions.
    let legacy = |sk: &str, names: &[(&str, String)]| {
        let mut u = client
            .update_item()
            .table_name(&table)
            .key("PK", AttributeValue::S("DEV#sh-07".into()))
            .key("SK", AttributeValue::S(sk.into()));
        let mut set = Vec::new();
        for (i, (name, value)) in names.iter().enumerate() {
            u = u.expression_attribute_values(format!(":v{i}"), AttributeValue::S(value.clone()));
            set.push(format!("{name} = :v{i}"));
        }
        u.update_expression(format!("SET {}", set.join(", ")))
            .send()
    };
    legacy(
        "#DEV",
        &[
            ("GSI1PK", "DEVT#shards".into()),
            ("GSI2PK", "DEVALL".into()),
        ],
    )
    .await
    .unwrap();
    legacy(
        "EV#ev-sh-07",
        &[
            ("GSI2PK", format!("LOGF#{}", fw.id)),
            ("GSI3PK", "LOG".into()),
        ],
    )
    .await
    .unwrap();

    let scanned = client.scan().table_name(&table).send().await.unwrap();
    let partitions: BTreeSet<String> = scanned
        .items()
        .iter()
        .filter_map(|it| it.get("GSI3PK")?.as_s().ok().cloned())
        .filter(|pk| pk.starts_with("LOG"))
        .collect();
    assert!(
        partitions.len() >= 10,
        "40 devices' log entries in {partitions:?}"
    );

    let walk_logs = |filter: LogFilter| {
        let store = &store;
        every_page(move |page| {
            let filter = filter.clone();
            async move {
                let p = store.list_logs(&filter, &page).await.unwrap();
                (
                    p.items.into_iter().map(|e| e.event_id).collect(),
                    p.next_cursor,
                )
            }
        })
    };
    let newest_first: Vec<String> = devices.iter().rev().map(|d| format!("ev-{d}")).collect();
    assert_eq!(walk_logs(LogFilter::default()).await, newest_first);
    let of_release = LogFilter {
        firmware_id: Some(fw.id.clone()),
        ..LogFilter::default()
    };
    assert_eq!(walk_logs(of_release).await, newest_first);

    for filter in [
        DeviceFilter::default(),
        DeviceFilter {
            device_type: Some(ota_core::ids::DeviceType::parse("shards").unwrap()),
            ..DeviceFilter::default()
        },
    ] {
        let seen = every_page(|page| {
            let (store, filter) = (&store, &filter);
            async move {
                let p = store.list_devices(filter, &page).await.unwrap();
                let ids = p.items.iter().map(|d| d.device_id.to_string()).collect();
                (ids, p.next_cursor)
            }
        })
        .await;
        assert_eq!(seen, devices, "{filter:?}");
    }

    let later = now() + time::Duration::hours(1);
    store
        .purge(now() - time::Duration::hours(1), later)
        .await
        .unwrap();
    assert!(walk_logs(LogFilter::default()).await.is_empty());
}

/// Everything a listing returns, page by page (7 items a page, so that pages end mid-shard):
/// `list` reads one page and returns its items and the next cursor.
async fn every_page<F, Fut>(list: F) -> Vec<String>
where
    F: Fn(ota_core::ports::PageRequest) -> Fut,
    Fut: std::future::Future<Output = (Vec<String>, Option<String>)>,
{
    let mut page = ota_core::ports::PageRequest {
        limit: 7,
        cursor: None,
    };
    let mut all = Vec::new();
    loop {
        let (items, next) = list(page.clone()).await;
        all.extend(items);
        match next {
            Some(c) => page.cursor = Some(c),
            None => return all,
        }
    }
}
