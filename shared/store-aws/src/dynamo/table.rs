//! The table definition, in one place: `cargo xtask local-aws`, the tests and the SAM template
//! (checked by a test against `infra/`) all create the same table.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

/// The attribute DynamoDB's TTL reads (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Generic secondary indexes; what each holds per item type is in `docs/aws-keys.md`.
pub const INDEXES: [&str; 3] = ["GSI1", "GSI2", "GSI3"];

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement, String> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| e.to_string())
}

fn string_attr(name: &str) -> Result<AttributeDefinition, String> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| e.to_string())
}

/// Creates the table (on-demand billing) and enables TTL; waits until it is active.
pub async fn create_table(client: &Client, table: &str) -> Result<(), String> {
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("PK", KeyType::Hash)?)
        .key_schema(key("SK", KeyType::Range)?)
        .attribute_definitions(string_attr("PK")?)
        .attribute_definitions(string_attr("SK")?);
    for index in INDEXES {
        let (pk, sk) = (format!("{index}PK"), format!("{index}SK"));
        req = req
            .attribute_definitions(string_attr(&pk)?)
            .attribute_definitions(string_attr(&sk)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index)
                    .key_schema(key(&pk, KeyType::Hash)?)
                    .key_schema(key(&sk, KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()
                    .map_err(|e| e.to_string())?,
            );
    }
    req.send()
        .await
        .map_err(|e| format!("CreateTable {table}: {}", super::error::describe(&e)))?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| format!("UpdateTimeToLive {table}: {}", super::error::describe(&e)))?;
    Ok(())
}
