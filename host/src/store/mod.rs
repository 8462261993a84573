//! Durable state: checkpoints (and, in the embedded store, the local streams).
//!
//! [`CheckpointStore`] is what the mapping loop needs; the embedded SQLite store
//! implements it for one machine, and the lease table of cluster mode will
//! implement it for several.

pub mod embedded;

use async_trait::async_trait;

/// Which shard of which source a function has read: the key of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct CheckpointKey {
    pub function: String,
    /// The source's id, such as `local:orders`.
    pub source: String,
    pub shard: String,
}

/// The pseudo-shard under which a shard's tumbling window state is kept.
pub fn window_key(key: &CheckpointKey) -> CheckpointKey {
    CheckpointKey { function: key.function.clone(), source: key.source.clone(), shard: format!("(window){}", key.shard) }
}

/// A checkpoint: the sequence number of the last record a function finished with
/// on a shard. Reading resumes after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    pub key: CheckpointKey,
    pub sequence_number: String,
    pub updated_ms: u64,
}

/// The checkpoint of a shard that is closed and finished: its children may start.
/// (The Kinesis Client Library writes the same word.)
pub const SHARD_END: &str = "SHARD_END";

#[async_trait]
pub trait CheckpointStore: Send + Sync {
    /// The checkpoint of a shard, if one was written.
    async fn get(&self, key: &CheckpointKey) -> anyhow::Result<Option<String>>;
    /// Moves a shard's checkpoint to `sequence_number`.
    async fn set(&self, key: &CheckpointKey, sequence_number: &str) -> anyhow::Result<()>;
    /// Writes several entries at once: all or none. The mapping writes a shard's
    /// checkpoint and its tumbling window's state together this way.
    async fn set_many(&self, entries: &[(&CheckpointKey, &str)]) -> anyhow::Result<()> {
        for (key, value) in entries {
            self.set(key, value).await?;
        }
        Ok(())
    }
    /// Every checkpoint, for status reports (not the entries kept under
    /// pseudo-shards whose names start with `(`).
    async fn list(&self) -> anyhow::Result<Vec<Checkpoint>>;
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
