//! `eddy:handler/kv`: key-value state in a DynamoDB table, or in a table of the
//! host's embedded store, as `dynamodb:GetItem`/`PutItem`/`DeleteItem`.
//!
//! In DynamoDB an entry is an item whose partition key (a string attribute, its
//! name read once from the table) is the key and whose binary attribute `value`
//! is the value. In the embedded store it is a row of the `kv` table.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeyType};
use rusqlite::{OptionalExtension, params};

use super::streams::aws_error;
use super::{CapabilityState, Target};
use crate::role::actions;
use crate::contract::errors::Error as GuestError;
use crate::contract::kv;

/// The attribute that holds an entry's value in a DynamoDB table.
pub const VALUE_ATTRIBUTE: &str = "value";
/// DynamoDB's limits: a partition key of at most 2048 bytes, an item of 400 KB.
const MAX_KEY_BYTES: usize = 2048;
const MAX_VALUE_BYTES: usize = 400 * 1024;

/// What to do with an entry.
enum Op {
    Get,
    Set(Vec<u8>),
    Delete,
    CompareAndSet { expected: Option<Vec<u8>>, value: Vec<u8> },
}

/// What came of it.
enum Done {
    Value(Option<Vec<u8>>),
    Written(bool),
}

/// Links `eddy:handler/kv` to the invocation's [`CapabilityState`].
pub fn add_to_linker<T: super::HasCapabilities>(linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
    kv::add_to_linker::<T, wasmtime::component::HasSelf<CapabilityState>>(linker, super::calls::<T>)
}

impl kv::Host for CapabilityState {
    async fn get(&mut self, table: String, key: String) -> Result<Option<Vec<u8>>, GuestError> {
        match run(self, &table, key, Op::Get).await? {
            Done::Value(value) => Ok(value),
            Done::Written(_) => Ok(None),
        }
    }

    async fn set(&mut self, table: String, key: String, value: Vec<u8>) -> Result<(), GuestError> {
        run(self, &table, key, Op::Set(value)).await.map(|_| ())
    }

    async fn delete(&mut self, table: String, key: String) -> Result<(), GuestError> {
        run(self, &table, key, Op::Delete).await.map(|_| ())
    }

    async fn compare_and_set(
        &mut self,
        table: String,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool, GuestError> {
        match run(self, &table, key, Op::CompareAndSet { expected, value }).await? {
            Done::Written(written) => Ok(written),
            Done::Value(_) => Ok(false),
        }
    }
}

async fn run(caps: &CapabilityState, table: &str, key: String, op: Op) -> Result<Done, GuestError> {
    let target = Target::parse(table, "dynamodb", "table")?;
    let action = match op {
        Op::Get => actions::DYNAMODB_GET_ITEM,
        Op::Set(_) | Op::CompareAndSet { .. } => actions::DYNAMODB_PUT_ITEM,
        Op::Delete => actions::DYNAMODB_DELETE_ITEM,
    };
    caps.check(action, target.arn())?;
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(GuestError::Invalid(format!("a key has 1 to {MAX_KEY_BYTES} bytes, not {}", key.len())));
    }
    if let Op::Set(value) | Op::CompareAndSet { value, .. } = &op
        && value.len() > MAX_VALUE_BYTES
    {
        return Err(GuestError::Invalid(format!("a value has at most {MAX_VALUE_BYTES} bytes, not {}", value.len())));
    }
    match target {
        Target::Local { name, .. } => caps.services.with_embedded(move |conn| embedded(conn, &name, &key, op).map_err(unavailable)).await,
        // By name: DynamoDB Local (and older endpoints) take no ARN as TableName.
        Target::Aws { arn, region, name } => dynamodb(caps, &arn, &name, &region, key, op).await,
    }
}

fn unavailable(error: impl std::fmt::Display) -> GuestError {
    GuestError::Unavailable(format!("embedded store: {error:#}"))
}

fn embedded(conn: &mut rusqlite::Connection, table: &str, key: &str, op: Op) -> anyhow::Result<Done> {
    // IMMEDIATE: a compare-and-set reads and writes under one write lock.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current = || -> rusqlite::Result<Option<Vec<u8>>> {
        tx.query_row("SELECT value FROM kv WHERE tbl = ?1 AND key = ?2", params![table, key], |row| row.get(0)).optional()
    };
    let done = match op {
        Op::Get => Done::Value(current()?),
        Op::Set(value) => {
            tx.execute("INSERT OR REPLACE INTO kv (tbl, key, value) VALUES (?1, ?2, ?3)", params![table, key, value])?;
            Done::Written(true)
        }
        Op::Delete => {
            tx.execute("DELETE FROM kv WHERE tbl = ?1 AND key = ?2", params![table, key])?;
            Done::Written(true)
        }
        Op::CompareAndSet { expected, value } => {
            if current()? == expected {
                tx.execute("INSERT OR REPLACE INTO kv (tbl, key, value) VALUES (?1, ?2, ?3)", params![table, key, value])?;
                Done::Written(true)
            } else {
                Done::Written(false)
            }
        }
    };
    tx.commit()?;
    Ok(done)
}

async fn dynamodb(caps: &CapabilityState, arn: &str, table: &str, region: &str, key: String, op: Op) -> Result<Done, GuestError> {
    let client = caps.services.dynamodb(region).await;
    let key_attribute = table_key(caps, &client, arn, table).await?;
    let item_key = HashMap::from([(key_attribute.clone(), AttributeValue::S(key.clone()))]);
    match op {
        Op::Get => {
            let output = client
                .get_item()
                .table_name(table)
                .set_key(Some(item_key))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| aws_error(&e, "dynamodb", arn))?;
            Ok(Done::Value(output.item().and_then(|item| match item.get(VALUE_ATTRIBUTE) {
                Some(AttributeValue::B(blob)) => Some(blob.as_ref().to_vec()),
                Some(AttributeValue::S(text)) => Some(text.clone().into_bytes()),
                _ => None,
            })))
        }
        Op::Delete => {
            client
                .delete_item()
                .table_name(table)
                .set_key(Some(item_key))
                .send()
                .await
                .map_err(|e| aws_error(&e, "dynamodb", arn))?;
            Ok(Done::Written(true))
        }
        Op::Set(value) => put_item(&client, (arn, table), (key_attribute, key), value, None).await,
        Op::CompareAndSet { expected, value } => put_item(&client, (arn, table), (key_attribute, key), value, Some(expected)).await,
    }
}

/// PutItem, conditional when `expected` is given: `Some(None)` writes only if the
/// key is absent, `Some(Some(v))` only if the value is `v` now.
async fn put_item(
    client: &aws_sdk_dynamodb::Client,
    (arn, table): (&str, &str),
    (key_attribute, key): (String, String),
    value: Vec<u8>,
    expected: Option<Option<Vec<u8>>>,
) -> Result<Done, GuestError> {
    let mut request = client
        .put_item()
        .table_name(table)
        .item(key_attribute.clone(), AttributeValue::S(key))
        .item(VALUE_ATTRIBUTE, AttributeValue::B(Blob::new(value)));
    request = match expected {
        None => request,
        Some(None) => request.condition_expression("attribute_not_exists(#k)").expression_attribute_names("#k", key_attribute),
        Some(Some(expected)) => request
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", VALUE_ATTRIBUTE)
            .expression_attribute_values(":expected", AttributeValue::B(Blob::new(expected))),
    };
    match request.send().await {
        Ok(_) => Ok(Done::Written(true)),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
            Ok(Done::Written(false))
        }
        Err(error) => Err(aws_error(&error, "dynamodb", arn)),
    }
}

/// The table's partition key attribute, read once per table with DescribeTable.
async fn table_key(caps: &CapabilityState, client: &aws_sdk_dynamodb::Client, arn: &str, table: &str) -> Result<String, GuestError> {
    if let Some(name) = caps.services.table_keys.lock().await.get(arn) {
        return Ok(name.clone());
    }
    let output = client.describe_table().table_name(table).send().await.map_err(|e| aws_error(&e, "dynamodb", arn))?;
    let schema = output.table().map(|t| t.key_schema()).unwrap_or_default();
    if schema.iter().any(|k| k.key_type() == &KeyType::Range) {
        return Err(GuestError::Invalid(format!(
            "{arn} has a sort key; a key-value table has a string partition key only"
        )));
    }
    let name = schema
        .iter()
        .find(|k| k.key_type() == &KeyType::Hash)
        .map(|k| k.attribute_name().to_owned())
        .ok_or_else(|| GuestError::Invalid(format!("{arn} has no partition key")))?;
    caps.services.table_keys.lock().await.insert(arn.to_owned(), name.clone());
    Ok(name)
}
