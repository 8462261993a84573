//! The lease table in DynamoDB: its items and the conditional writes that make
//! ownership safe. Each write that changes who holds a lease, or renews it,
//! is conditional on the lease's counter being the one the writer last saw, and
//! each checkpoint on the writer still being the owner: a host that lost a lease
//! can neither renew it nor move its checkpoint.
//!
//! Table: partition key `mapping` (string, `<function>|<source>`), sort key
//! `leaseKey` (string: the shard id, or `(worker)<id>` for a host's heartbeat,
//! or `(latest-started-at)` for a LATEST mapping's start time). On-demand
//! capacity (PAY_PER_REQUEST). Lease attributes: `leaseOwner`, `leaseCounter`,
//! `checkpoint`, `parentShardIds`, `windowState`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};

use crate::source::describe_call_failure;
use crate::store::{Checkpoint, CheckpointKey, CheckpointStore, now_ms};

const MAPPING: &str = "mapping";
const LEASE_KEY: &str = "leaseKey";
const OWNER: &str = "leaseOwner";
const COUNTER: &str = "leaseCounter";
const CHECKPOINT: &str = "checkpoint";
const PARENTS: &str = "parentShardIds";
const WINDOW_STATE: &str = "windowState";
const UPDATED: &str = "updatedMs";

/// The prefix of a host's heartbeat item within a mapping.
pub const WORKER_PREFIX: &str = "(worker)";
/// The pseudo-shard prefix under which the mapping loop keeps a shard's window.
const WINDOW_PREFIX: &str = "(window)";

/// The mapping part of a table key: one function reading one source.
pub fn mapping_id(function: &str, source: &str) -> String {
    format!("{function}|{source}")
}

/// One item of a mapping, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseItem {
    pub key: String,
    pub owner: Option<String>,
    pub counter: i64,
    pub checkpoint: Option<String>,
    pub parents: Vec<String>,
}

impl LeaseItem {
    /// A shard's lease, rather than a heartbeat or a mapping-wide entry.
    pub fn is_lease(&self) -> bool {
        !self.key.starts_with('(')
    }

    fn from_item(item: &HashMap<String, AttributeValue>) -> Option<LeaseItem> {
        let string = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Some(LeaseItem {
            key: string(LEASE_KEY)?,
            owner: string(OWNER),
            counter: item.get(COUNTER).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0),
            checkpoint: string(CHECKPOINT),
            parents: item
                .get(PARENTS)
                .and_then(|v| v.as_l().ok())
                .map(|list| list.iter().filter_map(|p| p.as_s().ok().cloned()).collect())
                .unwrap_or_default(),
        })
    }
}

/// The lease table of a cluster, as one host uses it.
pub struct LeaseTable {
    client: Client,
    name: String,
    /// This host's name in `leaseOwner`.
    me: String,
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Runs a conditional write: `Ok(false)` when its condition did not hold.
macro_rules! conditional {
    ($request:expr) => {
        match $request.send().await {
            Ok(_) => Ok(true),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(error) => Err(anyhow::anyhow!("lease table: {}", describe_call_failure(&error))),
        }
    };
}

impl LeaseTable {
    /// Connects to the table `name` with the host's AWS configuration (including
    /// `AWS_ENDPOINT_URL_DYNAMODB`), creating it if absent and waiting until it
    /// is active.
    pub async fn open(name: &str, me: &str) -> anyhow::Result<LeaseTable> {
        let client = Client::new(&crate::source::aws_config(None, None).await);
        let table = LeaseTable { client, name: name.to_owned(), me: me.to_owned() };
        table.create_if_absent().await?;
        Ok(table)
    }

    pub fn owner(&self) -> &str {
        &self.me
    }

    async fn create_if_absent(&self) -> anyhow::Result<()> {
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let attribute =
            |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build();
        let created = self
            .client
            .create_table()
            .table_name(&self.name)
            .key_schema(key(MAPPING, KeyType::Hash)?)
            .key_schema(key(LEASE_KEY, KeyType::Range)?)
            .attribute_definitions(attribute(MAPPING)?)
            .attribute_definitions(attribute(LEASE_KEY)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match created {
            Ok(_) => tracing::info!(table = %self.name, "created the lease table"),
            // Present already, or being created by another host at this moment.
            Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => anyhow::bail!("cannot create the lease table {}: {}", self.name, describe_call_failure(&error)),
        }
        for _ in 0..300 {
            let described = self.client.describe_table().table_name(&self.name).send().await;
            match described {
                Ok(output) if output.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) => return Ok(()),
                Ok(_) => {}
                Err(error) => anyhow::bail!("cannot describe the lease table {}: {}", self.name, describe_call_failure(&error)),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("the lease table {} did not become active within a minute", self.name)
    }

    fn key(&self, mapping: &str, lease_key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([(MAPPING.to_owned(), s(mapping)), (LEASE_KEY.to_owned(), s(lease_key))])
    }

    /// Every item of a mapping, read consistently.
    pub async fn items(&self, mapping: &str) -> anyhow::Result<Vec<LeaseItem>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.name)
                .key_condition_expression("#m = :m")
                .expression_attribute_names("#m", MAPPING)
                .expression_attribute_values(":m", s(mapping))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("lease table: {}", describe_call_failure(&e)))?;
            items.extend(output.items().iter().filter_map(LeaseItem::from_item));
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Adds the lease of a shard unless it exists; nobody holds a new lease.
    pub async fn create_lease(&self, mapping: &str, shard: &str, parents: &[String]) -> anyhow::Result<bool> {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(self.key(mapping, shard)))
            .item(COUNTER, n(0))
            .condition_expression("attribute_not_exists(#k)")
            .expression_attribute_names("#k", LEASE_KEY);
        if !parents.is_empty() {
            request = request.item(PARENTS, AttributeValue::L(parents.iter().map(|p| s(p)).collect()));
        }
        conditional!(request)
    }

    /// Takes (or steals) a lease last seen with `counter`: fails, without
    /// harm, if anyone changed it since.
    pub async fn take(&self, mapping: &str, shard: &str, counter: i64) -> anyhow::Result<bool> {
        self.bump(mapping, shard, "SET #o = :me, #c = #c + :one", "#c = :seen", Some(counter)).await
    }

    /// Renews a lease this host holds at `counter`; false if it was lost.
    pub async fn renew(&self, mapping: &str, shard: &str, counter: i64) -> anyhow::Result<bool> {
        self.bump(mapping, shard, "SET #c = #c + :one", "#c = :seen AND #o = :me", Some(counter)).await
    }

    /// Lets a lease go so that another host can take it at once.
    pub async fn release(&self, mapping: &str, shard: &str) -> anyhow::Result<bool> {
        self.bump(mapping, shard, "REMOVE #o SET #c = #c + :one", "#o = :me", None).await
    }

    /// A conditional update of a lease that moves its counter on. Every change of
    /// owner and every renewal does, so a host that read the counter can tell
    /// whether anyone wrote the lease since. In the expressions, `#o` is the
    /// owner, `#c` the counter, `:me` this host, `:one` 1 and `:seen` `seen`.
    async fn bump(&self, mapping: &str, shard: &str, update: &str, condition: &str, seen: Option<i64>) -> anyhow::Result<bool> {
        let request = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(self.key(mapping, shard)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_names("#c", COUNTER)
            .expression_attribute_values(":me", s(&self.me))
            .expression_attribute_values(":one", n(1));
        let request = match seen {
            Some(counter) => request.expression_attribute_values(":seen", n(counter)),
            None => request,
        };
        conditional!(request)
    }

    /// Writes this host's heartbeat for a mapping: other hosts count it when
    /// they work out their share, before it holds a single lease.
    pub async fn beat(&self, mapping: &str, counter: i64) -> anyhow::Result<()> {
        self.client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(self.key(mapping, &format!("{WORKER_PREFIX}{}", self.me))))
            .item(OWNER, s(&self.me))
            .item(COUNTER, n(counter))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("lease table: {}", describe_call_failure(&e)))?;
        Ok(())
    }

    /// Removes the heartbeat of a host that stopped beating long ago (it was
    /// killed), unless it beat again since it was read at `counter`.
    pub async fn remove_dead_worker(&self, mapping: &str, key: &str, counter: i64) -> anyhow::Result<bool> {
        conditional!(
            self.client
                .delete_item()
                .table_name(&self.name)
                .set_key(Some(self.key(mapping, key)))
                .condition_expression("#c = :seen")
                .expression_attribute_names("#c", COUNTER)
                .expression_attribute_values(":seen", n(counter))
        )
    }

    /// Removes this host's heartbeat (it is leaving).
    pub async fn retire(&self, mapping: &str) -> anyhow::Result<()> {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(self.key(mapping, &format!("{WORKER_PREFIX}{}", self.me))))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("lease table: {}", describe_call_failure(&e)))?;
        Ok(())
    }
}

/// Where a checkpoint key lives in the table: the item and the attribute.
fn locate(key: &CheckpointKey) -> (String, &str, &'static str) {
    let mapping = mapping_id(&key.function, &key.source);
    match key.shard.strip_prefix(WINDOW_PREFIX) {
        Some(shard) => (mapping, shard, WINDOW_STATE),
        None => (mapping, key.shard.as_str(), CHECKPOINT),
    }
}

/// In cluster mode the checkpoints live in the leases. A shard's checkpoint
/// and window state are written only while this host owns the lease; the
/// mapping-wide entries (`(latest-started-at)`) by whoever writes first.
#[async_trait]
impl CheckpointStore for LeaseTable {
    async fn get(&self, key: &CheckpointKey) -> anyhow::Result<Option<String>> {
        let (mapping, item, attribute) = locate(key);
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(self.key(&mapping, item)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("lease table: {}", describe_call_failure(&e)))?;
        Ok(output.item().and_then(|i| i.get(attribute)).and_then(|v| v.as_s().ok()).cloned())
    }

    async fn set(&self, key: &CheckpointKey, value: &str) -> anyhow::Result<()> {
        self.set_many(&[(key, value)]).await
    }

    /// Entries of one lease (a checkpoint and its window's state) go in one
    /// conditional update: both or neither.
    async fn set_many(&self, entries: &[(&CheckpointKey, &str)]) -> anyhow::Result<()> {
        let mut by_item: Vec<(String, String, Vec<(&'static str, &str)>)> = Vec::new();
        for (key, value) in entries {
            let (mapping, item, attribute) = locate(key);
            match by_item.iter_mut().find(|(m, i, _)| *m == mapping && i == item) {
                Some((_, _, attributes)) => attributes.push((attribute, value)),
                None => by_item.push((mapping, item.to_owned(), vec![(attribute, value)])),
            }
        }
        for (mapping, item, attributes) in by_item {
            let mut expression = format!("SET #u = :u");
            let mut request = self
                .client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(self.key(&mapping, &item)))
                .expression_attribute_names("#u", UPDATED)
                .expression_attribute_values(":u", n(now_ms() as i64));
            for (i, (attribute, value)) in attributes.iter().enumerate() {
                expression.push_str(&format!(", #a{i} = :v{i}"));
                request = request
                    .expression_attribute_names(format!("#a{i}"), *attribute)
                    .expression_attribute_values(format!(":v{i}"), s(value));
            }
            request = request.update_expression(expression);
            let owned = if item.starts_with('(') {
                // The mapping-wide entry: the first value written stays.
                conditional!(request.condition_expression("attribute_not_exists(#a0)"))?;
                true
            } else {
                conditional!(
                    request
                        .condition_expression("#o = :me")
                        .expression_attribute_names("#o", OWNER)
                        .expression_attribute_values(":me", s(&self.me))
                )?
            };
            if !owned {
                return Err(LeaseLost { shard: item }.into());
            }
        }
        Ok(())
    }

    async fn list(&self) -> anyhow::Result<Vec<Checkpoint>> {
        let mut checkpoints = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.name)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("lease table: {}", describe_call_failure(&e)))?;
            for item in output.items() {
                let string = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                let (Some(mapping), Some(shard), Some(sequence_number)) = (string(MAPPING), string(LEASE_KEY), string(CHECKPOINT))
                else {
                    continue;
                };
                let Some((function, source)) = mapping.split_once('|') else { continue };
                if shard.starts_with('(') {
                    continue;
                }
                let updated_ms = item.get(UPDATED).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
                checkpoints.push(Checkpoint {
                    key: CheckpointKey { function: function.to_owned(), source: source.to_owned(), shard },
                    sequence_number,
                    updated_ms,
                });
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(checkpoints);
            }
        }
    }
}

/// A checkpoint was refused because another host holds the shard's lease now.
#[derive(Debug, thiserror::Error)]
#[error("the lease of {shard} is held by another host now; the checkpoint was not written")]
pub struct LeaseLost {
    pub shard: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_find_their_item_and_attribute() {
        let key = |shard: &str| CheckpointKey { function: "f".into(), source: "kinesis:s".into(), shard: shard.into() };
        assert_eq!(locate(&key("shardId-1")), ("f|kinesis:s".to_owned(), "shardId-1", CHECKPOINT));
        assert_eq!(locate(&crate::store::window_key(&key("shardId-1"))), ("f|kinesis:s".to_owned(), "shardId-1", WINDOW_STATE));
        assert_eq!(locate(&key("(latest-started-at)")), ("f|kinesis:s".to_owned(), "(latest-started-at)", CHECKPOINT));
    }
}
