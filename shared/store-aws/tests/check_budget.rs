//! `check` costs at most two DynamoDB requests (issue 4), and the steady poll one read and no
//! write (issue 16): counted on the wire by an SDK interceptor, against DynamoDB Local, through
//! the real `check` use case.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use ota_core::cmd::check::{CheckAnswer, CheckInput};
use ota_core::device_type::DeviceTypePolicy;
use ota_core::ports::MetaStore;
use ota_core::release::ReleaseState;
use ota_core::rollout::RolloutState;
use ota_core::status::OtaStatus;
use ota_store_aws::{DynamoMeta, DynamoOptions, S3Blobs};
use ota_store_conformance::fixtures::{
    boot, check_input, dt, now, release, release_of_image, report, rollout, service,
};

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
        let op = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?")
            .trim_start_matches("DynamoDB_20120810.")
            .to_owned();
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
    // put of the device.
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
    assert_eq!(sent.len(), 2, "read and put: {sent:?}");
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
