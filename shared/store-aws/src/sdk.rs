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
        Ok(Self {
            table: get("OTA_TABLE")?,
            bucket: get("OTA_BUCKET")?,
        })
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
