//! Building the SDK clients once per process (or Lambda instance) from the environment.

/// Names and settings the AWS store needs beyond the SDK's own variables.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// `OTA_TABLE`.
    pub table: String,
    /// `OTA_BUCKET`.
    pub bucket: String,
}

impl AwsSettings {
    pub fn from_env() -> Result<Self, String> {
        let get = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("{name} must be set"))
        };
        let table = get("OTA_TABLE")?;
        // DynamoDB's table names, or a table's ARN.
        let table_ok = table.starts_with("arn:")
            || ((3..=255).contains(&table.len())
                && table
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')));
        if !table_ok {
            return Err(format!(
                "OTA_TABLE must be a DynamoDB table name (3-255 characters of [A-Za-z0-9_.-]) or \
                 ARN, got '{table}'"
            ));
        }
        let bucket = get("OTA_BUCKET")?;
        // S3's bucket names: lowercase, 3-63 characters, starting and ending alphanumeric.
        let edge_ok =
            |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
            && edge_ok(bucket.as_bytes().first())
            && edge_ok(bucket.as_bytes().last());
        if !bucket_ok {
            return Err(format!(
                "OTA_BUCKET must be an S3 bucket name (3-63 characters of [a-z0-9.-], starting \
                 and ending with a letter or digit), got '{bucket}'"
            ));
        }
        Ok(Self { table, bucket })
    }
}

/// The SDK configuration from the standard variables (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_S3`, ...).
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Both stores of the AWS deployment from the environment (`OTA_TABLE`, `OTA_BUCKET` and the
/// SDK's variables), sharing one SDK configuration.
pub async fn stores_from_env(
    options: crate::DynamoOptions,
) -> Result<(crate::DynamoMeta, crate::S3Blobs), String> {
    stores_from_sdk(&load_sdk_config().await, options)
}

/// Both stores on an SDK configuration the caller also uses for other services.
pub fn stores_from_sdk(
    sdk: &aws_config::SdkConfig,
    options: crate::DynamoOptions,
) -> Result<(crate::DynamoMeta, crate::S3Blobs), String> {
    let settings = AwsSettings::from_env()?;
    Ok((
        crate::DynamoMeta::new(sdk, settings.table, options),
        crate::S3Blobs::new(sdk, settings.bucket),
    ))
}
