//! Stream sources: where a mapping's records come from.
//!
//! A source lists its shards and opens a reader on one; a reader hands out records
//! in shard order, moving forward only. The mapping loop keeps the records it has
//! read but not finished with, so a reader never needs to seek back.

pub mod local;

use std::time::Duration;

use async_trait::async_trait;

use crate::record::{EventSource, Records};

/// What every record of a source shares; it goes into each batch.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub event_source: EventSource,
    /// `eventSourceARN`.
    pub arn: String,
    /// `awsRegion`.
    pub region: String,
}

/// Where a reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// After the record with this sequence number (a checkpoint).
    AfterSequence(String),
    /// At the oldest record the shard still holds.
    TrimHorizon,
    /// After the newest record at the time the reader opens.
    Latest,
    /// At the first record that arrived at or after this time (ms since the epoch).
    AtTimestamp(u64),
}

#[async_trait]
pub trait StreamSource: Send + Sync {
    fn info(&self) -> &SourceInfo;
    /// The ids of the shards to read.
    async fn list_shards(&self) -> anyhow::Result<Vec<String>>;
    /// Opens a reader on one shard.
    async fn open(&self, shard: &str, from: Position) -> anyhow::Result<Box<dyn ShardReader>>;
}

#[async_trait]
pub trait ShardReader: Send {
    /// Up to `max` records after the reader's position; empty when the shard has
    /// nothing more for now.
    async fn read(&mut self, max: usize) -> anyhow::Result<Records>;
    /// The sequence number the reader is positioned after. For `Latest` and
    /// `AtTimestamp` this is what the start position resolved to, which the
    /// mapping stores at once so that a restart resumes from there.
    fn position(&self) -> &str;
    /// How long to wait before polling again when a read came back empty.
    fn poll_interval(&self) -> Duration;
}
