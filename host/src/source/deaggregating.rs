//! A shard reader that hands out the user records of KPL aggregates
//! (`EventSource.DeaggregateRecords`): it splits what its inner reader reads
//! (`crate::kpl`) and keeps what a read's `max` leaves over for the next read, so
//! that `BatchSize` and the payload cap count user records, as the handler sees
//! them.
//!
//! A shard whose checkpoint is inside an aggregate is opened at the aggregate;
//! this reader then skips the user records of it that were done.

use std::time::Duration;

use async_trait::async_trait;

use super::ShardReader;
use crate::kpl;
use crate::record::{KinesisRecord, Records};

pub struct DeaggregatingReader {
    inner: Box<dyn ShardReader>,
    /// User records split out and not handed out yet, oldest first.
    pending: Vec<KinesisRecord>,
    /// Resuming inside an aggregate: its sequence number and the last of its
    /// user records that is done. Cleared by the first read.
    resume_after: Option<(String, u32)>,
    /// For the warning about a malformed aggregate.
    function: String,
    shard: String,
}

impl DeaggregatingReader {
    /// `resume_after`: the aggregate the reader was opened at and the last of
    /// its user records that is done, when the checkpoint is inside one.
    pub fn new(inner: Box<dyn ShardReader>, resume_after: Option<(String, u32)>, function: &str, shard: &str) -> DeaggregatingReader {
        DeaggregatingReader { inner, pending: Vec::new(), resume_after, function: function.to_owned(), shard: shard.to_owned() }
    }

    /// Splits what was read, leaving out the user records done before a resume.
    fn split(&mut self, records: Vec<KinesisRecord>) -> Vec<KinesisRecord> {
        let mut users = kpl::deaggregate(records, |record, why| {
            tracing::warn!(function = %self.function, shard = %self.shard, sequence = %record.sequence_number,
                "a record starts as a KPL aggregate but {why}; it is delivered as one plain record");
        });
        if let Some((sequence, done)) = self.resume_after.take() {
            users.retain(|r| r.sequence_number != sequence || r.sub_sequence().is_none_or(|sub| sub > done));
        }
        users
    }
}

#[async_trait]
impl ShardReader for DeaggregatingReader {
    async fn read(&mut self, max: usize) -> anyhow::Result<Records> {
        while self.pending.is_empty() {
            let read = self.inner.read(max).await?;
            match read {
                Records::Kinesis(records) if !records.is_empty() => self.pending = self.split(records),
                // Nothing more for now, or a stream with no aggregates in it.
                other => return Ok(other),
            }
        }
        let rest = self.pending.split_off(max.min(self.pending.len()));
        Ok(Records::Kinesis(std::mem::replace(&mut self.pending, rest)))
    }

    fn at_end(&self) -> bool {
        self.pending.is_empty() && self.inner.at_end()
    }

    fn poll_interval(&self) -> Duration {
        self.inner.poll_interval()
    }

    async fn idle(&mut self, deadline: Option<tokio::time::Instant>) {
        if self.pending.is_empty() {
            self.inner.idle(deadline).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kpl::{UserRecord, aggregate};

    /// Hands out its records `per_read` at a time.
    struct Canned {
        records: Vec<KinesisRecord>,
        per_read: usize,
    }

    #[async_trait]
    impl ShardReader for Canned {
        async fn read(&mut self, max: usize) -> anyhow::Result<Records> {
            let count = max.min(self.per_read).min(self.records.len());
            Ok(Records::Kinesis(self.records.drain(..count).collect()))
        }
        fn at_end(&self) -> bool {
            self.records.is_empty()
        }
        fn poll_interval(&self) -> Duration {
            Duration::ZERO
        }
    }

    fn record(sequence: &str, data: Vec<u8>) -> KinesisRecord {
        KinesisRecord {
            event_id: format!("shardId-000000000000:{sequence}"),
            partition_key: "p".into(),
            sequence_number: sequence.into(),
            data,
            approximate_arrival_timestamp_ms: 0,
            encryption_type: None,
        }
    }

    fn five_users() -> Vec<u8> {
        let texts = ["u0", "u1", "u2", "u3", "u4"];
        let users: Vec<UserRecord> = texts.iter().map(|t| UserRecord { partition_key: t, explicit_hash_key: None, data: t.as_bytes() }).collect();
        aggregate(&users)
    }

    async fn read_all(reader: &mut DeaggregatingReader, max: usize) -> Vec<Vec<String>> {
        let mut reads = Vec::new();
        while !reader.at_end() {
            let Records::Kinesis(read) = reader.read(max).await.expect("read") else { panic!("not Kinesis") };
            reads.push(read.iter().map(|r| String::from_utf8_lossy(&r.data).into_owned()).collect());
        }
        reads
    }

    #[tokio::test]
    async fn reads_count_user_records_and_keep_the_rest_for_the_next() {
        let inner = Canned { records: vec![record("1", b"plain".to_vec()), record("2", five_users()), record("3", b"last".to_vec())], per_read: 10 };
        let mut reader = DeaggregatingReader::new(Box::new(inner), None, "f", "s");
        assert_eq!(
            read_all(&mut reader, 3).await,
            [vec!["plain", "u0", "u1"], vec!["u2", "u3", "u4"], vec!["last"]]
        );
    }

    #[tokio::test]
    async fn a_resume_inside_an_aggregate_skips_its_user_records_that_were_done() {
        let inner = Canned { records: vec![record("2", five_users()), record("3", b"next".to_vec())], per_read: 1 };
        let mut reader = DeaggregatingReader::new(Box::new(inner), Some(("2".into(), 1)), "f", "s");
        assert_eq!(read_all(&mut reader, 10).await, [vec!["u2", "u3", "u4"], vec!["next"]]);
    }

    #[tokio::test]
    async fn a_resume_after_an_aggregates_last_user_record_goes_on_with_the_next_record() {
        let inner = Canned { records: vec![record("2", five_users()), record("3", b"next".to_vec())], per_read: 1 };
        let mut reader = DeaggregatingReader::new(Box::new(inner), Some(("2".into(), 4)), "f", "s");
        assert_eq!(read_all(&mut reader, 10).await, [vec!["next"]]);
    }
}
