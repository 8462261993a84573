//! The lease table in DynamoDB: its items and the conditional writes that make
//! ownership safe. Each write that changes who holds a lease, or renews it,
//! is conditional on the lease's counter being the one the writer last saw, and
//! each checkpoint on the writer still being the owner: a host that lost a lease
//! can neither renew it nor move its checkpoint.
//!
//! Table: partition key `mapping` (string, `<function>|<source>`), sort key
//! `leaseKey` (string: a [`LeaseKey`] written by [`LeaseKey::encode`]).
//! On-demand capacity (PAY_PER_REQUEST). Lease attributes: `leaseOwner`,
//! `leaseCounter`, `checkpoint`, `parentShardIds`, `windowState`, `rewound`
//! (the last rewind carried out on the shard). The mapping's control item
//! (`eddy mapping`): `paused`, `rewindId`, `rewindTo`.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, TableStatus,
};

use crate::source::describe_call_failure;
use crate::store::{
    Checkpoint, CheckpointKey, CheckpointStore, MappingControl, MappingKey, Rewind, RewindTarget, ShardProgress, StoreError,
    StoredCheckpoint, now_ms,
};

const MAPPING: &str = "mapping";
const LEASE_KEY: &str = "leaseKey";
const OWNER: &str = "leaseOwner";
const COUNTER: &str = "leaseCounter";
const CHECKPOINT: &str = "checkpoint";
const PARENTS: &str = "parentShardIds";
const WINDOW_STATE: &str = "windowState";
const UPDATED: &str = "updatedMs";
const REWOUND: &str = "rewound";
const PAUSED: &str = "paused";
const REWIND_ID: &str = "rewindId";
const REWIND_TO: &str = "rewindTo";

/// The mapping part of a table key: one function reading one source.
pub fn mapping_id(mapping: &MappingKey) -> String {
    format!("{}|{}", mapping.function, mapping.source)
}

/// What an item of a mapping is, by its sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeaseKey {
    /// A shard's lease, holding its checkpoint and window state.
    Shard(String),
    /// A host's heartbeat: other hosts count it when they work out their share.
    Worker(String),
    /// When the mapping first started (LATEST is pinned to it).
    MappingStart,
    /// The operator's pause and last rewind of the mapping.
    Control,
}

impl LeaseKey {
    /// Shard ids never start with `(`, so these prefixes cannot meet one.
    const WORKER_PREFIX: &str = "(worker)";
    const MAPPING_START: &str = "(latest-started-at)";
    const CONTROL: &str = "(control)";

    pub fn encode(&self) -> std::borrow::Cow<'_, str> {
        match self {
            LeaseKey::Shard(shard) => shard.into(),
            LeaseKey::Worker(id) => format!("{}{id}", Self::WORKER_PREFIX).into(),
            LeaseKey::MappingStart => Self::MAPPING_START.into(),
            LeaseKey::Control => Self::CONTROL.into(),
        }
    }

    /// `None` for an item this version does not know (left alone).
    pub fn decode(text: &str) -> Option<LeaseKey> {
        if let Some(id) = text.strip_prefix(Self::WORKER_PREFIX) {
            return Some(LeaseKey::Worker(id.to_owned()));
        }
        if text == Self::MAPPING_START {
            return Some(LeaseKey::MappingStart);
        }
        if text == Self::CONTROL {
            return Some(LeaseKey::Control);
        }
        (!text.starts_with('(')).then(|| LeaseKey::Shard(text.to_owned()))
    }
}

/// One item of a mapping, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseItem {
    pub key: LeaseKey,
    pub owner: Option<String>,
    pub counter: i64,
    pub checkpoint: Option<Checkpoint>,
    pub parents: Vec<String>,
}

impl LeaseItem {
    /// The shard, if this is a shard's lease (rather than a heartbeat or a
    /// mapping-wide entry).
    pub fn shard(&self) -> Option<&str> {
        match &self.key {
            LeaseKey::Shard(shard) => Some(shard),
            _ => None,
        }
    }

    /// A shard's lease whose shard is finished.
    pub fn is_finished(&self) -> bool {
        self.shard().is_some() && self.checkpoint.as_ref().is_some_and(Checkpoint::is_shard_end)
    }

    fn from_item(item: &HashMap<String, AttributeValue>) -> Option<LeaseItem> {
        let string = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        Some(LeaseItem {
            key: LeaseKey::decode(&string(LEASE_KEY)?)?,
            owner: string(OWNER),
            counter: item.get(COUNTER).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0),
            checkpoint: string(CHECKPOINT).as_deref().map(Checkpoint::decode),
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

    fn key(&self, mapping: &str, lease_key: &LeaseKey) -> HashMap<String, AttributeValue> {
        HashMap::from([(MAPPING.to_owned(), s(mapping)), (LEASE_KEY.to_owned(), s(&lease_key.encode()))])
    }

    fn shard_key(&self, mapping: &str, shard: &str) -> HashMap<String, AttributeValue> {
        self.key(mapping, &LeaseKey::Shard(shard.to_owned()))
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
            .set_item(Some(self.shard_key(mapping, shard)))
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
            .set_key(Some(self.shard_key(mapping, shard)))
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
            .set_item(Some(self.key(mapping, &LeaseKey::Worker(self.me.clone()))))
            .item(OWNER, s(&self.me))
            .item(COUNTER, n(counter))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("lease table: {}", describe_call_failure(&e)))?;
        Ok(())
    }

    /// Removes the heartbeat of a host that stopped beating long ago (it was
    /// killed), unless it beat again since it was read at `counter`.
    pub async fn remove_dead_worker(&self, mapping: &str, key: &LeaseKey, counter: i64) -> anyhow::Result<bool> {
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
            .set_key(Some(self.key(mapping, &LeaseKey::Worker(self.me.clone()))))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("lease table: {}", describe_call_failure(&e)))?;
        Ok(())
    }
}

fn lease_table_error<E, R>(error: &aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: std::error::Error + aws_sdk_dynamodb::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(anyhow::anyhow!("lease table: {}", describe_call_failure(error)))
}

impl LeaseTable {
    /// One item, read consistently.
    async fn item(&self, mapping: &str, key: &LeaseKey) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .set_key(Some(self.key(mapping, key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| lease_table_error(&e))?;
        Ok(output.item().cloned())
    }

    async fn attribute(&self, mapping: &str, key: &LeaseKey, attribute: &str) -> Result<Option<AttributeValue>, StoreError> {
        Ok(self.item(mapping, key).await?.and_then(|mut item| item.remove(attribute)))
    }

    /// Updates a shard's lease only while this host owns it. In `update`, `#x`
    /// names the attribute of `names` at `x`, `:x` the value of `values`.
    async fn update_owned(
        &self,
        key: &CheckpointKey,
        update: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        self.update_shard(key, update, "#o = :me", names, values).await
    }

    /// Updates a shard's lease if `condition` holds (`#o` is the owner, `:me`
    /// this host); [`StoreError::LeaseLost`] if it does not.
    async fn update_shard(
        &self,
        key: &CheckpointKey,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(self.shard_key(&mapping_id(&key.mapping()), &key.shard)))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#o", OWNER)
            .expression_attribute_values(":me", s(&self.me));
        for (name, attribute) in names {
            request = request.expression_attribute_names(format!("#{name}"), *attribute);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(format!(":{name}"), value);
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(StoreError::LeaseLost { shard: key.shard.clone() })
            }
            Err(error) => Err(lease_table_error(&error)),
        }
    }
}

/// In cluster mode the checkpoints live in the leases. A shard's checkpoint
/// and window state are written only while this host owns the lease; the
/// mapping's start by whoever writes first.
#[async_trait]
impl CheckpointStore for LeaseTable {
    async fn checkpoint(&self, key: &CheckpointKey) -> Result<Option<Checkpoint>, StoreError> {
        let lease = LeaseKey::Shard(key.shard.clone());
        let value = self.attribute(&mapping_id(&key.mapping()), &lease, CHECKPOINT).await?;
        Ok(value.as_ref().and_then(|v| v.as_s().ok()).map(|s| Checkpoint::decode(s)))
    }

    async fn window(&self, key: &CheckpointKey) -> Result<Option<String>, StoreError> {
        let lease = LeaseKey::Shard(key.shard.clone());
        let value = self.attribute(&mapping_id(&key.mapping()), &lease, WINDOW_STATE).await?;
        // Earlier versions wrote an empty string for a closed window.
        Ok(value.as_ref().and_then(|v| v.as_s().ok()).filter(|s| !s.is_empty()).cloned())
    }

    /// The checkpoint and the window's state go in one conditional update.
    async fn commit(&self, key: &CheckpointKey, checkpoint: &Checkpoint, window: Option<&str>) -> Result<(), StoreError> {
        let names = [("u", UPDATED), ("c", CHECKPOINT), ("w", WINDOW_STATE)];
        let mut values = vec![("u", n(now_ms() as i64)), ("c", s(&checkpoint.encode()))];
        match window {
            Some(state) => {
                values.push(("w", s(state)));
                self.update_owned(key, "SET #u = :u, #c = :c, #w = :w", &names, values).await
            }
            None => self.update_owned(key, "SET #u = :u, #c = :c", &names[..2], values).await,
        }
    }

    async fn close_window(&self, key: &CheckpointKey) -> Result<(), StoreError> {
        let names = [("u", UPDATED), ("w", WINDOW_STATE)];
        self.update_owned(key, "SET #u = :u REMOVE #w", &names, vec![("u", n(now_ms() as i64))]).await
    }

    async fn mapping_start(&self, mapping: &MappingKey) -> Result<Option<u64>, StoreError> {
        let value = self.attribute(&mapping_id(mapping), &LeaseKey::MappingStart, CHECKPOINT).await?;
        value.as_ref().and_then(|v| v.as_s().ok()).map(|text| start_ms(text)).transpose()
    }

    async fn record_mapping_start(&self, mapping: &MappingKey, started_ms: u64) -> Result<u64, StoreError> {
        let id = mapping_id(mapping);
        // The first value written stays.
        let written = conditional!(
            self.client
                .put_item()
                .table_name(&self.name)
                .set_item(Some(self.key(&id, &LeaseKey::MappingStart)))
                .item(CHECKPOINT, s(&started_ms.to_string()))
                .item(UPDATED, n(now_ms() as i64))
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", LEASE_KEY)
        )?;
        if written {
            return Ok(started_ms);
        }
        self.mapping_start(mapping).await?.ok_or_else(|| StoreError::Corrupt {
            what: "start time of the mapping",
            value: "an item without a start".to_owned(),
        })
    }

    async fn control(&self, mapping: &MappingKey) -> Result<MappingControl, StoreError> {
        let item = self.item(&mapping_id(mapping), &LeaseKey::Control).await?;
        let Some(item) = item else { return Ok(MappingControl::default()) };
        let paused = item.get(PAUSED).and_then(|v| v.as_bool().ok()).copied().unwrap_or(false);
        let id = item.get(REWIND_ID).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
        let to = item.get(REWIND_TO).and_then(|v| v.as_s().ok());
        let rewind = match (id, to) {
            (Some(id), Some(text)) => Some(Rewind {
                id,
                to: RewindTarget::decode(text).ok_or_else(|| StoreError::Corrupt { what: "rewind target", value: text.clone() })?,
            }),
            _ => None,
        };
        Ok(MappingControl { paused, rewind })
    }

    async fn set_paused(&self, mapping: &MappingKey, paused: bool) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(self.key(&mapping_id(mapping), &LeaseKey::Control)))
            .update_expression("SET #p = :p, #u = :u")
            .expression_attribute_names("#p", PAUSED)
            .expression_attribute_names("#u", UPDATED)
            .expression_attribute_values(":p", AttributeValue::Bool(paused))
            .expression_attribute_values(":u", n(now_ms() as i64))
            .send()
            .await
            .map_err(|e| lease_table_error(&e))?;
        Ok(())
    }

    /// The id is written only if it is above the stored one; two rewinds asked
    /// for at once on two hosts both get ids, and the later id stands.
    async fn request_rewind(&self, mapping: &MappingKey, to: &RewindTarget) -> Result<Rewind, StoreError> {
        for _ in 0..5 {
            let last = self.control(mapping).await?.rewind_id();
            let id = crate::store::control::next_rewind_id(last, now_ms());
            let written = self
                .client
                .update_item()
                .table_name(&self.name)
                .set_key(Some(self.key(&mapping_id(mapping), &LeaseKey::Control)))
                .update_expression("SET #i = :i, #t = :t, #u = :u")
                .condition_expression("attribute_not_exists(#i) OR #i < :i")
                .expression_attribute_names("#i", REWIND_ID)
                .expression_attribute_names("#t", REWIND_TO)
                .expression_attribute_names("#u", UPDATED)
                .expression_attribute_values(":i", n(id as i64))
                .expression_attribute_values(":t", s(&to.encode()))
                .expression_attribute_values(":u", n(now_ms() as i64))
                .send()
                .await;
            match written {
                Ok(_) => return Ok(Rewind { id, to: to.clone() }),
                Err(error) if error.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => continue,
                Err(error) => return Err(lease_table_error(&error)),
            }
        }
        Err(StoreError::Unavailable(anyhow::anyhow!("other rewinds of the mapping kept coming first; try again")))
    }

    async fn progress(&self, key: &CheckpointKey) -> Result<ShardProgress, StoreError> {
        let item = self.item(&mapping_id(&key.mapping()), &LeaseKey::Shard(key.shard.clone())).await?;
        Ok(item
            .map(|item| ShardProgress {
                checkpoint: item.get(CHECKPOINT).and_then(|v| v.as_s().ok()).map(|s| Checkpoint::decode(s)),
                rewound: item.get(REWOUND).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0),
            })
            .unwrap_or_default())
    }

    /// Conditional on the lease existing (a lease made later gets the rewind
    /// from whoever takes it) and on nobody else holding it.
    async fn apply_rewind(&self, key: &CheckpointKey, checkpoint: Option<&Checkpoint>, id: u64) -> Result<(), StoreError> {
        let names = [("k", LEASE_KEY), ("u", UPDATED), ("r", REWOUND), ("w", WINDOW_STATE), ("c", CHECKPOINT)];
        let mut values = vec![("u", n(now_ms() as i64)), ("r", n(id as i64))];
        let (update, names) = match checkpoint {
            Some(checkpoint) => {
                values.push(("c", s(&checkpoint.encode())));
                ("SET #u = :u, #r = :r, #c = :c REMOVE #w", &names[..])
            }
            None => ("SET #u = :u, #r = :r REMOVE #w", &names[..4]),
        };
        self.update_shard(key, update, "attribute_exists(#k) AND (attribute_not_exists(#o) OR #o = :me)", names, values).await
    }

    async fn list(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
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
                .map_err(|e| lease_table_error(&e))?;
            for item in output.items() {
                let string = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
                let (Some(mapping), Some(lease_key), Some(checkpoint)) = (string(MAPPING), string(LEASE_KEY), string(CHECKPOINT))
                else {
                    continue;
                };
                let Some((function, source)) = mapping.split_once('|') else { continue };
                let Some(LeaseKey::Shard(shard)) = LeaseKey::decode(&lease_key) else { continue };
                let updated_ms = item.get(UPDATED).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
                checkpoints.push(StoredCheckpoint {
                    key: CheckpointKey { function: function.to_owned(), source: source.to_owned(), shard },
                    checkpoint: Checkpoint::decode(&checkpoint),
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

/// A stored start time, which must be a whole number of milliseconds.
fn start_ms(text: &str) -> Result<u64, StoreError> {
    text.parse().map_err(|_| StoreError::Corrupt { what: "start time of the mapping", value: text.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_keys_are_told_apart_by_their_encoding() {
        for key in [LeaseKey::Shard("shardId-000000000001".into()), LeaseKey::Worker("host-1a2b".into()), LeaseKey::MappingStart, LeaseKey::Control] {
            assert_eq!(LeaseKey::decode(&key.encode()), Some(key.clone()), "{key:?}");
        }
        // Written by earlier versions, and kept readable.
        assert_eq!(LeaseKey::decode("(latest-started-at)"), Some(LeaseKey::MappingStart));
        assert_eq!(LeaseKey::decode("(worker)h"), Some(LeaseKey::Worker("h".into())));
        // A window state kept under a pseudo-shard is no lease.
        assert_eq!(LeaseKey::decode("(window)shardId-1"), None);
    }
}
