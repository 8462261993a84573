//! Durable state of the mappings: where each has got to on each shard, the open
//! tumbling window beside it, and when the mapping first started (and, in the
//! embedded store, the local streams and the key-value tables).
//!
//! [`CheckpointStore`] is what the mapping loop needs. Its keys and values are
//! types; each store encodes them its own way: the embedded SQLite store for one
//! machine ([`embedded`]), the lease table for a cluster (`lease::table`, where a
//! checkpoint lives in its shard's lease).

pub mod control;
pub mod embedded;
pub mod writes;

use async_trait::async_trait;

pub use control::{MappingControl, Rewind, RewindTarget};

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

/// Where a mapping is on a shard: the KCL's checkpoint and its sentinels
/// (`SentinelCheckpoint`). A shard loop moves it forward only past records the
/// function finished with; the others are written by `eddy mapping rewind`
/// ([`control`]) and say where the next reader of the shard starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    /// The sequence number of the last record the function finished with:
    /// reading resumes after it.
    Sequence(String),
    /// Inside a KPL aggregate (`crate::kpl`): the aggregate's sequence number
    /// and the sub-sequence number of the last of its user records the function
    /// finished with. Reading resumes at the aggregate, after that user record.
    SubSequence(String, u32),
    /// The shard is closed and every record of it done: its children may start.
    ShardEnd,
    /// Rewound to the oldest record the shard still holds.
    TrimHorizon,
    /// Rewound to the newest end of the shard, as it is when its reader opens
    /// (DynamoDB Streams, which has no iterator by time).
    Latest,
    /// Rewound to the first record that arrived at or after this time (ms).
    AtTimestamp(u64),
    /// Rewound to this record: reading starts with it.
    AtSequence(String),
}

impl Checkpoint {
    /// How the checkpoints are written down, in the stores and in `/status`. The
    /// Kinesis Client Library writes the same words; no sequence number is a
    /// word, nor starts with one.
    const SHARD_END: &str = "SHARD_END";
    const TRIM_HORIZON: &str = "TRIM_HORIZON";
    const LATEST: &str = "LATEST";
    const AT_TIMESTAMP: &str = "AT_TIMESTAMP:";
    const AT_SEQUENCE: &str = "AT_SEQUENCE_NUMBER:";

    pub fn encode(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Checkpoint::Sequence(sequence) => sequence.into(),
            Checkpoint::SubSequence(sequence, sub) => format!("{sequence}:{sub}").into(),
            Checkpoint::ShardEnd => Self::SHARD_END.into(),
            Checkpoint::TrimHorizon => Self::TRIM_HORIZON.into(),
            Checkpoint::Latest => Self::LATEST.into(),
            Checkpoint::AtTimestamp(ms) => format!("{}{ms}", Self::AT_TIMESTAMP).into(),
            Checkpoint::AtSequence(sequence) => format!("{}{sequence}", Self::AT_SEQUENCE).into(),
        }
    }

    pub fn decode(text: &str) -> Checkpoint {
        match text {
            Self::SHARD_END => Checkpoint::ShardEnd,
            Self::TRIM_HORIZON => Checkpoint::TrimHorizon,
            Self::LATEST => Checkpoint::Latest,
            _ => {
                if let Some(ms) = text.strip_prefix(Self::AT_TIMESTAMP).and_then(|ms| ms.parse().ok()) {
                    return Checkpoint::AtTimestamp(ms);
                }
                if let Some(sequence) = text.strip_prefix(Self::AT_SEQUENCE) {
                    return Checkpoint::AtSequence(sequence.to_owned());
                }
                if let Some((sequence, sub)) = text.split_once(':')
                    && let Ok(sub) = sub.parse()
                {
                    return Checkpoint::SubSequence(sequence.to_owned(), sub);
                }
                Checkpoint::Sequence(text.to_owned())
            }
        }
    }

    pub fn is_shard_end(&self) -> bool {
        matches!(self, Checkpoint::ShardEnd)
    }
}

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

impl serde::Serialize for Checkpoint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
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

    /// The operator's say over the mapping: paused or not, and the last rewind
    /// asked for (`eddy mapping`).
    async fn control(&self, mapping: &MappingKey) -> Result<MappingControl, StoreError>;
    /// Pauses or resumes the mapping, on every host that runs it.
    async fn set_paused(&self, mapping: &MappingKey, paused: bool) -> Result<(), StoreError>;
    /// Records a rewind of the mapping, to be carried out on each shard by the
    /// host that runs it; returns it with its id (greater than any before).
    async fn request_rewind(&self, mapping: &MappingKey, to: &RewindTarget) -> Result<Rewind, StoreError>;
    /// A shard's checkpoint, and the id of the last rewind carried out on it
    /// (0 for none).
    async fn progress(&self, key: &CheckpointKey) -> Result<ShardProgress, StoreError>;
    /// Carries out rewind `id` on a shard: its checkpoint becomes `checkpoint`
    /// (`None`: stays as it is), its open window is forgotten. In cluster mode
    /// only the lease's holder, or anyone while nobody holds it, may
    /// ([`StoreError::LeaseLost`] otherwise).
    async fn apply_rewind(&self, key: &CheckpointKey, checkpoint: Option<&Checkpoint>, id: u64) -> Result<(), StoreError>;
}

/// A shard's stored progress, as the mapping reads it before starting the shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardProgress {
    pub checkpoint: Option<Checkpoint>,
    /// The id of the last rewind carried out on the shard (0: none).
    pub rewound: u64,
}

/// Milliseconds since the Unix epoch.
pub use crate::clock::now_ms;
