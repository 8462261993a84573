//! Kinesis Data Streams as a source, through `aws-sdk-kinesis`: ListShards to
//! find the shards and their parents, GetShardIterator and GetRecords to read.
//!
//! A reader polls its shard once per polling interval (Lambda's 1 s by default)
//! while it is caught up, and again at once while records remain. It fetches up to
//! 10,000 records a call and hands them out as the batcher asks, so a small
//! `BatchSize` does not cost one GetRecords call per batch. Throttles and network
//! errors back off with jitter and retry the same call; an expired iterator is
//! renewed after the last record read, so neither loses nor skips a record.
//! With a consumer named in the manifest, shards are read by enhanced fan-out
//! instead ([`super::kinesis_fanout`]).

use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{ShardFilter, ShardFilterType, ShardIteratorType};

use super::Fetched;
use crate::retry::Backoff;
use super::kinesis_api::{KinesisStream, convert, with_stream};
use super::kinesis_fanout::FanOutReader;
use super::{CallFailure, Position, Shard, ShardReader, SourceInfo, StreamSource, classify_call_failure, describe_call_failure};
use crate::record::{EventSource, KinesisRecord, Records};

/// The most records one GetRecords call returns. A caught-up shard's answer
/// holds what is there whatever the limit; a shard with a backlog gives many
/// batches a call, which matters because Kinesis serves 5 calls a second per
/// shard: a limit of BatchSize would hold a backlog to 5 batches a second.
const GET_RECORDS_LIMIT: i32 = 10_000;
/// The wait after an empty page of a shard that is behind.
const EMPTY_PAGE_BEHIND_WAIT: Duration = Duration::from_millis(50);

pub struct KinesisSource {
    client: Client,
    stream: KinesisStream,
    poll_interval: Duration,
    /// Enhanced fan-out: the consumer to read through, by name.
    consumer: Option<String>,
    /// The consumer's ARN, once registered and active.
    consumer_arn: tokio::sync::OnceCell<String>,
}

impl KinesisSource {
    pub fn new(config: &aws_config::SdkConfig, stream: KinesisStream, poll_interval: Duration, consumer: Option<String>) -> KinesisSource {
        KinesisSource { client: Client::new(config), stream, poll_interval, consumer, consumer_arn: tokio::sync::OnceCell::new() }
    }
}

#[async_trait]
impl StreamSource for KinesisSource {
    async fn describe(&self) -> anyhow::Result<SourceInfo> {
        let output = with_stream!(self.client.describe_stream_summary(), &self.stream)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DescribeStreamSummary failed: {}", describe_call_failure(&e)))?;
        let summary = output.stream_description_summary().context("DescribeStreamSummary returned no summary")?;
        let arn = summary.stream_arn().to_owned();
        if let Some(name) = &self.consumer {
            self.consumer_arn.get_or_try_init(|| super::kinesis_fanout::consumer_arn(&self.client, &arn, name)).await?;
        }
        let configured_region = self.client.config().region().map(|r| r.to_string());
        Ok(SourceInfo::from_arn(EventSource::Kinesis, arn, configured_region))
    }

    async fn list_shards(&self) -> anyhow::Result<Vec<Shard>> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            // A page after the first names the stream only through its token.
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None => with_stream!(self.client.list_shards(), &self.stream)
                    .shard_filter(ShardFilter::builder().r#type(ShardFilterType::FromTrimHorizon).build()?),
            };
            let output = request
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("ListShards failed: {}", describe_call_failure(&e)))?;
            for shard in output.shards() {
                let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()];
                shards.push(Shard {
                    id: shard.shard_id().to_owned(),
                    parents: parents.into_iter().flatten().map(str::to_owned).collect(),
                });
            }
            match output.next_token() {
                Some(token) if !output.shards().is_empty() => next_token = Some(token.to_owned()),
                _ => break,
            }
        }
        Ok(shards)
    }

    async fn open(&self, shard: &str, from: Position) -> anyhow::Result<Box<dyn ShardReader>> {
        if let Some(consumer_arn) = self.consumer_arn.get() {
            return Ok(Box::new(FanOutReader::new(
                self.client.clone(),
                self.stream.clone(),
                consumer_arn.clone(),
                shard.to_owned(),
                from,
            )));
        }
        let mut reader = KinesisShardReader {
            client: self.client.clone(),
            stream: self.stream.clone(),
            shard_id: shard.to_owned(),
            start: from,
            last_sequence: None,
            iterator: None,
            buffer: Fetched::default(),
            polling_interval: self.poll_interval,
            wait: self.poll_interval,
            backoff: Backoff::reader(),
        };
        reader.renew_iterator().await?;
        Ok(Box::new(reader))
    }
}

struct KinesisShardReader {
    client: Client,
    stream: KinesisStream,
    shard_id: String,
    /// Where the reader was opened; an iterator renewed before the first record
    /// was read starts here again.
    start: Position,
    /// The last record fetched; an expired iterator is renewed after it.
    last_sequence: Option<String>,
    iterator: Option<String>,
    /// Fetched records the batcher has not asked for yet.
    buffer: Fetched<KinesisRecord>,
    /// How long to wait after a read that found the shard caught up.
    polling_interval: Duration,
    /// The wait before the next read, after one that came back empty.
    wait: Duration,
    /// After a throttle (ProvisionedThroughputExceeded: more than 5 calls a
    /// second on the shard) or a network error. There is no fixed floor
    /// between calls: the polling interval is honoured as the manifest sets it.
    backoff: Backoff,
}

impl KinesisShardReader {
    async fn renew_iterator(&mut self) -> anyhow::Result<()> {
        let position = match &self.last_sequence {
            Some(sequence) => Position::AfterSequence(sequence.clone()),
            None => self.start.clone(),
        };
        let request = with_stream!(self.client.get_shard_iterator(), &self.stream).shard_id(&self.shard_id);
        let request = match position {
            Position::AfterSequence(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
            Position::AtSequence(sequence) => request
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(sequence),
            Position::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Position::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            Position::AtTimestamp(ms) => request
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(DateTime::from_millis(ms as i64)),
        };
        let output = request.send().await.map_err(|e| {
            anyhow::anyhow!("GetShardIterator on {} failed: {}", self.shard_id, describe_call_failure(&e))
        })?;
        self.iterator = output.shard_iterator;
        self.buffer.ended = self.iterator.is_none();
        Ok(())
    }

    /// One GetRecords call into the buffer.
    async fn fetch(&mut self) -> anyhow::Result<()> {
        let Some(iterator) = self.iterator.clone() else {
            self.buffer.ended = true;
            return Ok(());
        };
        match self.client.get_records().shard_iterator(iterator).limit(GET_RECORDS_LIMIT).send().await {
            Ok(output) => {
                self.backoff.reset();
                let behind = output.millis_behind_latest.is_some_and(|ms| ms > 0);
                self.iterator = output.next_shard_iterator;
                self.buffer.ended = self.iterator.is_none();
                let fetched = !output.records.is_empty();
                for record in output.records {
                    self.buffer.records.push_back(convert(&self.shard_id, record));
                }
                if let Some(last) = self.buffer.records.back() {
                    self.last_sequence = Some(last.sequence_number.clone());
                }
                // Records: the next call may find more at once. Caught up: wait a
                // polling interval. An empty page of a shard that is behind (a gap
                // in it): read again soon, but not in a tight loop.
                self.wait = match (fetched, behind) {
                    (true, _) => Duration::ZERO,
                    (false, true) => EMPTY_PAGE_BEHIND_WAIT.min(self.polling_interval),
                    (false, false) => self.polling_interval,
                };
                Ok(())
            }
            Err(error) => match classify_call_failure(&error) {
                CallFailure::ExpiredIterator => {
                    tracing::debug!(shard = %self.shard_id, "shard iterator expired; renewing it");
                    self.renew_iterator().await
                }
                CallFailure::Transient => {
                    self.wait = self.backoff.next_wait();
                    tracing::warn!(shard = %self.shard_id, "GetRecords failed ({}); retrying in {} ms",
                        describe_call_failure(&error), self.wait.as_millis());
                    Ok(())
                }
                CallFailure::Trimmed | CallFailure::Fatal => {
                    anyhow::bail!("GetRecords on {} failed: {}", self.shard_id, describe_call_failure(&error))
                }
            },
        }
    }

}

#[async_trait]
impl ShardReader for KinesisShardReader {
    async fn read(&mut self, max: usize) -> anyhow::Result<Records> {
        if self.buffer.is_exhausted() {
            self.fetch().await?;
        }
        Ok(Records::Kinesis(self.buffer.take(max)))
    }

    fn at_end(&self) -> bool {
        self.buffer.at_end()
    }

    fn poll_interval(&self) -> Duration {
        self.wait
    }
}
