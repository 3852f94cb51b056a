//! The JWT secret read from Secrets Manager at init: the SDK's real request over loopback HTTP to
//! a stand-in that speaks the service's JSON protocol (Secrets Manager cannot run here).

use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use ota_lambda::secret::{KeysSource, SecretSource, fetch};
use serde_json::{Value, json};

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ota-jwt-AbCdEf";

/// Answers `GetSecretValue` with `answer` and records the targets and bodies it received.
async fn secrets_manager(
    answer: (StatusCode, Value),
) -> (Client, Arc<Mutex<Vec<(String, Value)>>>) {
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
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("id", "secret", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .build();
    (Client::from_conf(config), seen)
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
}
