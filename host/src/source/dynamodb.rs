//! DynamoDB Streams as a source, through `aws-sdk-dynamodbstreams`: a table's
//! stream found by table name (its latest stream, through ListStreams) or given by
//! ARN; DescribeStream pages through the shards and their parents as shards roll
//! over; GetShardIterator and GetRecords read them, 4 times a second by default.
//!
//! Keys and images become DynamoDB's typed attribute-value JSON, which is what
//! Lambda puts in the event and what the WIT record carries.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, ShardIteratorType};
use base64::Engine as _;
use tokio::sync::OnceCell;

use super::Fetched;
use crate::retry::Backoff;
use super::{CallFailure, Position, Shard, ShardReader, SourceInfo, StreamSource, classify_call_failure, describe_call_failure};
use crate::manifest::DynamodbStream;
use crate::record::{DynamodbEventName, DynamodbRecord, EventSource, Records};

/// The most records one GetRecords call returns.
const GET_RECORDS_LIMIT: i32 = 1000;

pub struct DynamodbSource {
    client: Client,
    stream: DynamodbStream,
    /// The stream's ARN, once found.
    arn: OnceCell<String>,
    poll_interval: Duration,
}

impl DynamodbSource {
    pub fn new(config: &aws_config::SdkConfig, stream: DynamodbStream, poll_interval: Duration) -> DynamodbSource {
        DynamodbSource { client: Client::new(config), stream, arn: OnceCell::new(), poll_interval }
    }

    async fn stream_arn(&self) -> anyhow::Result<&str> {
        let arn = self
            .arn
            .get_or_try_init(|| async {
                match &self.stream {
                    DynamodbStream::StreamArn(arn) => Ok(arn.clone()),
                    DynamodbStream::Table(table) => self.latest_stream(table).await,
                }
            })
            .await?;
        Ok(arn)
    }

    async fn latest_stream(&self, table: &str) -> anyhow::Result<String> {
        let mut streams = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .client
                .list_streams()
                .table_name(table)
                .set_exclusive_start_stream_arn(start.take())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("ListStreams failed: {}", describe_call_failure(&e)))?;
            streams.extend(output.streams.unwrap_or_default());
            match output.last_evaluated_stream_arn {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        // Labels are creation times in ISO 8601: the greatest is the newest.
        streams
            .into_iter()
            .filter(|s| s.table_name.as_deref() == Some(table))
            .max_by(|a, b| a.stream_label.cmp(&b.stream_label))
            .and_then(|s| s.stream_arn)
            .with_context(|| format!("table {table:?} has no stream; enable DynamoDB Streams on it"))
    }
}

#[async_trait]
impl StreamSource for DynamodbSource {
    async fn describe(&self) -> anyhow::Result<SourceInfo> {
        let arn = self.stream_arn().await?.to_owned();
        let configured_region = self.client.config().region().map(|r| r.to_string());
        Ok(SourceInfo::from_arn(EventSource::Dynamodb, arn, configured_region))
    }

    async fn list_shards(&self) -> anyhow::Result<Vec<Shard>> {
        let arn = self.stream_arn().await?;
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let output = self
                .client
                .describe_stream()
                .stream_arn(arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DescribeStream failed: {}", describe_call_failure(&e)))?;
            let description = output.stream_description.context("DescribeStream returned no description")?;
            for shard in description.shards.unwrap_or_default() {
                let Some(id) = shard.shard_id else { continue };
                shards.push(Shard { id, parents: shard.parent_shard_id.into_iter().collect() });
            }
            match description.last_evaluated_shard_id {
                Some(last) => start = Some(last),
                None => break,
            }
        }
        Ok(shards)
    }

    async fn open(&self, shard: &str, from: Position) -> anyhow::Result<Box<dyn ShardReader>> {
        let arn = self.stream_arn().await?.to_owned();
        let mut reader = DynamodbShardReader {
            client: self.client.clone(),
            stream_arn: arn,
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

    fn supports_timestamps(&self) -> bool {
        false
    }
}

struct DynamodbShardReader {
    client: Client,
    stream_arn: String,
    shard_id: String,
    start: Position,
    last_sequence: Option<String>,
    iterator: Option<String>,
    buffer: Fetched<DynamodbRecord>,
    polling_interval: Duration,
    wait: Duration,
    backoff: Backoff,
}

impl DynamodbShardReader {
    async fn renew_iterator(&mut self) -> anyhow::Result<()> {
        let position = match &self.last_sequence {
            Some(sequence) => Position::AfterSequence(sequence.clone()),
            None => self.start.clone(),
        };
        let request = self.client.get_shard_iterator().stream_arn(&self.stream_arn).shard_id(&self.shard_id);
        let request = match position {
            Position::AfterSequence(sequence) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence)
            }
            Position::AtSequence(sequence) => {
                request.shard_iterator_type(ShardIteratorType::AtSequenceNumber).sequence_number(sequence)
            }
            Position::TrimHorizon => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            Position::Latest => request.shard_iterator_type(ShardIteratorType::Latest),
            Position::AtTimestamp(_) => anyhow::bail!("DynamoDB Streams cannot start at a timestamp"),
        };
        match request.send().await {
            Ok(output) => {
                self.iterator = output.shard_iterator;
                self.buffer.ended = self.iterator.is_none();
                Ok(())
            }
            Err(error) if classify_call_failure(&error) == CallFailure::Trimmed => {
                // The checkpoint is older than the stream's 24 hours: the records
                // after it are gone. Say so, and go on from the oldest one left.
                tracing::error!(shard = %self.shard_id,
                    "records after sequence number {:?} are past the stream's retention and were lost; \
                     resuming at the oldest record left ({})", self.last_sequence, describe_call_failure(&error));
                self.last_sequence = None;
                self.start = Position::TrimHorizon;
                Box::pin(self.renew_iterator()).await
            }
            Err(error) => anyhow::bail!("GetShardIterator on {} failed: {}", self.shard_id, describe_call_failure(&error)),
        }
    }

    async fn fetch(&mut self) -> anyhow::Result<()> {
        let Some(iterator) = self.iterator.clone() else {
            self.buffer.ended = true;
            return Ok(());
        };
        match self.client.get_records().shard_iterator(iterator).limit(GET_RECORDS_LIMIT).send().await {
            Ok(output) => {
                self.backoff.reset();
                self.iterator = output.next_shard_iterator;
                self.buffer.ended = self.iterator.is_none();
                let fetched = output.records.as_ref().is_some_and(|r| !r.is_empty());
                for record in output.records.unwrap_or_default() {
                    if let Some(record) = convert(record) {
                        self.buffer.records.push_back(record);
                    }
                }
                if let Some(last) = self.buffer.records.back() {
                    self.last_sequence = Some(last.sequence_number.clone());
                }
                self.wait = if fetched { Duration::ZERO } else { self.polling_interval };
                Ok(())
            }
            Err(error) => match classify_call_failure(&error) {
                CallFailure::ExpiredIterator | CallFailure::Trimmed => self.renew_iterator().await,
                CallFailure::Transient => {
                    self.wait = self.backoff.next_wait();
                    tracing::warn!(shard = %self.shard_id, "GetRecords failed ({}); retrying in {} ms",
                        describe_call_failure(&error), self.wait.as_millis());
                    Ok(())
                }
                CallFailure::Fatal => {
                    anyhow::bail!("GetRecords on {} failed: {}", self.shard_id, describe_call_failure(&error))
                }
            },
        }
    }
}

#[async_trait]
impl ShardReader for DynamodbShardReader {
    async fn read(&mut self, max: usize) -> anyhow::Result<Records> {
        if self.buffer.is_exhausted() {
            self.fetch().await?;
        }
        Ok(Records::Dynamodb(self.buffer.take(max)))
    }

    fn at_end(&self) -> bool {
        self.buffer.at_end()
    }

    fn poll_interval(&self) -> Duration {
        self.wait
    }
}

/// A stream record as the WIT record; `None` for one without a change in it
/// (DynamoDB always sends one, so this only guards against a malformed reply).
fn convert(record: aws_sdk_dynamodbstreams::types::Record) -> Option<DynamodbRecord> {
    let change = record.dynamodb?;
    let event_name = match record.event_name? {
        OperationType::Insert => DynamodbEventName::Insert,
        OperationType::Modify => DynamodbEventName::Modify,
        OperationType::Remove => DynamodbEventName::Remove,
        _ => return None,
    };
    let created = change.approximate_creation_date_time.and_then(|t| t.to_millis().ok()).unwrap_or(0);
    Some(DynamodbRecord {
        event_id: record.event_id.unwrap_or_default(),
        event_name,
        sequence_number: change.sequence_number?,
        approximate_creation_date_time_ms: u64::try_from(created).unwrap_or(0),
        keys: image_json(&change.keys.unwrap_or_default()),
        new_image: change.new_image.as_ref().map(image_json),
        old_image: change.old_image.as_ref().map(image_json),
        size_bytes: u64::try_from(change.size_bytes.unwrap_or(0)).unwrap_or(0),
        stream_view_type: change.stream_view_type.map(|t| t.as_str().to_owned()).unwrap_or_default(),
        user_identity_principal: record.user_identity.and_then(|i| i.principal_id),
    })
}

/// An item as DynamoDB's attribute-value JSON: `{"id":{"S":"1"}}`.
pub fn image_json(item: &HashMap<String, AttributeValue>) -> String {
    item_value(item).to_string()
}

fn item_value(item: &HashMap<String, AttributeValue>) -> serde_json::Value {
    // serde_json's map is ordered by key, so the text is the same for the same item.
    serde_json::Value::Object(item.iter().map(|(k, v)| (k.clone(), attribute_value(v))).collect())
}

fn attribute_value(value: &AttributeValue) -> serde_json::Value {
    use serde_json::{Value, json};
    let b64 = |b: &aws_smithy_types::Blob| Value::String(base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        AttributeValue::Bs(bs) => json!({ "BS": bs.iter().map(b64).collect::<Vec<_>>() }),
        AttributeValue::L(items) => json!({ "L": items.iter().map(attribute_value).collect::<Vec<_>>() }),
        AttributeValue::M(map) => json!({ "M": item_value(map) }),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_are_written_as_lambda_shows_them() {
        let item = HashMap::from([
            ("id".to_owned(), AttributeValue::S("1".into())),
            ("n".to_owned(), AttributeValue::N("5.5".into())),
            ("b".to_owned(), AttributeValue::B(aws_smithy_types::Blob::new(b"hi".to_vec()))),
            ("ok".to_owned(), AttributeValue::Bool(true)),
            ("none".to_owned(), AttributeValue::Null(true)),
            ("tags".to_owned(), AttributeValue::Ss(vec!["a".into(), "b".into()])),
            (
                "nested".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "l".to_owned(),
                    AttributeValue::L(vec![AttributeValue::N("1".into()), AttributeValue::S("x".into())]),
                )])),
            ),
        ]);
        assert_eq!(
            image_json(&item),
            r#"{"b":{"B":"aGk="},"id":{"S":"1"},"n":{"N":"5.5"},"nested":{"M":{"l":{"L":[{"N":"1"},{"S":"x"}]}}},"none":{"NULL":true},"ok":{"BOOL":true},"tags":{"SS":["a","b"]}}"#
        );
    }
}
