//! The device side for real: the ESP-IDF example of `firmware-samples/esp-idf/` (the
//! `ota_client` component, ESP-IDF's own `esp_http_client`, `esp_https_ota`, mbedTLS, NVS and cJSON,
//! built for `IDF_TARGET=linux`) updating itself against this deployment. Each run of the program
//! is one boot of one device whose flash is a file, so a test can reboot it, cut its power
//! mid-download, and read what it wrote.
//!
//! `cargo xtask test` builds the program (with the manifest keys of `OTA_E2E_ESP_IDF_KEYS`
//! compiled in) and names it in `OTA_E2E_ESP_IDF_DEVICE`; without an ESP-IDF tree it builds none
//! and these tests say they are skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::api::*;
use crate::harness::{Go, Server, aws_mode, server_only};
use crate::proxy::{Answer, Fault, Proxy, Seen, Transparent};

const DEVICE_TYPE: &str = "demo-c3";
/// The sample the device updates to; the program itself is `demo` 1.0.0.
const SAMPLE: &str = "demo-esp32c3-1.1.0.bin";

/// The host build and the two keys it trusts.
struct HostBuild {
    elf: PathBuf,
    /// Two key-ring lines: the device trusts both, a server signs with the first it lists.
    keys: [String; 2],
    esptool: Option<PathBuf>,
}

fn host_build() -> Option<HostBuild> {
    let Some(elf) = std::env::var_os("OTA_E2E_ESP_IDF_DEVICE") else {
        println!(
            "skipped: no ESP-IDF host build (OTA_E2E_ESP_IDF_DEVICE); `cargo xtask test` makes one \
             when an ESP-IDF tree is present"
        );
        return None;
    };
    let keys_file = std::env::var("OTA_E2E_ESP_IDF_KEYS")
        .expect("OTA_E2E_ESP_IDF_DEVICE is set, so OTA_E2E_ESP_IDF_KEYS must name its keys");
    let text = std::fs::read_to_string(&keys_file).expect("reading the device's key ring");
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let keys: [String; 2] = lines
        .try_into()
        .expect("the device's key ring has exactly two keys");
    Some(HostBuild {
        elf: PathBuf::from(elf),
        keys,
        esptool: std::env::var_os("OTA_E2E_ESPTOOL").map(PathBuf::from),
    })
}

fn sample() -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../firmware-samples/samples")
            .join(SAMPLE),
    )
    .expect("reading the sample image")
}

/// A server whose manifests the device trusts, signed by `build.keys[signer]`.
async fn server(build: &HostBuild, signer: usize, env: &[(&str, &str)]) -> Server {
    let ring = format!("{}\n{}\n", build.keys[signer], build.keys[1 - signer]);
    let mut b = Server::builder().env("OTA_MANIFEST_KEYS", &ring);
    for (k, v) in env {
        b = b.env(k, v);
    }
    b.start().await
}

/// Publishes the sample and rolls it out to every device; returns the release and the rollout.
async fn offer_sample(srv: &Server) -> (Value, Value) {
    srv.admin(
        reqwest::Method::PUT,
        &format!("/api/ota/admin/device-types/{DEVICE_TYPE}"),
    )
    .json(&json!({"chip": "esp32c3"}))
    .go()
    .await
    .expect(200);
    let release = upload(srv, DEVICE_TYPE, "1.1.0", sample(), &[])
        .await
        .expect(201);
    let rollout = rollout_all(srv, str_of(&release, "id")).await;
    (release, rollout)
}

/// One device: its flash, its identity, its server.
struct Device<'a> {
    build: &'a HostBuild,
    dir: tempfile::TempDir,
    id: String,
    token: String,
    url: String,
    boots: u32,
}

/// What one boot did.
struct Boot {
    code: Option<i32>,
    events: Vec<Value>,
    log: String,
}

impl Boot {
    fn of(&self, event: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == event).collect()
    }

    #[track_caller]
    fn reason(&self, event: &str) -> String {
        let found = self.of(event);
        assert!(!found.is_empty(), "no {event} event; log:\n{}", self.log);
        str_of(found[0], "reason").to_owned()
    }
}

impl<'a> Device<'a> {
    fn new(build: &'a HostBuild, srv: &Server, id: &str, url: &str) -> Device<'a> {
        Device {
            build,
            dir: tempfile::tempdir().expect("a directory for the device"),
            id: id.to_owned(),
            token: srv.device_token(id, DEVICE_TYPE),
            url: url.to_owned(),
            boots: 0,
        }
    }

    fn dump(&self) -> PathBuf {
        self.dir.path().join("installed-partition.bin")
    }

    /// Powers the device on until it exits: after `OTA_MAX_CYCLES` poll cycles (1 unless `env`
    /// says), a reboot (an install or a rollback), or a power cut.
    async fn boot(&mut self, env: &[(&str, &str)]) -> Boot {
        self.boots += 1;
        let events = self.dir.path().join(format!("events-{}.jsonl", self.boots));
        let mut cmd = tokio::process::Command::new(&self.build.elf);
        cmd.env_clear()
            .env("OTA_FLASH_FILE", self.dir.path().join("flash.bin"))
            .env("OTA_EVENTS", &events)
            .env("OTA_URL", &self.url)
            .env("OTA_DEVICE_ID", &self.id)
            .env("OTA_DEVICE_TYPE", DEVICE_TYPE)
            .env("OTA_DEVICE_TOKEN", &self.token)
            .env("OTA_DUMP_PATH", self.dump())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("the device finished its boot within 60 s")
            .expect("starting the device");
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let events = std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("event {l}: {e}")))
            .collect();
        Boot {
            code: out.status.code(),
            events,
            log,
        }
    }
}

/// The device's OTA log, oldest first, as statuses.
async fn statuses(srv: &Server, device_id: &str) -> Vec<String> {
    let mut entries = logs(srv, &[("device_id", device_id)]).await;
    entries.reverse();
    entries
        .iter()
        .map(|e| str_of(e, "status").to_owned())
        .collect()
}

/// `GET /api/ota/admin/devices/{id}`.
async fn device_view(srv: &Server, device_id: &str) -> Value {
    srv.admin(
        reqwest::Method::GET,
        &format!("/api/ota/admin/devices/{device_id}"),
    )
    .go()
    .await
    .expect(200)
}

/// esptool's verdict on the partition the device installed: a valid ESP32-C3 image.
fn assert_esptool_accepts(build: &HostBuild, dump: &Path) {
    let Some(esptool) = &build.esptool else {
        println!("no esptool (OTA_E2E_ESPTOOL): image-info skipped");
        return;
    };
    let out = std::process::Command::new(esptool)
        .arg("image-info")
        .arg(dump)
        .output()
        .expect("running esptool");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "esptool image-info: {text}");
    for valid in ["Checksum:", "Validation hash:"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(valid) && l.ends_with("(valid)")),
            "esptool does not find a valid image: {text}"
        );
    }
}

#[tokio::test]
async fn the_device_updates_itself_and_confirms_the_new_image_after_rebooting() {
    let Some(build) = host_build() else { return };
    let srv = server(&build, 0, &[]).await;
    let (release, _) = offer_sample(&srv).await;
    let fw = str_of(&release, "id");
    let mut dev = Device::new(&build, &srv, "host-c3-update", srv.base());

    let first = dev.boot(&[]).await;
    assert_eq!(first.code, Some(0), "{}", first.log);
    assert_eq!(first.of("installed").len(), 1, "{}", first.log);
    let bytes = sample();
    let dumped = std::fs::read(dev.dump()).expect("the installed partition");
    assert_eq!(
        &dumped[..bytes.len()],
        &bytes[..],
        "the partition holds the published bytes"
    );
    assert_esptool_accepts(&build, &dev.dump());
    // Reported at most every 10 %, then installing; success waits for the new image to boot.
    let progress: Vec<u64> = first
        .of("downloading")
        .iter()
        .map(|e| e["percent"].as_u64().expect("a percent"))
        .collect();
    assert_eq!(progress.first(), Some(&0), "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[1] / 10 > w[0] / 10),
        "one per 10 %: {progress:?}"
    );
    assert_eq!(progress.last(), Some(&100), "{progress:?}");
    let log = statuses(&srv, &dev.id).await;
    assert_eq!(
        log.last().map(String::as_str),
        Some("installing"),
        "{log:?}"
    );

    let second = dev.boot(&[]).await;
    assert_eq!(second.code, Some(0), "{}", second.log);
    let checked = second.of("checked");
    assert_eq!(checked.len(), 1, "{}", second.log);
    assert_eq!(checked[0]["update_available"], false);
    assert_eq!(
        statuses(&srv, &dev.id).await.last().map(String::as_str),
        Some("success")
    );
    let device = device_view(&srv, &dev.id).await;
    assert_eq!(device["current_version"], "1.1.0", "{device}");
    assert_eq!(
        device["running_firmware_id"], fw,
        "the server knows the image it runs: {device}"
    );
    let image_sha256 = get_release(&srv, fw).await["image_sha256"].clone();
    assert!(
        image_sha256.is_string(),
        "the release knows its image's hash"
    );
    assert_eq!(device["running_image_sha256"], image_sha256, "{device}");
    assert_eq!(device["last_boot"]["reset_reason"], "poweron", "{device}");
    assert_eq!(device["last_boot"]["boots_since_update"], 1, "{device}");
    assert_eq!(
        device["last_boot"]["crashes_since_last_check"], 0,
        "{device}"
    );

    // Another boot of the same image: a new boot for the release's health, counted once.
    let third = dev.boot(&[]).await;
    assert_eq!(third.code, Some(0), "{}", third.log);
    let device = device_view(&srv, &dev.id).await;
    assert_eq!(device["last_boot"]["boots_since_update"], 2, "{device}");
    let health = &get_release(&srv, fw).await["health"];
    assert_eq!(
        health["resets_by_reason"],
        json!({"poweron": 2}),
        "{health}"
    );
    assert_eq!(health["crashes"], 0, "{health}");
}

#[tokio::test]
async fn a_download_cut_by_power_loss_resumes_where_it_stopped() {
    let Some(build) = host_build() else { return };
    let srv = server(&build, 0, &[]).await;
    offer_sample(&srv).await;
    let mut dev = Device::new(&build, &srv, "host-c3-resume", srv.base());
    let chunk = [("OTA_CHUNK", "4096")];

    let cut = dev.boot(&[chunk[0], ("OTA_POWER_CUT_AT", "50")]).await;
    assert_eq!(cut.code, Some(3), "the power was cut: {}", cut.log);
    assert!(cut.of("installed").is_empty());

    let resumed = dev.boot(&chunk).await;
    assert_eq!(resumed.code, Some(0), "{}", resumed.log);
    let progress: Vec<u64> = resumed
        .of("downloading")
        .iter()
        .map(|e| e["percent"].as_u64().expect("a percent"))
        .collect();
    assert!(
        progress.first().is_some_and(|&p| p > 50),
        "the second boot continues past the cut, not from 0: {progress:?}\n{}",
        resumed.log
    );
    assert_eq!(resumed.of("installed").len(), 1, "{}", resumed.log);
    let bytes = sample();
    let dumped = std::fs::read(dev.dump()).expect("the installed partition");
    assert_eq!(&dumped[..bytes.len()], &bytes[..]);

    assert_eq!(dev.boot(&[]).await.code, Some(0));
    let log = statuses(&srv, &dev.id).await;
    assert_eq!(log.last().map(String::as_str), Some("success"), "{log:?}");
    assert!(
        !log.iter().any(|s| s == "failed"),
        "a power cut is not a failure: {log:?}"
    );
}

/// Installs the sample, boots it once with `failing` (which must end that boot with `code`
/// before the image is confirmed), then boots the device again: the old image reports
/// `rolled_back` with a message containing `why`, and runs 1.0.0 again.
async fn rolled_back_after(id: &str, failing: (&str, &str), code: i32, why: &str) {
    let Some(build) = host_build() else { return };
    let srv = server(&build, 0, &[]).await;
    let (_, rollout) = offer_sample(&srv).await;
    let mut dev = Device::new(&build, &srv, id, srv.base());
    assert_eq!(dev.boot(&[]).await.code, Some(0));

    let failed = dev.boot(&[failing]).await;
    assert_eq!(failed.code, Some(code), "{}", failed.log);
    assert!(failed.events.is_empty(), "it never polled: {}", failed.log);
    // Keep the old image from being offered the release again straight away.
    patch_rollout(&srv, str_of(&rollout, "id"), json!({"state": "paused"}))
        .await
        .expect(200);

    let back = dev.boot(&[]).await;
    assert_eq!(back.code, Some(0), "{}", back.log);
    let entries = logs(&srv, &[("device_id", &dev.id)]).await;
    assert_eq!(entries[0]["status"], "rolled_back", "{entries:?}");
    assert!(
        str_of(&entries[0], "error_message").contains(why),
        "{entries:?}"
    );
    let device = device_view(&srv, &dev.id).await;
    assert_eq!(device["current_version"], "1.0.0", "{device}");
}

#[tokio::test]
async fn a_new_image_that_fails_its_health_check_is_rolled_back_and_reported() {
    // It boots, fails its self-test and marks itself invalid (a reboot: exit 0).
    rolled_back_after(
        "host-c3-rollback",
        ("OTA_UNHEALTHY", "1"),
        0,
        "health check",
    )
    .await;
}

#[tokio::test]
async fn a_new_image_that_never_confirms_itself_is_rolled_back_by_the_bootloader() {
    // It dies before it can confirm itself (a crash loop on a chip).
    rolled_back_after(
        "host-c3-crash",
        ("OTA_CRASH_ON_BOOT", "1"),
        4,
        "never confirmed",
    )
    .await;
}

#[tokio::test]
async fn bytes_altered_in_storage_after_publishing_are_refused_and_reported_failed() {
    let Some(build) = host_build() else { return };
    let srv = server(&build, 0, &[]).await;
    let (release, _) = offer_sample(&srv).await;
    let mut bytes = sample();
    // A data byte in the middle: the size and the header stay plausible.
    bytes[40_000] ^= 0x01;
    srv.replace_blob(&format!("firmware/{}.bin", str_of(&release, "id")), bytes)
        .await;
    let mut dev = Device::new(&build, &srv, "host-c3-altered", srv.base());

    let boot = dev.boot(&[]).await;
    assert_eq!(boot.code, Some(0), "{}", boot.log);
    assert!(boot.of("installed").is_empty(), "{}", boot.log);
    assert!(boot.reason("failed").contains("SHA-256"), "{}", boot.log);
    let entries = logs(&srv, &[("device_id", &dev.id)]).await;
    assert_eq!(entries[0]["status"], "failed");
    assert!(
        str_of(&entries[0], "error_message").contains("SHA-256"),
        "{entries:?}"
    );
}

/// Rewrites every check answer's manifest signature (one character of its third part).
struct ForgedSignature;
impl Fault for ForgedSignature {
    fn answer(&self, seen: &Seen, answer: &mut Answer) {
        if seen.uri.starts_with("/api/ota/check") && answer.status == StatusCode::OK {
            let mut body: Value = serde_json::from_slice(&answer.body).expect("JSON");
            let jws = str_of(&body, "manifest").to_owned();
            let at = jws.rfind('.').expect("a JWS") + 5;
            let mut forged = jws.into_bytes();
            forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
            body["manifest"] = Value::String(String::from_utf8(forged).expect("ASCII"));
            answer.body = Bytes::from(body.to_string());
        }
    }
}

/// Sends each check as another device (its id and its token): the answer is genuine, for it.
struct AsOtherDevice {
    id: String,
    token: String,
}
impl Fault for AsOtherDevice {
    fn request(&self, seen: &mut Seen) {
        if seen.uri.starts_with("/api/ota/check") {
            let mut body: Value = serde_json::from_slice(&seen.body).expect("JSON");
            body["device_id"] = Value::String(self.id.clone());
            seen.body = Bytes::from(body.to_string());
            seen.headers.insert(
                "x-ota-device-token",
                HeaderValue::from_str(&self.token).expect("a token"),
            );
        }
    }
}

/// Answers every check after the first with the first check's answer.
#[derive(Default)]
struct Replay(Mutex<Option<Answer>>);
impl Fault for Replay {
    fn answer(&self, seen: &Seen, answer: &mut Answer) {
        if seen.uri.starts_with("/api/ota/check") {
            let mut first = self.0.lock().expect("replay");
            match &*first {
                Some(old) => *answer = old.clone(),
                None => *first = Some(answer.clone()),
            }
        }
    }
}

/// One boot through `fault`, which must make the device refuse every answer it changes.
async fn refused_through(
    build: &HostBuild,
    srv: &Server,
    id: &str,
    fault: impl Fault,
    cycles: &str,
) -> Boot {
    let proxy = Proxy::start(srv.base(), fault).await;
    let mut dev = Device::new(build, srv, id, proxy.base());
    let boot = dev.boot(&[("OTA_MAX_CYCLES", cycles)]).await;
    assert_eq!(boot.code, Some(0), "{}", boot.log);
    assert!(
        boot.of("downloading").is_empty(),
        "nothing downloaded: {}",
        boot.log
    );
    assert!(statuses(srv, id).await.is_empty(), "nothing reported");
    boot
}

#[tokio::test]
async fn manifests_that_do_not_verify_are_refused() {
    let Some(build) = host_build() else { return };
    let srv = server(&build, 0, &[]).await;
    offer_sample(&srv).await;

    let forged = refused_through(&build, &srv, "host-c3-forged", ForgedSignature, "1").await;
    assert!(
        forged
            .reason("check_failed")
            .contains("signature does not verify"),
        "{}",
        forged.log
    );

    let other = AsOtherDevice {
        id: "host-c3-other".to_owned(),
        token: srv.device_token("host-c3-other", DEVICE_TYPE),
    };
    let misdirected = refused_through(&build, &srv, "host-c3-aud", other, "1").await;
    assert!(
        misdirected
            .reason("check_failed")
            .contains("another device (aud)"),
        "{}",
        misdirected.log
    );

    // The first answer (an offer) is genuine; its replay to the next check is not fresh.
    let proxy = Proxy::start(srv.base(), Replay::default()).await;
    let mut dev = Device::new(&build, &srv, "host-c3-replay", proxy.base());
    let first = dev.boot(&[]).await;
    assert_eq!(first.of("installed").len(), 1, "{}", first.log);
    let replayed = dev.boot(&[]).await;
    assert_eq!(replayed.code, Some(0), "{}", replayed.log);
    assert!(
        replayed.reason("check_failed").contains("nonce"),
        "{}",
        replayed.log
    );
}

/// Answers every check with thousands of nested arrays: what a parser that recurses per level
/// meets before any signature can be checked.
struct Nested;
impl Fault for Nested {
    fn answer(&self, seen: &Seen, answer: &mut Answer) {
        if seen.uri.starts_with("/api/ota/check") {
            answer.body = Bytes::from(format!("{}{}", "[".repeat(3000), "]".repeat(3000)));
        }
    }
}

#[tokio::test]
async fn a_hostile_answer_is_refused_without_harm() {
    let Some(build) = host_build() else { return };
    let srv = server(&build, 0, &[]).await;
    let boot = refused_through(&build, &srv, "host-c3-nested", Nested, "1").await;
    assert!(
        boot.reason("check_failed").contains("no manifest"),
        "{}",
        boot.log
    );
}

#[tokio::test]
async fn a_manifest_signed_by_a_key_the_device_does_not_know_is_refused() {
    let Some(build) = host_build() else { return };
    let stranger = ota_core::manifest_keys::ManifestKeys::generate_line();
    let srv = Server::builder()
        .env("OTA_MANIFEST_KEYS", &stranger)
        .start()
        .await;
    offer_sample(&srv).await;
    let boot = refused_through(&build, &srv, "host-c3-stranger", Transparent, "1").await;
    assert!(boot.reason("check_failed").contains("kid"), "{}", boot.log);
}

#[tokio::test]
async fn a_device_keeps_updating_after_the_signing_key_is_rotated() {
    let Some(build) = host_build() else { return };
    // The second key of the device's ring now signs; the first is still published.
    let srv = server(&build, 1, &[]).await;
    offer_sample(&srv).await;
    let mut dev = Device::new(&build, &srv, "host-c3-rotated", srv.base());
    let boot = dev.boot(&[]).await;
    assert_eq!(boot.of("installed").len(), 1, "{}", boot.log);
}

/// Answers the first check 503 with `Retry-After: 2`, as an overloaded deployment would.
#[derive(Default)]
struct Unavailable(Mutex<bool>);
impl Fault for Unavailable {
    fn short_circuit(&self, seen: &Seen) -> Option<Answer> {
        let mut done = self.0.lock().expect("unavailable");
        (seen.uri.starts_with("/api/ota/check") && !*done).then(|| {
            *done = true;
            let mut headers = HeaderMap::new();
            headers.insert("retry-after", HeaderValue::from_static("2"));
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/problem+json"),
            );
            Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                headers,
                body: Bytes::from_static(
                    br#"{"type":"about:blank","title":"busy","status":503,"detail":"try later"}"#,
                ),
            }
        })
    }
}

#[tokio::test]
async fn a_503_with_retry_after_is_waited_out() {
    let Some(build) = host_build() else { return };
    let srv = server(&build, 0, &[]).await;
    let proxy = Proxy::start(srv.base(), Unavailable::default()).await;
    let mut dev = Device::new(&build, &srv, "host-c3-busy", proxy.base());
    let boot = dev.boot(&[("OTA_MAX_CYCLES", "2")]).await;
    assert_eq!(boot.code, Some(0), "{}", boot.log);
    let failed = boot.of("check_failed");
    assert_eq!(failed.len(), 1, "{}", boot.log);
    assert_eq!(failed[0]["http_status"], 503);
    assert!(failed[0]["next_poll_s"].as_u64() >= Some(2), "{}", boot.log);
    assert_eq!(
        boot.of("checked").len(),
        1,
        "then a check succeeds: {}",
        boot.log
    );
    let checks: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.uri.starts_with("/api/ota/check"))
        .collect();
    assert_eq!(checks.len(), 2);
    let waited = checks[1].at - checks[0].at;
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}"
    );
}

/// The requests that fetched firmware bytes, with any credential header they carried.
fn downloads(proxy: &Proxy, is_download: impl Fn(&Seen) -> bool) -> Vec<(String, Vec<String>)> {
    proxy
        .seen()
        .iter()
        .filter(|s| is_download(s))
        .map(|s| {
            let creds = ["authorization", "x-ota-device-token", "cookie"]
                .iter()
                .filter(|h| s.headers.contains_key(**h))
                .map(|h| (*h).to_owned())
                .collect();
            (format!("{} {}", s.method, s.uri), creds)
        })
        .collect()
}

#[tokio::test]
async fn no_credential_reaches_the_download_url() {
    let Some(build) = host_build() else { return };
    if server_only("the functions' S3 endpoint is the stack's, not a proxy a test puts in front") {
        return;
    }
    let proxy = Proxy::bind(Transparent).await;
    let (srv, is_download): (Server, fn(&Seen) -> bool) = if aws_mode() {
        // Every S3 request of the server goes through the proxy; the device's presigned ones too.
        let s3 = std::env::var("AWS_ENDPOINT_URL_S3").expect("the stack's S3 endpoint");
        proxy.forward_to(&s3);
        let srv = server(&build, 0, &[("AWS_ENDPOINT_URL_S3", proxy.base())]).await;
        (srv, |s: &Seen| s.uri.contains("X-Amz-Signature="))
    } else {
        // The capability URLs the server hands out lead through the proxy.
        let srv = server(&build, 0, &[("OTA_PUBLIC_URL", proxy.base())]).await;
        proxy.forward_to(srv.base());
        (srv, |s: &Seen| s.uri.starts_with("/api/ota/blob/"))
    };
    offer_sample(&srv).await;
    let mut dev = Device::new(&build, &srv, "host-c3-nocred", srv.base());
    let boot = dev.boot(&[]).await;
    assert_eq!(boot.of("installed").len(), 1, "{}", boot.log);
    let fetched = downloads(&proxy, is_download);
    // Capability URLs: a HEAD, then Range GETs of 16 KiB over the 64 KiB sample. Presigned URLs,
    // signed for GET alone: one GET.
    let least = if aws_mode() { 1 } else { 4 };
    assert!(
        fetched.len() >= least,
        "the download went through the proxy: {fetched:?}"
    );
    assert!(
        fetched.iter().all(|(_, creds)| creds.is_empty()),
        "a credential reached the download URL: {fetched:?}"
    );
}
