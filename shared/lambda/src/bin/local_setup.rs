//! `ota-local-setup`, run by `cargo xtask local-aws` against the local stack: creates the table
//! (the SAM template's definition, `ota_store_aws::create_table`) and the bucket named by
//! `OTA_TABLE` and `OTA_BUCKET`, then prints an admin token signed with `OTA_JWT_SECRET` on
//! stdout. Not a Lambda function.

use ota_http::auth::Role;
use ota_http::config::CommonConfig;
use ota_store_aws::{AwsSettings, DynamoOptions, create_table, stores_from_env};

/// Lifetime of the printed token: one working day of local development.
const TOKEN_TTL_S: i64 = 24 * 3600;

#[tokio::main]
async fn main() -> Result<(), ota_lambda::Error> {
    let names = AwsSettings::from_env()?;
    let (meta, blobs) = stores_from_env(DynamoOptions::default()).await?;
    create_table(meta.client(), meta.table())
        .await
        .map_err(|e| format!("creating the table {}: {e}", names.table))?;
    blobs
        .client()
        .create_bucket()
        .bucket(&names.bucket)
        .send()
        .await
        .map_err(|e| {
            let e = error_chain(&e);
            format!("creating the bucket {}: {e}", names.bucket)
        })?;
    let config = CommonConfig::from_env()?;
    let secret = config
        .jwt_secret
        .clone()
        .ok_or("OTA_JWT_SECRET must be set")?;
    let token = config
        .auth(secret.as_bytes())?
        .mint_admin("local-aws", Role::Admin, TOKEN_TTL_S)
        .map_err(|p| p.detail)?;
    println!("{token}");
    Ok(())
}

/// The SDK's error with its source chain (its `Display` alone says only "service error").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}
