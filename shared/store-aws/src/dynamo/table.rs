//! The table definition, in one place: `cargo xtask local-aws`, the tests and the SAM template
//! (`infra/template.yaml`, compared with [`table_definition`] by
//! `shared/lambda/tests/infra_template.rs`) all describe the same table.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

/// The attribute DynamoDB's TTL reads (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Generic secondary indexes; what each holds per item type is in `docs/aws-keys.md`.
pub const INDEXES: [&str; 3] = ["GSI1", "GSI2", "GSI3"];

/// The table's own keys.
const PARTITION_KEY: &str = "PK";
const SORT_KEY: &str = "SK";

/// A key schema: a string partition (HASH) key and a string sort (RANGE) key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub partition: String,
    pub sort: String,
}

/// The table as data: what [`create_table`] creates, for checks against other descriptions of
/// it (the SAM template). Every key attribute is a string (`S`).
#[derive(Debug, Clone, PartialEq)]
pub struct TableDefinition {
    pub key: KeyPair,
    /// The global secondary indexes by name, each projecting `projection`.
    pub indexes: Vec<(String, KeyPair)>,
    pub projection: ProjectionType,
    pub billing_mode: BillingMode,
    /// Enabled at creation.
    pub ttl_attribute: &'static str,
}

impl TableDefinition {
    /// Every key attribute of the table and its indexes (the `AttributeDefinitions`), in order.
    pub fn key_attributes(&self) -> Vec<&str> {
        std::iter::once(&self.key)
            .chain(self.indexes.iter().map(|(_, k)| k))
            .flat_map(|k| [k.partition.as_str(), k.sort.as_str()])
            .collect()
    }
}

/// The table: `PK`/`SK`, indexes `GSIn` on `GSInPK`/`GSInSK` projecting all attributes,
/// on-demand billing, TTL on [`TTL_ATTRIBUTE`].
pub fn table_definition() -> TableDefinition {
    TableDefinition {
        key: KeyPair {
            partition: PARTITION_KEY.to_owned(),
            sort: SORT_KEY.to_owned(),
        },
        indexes: INDEXES
            .iter()
            .map(|index| {
                let keys = KeyPair {
                    partition: format!("{index}PK"),
                    sort: format!("{index}SK"),
                };
                ((*index).to_owned(), keys)
            })
            .collect(),
        projection: ProjectionType::All,
        billing_mode: BillingMode::PayPerRequest,
        ttl_attribute: TTL_ATTRIBUTE,
    }
}

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

/// Creates the table of [`table_definition`] and enables TTL; waits until it is active.
pub async fn create_table(client: &Client, table: &str) -> Result<(), String> {
    let def = table_definition();
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(def.billing_mode.clone())
        .key_schema(key(&def.key.partition, KeyType::Hash)?)
        .key_schema(key(&def.key.sort, KeyType::Range)?);
    for name in def.key_attributes() {
        req = req.attribute_definitions(string_attr(name)?);
    }
    for (index, keys) in &def.indexes {
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index)
                .key_schema(key(&keys.partition, KeyType::Hash)?)
                .key_schema(key(&keys.sort, KeyType::Range)?)
                .projection(
                    Projection::builder()
                        .projection_type(def.projection.clone())
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
                .attribute_name(def.ttl_attribute)
                .build()
                .map_err(|e| e.to_string())?,
        )
        .send()
        .await
        .map_err(|e| format!("UpdateTimeToLive {table}: {}", super::error::describe(&e)))?;
    Ok(())
}
