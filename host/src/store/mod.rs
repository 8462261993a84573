//! Durable state of the mappings: where each has got to on each shard, the open
//! tumbling window beside it, and when the mapping first started (and, in the
//! embedded store, the local streams and the key-value tables).
//!
//! [`CheckpointStore`] is what the mapping loop needs. Its keys and values are
//! types; each store encodes them its own way: the embedded SQLite store for one
//! machine ([`embedded`]), the lease table for a cluster (`lease::table`, where a
//! checkpoint lives in its shard's lease).

pub mod embedded;
pub mod writes;

use async_trait::async_trait;

/// One function reading one source: the key of mapping-wide state.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct MappingKey {
    pub function: String,
    /// The source's id, such as `local:orders`.
    pub source: String,
}

/// Which shard of which source a function has read: the key of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CheckpointKey {
    pub function: String,
    /// The source's id, such as `local:orders`.
    pub source: String,
    pub shard: String,
}

impl CheckpointKey {
    pub fn mapping(&self) -> MappingKey {
        MappingKey { function: self.function.clone(), source: self.source.clone() }
    }
}

/// Where a mapping is on a shard (the KCL's checkpoint and its SHARD_END sentinel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// The sequence number of the last record the function finished with:
    /// reading resumes after it.
    Sequence(String),
    /// The shard is closed and every record of it done: its children may start.
    ShardEnd,
}

impl Checkpoint {
    /// How a checkpoint is written down, in the stores and in `/status`. The
    /// Kinesis Client Library writes the same word for a finished shard; no
    /// sequence number is a word.
    const SHARD_END: &str = "SHARD_END";

    pub fn encode(&self) -> &str {
        match self {
            Checkpoint::Sequence(sequence) => sequence,
            Checkpoint::ShardEnd => Self::SHARD_END,
        }
    }

    pub fn decode(text: &str) -> Checkpoint {
        if text == Self::SHARD_END { Checkpoint::ShardEnd } else { Checkpoint::Sequence(text.to_owned()) }
    }

    pub fn is_shard_end(&self) -> bool {
        matches!(self, Checkpoint::ShardEnd)
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.encode())
    }
}

impl serde::Serialize for Checkpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.encode())
    }
}

impl<'de> serde::Deserialize<'de> for Checkpoint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Checkpoint::decode(&text))
    }
}

/// A shard's checkpoint as listed for status reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCheckpoint {
    pub key: CheckpointKey,
    #[serde(rename = "sequence_number")]
    pub checkpoint: Checkpoint,
    pub updated_ms: u64,
}

/// Why a store call failed, where the caller must tell the cases apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Cluster mode: another host holds the shard's lease now, so this host's
    /// checkpoint was refused. The shard loop stops; it is not an error.
    #[error("the lease of {shard} is held by another host now; the checkpoint was not written")]
    LeaseLost { shard: String },
    /// A stored value cannot be read. It is never replaced by a guess (a start
    /// time taken as "now" would skip records).
    #[error("the stored {what} is corrupt: {value:?}")]
    Corrupt { what: &'static str, value: String },
    /// The store cannot be reached or refused the call; trying again may work.
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Unavailable(error.into())
    }
}

#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// The checkpoint of a shard, if one was written.
    async fn checkpoint(&self, key: &CheckpointKey) -> Result<Option<Checkpoint>, StoreError>;
    /// The state of the shard's open tumbling window, as the window wrote it
    /// (`None` when no window is open).
    async fn window(&self, key: &CheckpointKey) -> Result<Option<String>, StoreError>;
    /// Moves a shard's checkpoint, and with `window` the open window's state, in
    /// one write: both or neither.
    async fn commit(&self, key: &CheckpointKey, checkpoint: &Checkpoint, window: Option<&str>) -> Result<(), StoreError>;
    /// Forgets the shard's open window (it was closed), keeping the checkpoint.
    async fn close_window(&self, key: &CheckpointKey) -> Result<(), StoreError>;
    /// When the mapping first started, if that was recorded.
    async fn mapping_start(&self, mapping: &MappingKey) -> Result<Option<u64>, StoreError>;
    /// Records the mapping's start unless one is recorded already; returns the
    /// start that stands (the first written wins, so hosts starting together
    /// agree).
    async fn record_mapping_start(&self, mapping: &MappingKey, started_ms: u64) -> Result<u64, StoreError>;
    /// Every shard's checkpoint, for status reports.
    async fn list(&self) -> Result<Vec<StoredCheckpoint>, StoreError>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
