//! The secrets read from Secrets Manager at init (the JWT secret, the manifest keys, the CloudFront
//! key): the SDK's real request over loopback HTTP to a stand-in that speaks the service's JSON
//! protocol (Secrets Manager cannot run here).

use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region, SharedCredentialsProvider};
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use ota_http::config::CloudFrontConfig;
use ota_lambda::secret::{CloudFrontKeySource, KeysSource, SecretSource, fetch};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ota-jwt-AbCdEf";

/// Answers `GetSecretValue` with `answer` and records the targets and bodies it received.
async fn secrets_manager(
    answer: (StatusCode, Value),
) -> (Client, Arc<Mutex<Vec<(String, Value)>>>) {
    let (sdk, seen) = secrets_manager_sdk(answer).await;
    (Client::new(&sdk), seen)
}

/// The stand-in, and an SDK configuration whose Secrets Manager it is.
async fn secrets_manager_sdk(
    answer: (StatusCode, Value),
) -> (aws_config::SdkConfig, Arc<Mutex<Vec<(String, Value)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            let answer = answer.clone();
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                log.lock().unwrap().push((target, body));
                (
                    answer.0,
                    [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
                    answer.1.to_string(),
                )
                    .into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "id", "secret", None, None, "test",
        )))
        .endpoint_url(format!("http://{addr}"))
        .build();
    (sdk, seen)
}

/// An RSA 2048 key made for this test run from a fixed seed, as PKCS#8 PEM.
fn cloudfront_test_key_pem() -> String {
    let key = rsa::RsaPrivateKey::new(&mut ChaCha8Rng::seed_from_u64(16), 2048).unwrap();
    key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
}

#[tokio::test]
async fn the_cloudfront_key_is_read_from_its_secret_and_must_be_rsa_2048() {
    let pem = cloudfront_test_key_pem();
    let (sdk, seen) =
        secrets_manager_sdk((StatusCode::OK, json!({"ARN": ARN, "SecretString": pem}))).await;
    CloudFrontKeySource::SecretsManager(ARN.to_owned())
        .resolve(&sdk)
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap()[0].1["SecretId"], ARN);

    let (sdk, _) = secrets_manager_sdk((
        StatusCode::OK,
        json!({"ARN": ARN, "SecretString": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}),
    ))
    .await;
    let e = CloudFrontKeySource::SecretsManager(ARN.to_owned())
        .resolve(&sdk)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("OTA_CLOUDFRONT_KEY_ARN's secret {ARN}"))
            && e.contains("RSA 2048 private key")
            && e.contains("a public key"),
        "{e}"
    );
}

#[tokio::test]
async fn the_secret_string_is_the_jwt_secret() {
    let (client, seen) = secrets_manager((
        StatusCode::OK,
        json!({"ARN": ARN, "Name": "ota-jwt", "SecretString": "s3cr3t-from-the-manager\n"}),
    ))
    .await;
    assert_eq!(
        fetch(&client, ARN, "the JWT secret").await.unwrap(),
        "s3cr3t-from-the-manager"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one request at init");
    assert_eq!(seen[0].0, "secretsmanager.GetSecretValue");
    assert_eq!(seen[0].1["SecretId"], ARN);
}

#[tokio::test]
async fn a_missing_secret_names_the_arn() {
    let (client, _) = secrets_manager((
        StatusCode::BAD_REQUEST,
        json!({"__type": "ResourceNotFoundException",
               "message": "Secrets Manager can't find the specified secret."}),
    ))
    .await;
    let e = fetch(&client, ARN, "the manifest keys")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains(ARN) && e.contains("the manifest keys"), "{e}");
    assert!(e.contains("ResourceNotFoundException"), "{e}");
}

#[tokio::test]
async fn a_binary_or_empty_secret_is_refused() {
    for body in [
        json!({"ARN": ARN, "SecretBinary": "AAEC"}),
        json!({"ARN": ARN, "SecretString": "  "}),
    ] {
        let (client, _) = secrets_manager((StatusCode::OK, body.clone())).await;
        let e = fetch(&client, ARN, "the JWT secret")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("no SecretString"), "{body}: {e}");
    }
}

/// Why `config` gives no CloudFront key source.
fn refused(config: &CloudFrontConfig) -> String {
    CloudFrontKeySource::from_env(Some(config))
        .unwrap_err()
        .to_string()
}

#[test]
fn the_plain_secret_wins_and_one_of_the_two_is_needed() {
    // Only this test touches the variable, and it only reads its absence or the value it set.
    assert_eq!(
        SecretSource::from_env(Some("plain".to_owned())).unwrap(),
        SecretSource::Plain("plain".to_owned())
    );
    // SAFETY: the only test of this binary that reads or writes the environment.
    #[allow(unsafe_code)] // changing the environment is unsafe; sound for the reason above
    unsafe {
        std::env::remove_var("OTA_JWT_SECRET_ARN");
        std::env::remove_var("OTA_MANIFEST_KEYS_ARN");
        std::env::remove_var("OTA_CLOUDFRONT_KEY_ARN");
    }
    let e = SecretSource::from_env(None).unwrap_err().to_string();
    assert!(
        e.contains("OTA_JWT_SECRET_ARN") && e.contains("OTA_JWT_SECRET"),
        "{e}"
    );
    // SAFETY: as above.
    #[allow(unsafe_code)] // as above
    unsafe {
        std::env::set_var("OTA_JWT_SECRET_ARN", ARN);
    }
    assert_eq!(
        SecretSource::from_env(None).unwrap(),
        SecretSource::SecretsManager(ARN.to_owned())
    );
    // The manifest keys: the same precedence, the same refusal naming both variables.
    let e = KeysSource::from_env(None).unwrap_err().to_string();
    assert!(
        e.contains("OTA_MANIFEST_KEYS_ARN") && e.contains("or OTA_MANIFEST_KEYS:"),
        "{e}"
    );
    // SAFETY: as above.
    #[allow(unsafe_code)] // as above
    unsafe {
        std::env::set_var("OTA_MANIFEST_KEYS_ARN", ARN);
    }
    assert!(matches!(
        KeysSource::from_env(None).unwrap(),
        KeysSource::SecretsManager(arn) if arn == ARN
    ));

    // The CloudFront key: nothing without a distribution, and then no ARN either.
    assert!(CloudFrontKeySource::from_env(None).unwrap().is_none());
    // SAFETY: as above.
    #[allow(unsafe_code)] // as above
    unsafe {
        std::env::set_var("OTA_CLOUDFRONT_KEY_ARN", ARN);
    }
    let e = CloudFrontKeySource::from_env(None).unwrap_err().to_string();
    assert!(e.contains("without OTA_CLOUDFRONT_DOMAIN"), "{e}");
    let mut config = CloudFrontConfig {
        domain: "d111111abcdef8.cloudfront.net".to_owned(),
        key_pair_id: "K2JCJMDEHXQW5F".to_owned(),
        private_key: None,
    };
    assert!(matches!(
        CloudFrontKeySource::from_env(Some(&config)).unwrap(),
        Some(CloudFrontKeySource::SecretsManager(arn)) if arn == ARN
    ));
    // The PEM itself wins over the ARN, and is checked right away, naming its variable.
    config.private_key = Some(cloudfront_test_key_pem());
    assert!(matches!(
        CloudFrontKeySource::from_env(Some(&config)).unwrap(),
        Some(CloudFrontKeySource::Plain(_))
    ));
    config.private_key = Some("not a key".to_owned());
    let e = refused(&config);
    assert!(
        e.starts_with("OTA_CLOUDFRONT_PRIVATE_KEY must hold") && e.contains("RSA 2048"),
        "{e}"
    );
    // A distribution with neither.
    // SAFETY: as above.
    #[allow(unsafe_code)] // as above
    unsafe {
        std::env::remove_var("OTA_CLOUDFRONT_KEY_ARN");
    }
    config.private_key = None;
    let e = refused(&config);
    assert!(
        e.contains("OTA_CLOUDFRONT_KEY_ARN") && e.contains("OTA_CLOUDFRONT_PRIVATE_KEY"),
        "{e}"
    );
}
