//! The AWS deployment's storage: metadata in one DynamoDB table (key design in
//! `docs/aws-keys.md`), firmware in S3 handed to devices as signed CloudFront URLs when a
//! distribution is configured, else as presigned S3 URLs. Both implement the ports of `ota-core`
//! and pass the same conformance suite as the embedded store.

mod cloudfront;
mod dynamo;
mod s3;
mod sdk;

pub use cloudfront::{CloudFrontKey, CloudFrontSigner, RSA_KEY_BITS};
pub use dynamo::{
    DynamoMeta, DynamoOptions, INDEXES, KeyPair, TTL_ATTRIBUTE, TableDefinition, create_table,
    table_definition,
};
pub use s3::S3Blobs;
pub use sdk::{AwsSettings, load_sdk_config, stores_from_env, stores_from_sdk};
