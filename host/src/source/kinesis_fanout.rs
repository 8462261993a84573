//! Enhanced fan-out: a registered stream consumer gets each shard's records pushed
//! through SubscribeToShard (its own 2 MB/s per shard, without polling), instead
//! of reading them with GetRecords. Used when the manifest names a `ConsumerName`;
//! the consumer is registered on the stream if it is not already.
//!
//! A subscription lasts up to 5 minutes; the reader then subscribes again after the
//! last record it received (the event's continuation sequence number), so nothing
//! is skipped. A shard's last event carries its children: the shard has ended.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{ConsumerStatus, ShardIteratorType, StartingPosition, SubscribeToShardEventStream};

use super::Fetched;
use crate::retry::Backoff;
use super::kinesis_api::{KinesisStream, convert};
use super::{Position, ShardReader, describe_call_failure};
use crate::record::{KinesisRecord, Records};

/// How long a read waits for the next pushed event before it reports nothing new.
const PUSH_WAIT: Duration = Duration::from_millis(500);
/// Kinesis pushes an event about every second, records or not: after this many
/// empty ones in a row the reader checks whether the shard has ended.
const RECORDLESS_EVENTS_BEFORE_PROBE: u32 = 5;

/// The ARN of the stream consumer `name`, registering it first if needed, once it is active.
pub async fn consumer_arn(client: &Client, stream_arn: &str, name: &str) -> anyhow::Result<String> {
    let describe = || client.describe_stream_consumer().stream_arn(stream_arn).consumer_name(name).send();
    let mut arn = match describe().await {
        Ok(out) => out.consumer_description.map(|c| c.consumer_arn),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => None,
        Err(error) => anyhow::bail!("DescribeStreamConsumer failed: {}", describe_call_failure(&error)),
    };
    if arn.is_none() {
        tracing::info!(consumer = %name, stream = %stream_arn, "registering the stream consumer for enhanced fan-out");
        let out = client
            .register_stream_consumer()
            .stream_arn(stream_arn)
            .consumer_name(name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("RegisterStreamConsumer failed: {}", describe_call_failure(&e)))?;
        arn = out.consumer.map(|c| c.consumer_arn);
    }
    // A new consumer takes a few seconds to become active.
    for _ in 0..120 {
        let out = describe().await.map_err(|e| anyhow::anyhow!("DescribeStreamConsumer failed: {}", describe_call_failure(&e)))?;
        if let Some(c) = out.consumer_description
            && c.consumer_status == ConsumerStatus::Active
        {
            return Ok(c.consumer_arn);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("stream consumer {name} ({arn:?}) did not become active within a minute")
}

type Subscription = aws_sdk_kinesis::primitives::event_stream::EventReceiver<
    SubscribeToShardEventStream,
    aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError,
>;

pub struct FanOutReader {
    client: Client,
    stream: KinesisStream,
    consumer_arn: String,
    shard_id: String,
    start: Position,
    /// Where a new subscription starts: after this sequence number.
    continuation: Option<String>,
    subscription: Option<Subscription>,
    buffer: Fetched<KinesisRecord>,
    wait: Duration,
    backoff: Backoff,
    /// Events in a row that carried no record.
    idle_events: u32,
}

impl FanOutReader {
    pub fn new(client: Client, stream: KinesisStream, consumer_arn: String, shard_id: String, start: Position) -> FanOutReader {
        let continuation = match &start {
            Position::AfterSequence(sequence) => Some(sequence.clone()),
            _ => None,
        };
        FanOutReader {
            client,
            stream,
            consumer_arn,
            shard_id,
            start,
            continuation,
            subscription: None,
            buffer: Fetched::default(),
            wait: Duration::ZERO,
            backoff: Backoff::reader(),
            idle_events: 0,
        }
    }

    fn starting_position(&self) -> anyhow::Result<StartingPosition> {
        let builder = StartingPosition::builder();
        let builder = match (&self.continuation, &self.start) {
            (Some(sequence), _) | (None, Position::AfterSequence(sequence)) => {
                builder.r#type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence)
            }
            (None, Position::AtSequence(sequence)) => builder.r#type(ShardIteratorType::AtSequenceNumber).sequence_number(sequence),
            (None, Position::TrimHorizon) => builder.r#type(ShardIteratorType::TrimHorizon),
            (None, Position::Latest) => builder.r#type(ShardIteratorType::Latest),
            (None, Position::AtTimestamp(ms)) => {
                builder.r#type(ShardIteratorType::AtTimestamp).timestamp(DateTime::from_millis(*ms as i64))
            }
        };
        Ok(builder.build()?)
    }

    /// Whether the shard is closed with nothing after the continuation: GetRecords
    /// there finds no record and no next iterator.
    async fn shard_has_ended(&self) -> bool {
        let Some(after) = &self.continuation else { return false };
        let request = self.client.get_shard_iterator().shard_id(&self.shard_id);
        let request = match &self.stream {
            KinesisStream::Name(name) => request.stream_name(name.as_str()),
            KinesisStream::Arn(arn) => request.stream_arn(arn),
        };
        let Ok(iterator) = request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(after)
            .send()
            .await
        else {
            return false;
        };
        let Some(iterator) = iterator.shard_iterator else { return true };
        match self.client.get_records().shard_iterator(iterator).limit(1).send().await {
            Ok(out) => out.records.is_empty() && out.next_shard_iterator.is_none(),
            Err(_) => false,
        }
    }

    /// Waits for the next pushed event (subscribing first if needed) and buffers its records.
    async fn receive(&mut self) -> anyhow::Result<()> {
        if self.subscription.is_none() {
            let request = self
                .client
                .subscribe_to_shard()
                .consumer_arn(&self.consumer_arn)
                .shard_id(&self.shard_id)
                .starting_position(self.starting_position()?);
            match request.send().await {
                Ok(output) => self.subscription = Some(output.event_stream),
                Err(error) => {
                    self.wait = self.backoff.next_wait();
                    tracing::warn!(shard = %self.shard_id, "SubscribeToShard failed ({}); retrying in {} ms",
                        describe_call_failure(&error), self.wait.as_millis());
                    return Ok(());
                }
            }
        }
        let Some(subscription) = self.subscription.as_mut() else { return Ok(()) };
        match tokio::time::timeout(PUSH_WAIT, subscription.recv()).await {
            // Nothing pushed for a while: the read comes back empty, without a further wait.
            Err(_) => self.wait = Duration::ZERO,
            Ok(Ok(Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)))) => {
                self.backoff.reset();
                self.wait = Duration::ZERO;
                let recordless = event.records.is_empty();
                for record in event.records {
                    self.buffer.records.push_back(convert(&self.shard_id, record));
                }
                let has_children = event.child_shards.as_ref().is_some_and(|c| !c.is_empty());
                self.idle_events = if recordless { self.idle_events + 1 } else { 0 };
                if has_children || event.continuation_sequence_number.is_empty() {
                    self.buffer.ended = true;
                    self.subscription = None;
                } else {
                    self.continuation = Some(event.continuation_sequence_number);
                    // Quiet for a while: check that the shard has not ended unnoticed
                    // (kinesis-mock, for one, never tells a subscription that its shard
                    // has closed).
                    if self.idle_events >= RECORDLESS_EVENTS_BEFORE_PROBE {
                        self.idle_events = 0;
                        if self.shard_has_ended().await {
                            self.buffer.ended = true;
                            self.subscription = None;
                        }
                    }
                }
            }
            Ok(Ok(Some(_))) => {}
            // The subscription's 5 minutes are over: subscribe again.
            Ok(Ok(None)) => self.subscription = None,
            Ok(Err(error)) => {
                self.subscription = None;
                self.wait = self.backoff.next_wait();
                tracing::warn!(shard = %self.shard_id, "the SubscribeToShard stream failed ({}); subscribing again in {} ms",
                    aws_smithy_types::error::display::DisplayErrorContext(&error), self.wait.as_millis());
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ShardReader for FanOutReader {
    async fn read(&mut self, max: usize) -> anyhow::Result<Records> {
        if self.buffer.is_exhausted() {
            self.receive().await?;
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
