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
