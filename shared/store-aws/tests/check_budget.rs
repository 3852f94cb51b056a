//! `check` costs at most two DynamoDB requests (issue 4), and the steady poll one read and no
//! write (issue 16): counted on the wire by an SDK interceptor, against DynamoDB Local, through
//! the real `check` use case.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use ota_core::cmd::check::{CheckAnswer, CheckInput};
use ota_core::device::{Device, DeviceFilter};
use ota_core::device_type::DeviceTypePolicy;
use ota_core::ports::{MetaStore, PageRequest};
use ota_core::release::ReleaseState;
use ota_core::rollout::RolloutState;
use ota_core::status::OtaStatus;
use ota_store_aws::{DynamoMeta, DynamoOptions, S3Blobs};
use ota_store_conformance::fixtures::{
    boot, check_input, dev, dt, now, release, release_of_image, report, rollout, running, service,
};

/// What follows `PutItem` in the name of a put of a device's refresh (`cargo xtask bench`'s cost
/// table reads it).
const REFRESH_MARK: &str = " (refresh)";

/// Every DynamoDB request sent (retries included), by operation.
#[derive(Debug, Clone, Default)]
struct Requests(Arc<Mutex<Vec<String>>>);

impl Requests {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let mut op = request
            .headers()
            .get("x-amz-target")
            .unwrap_or("?")
            .trim_start_matches("DynamoDB_20120810.")
            .to_owned();
        // A put of a device's refresh (1 write unit) is told from a put of its record (3: the
        // table and two indexes), for the cost table.
        if op == "PutItem"
            && request
                .body()
                .bytes()
                .is_some_and(|b| String::from_utf8_lossy(b).contains(r##""SK":{"S":"#SEEN"}"##))
        {
            op.push_str(REFRESH_MARK);
        }
        self.0.lock().unwrap().push(op);
        Ok(())
    }
}

/// A new table on the local stack, and the requests of the stores [`Self::counted`] opens.
struct Bench {
    sdk: aws_config::SdkConfig,
    table: String,
    requests: Requests,
}

impl Bench {
    async fn new() -> Self {
        assert!(
            std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok_and(|v| !v.is_empty()),
            "AWS_ENDPOINT_URL_DYNAMODB is not set: run with `cargo xtask test`"
        );
        let sdk = ota_store_aws::load_sdk_config().await;
        let table = format!("ota-test-{}", uuid::Uuid::new_v4().simple());
        ota_store_aws::create_table(&aws_sdk_dynamodb::Client::new(&sdk), &table)
            .await
            .unwrap();
        Self {
            sdk,
            table,
            requests: Requests::default(),
        }
    }

    /// A store on the table (as one Lambda instance) whose every request is counted.
    fn counted(&self, options: DynamoOptions) -> Arc<DynamoMeta> {
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&self.sdk)
                .interceptor(self.requests.clone())
                .build(),
        );
        Arc::new(DynamoMeta::from_client(client, &self.table, options))
    }

    /// A store on the table whose requests are not counted (another instance).
    fn uncounted(&self) -> Arc<DynamoMeta> {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        Arc::new(DynamoMeta::from_client(
            client,
            &self.table,
            DynamoOptions::default(),
        ))
    }

    /// The `check` use case on `meta`. Presigning needs no request; the bucket need not exist.
    fn service(&self, meta: Arc<DynamoMeta>) -> ota_core::service::Service {
        service(meta, Arc::new(S3Blobs::new(&self.sdk, "unused")))
    }
}

#[tokio::test]
async fn check_costs_one_read_when_nothing_changed_and_at_most_two_requests() {
    let bench = Bench::new().await;
    let requests = &bench.requests;
    let meta = bench.counted(DynamoOptions::default());
    let svc = bench.service(meta.clone());

    let fw = release("demo", "2.0.0", ReleaseState::Ready);
    meta.create_device_type_if_absent(&DeviceTypePolicy {
        name: dt("demo"),
        chip: "esp32c3".into(),
        max_image_size: None,
        require_signature: false,
        signing_key_digests: Vec::new(),
        created_at: now(),
        updated_at: now(),
    })
    .await
    .unwrap();
    meta.insert_release(&fw).await.unwrap();
    let r = rollout(&fw, RolloutState::Active);
    meta.insert_rollout(&r, &[]).await.unwrap();
    requests.take();

    // Cold instance: the release view is read once (one Query), then cached.
    let cold = svc.check(check_input("d0", "demo", "1.0.0")).await.unwrap();
    assert!(matches!(cold, CheckAnswer::Update { .. }));
    let sent = requests.take();
    assert_eq!(
        sent.len(),
        3,
        "cold check: view + device read + write: {sent:?}"
    );
    print_count("cold instance, new device, offered", &sent);

    let cases = [
        // A new device offered the release (registration, counter move and offer in one write).
        ("new device, offered", check_input("d1", "demo", "1.0.0"), 2),
        // The same device asking again, already offered: nothing to write but `last_seen`,
        // which is not yet `last_seen_precision` old (the steady poll: one read).
        ("offered again", check_input("d1", "demo", "1.0.0"), 1),
        (
            "new device, up to date",
            check_input("d2", "demo", "2.0.0"),
            2,
        ),
        ("up to date again", check_input("d2", "demo", "2.0.0"), 1),
        // Another version moves the fleet counters in the same transaction.
        ("version moved", check_input("d2", "demo", "1.5.0"), 2),
    ];
    for (what, input, expected) in cases {
        svc.check(input).await.unwrap();
        let sent = requests.take();
        assert_eq!(sent.len(), expected, "{what}: {sent:?}");
        print_count(what, &sent);
    }

    // A device that reports the image it runs: one keyed read more when the hash is new to its
    // record, none while it stays. A boot counted for the release is in the same one write (a
    // transaction instead of a put).
    let image = "ab".repeat(32);
    meta.insert_release(&release_of_image("demo", "1.9.0", &image))
        .await
        .unwrap();
    requests.take();
    let runs = |uptime_s| CheckInput {
        running_image_sha256: Some(image.clone()),
        boot: Some(boot("poweron", 1, 0, uptime_s)),
        ..check_input("d3", "demo", "1.9.0")
    };
    svc.check(runs(5)).await.unwrap();
    let sent = requests.take();
    assert_eq!(
        sent.len(),
        3,
        "a new image: device read, the release's lookup, one write: {sent:?}"
    );
    print_count("new device running a known release, first boot", &sent);
    for (what, uptime_s, expected) in [
        ("same image, same boot", 65, 1),
        ("same image, new boot", 3, 2),
    ] {
        svc.check(runs(uptime_s)).await.unwrap();
        let sent = requests.take();
        assert_eq!(sent.len(), expected, "{what}: {sent:?}");
        print_count(what, &sent);
    }

    // A device that failed three times is offered nothing, still within budget.
    for (i, st) in [OtaStatus::Failed, OtaStatus::Failed, OtaStatus::Failed]
        .into_iter()
        .enumerate()
    {
        meta.record_status(&report(
            "d1",
            &fw,
            OtaStatus::Downloading,
            &format!("dl{i}"),
        ))
        .await
        .unwrap();
        meta.record_status(&report("d1", &fw, st, &format!("f{i}")))
            .await
            .unwrap();
    }
    requests.take();
    let answer = svc.check(check_input("d1", "demo", "1.0.0")).await.unwrap();
    assert_eq!(answer, CheckAnswer::UpToDate, "three strikes");
    let sent = requests.take();
    assert_eq!(sent.len(), 1, "after three failures: {sent:?}");
    print_count("after three failures, up to date", &sent);

    // With `last_seen` kept exactly (precision 0) the steady poll writes again: the read and a
    // put of the device's refresh.
    let exact_svc = bench.service(bench.counted(DynamoOptions {
        last_seen_precision: Duration::ZERO,
        ..DynamoOptions::default()
    }));
    exact_svc
        .check(check_input("d2", "demo", "1.5.0"))
        .await
        .unwrap();
    let sent = requests.take();
    assert_eq!(sent.len(), 3, "cold view, read, put: {sent:?}");
    exact_svc
        .check(check_input("d2", "demo", "1.5.0"))
        .await
        .unwrap();
    let sent = requests.take();
    assert_eq!(sent, ["Query", "PutItem (refresh)"]);
    print_count("up to date again, OTA_LAST_SEEN_PRECISION_S=0", &sent);

    // The download redirect's one store call (`Service::download`), for the cost table.
    meta.get_release(&fw.id).await.unwrap().unwrap();
    let sent = requests.take();
    assert_eq!(sent.len(), 1, "download redirect: {sent:?}");
    print_count("download redirect", &sent);
}

/// One parseable line per case (`cargo xtask bench` reads them with `--nocapture` for its cost
/// table): the case, the number of requests and the operations.
fn print_count(case: &str, ops: &[String]) {
    println!(
        "DYNAMODB_REQUESTS {}",
        serde_json::json!({ "case": case, "requests": ops.len(), "operations": ops })
    );
}

/// Two instances on one table (as two Lambda instances are): a rollout paused through one is
/// offered by the other no more once its cached view is `OFFER_VIEW_MAX_AGE` old, though that
/// instance keeps the view for `OTA_VIEW_CACHE_S` (5 s) for polls that offer nothing, which
/// read no view meanwhile.
#[tokio::test]
async fn a_pause_stops_offers_from_every_instance_within_a_second() {
    let bench = Bench::new().await;
    let requests = &bench.requests;
    let svc = bench.service(bench.counted(DynamoOptions::default()));
    let b = bench.uncounted();
    let fw = release("demo", "2.0.0", ReleaseState::Ready);
    b.insert_release(&fw).await.unwrap();
    let r = rollout(&fw, RolloutState::Active);
    b.insert_rollout(&r, &[]).await.unwrap();

    let offered = |answer: &CheckAnswer| matches!(answer, CheckAnswer::Update { .. });
    assert!(offered(
        &svc.check(check_input("d0", "demo", "1.0.0")).await.unwrap()
    ));
    svc.check(check_input("up", "demo", "2.0.0")).await.unwrap();
    let cached_at = std::time::Instant::now();
    let mut paused = r.clone();
    paused.state = RolloutState::Paused;
    paused.revision += 1;
    b.update_rollout(&paused, r.revision).await.unwrap();

    tokio::time::sleep(
        ota_core::ports::OFFER_VIEW_MAX_AGE.saturating_sub(cached_at.elapsed())
            + Duration::from_millis(50),
    )
    .await;
    requests.take();
    // The steady poll: still from the cached view (5 s), one read.
    svc.check(check_input("up", "demo", "2.0.0")).await.unwrap();
    let sent = requests.take();
    assert_eq!(sent, ["Query"], "the device's read only");
    // A device the cached view would offer the paused rollout to: the view is read again, and
    // nothing is offered.
    let answer = svc.check(check_input("d1", "demo", "1.0.0")).await.unwrap();
    assert_eq!(answer, CheckAnswer::UpToDate, "a paused rollout offered");
    let sent = requests.take();
    assert_eq!(
        sent.iter().filter(|op| *op == "Query").count(),
        2,
        "the device and the view: {sent:?}"
    );
}

/// A device's item as stored (`#DEV`: the record, `#SEEN`: its refresh), read past the store.
async fn stored_item(
    bench: &Bench,
    device: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, AttributeValue>> {
    aws_sdk_dynamodb::Client::new(&bench.sdk)
        .get_item()
        .table_name(&bench.table)
        .key("PK", AttributeValue::S(format!("DEV#{device}")))
        .key("SK", AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// The size DynamoDB bills an item's write by, near enough: names and values, in bytes.
fn item_bytes(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, v)| {
            name.len()
                + match v {
                    AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
                    other => panic!("an attribute this store does not write: {other:?}"),
                }
        })
        .sum()
}

/// The steady poll's refresh, once due, is one put of a small item beside the record (1 write
/// unit: under 1 KB, in no index), which leaves the record and its revision as they were;
/// every read of the device applies it, the next refresh is measured from it, and a record
/// written later carries the latest times.
#[tokio::test]
async fn a_refresh_is_a_small_put_beside_the_record_and_every_read_applies_it() {
    let bench = Bench::new().await;
    let requests = &bench.requests;
    let meta = bench.counted(DynamoOptions {
        last_seen_precision: Duration::from_secs(60),
        ..DynamoOptions::default()
    });
    let image = "ab".repeat(32);
    meta.insert_release(&release_of_image("demo", "1.0.0", &image))
        .await
        .unwrap();
    let first = running("d1", "demo", Some(&image), Some(boot("poweron", 1, 0, 5)));
    let poll = |seconds: u64, uptime_s: u64| {
        let mut c = running(
            "d1",
            "demo",
            Some(&image),
            Some(boot("poweron", 1, 0, uptime_s)),
        );
        c.at = first.at + Duration::from_secs(seconds);
        c
    };
    meta.record_check(&first, &|_| None).await.unwrap();
    let record = stored_item(&bench, "d1", "#DEV").await.unwrap();
    requests.take();

    meta.record_check(&poll(30, 35), &|_| None).await.unwrap();
    assert_eq!(requests.take(), ["Query"], "within the precision");
    let due = poll(90, 95);
    meta.record_check(&due, &|_| None).await.unwrap();
    assert_eq!(
        requests.take(),
        ["Query", "PutItem (refresh)"],
        "the refresh is due"
    );
    assert_eq!(
        stored_item(&bench, "d1", "#DEV").await.unwrap(),
        record,
        "the record is as it was"
    );
    let refresh = stored_item(&bench, "d1", "#SEEN")
        .await
        .expect("the refresh's item");
    assert!(
        refresh.keys().all(|name| !name.starts_with("GSI")),
        "in no index: {refresh:?}"
    );
    assert!(item_bytes(&refresh) < 1024, "{refresh:?}");

    let uptime = |d: &Device| d.last_boot.as_ref().and_then(|b| b.report.uptime_s);
    let read = meta.get_device(&dev("d1")).await.unwrap().unwrap();
    assert_eq!((read.last_seen, uptime(&read)), (due.at, Some(95)));
    let listed = meta
        .list_devices(&DeviceFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items, [read]);

    requests.take();
    meta.record_check(&poll(140, 145), &|_| None).await.unwrap();
    assert_eq!(
        requests.take(),
        ["Query"],
        "50 s after the refresh: nothing due"
    );

    // A restart rewrites the record with the latest times; the older refresh no longer counts.
    let restart = poll(160, 2);
    meta.record_check(&restart, &|_| None).await.unwrap();
    let read = meta.get_device(&dev("d1")).await.unwrap().unwrap();
    assert_eq!((read.last_seen, uptime(&read)), (restart.at, Some(2)));
}
