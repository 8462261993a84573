//! `eddy redrive`: failure records read back from an on-failure destination,
//! the records each describes fetched again from the source (or taken from the
//! record's `payload`), and the function invoked with them, one invocation per
//! failure record, judged by the mapping's rules.
//!
//! - [`read`]: the failure records of a destination, each with what removes it
//!   once it is redriven (an SQS message is deleted, a file moved aside).
//! - [`Described`]: what a failure record says was discarded.
//! - [`fetch`]: the discarded records, from the source, while it holds them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use crate::manifest::{AwsTarget, Destination};
use crate::record::Records;
use crate::source::deaggregating::DeaggregatingReader;
use crate::source::{Position, StreamSource};

/// One failure record as read, and where it came from.
pub struct FailureRecord {
    pub value: Value,
    pub origin: Origin,
}

/// Where a failure record was read, and so how it is removed once redriven.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A file of a destination directory: moved into its `redriven/` folder.
    File(PathBuf),
    /// A line of a JSON Lines file: left in place.
    Line { path: PathBuf, number: usize },
    /// An SQS message: deleted.
    Sqs { queue_url: String, receipt: String },
    /// An S3 object: left in place.
    S3 { bucket: String, key: String },
    /// A record of a Kinesis stream: left in place (a stream cannot delete one).
    Kinesis { shard: String, sequence: String },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Line { path, number } => write!(f, "{} line {number}", path.display()),
            Origin::Sqs { .. } => f.write_str("an SQS message"),
            Origin::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Origin::Kinesis { shard, sequence } => write!(f, "{shard} record {sequence}"),
        }
    }
}

/// What a failure record says was discarded: Lambda's `KinesisBatchInfo` or
/// `DDBStreamBatchInfo`, and the batch's event when the record carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub shard: String,
    pub start: String,
    pub end: String,
    pub size: usize,
    pub stream_arn: String,
    pub condition: String,
    /// The batch's event (`payload`: S3 always, others with `IncludePayload`).
    pub payload: Option<Value>,
}

impl Described {
    pub fn parse(record: &Value) -> Result<Described, String> {
        let info = record
            .get("KinesisBatchInfo")
            .or_else(|| record.get("DDBStreamBatchInfo"))
            .ok_or("it is not a failure record: it has no KinesisBatchInfo or DDBStreamBatchInfo")?;
        let text = |key: &str| -> Result<String, String> {
            info.get(key).and_then(Value::as_str).map(str::to_owned).ok_or(format!("its batch info has no {key}"))
        };
        Ok(Described {
            shard: text("shardId")?,
            start: text("startSequenceNumber")?,
            end: text("endSequenceNumber")?,
            size: info.get("batchSize").and_then(Value::as_u64).unwrap_or(0) as usize,
            stream_arn: text("streamArn")?,
            condition: record["requestContext"]["condition"].as_str().unwrap_or("").to_owned(),
            payload: record.get("payload").filter(|p| p.is_object()).cloned(),
        })
    }
}

/// Kinesis and DynamoDB sequence numbers are decimal: by length, then text.
fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Why the records of a failure record could not be had again.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Missing {
    #[error("the stream no longer holds them (past its retention)")]
    PastRetention,
    #[error("the stream holds only {held} of the {wanted} records (the others are past its retention)")]
    Partly { held: usize, wanted: usize },
}

/// How long fetching waits, in all, for a shard to give records.
const FETCH_PATIENCE: Duration = Duration::from_secs(10);
/// Reads in a row that bring nothing before the records count as not there
/// (an iterator at a sequence number starts at it, if the shard holds it).
const EMPTY_READS: u32 = 3;

/// The records `described` names, read again from `source`: from its start
/// sequence number to its end, inclusive. With `deaggregate_for` (the function's
/// name, when its mapping has `DeaggregateRecords`) KPL aggregates are split,
/// and a batch that began or ended inside an aggregate gets the aggregate's
/// every user record again: a failure record names Kinesis records, not user
/// records.
pub async fn fetch(
    source: &dyn StreamSource,
    described: &Described,
    deaggregate_for: Option<&str>,
) -> anyhow::Result<Result<Records, Missing>> {
    let opened = source.open(&described.shard, Position::AtSequence(described.start.clone())).await;
    let mut reader = match opened {
        Ok(reader) => match deaggregate_for {
            Some(function) => Box::new(DeaggregatingReader::new(reader, None, function, &described.shard)),
            None => reader,
        },
        // Kinesis refuses an iterator at a sequence number past retention.
        Err(error) if is_trimmed(&error) => return Ok(Err(Missing::PastRetention)),
        Err(error) => return Err(error),
    };
    let deadline = tokio::time::Instant::now() + FETCH_PATIENCE;
    let mut fetched: Option<Records> = None;
    let mut empty_reads = 0;
    loop {
        let before = fetched.as_ref().map_or(0, Records::len);
        let read = reader.read(1000).await;
        let mut records = match read {
            Ok(records) => records,
            Err(error) if is_trimmed(&error) => return Ok(Err(Missing::PastRetention)),
            Err(error) => return Err(error),
        };
        let before_end = (0..records.len())
            .take_while(|&i| records.sequence_number(i).is_some_and(|s| sequence_order(s, &described.end).is_le()))
            .count();
        let past_end = before_end < records.len();
        records.split_off(before_end);
        match &mut fetched {
            None => fetched = Some(records),
            Some(all) => all.append(records),
        }
        let got = fetched.as_ref().map_or(0, Records::len);
        empty_reads = if got == before { empty_reads + 1 } else { 0 };
        if past_end
            || reader.at_end()
            // (User records of aggregates outnumber the records a batch counted.)
            || (deaggregate_for.is_none() && described.size > 0 && got >= described.size)
            || empty_reads >= EMPTY_READS
            || tokio::time::Instant::now() >= deadline
        {
            break;
        }
        // One polling interval, not until a write comes: what is wanted is there
        // already, or gone.
        let next = tokio::time::Instant::now() + reader.poll_interval();
        reader.idle(Some(next.min(deadline))).await;
    }
    let records = fetched.unwrap_or(Records::Kinesis(Vec::new()));
    let partly = Missing::Partly { held: records.len(), wanted: described.size };
    Ok(match records.sequence_number(0) {
        None => Err(Missing::PastRetention),
        // The first records were trimmed, or some at the end.
        Some(first) if first != described.start || records.len() < described.size => Err(partly),
        Some(_) => Ok(records),
    })
}

fn is_trimmed(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    text.contains("TrimmedDataAccessException") || text.contains("past its retention") || text.contains("trimmed")
}

/// Reads every failure record a destination holds now.
pub async fn read(destination: &Destination) -> anyhow::Result<Vec<FailureRecord>> {
    match destination {
        Destination::Directory(dir) => read_directory(dir),
        Destination::JsonLines(path) => read_lines(path),
        Destination::Aws { target, endpoint } => {
            let config = crate::source::aws_config(endpoint.endpoint_url.as_deref(), endpoint.region.as_deref()).await;
            match target {
                AwsTarget::SqsQueue { name, account, .. } => read_sqs(&aws_sdk_sqs::Client::new(&config), name, account).await,
                AwsTarget::S3Bucket { bucket, .. } => {
                    let s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build();
                    read_s3(&aws_sdk_s3::Client::from_conf(s3), bucket).await
                }
                AwsTarget::KinesisStream { arn, .. } => read_kinesis(&aws_sdk_kinesis::Client::new(&config), arn).await,
                AwsTarget::SnsTopic { arn, .. } => anyhow::bail!(
                    "{arn} is an SNS topic, which keeps nothing to read back: subscribe an SQS queue to it and redrive from the queue"
                ),
            }
        }
    }
}

fn parse_text(text: &str, origin: Origin) -> anyhow::Result<FailureRecord> {
    let value = serde_json::from_str(text).with_context(|| format!("{origin} is not JSON"))?;
    Ok(FailureRecord { value, origin })
}

fn read_directory(dir: &Path) -> anyhow::Result<Vec<FailureRecord>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the destination directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "json"))
        .collect();
    // Named by time: oldest first.
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            parse_text(&text, Origin::File(path))
        })
        .collect()
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<FailureRecord>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| parse_text(line, Origin::Line { path: path.to_owned(), number: i + 1 }))
        .collect()
}

/// Every message of the queue, received and kept invisible (for 15 minutes)
/// while they are redriven.
async fn read_sqs(client: &aws_sdk_sqs::Client, name: &str, account: &str) -> anyhow::Result<Vec<FailureRecord>> {
    let url = client
        .get_queue_url()
        .queue_name(name)
        .queue_owner_aws_account_id(account)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot find the queue {name}: {}", crate::source::describe_call_failure(&e)))?
        .queue_url
        .context("the queue has no URL")?;
    let mut found = Vec::new();
    loop {
        let output = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(900)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ReceiveMessage on {name} failed: {}", crate::source::describe_call_failure(&e)))?;
        let messages = output.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(found);
        }
        for message in messages {
            let origin = Origin::Sqs { queue_url: url.clone(), receipt: message.receipt_handle.unwrap_or_default() };
            found.push(parse_text(message.body.as_deref().unwrap_or(""), origin)?);
        }
    }
}

/// Every object under Lambda's prefix, `aws/lambda/`.
async fn read_s3(client: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<Vec<FailureRecord>> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let output = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix("aws/lambda/")
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListObjectsV2 on {bucket} failed: {}", crate::source::describe_call_failure(&e)))?;
        keys.extend(output.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        token = output.next_continuation_token;
        if token.is_none() {
            break;
        }
    }
    let mut found = Vec::new();
    for key in keys {
        let object = client
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetObject {key} failed: {}", crate::source::describe_call_failure(&e)))?;
        let bytes = object.body.collect().await.context("reading the object")?.into_bytes();
        found.push(parse_text(&String::from_utf8_lossy(&bytes), Origin::S3 { bucket: bucket.to_owned(), key })?);
    }
    Ok(found)
}

/// Every record of every shard of the stream, from its trim horizon.
async fn read_kinesis(client: &aws_sdk_kinesis::Client, arn: &str) -> anyhow::Result<Vec<FailureRecord>> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let shards = client
        .list_shards()
        .stream_arn(arn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("ListShards on {arn} failed: {}", crate::source::describe_call_failure(&e)))?
        .shards
        .unwrap_or_default();
    let mut found = Vec::new();
    for shard in shards {
        let mut iterator = client
            .get_shard_iterator()
            .stream_arn(arn)
            .shard_id(&shard.shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetShardIterator failed: {}", crate::source::describe_call_failure(&e)))?
            .shard_iterator;
        while let Some(current) = iterator {
            let output = client
                .get_records()
                .shard_iterator(current)
                .stream_arn(arn)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("GetRecords failed: {}", crate::source::describe_call_failure(&e)))?;
            for record in output.records() {
                let origin = Origin::Kinesis { shard: shard.shard_id.clone(), sequence: record.sequence_number().to_owned() };
                found.push(parse_text(&String::from_utf8_lossy(record.data().as_ref()), origin)?);
            }
            // Caught up: the stream's newest record has been read.
            if output.records().is_empty() && output.millis_behind_latest().unwrap_or(0) == 0 {
                break;
            }
            iterator = output.next_shard_iterator;
        }
    }
    Ok(found)
}

/// Removes a redriven failure record from its destination where that can be
/// done: an SQS message is deleted, a file is moved into `redriven/` beside it.
/// Returns what was done, for the report.
pub async fn remove(origin: &Origin, destination: &Destination) -> anyhow::Result<&'static str> {
    match origin {
        Origin::File(path) => {
            let dir = path.parent().unwrap_or(Path::new(".")).join("redriven");
            std::fs::create_dir_all(&dir)?;
            let target = dir.join(path.file_name().unwrap_or_default());
            std::fs::rename(path, &target).with_context(|| format!("cannot move {} aside", path.display()))?;
            Ok("moved into redriven/")
        }
        Origin::Sqs { queue_url, receipt } => {
            let Destination::Aws { endpoint, .. } = destination else { return Ok("kept") };
            let config = crate::source::aws_config(endpoint.endpoint_url.as_deref(), endpoint.region.as_deref()).await;
            aws_sdk_sqs::Client::new(&config)
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DeleteMessage failed: {}", crate::source::describe_call_failure(&e)))?;
            Ok("deleted from the queue")
        }
        Origin::Line { .. } | Origin::S3 { .. } | Origin::Kinesis { .. } => Ok("left where it is"),
    }
}

/// Puts back a failure record that was not redriven: an SQS message becomes
/// visible again at once (the others were never taken out of sight).
pub async fn put_back(origin: &Origin, destination: &Destination) -> anyhow::Result<()> {
    let (Origin::Sqs { queue_url, receipt }, Destination::Aws { endpoint, .. }) = (origin, destination) else { return Ok(()) };
    let config = crate::source::aws_config(endpoint.endpoint_url.as_deref(), endpoint.region.as_deref()).await;
    aws_sdk_sqs::Client::new(&config)
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(0)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("ChangeMessageVisibility failed: {}", crate::source::describe_call_failure(&e)))?;
    Ok(())
}

/// The function's source, opened to read records again.
pub fn source_reader(
    source: &crate::manifest::SourceRef,
    config: Option<&aws_config::SdkConfig>,
    embedded: Option<Arc<crate::store::embedded::EmbeddedStore>>,
) -> anyhow::Result<Arc<dyn StreamSource>> {
    use crate::manifest::SourceRef;
    const POLL: Duration = Duration::from_millis(200);
    Ok(match (source, config) {
        (SourceRef::Kinesis { stream, .. }, Some(config)) => {
            Arc::new(crate::source::kinesis::KinesisSource::new(config, stream.clone(), POLL, None))
        }
        (SourceRef::Dynamodb { stream, .. }, Some(config)) => {
            Arc::new(crate::source::dynamodb::DynamodbSource::new(config, stream.clone(), POLL))
        }
        (SourceRef::Local { stream, .. }, _) => {
            let embedded = embedded.context("a local stream needs the data directory")?;
            Arc::new(crate::source::local::LocalSource::new(embedded, stream, POLL))
        }
        _ => anyhow::bail!("no AWS configuration for the source"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_record_says_what_was_discarded() {
        let record = serde_json::json!({
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3},
            "KinesisBatchInfo": {"shardId": "shardId-000000000001", "startSequenceNumber": "7", "endSequenceNumber": "12",
                                 "batchSize": 4, "streamArn": "arn:aws:kinesis:local:000000000000:stream/orders"},
            "payload": {"Records": []}
        });
        let described = Described::parse(&record).expect("parsed");
        assert_eq!((described.shard.as_str(), described.start.as_str(), described.end.as_str(), described.size), ("shardId-000000000001", "7", "12", 4));
        assert_eq!(described.condition, "RetryAttemptsExhausted");
        assert!(described.payload.is_some());
        let error = Described::parse(&serde_json::json!({"hello": 1})).expect_err("not one");
        assert!(error.contains("not a failure record"), "{error}");
        assert_eq!(sequence_order("9", "10"), std::cmp::Ordering::Less);
    }
}
