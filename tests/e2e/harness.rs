//! The suite's view of a deployment: a base URL, an admin token and the JWT secret, plus, for
//! the embedded server this harness starts itself, the process and its data directory.
//!
//! Every test starts its own `ota-server` on an ephemeral port and a fresh temporary data
//! directory, so tests run in parallel without sharing state. Tests talk to the service only
//! through [`Server`]'s URL and tokens; whatever needs the local process (environment
//! overrides, restarts, peeking at the data directory) goes through [`Server::local`], so that
//! a later runner can point the same tests at another deployment (a base URL such as
//! `OTA_E2E_BASE_URL` plus an admin token and the JWT secret) and skip the local-only ones.
//!
//! Two storage deployments of the same binary, chosen by `OTA_E2E_STORE`:
//! - unset or `embedded`: SQLite and files in the data directory, capability URLs served by the
//!   server itself;
//! - `aws`: the DynamoDB table and S3 bucket of the local AWS stack (`cargo xtask test` sets
//!   `OTA_E2E_STORE=aws` and the stack's `AWS_*` variables for its second run of this suite).
//!   Every server gets a table and a bucket of its own, so tests stay independent; devices get
//!   presigned S3 URLs, checked by s3s-fs. The data directory still holds the JWT secret and
//!   the admin token, so restarts keep both.
//!
//! Tests that only make sense on one deployment say so with [`embedded_only`], which prints why
//! a test is skipped.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ota_testkit::server::{ADMIN_TOKEN_FILE, Binary, JWT_SECRET_FILE, OtaServer, read_secret};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::lambda_watch;

/// How long the server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running OTA service as the tests see it.
pub struct Server {
    base: String,
    admin_token: String,
    jwt_secret: Vec<u8>,
    http: reqwest::Client,
    /// What the harness started: `ota-server`, or the functions under `cargo lambda watch`.
    local: Option<OtaServer>,
    store: Store,
}

/// Where a deployment keeps its metadata and firmware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// SQLite and files in the data directory.
    Embedded,
    /// A DynamoDB table and an S3 bucket of the local AWS stack.
    Aws { table: String, bucket: String },
}

/// Which deployment this run tests, from `OTA_E2E_STORE` (`embedded`, the default, or `aws`)
/// and `OTA_E2E_DEPLOY` (`server`, the default, or `lambda`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deploy {
    /// `ota-server` on SQLite and files.
    Embedded,
    /// `ota-server` on DynamoDB and S3.
    ServerOnAws,
    /// The six Lambda functions under `cargo lambda watch`, on DynamoDB and S3.
    Lambda,
}

pub fn deploy() -> Deploy {
    let store = std::env::var("OTA_E2E_STORE").unwrap_or_default();
    let aws = match store.as_str() {
        "" | "embedded" => false,
        "aws" => true,
        other => panic!("OTA_E2E_STORE must be 'embedded' or 'aws', got '{other}'"),
    };
    match std::env::var("OTA_E2E_DEPLOY").unwrap_or_default().as_str() {
        "" | "server" if aws => Deploy::ServerOnAws,
        "" | "server" => Deploy::Embedded,
        "lambda" if aws => Deploy::Lambda,
        "lambda" => panic!(
            "OTA_E2E_DEPLOY=lambda needs OTA_E2E_STORE=aws: the functions run on DynamoDB and S3"
        ),
        other => panic!("OTA_E2E_DEPLOY must be 'server' or 'lambda', got '{other}'"),
    }
}

/// Whether the store is DynamoDB and S3 (behind `ota-server` or the Lambda functions).
pub fn aws_mode() -> bool {
    deploy() != Deploy::Embedded
}

/// The skip predicate for tests of what only the embedded storage has (its SQLite file, its
/// blob directory): true, after printing `why`, when this run tests the AWS storage.
pub fn embedded_only(why: &str) -> bool {
    let skip = aws_mode();
    if skip {
        println!("skipped against the AWS storage: {why}");
    }
    skip
}

/// The skip predicate for tests of what only the AWS storage has (DynamoDB Local to stop): true,
/// after printing `why`, when this run tests the embedded storage.
pub fn aws_only(why: &str) -> bool {
    let skip = !aws_mode();
    if skip {
        println!("skipped against the embedded storage: {why}");
    }
    skip
}

/// The skip predicate for tests of what only one `ota-server` process has, and a deployment of
/// Lambda functions has not: true, after printing `why`, when this run tests the functions.
pub fn server_only(why: &str) -> bool {
    let skip = deploy() == Deploy::Lambda;
    if skip {
        println!("skipped against the Lambda functions: {why}");
    }
    skip
}

/// The SDK configuration of the local AWS stack; fails (never skips) without it, so that a green
/// AWS run means the AWS storage was tested.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    for name in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_S3"] {
        assert!(
            std::env::var(name).is_ok_and(|v| !v.is_empty()),
            "OTA_E2E_STORE=aws but {name} is not set: run `cargo xtask test`, or start the stack \
             with `cargo xtask local-aws` and paste the export lines it prints"
        );
    }
    ota_store_aws::load_sdk_config().await
}

/// A DynamoDB client of the local stack, or of another DynamoDB Local at `endpoint`.
pub async fn dynamodb_client(endpoint: Option<&str>) -> aws_sdk_dynamodb::Client {
    let sdk = aws_sdk_config().await;
    let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk);
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

/// A new, empty table (on the stack's DynamoDB, or on the one at `dynamodb`) and bucket for one
/// server.
async fn fresh_aws_store(dynamodb: Option<&str>) -> Store {
    let sdk = aws_sdk_config().await;
    let name = format!("ota-e2e-{}", uuid::Uuid::new_v4().simple());
    ota_store_aws::create_table(&dynamodb_client(dynamodb).await, &name)
        .await
        .unwrap_or_else(|e| panic!("creating the table {name}: {e}"));
    let blobs = ota_store_aws::S3Blobs::new(&sdk, &name);
    blobs
        .client()
        .create_bucket()
        .bucket(&name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateBucket {name}: {e:?}"));
    Store::Aws {
        table: name.clone(),
        bucket: name,
    }
}

/// Starts an embedded server with environment overrides.
#[derive(Default)]
pub struct ServerBuilder {
    env: Vec<(String, String)>,
    dynamodb: Option<String>,
}

impl ServerBuilder {
    /// AWS storage only: the table lives on the DynamoDB (Local) at `endpoint` instead of the
    /// stack's, e.g. a private instance a test stops mid-run.
    pub fn dynamodb_endpoint(mut self, endpoint: &str) -> Self {
        assert!(aws_mode(), "a DynamoDB endpoint needs OTA_E2E_STORE=aws");
        self.dynamodb = Some(endpoint.to_owned());
        self.env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    pub async fn start(self) -> Server {
        let store = if aws_mode() {
            fresh_aws_store(self.dynamodb.as_deref()).await
        } else {
            Store::Embedded
        };
        let mut env = Vec::new();
        if let Store::Aws { table, bucket } = &store {
            env.push(("OTA_TABLE".to_owned(), table.clone()));
            env.push(("OTA_BUCKET".to_owned(), bucket.clone()));
            // The one OTA_* setting of the runner that reaches the server (before the test's
            // own, which win): `cargo xtask test` sizes it for DynamoDB Local under load.
            if let Ok(timeout) = std::env::var("OTA_DYNAMODB_TIMEOUT_MS") {
                env.push(("OTA_DYNAMODB_TIMEOUT_MS".to_owned(), timeout));
            }
        }
        env.extend(self.env);
        let deployment = match deploy() {
            Deploy::Lambda => OtaServer::builder(lambda_watch::Functions),
            _ => OtaServer::builder(
                Binary::at(env!("CARGO_BIN_EXE_ota-server")).start_timeout(START_TIMEOUT),
            ),
        };
        let local = deployment.data_prefix("ota-e2e-").envs(env).start();
        let mut server = Server {
            base: local.base().to_owned(),
            admin_token: String::new(),
            jwt_secret: Vec::new(),
            http: client(),
            local: Some(local),
            store,
        };
        server.read_credentials();
        server
    }
}

fn client() -> reqwest::Client {
    // The emulator runs a few instances per function and queues the rest, where AWS would start
    // more: a burst of hundreds of requests waits minutes there for its last answer.
    let timeout = match deploy() {
        Deploy::Lambda => Duration::from_secs(600),
        _ => Duration::from_secs(60),
    };
    reqwest::Client::builder()
        // Redirects are asserted, not followed.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
        .expect("building the HTTP client")
}

impl Server {
    /// An embedded server with the default configuration.
    pub async fn start() -> Server {
        Server::builder().start().await
    }

    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Whether devices get presigned S3 URLs (AWS storage) rather than the server's own
    /// capability URLs.
    pub fn is_aws(&self) -> bool {
        matches!(self.store, Store::Aws { .. })
    }

    /// Every object in blob storage, as keys relative to its root (`firmware/<id>.bin`, and for
    /// the embedded store `tmp/...` for uploads in progress), sorted.
    pub async fn stored_blobs(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.store {
            Store::Embedded => {
                let root = self.data_dir().join("blobs");
                for sub in ["firmware", "tmp"] {
                    if let Ok(rd) = std::fs::read_dir(root.join(sub)) {
                        out.extend(
                            rd.flatten()
                                .map(|e| format!("{sub}/{}", e.file_name().to_string_lossy())),
                        );
                    }
                }
            }
            Store::Aws { bucket, .. } => {
                let sdk = aws_sdk_config().await;
                let s3 = ota_store_aws::S3Blobs::new(&sdk, bucket);
                let mut pages = s3
                    .client()
                    .list_objects_v2()
                    .bucket(bucket)
                    .into_paginator()
                    .send();
                while let Some(page) = pages.next().await {
                    let page = page.unwrap_or_else(|e| panic!("ListObjectsV2 {bucket}: {e:?}"));
                    out.extend(
                        page.contents()
                            .iter()
                            .filter_map(|o| o.key().map(str::to_owned)),
                    );
                }
            }
        }
        out.sort();
        out
    }

    /// Overwrites a stored object behind the service's back (a tampered bucket or disk).
    pub async fn replace_blob(&self, key: &str, bytes: Vec<u8>) {
        match &self.store {
            Store::Embedded => {
                let path = self.data_dir().join("blobs").join(key);
                assert!(path.is_file(), "no stored object {}", path.display());
                std::fs::write(&path, bytes).expect("overwriting the stored object");
            }
            Store::Aws { bucket, .. } => {
                let sdk = aws_sdk_config().await;
                ota_store_aws::S3Blobs::new(&sdk, bucket)
                    .client()
                    .put_object()
                    .bucket(bucket)
                    .key(key)
                    .body(bytes.into())
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("PutObject {bucket}/{key}: {e:?}"));
            }
        }
    }

    /// Asserts how a capability URL (download or upload) refused a request: on the embedded
    /// server a problem with this status, from S3 the status (its body is S3's XML error).
    #[track_caller]
    pub fn assert_url_refused(&self, r: &Resp, status: u16) {
        if self.is_aws() {
            assert_eq!(r.status, status, "S3 answered: {}", r.text());
        } else {
            r.problem(status);
        }
    }

    /// The admin token the deployment handed out (for the embedded server: `admin-token`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The subject of that token: the actor the audit log names for what it did.
    pub fn admin_subject(&self) -> String {
        let payload = self
            .admin_token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .expect("the admin token is a JWT");
        let claims: Value = serde_json::from_slice(&payload).expect("JWT claims are JSON");
        claims["sub"]
            .as_str()
            .expect("the admin token has a subject")
            .to_owned()
    }

    /// The process behind this server, when the harness started it.
    pub fn local(&mut self) -> &mut OtaServer {
        self.local
            .as_mut()
            .expect("this test needs a server process the harness started")
    }

    pub fn data_dir(&self) -> &Path {
        self.local
            .as_ref()
            .expect("this test needs a server process the harness started")
            .data_dir()
    }

    fn read_credentials(&mut self) {
        let dir = self.data_dir().to_owned();
        self.admin_token = read_secret(&dir, ADMIN_TOKEN_FILE);
        self.jwt_secret = read_secret(&dir, JWT_SECRET_FILE).into_bytes();
    }

    /// Stops the process (SIGTERM, then SIGKILL if it lingers) and starts it again on the same
    /// data directory and environment. The port changes; `base()` follows it.
    pub fn restart(&mut self) {
        self.local().stop();
        self.start_again();
    }

    /// Kills the process with SIGKILL (no graceful shutdown) and starts it again.
    pub fn crash_and_restart(&mut self) {
        self.local().kill();
        self.start_again();
    }

    fn start_again(&mut self) {
        let local = self.local();
        local.start();
        self.base = local.base().to_owned();
        self.http = client();
        self.read_credentials();
    }

    // ---- credentials ------------------------------------------------------------------------

    /// Signs arbitrary claims with the deployment's HS256 secret.
    pub fn sign(&self, claims: &Value) -> String {
        sign_with(&self.jwt_secret, claims)
    }

    /// An admin-audience token with this role, valid for an hour.
    pub fn token(&self, role: &str) -> String {
        self.token_as(&format!("e2e-{role}"), role)
    }

    /// An admin-audience token of the subject `sub` with this role, valid for an hour.
    pub fn token_as(&self, sub: &str, role: &str) -> String {
        self.sign(&json!({
            "sub": sub,
            "role": role,
            "aud": "ota-admin",
            "exp": now() + 3600,
        }))
    }

    /// A device token for `device_id` of `device_type`, without expiry.
    pub fn device_token(&self, device_id: &str, device_type: &str) -> String {
        self.sign(&json!({
            "sub": device_id,
            "aud": "ota-device",
            "device_type": device_type,
        }))
    }

    // ---- requests ---------------------------------------------------------------------------

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.req(Method::GET, path)
    }

    pub fn head(&self, path: &str) -> RequestBuilder {
        self.req(Method::HEAD, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.req(Method::POST, path)
    }

    /// A request carrying the admin token.
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path).bearer_auth(&self.admin_token)
    }

    /// A request carrying a device token of `device_id` / `device_type`.
    pub fn device(
        &self,
        method: Method,
        path: &str,
        device_id: &str,
        device_type: &str,
    ) -> RequestBuilder {
        self.req(method, path)
            .bearer_auth(self.device_token(device_id, device_type))
    }
}

pub fn sign_with(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("signing a test token")
}

/// An unsigned JWT (`alg: none`), built by hand since no library will make one.
pub fn unsigned_jwt(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims"));
    format!("{header}.{payload}.")
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

// ---- responses ----------------------------------------------------------------------------

/// A response read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts an RFC 9457 problem with this status and returns it.
    #[track_caller]
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        assert_problem_shape(self)
    }

    /// The `field` of every entry of a problem's `errors`.
    pub fn error_fields(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Checks that a response is a well-formed problem and that it leaks nothing internal.
#[track_caller]
pub fn assert_problem_shape(r: &Resp) -> Value {
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/problem+json"),
        "status {}: content-type is '{ct}', not application/problem+json; body: {}",
        r.status,
        r.text()
    );
    let p = r.json();
    assert!(p["type"].is_string(), "problem without type: {p}");
    assert!(p["title"].is_string(), "problem without title: {p}");
    assert_eq!(
        p["status"].as_u64(),
        Some(u64::from(r.status)),
        "problem status: {p}"
    );
    assert!(p["detail"].is_string(), "problem without detail: {p}");
    if let Some(errors) = p.get("errors") {
        for e in errors.as_array().expect("errors is an array") {
            assert!(
                e["field"].is_string() && e["message"].is_string(),
                "bad errors entry: {e}"
            );
        }
    }
    let text = r.text();
    for leak in ["/tmp/", "ota-e2e-", "panicked", ".rs:", "sqlite", "SQLITE"] {
        assert!(!text.contains(leak), "the problem leaks '{leak}': {text}");
    }
    p
}

/// `RequestBuilder::go()`: send and read the whole response.
pub trait Go {
    fn go(self) -> impl Future<Output = Resp> + Send;
}

/// Through `cargo lambda watch`, a function instance now and then exits because its runtime
/// client lost its connection to the emulator's runtime API (`IncompleteMessage` on the
/// function's stderr); the emulator then answers the request in flight with a 500 of its own
/// (`"type":"https://httpstatuses.com/500"`, never one of the service's `/problems/...`) or drops
/// the connection, and starts the function again. That is the emulator, not the service under
/// test, so in that mode such a request is sent again, at most this many times, each logged.
/// Every answer of the service itself, 500s included, is returned as it came.
const EMULATOR_RETRIES: u32 = 3;

/// How many requests this test process has in flight to `cargo lambda watch` at most. The
/// emulator (1.9.2) deadlocks once a function has 100 requests waiting for an instance: its
/// request cache pushes into the function's bounded queue (capacity 100) while holding the
/// write lock that every instance's `/next` needs to pop from that queue. API Gateway and Lambda
/// have no such limit (Lambda starts instances instead), so the cap belongs to the harness: a
/// burst of hundreds of concurrent requests reaches the emulator at most this many at a time,
/// still far more than the instances serve at once.
static EMULATOR_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(64);

impl Go for RequestBuilder {
    async fn go(self) -> Resp {
        let lambda = deploy() == Deploy::Lambda;
        let _slot = match lambda {
            true => Some(EMULATOR_SLOTS.acquire().await.expect("never closed")),
            false => None,
        };
        let mut request = self;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let spare = (lambda && attempt <= EMULATOR_RETRIES)
                .then(|| request.try_clone())
                .flatten();
            let outcome = receive(request).await;
            let failure = match &outcome {
                Ok(r) if r.status == 500 && r.text().contains("https://httpstatuses.com/500") => {
                    r.text()
                }
                Err(e) if format!("{e:?}").contains("IncompleteMessage") => format!("{e:?}"),
                _ => return outcome.expect("sending the request"),
            };
            let Some(again) = spare else {
                return outcome.expect("sending the request");
            };
            eprintln!("cargo lambda watch failed a request ({failure}); sending it again");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            request = again;
        }
    }
}

async fn receive(request: RequestBuilder) -> reqwest::Result<Resp> {
    let resp = request.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await?.to_vec();
    Ok(Resp {
        status,
        headers,
        body,
    })
}
