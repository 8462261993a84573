//! Writing a failure record to its destination: a local directory or file, or,
//! by ARN, an SQS queue, an SNS topic, an S3 bucket or a Kinesis stream, through
//! the host's AWS configuration. An error means the record was not accepted; the
//! caller retries, and the shard waits.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::manifest::AwsTarget;
use crate::manifest::{Destination, OnFailure};
use crate::record::Batch;

/// The largest SQS message or SNS notification: 256 KiB.
pub const MESSAGE_LIMIT_BYTES: usize = 256 * 1024;
/// The largest Kinesis record: 1 MiB.
const KINESIS_RECORD_LIMIT_BYTES: usize = 1024 * 1024;

/// Whether a failure record carries the batch's event as `payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadRule {
    /// Lambda's S3 destination: always.
    Always,
    /// With `IncludePayload = true`, whatever its size (a local file or directory).
    IfRequested,
    /// With `IncludePayload = true`, and only if the whole record stays within
    /// this many bytes; over it, the record goes without (as Lambda does for SNS).
    IfRequestedAndFits(usize),
}

/// An opened destination.
pub struct FailureSink {
    kind: SinkKind,
    /// `IncludePayload`: add the batch's event where the destination allows.
    include_payload: bool,
}

enum SinkKind {
    Directory(PathBuf),
    JsonLines(PathBuf),
    Kinesis { client: aws_sdk_kinesis::Client, stream_arn: String },
    /// The queue's URL is looked up at the first send (so that a queue created
    /// after the mapping started is found) and kept.
    Sqs { client: aws_sdk_sqs::Client, name: String, account: String, url: OnceCell<String> },
    Sns { client: aws_sdk_sns::Client, topic_arn: String },
    S3 { client: aws_sdk_s3::Client, bucket: String, mapping_uuid: String },
}

impl FailureSink {
    /// `mapping_uuid` names the mapping in S3 object keys, as Lambda's UUID does.
    pub async fn open(config: &OnFailure, mapping_uuid: &str) -> anyhow::Result<FailureSink> {
        let kind = match &config.destination {
            Destination::Directory(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create the destination directory {}", dir.display()))?;
                SinkKind::Directory(dir.clone())
            }
            Destination::JsonLines(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
                }
                SinkKind::JsonLines(path.clone())
            }
            Destination::Aws { target, endpoint } => {
                let config = crate::source::aws_config(endpoint.endpoint_url.as_deref(), endpoint.region.as_deref()).await;
                match target {
                    AwsTarget::KinesisStream { arn, .. } => {
                        SinkKind::Kinesis { client: aws_sdk_kinesis::Client::new(&config), stream_arn: arn.clone() }
                    }
                    AwsTarget::SqsQueue { name, account, .. } => SinkKind::Sqs {
                        client: aws_sdk_sqs::Client::new(&config),
                        name: name.clone(),
                        account: account.clone(),
                        url: OnceCell::new(),
                    },
                    AwsTarget::SnsTopic { arn, .. } => SinkKind::Sns { client: aws_sdk_sns::Client::new(&config), topic_arn: arn.clone() },
                    AwsTarget::S3Bucket { bucket, .. } => {
                        // Path-style requests: emulators and dotted bucket names need them.
                        let s3_config = aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build();
                        SinkKind::S3 {
                            client: aws_sdk_s3::Client::from_conf(s3_config),
                            bucket: bucket.clone(),
                            mapping_uuid: mapping_uuid.to_owned(),
                        }
                    }
                }
            }
        };
        Ok(FailureSink { kind, include_payload: config.include_payload })
    }

    fn payload_rule(&self) -> PayloadRule {
        match &self.kind {
            SinkKind::Directory(_) | SinkKind::JsonLines(_) => PayloadRule::IfRequested,
            SinkKind::Kinesis { .. } => PayloadRule::IfRequestedAndFits(KINESIS_RECORD_LIMIT_BYTES),
            SinkKind::Sqs { .. } | SinkKind::Sns { .. } => PayloadRule::IfRequestedAndFits(MESSAGE_LIMIT_BYTES),
            SinkKind::S3 { .. } => PayloadRule::Always,
        }
    }

    /// Writes the failure record of `batch`; an error means it was not accepted.
    pub async fn send(&self, record: &Value, batch: &Batch) -> anyhow::Result<()> {
        let text = record_text(record, batch, self.payload_rule(), self.include_payload);
        match &self.kind {
            SinkKind::Directory(dir) => {
                // Named so that a listing sorts by time; the request id keeps names apart.
                let request_id = record["requestContext"]["requestId"].as_str().unwrap_or("unknown");
                let name = format!("{}-{request_id}.json", crate::store::now_ms());
                let path = dir.join(name);
                let tmp = path.with_extension("json.tmp");
                let write = tokio::fs::write(&tmp, text.as_bytes()).await;
                write.and(tokio::fs::rename(&tmp, &path).await).with_context(|| format!("cannot write {}", path.display()))
            }
            SinkKind::JsonLines(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .with_context(|| format!("cannot open {}", path.display()))?;
                    // One write per line, so concurrent writers never interleave a line.
                    file.write_all(format!("{text}\n").as_bytes())?;
                    file.sync_data()?;
                    Ok(())
                })
                .await?
            }
            SinkKind::Kinesis { client, stream_arn } => {
                client
                    .put_record()
                    .stream_arn(stream_arn)
                    .data(aws_sdk_kinesis::primitives::Blob::new(text.into_bytes()))
                    .partition_key(&batch.shard_id)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("PutRecord to {stream_arn} failed: {}", crate::source::describe_call_failure(&e)))?;
                Ok(())
            }
            SinkKind::Sqs { client, name, account, url } => {
                let url = url
                    .get_or_try_init(|| async {
                        let found = client.get_queue_url().queue_name(name).queue_owner_aws_account_id(account).send().await;
                        let found = found.map_err(|e| {
                            anyhow::anyhow!("GetQueueUrl for {name} failed: {}", crate::source::describe_call_failure(&e))
                        })?;
                        found.queue_url.ok_or_else(|| anyhow::anyhow!("GetQueueUrl for {name} returned no URL"))
                    })
                    .await?;
                client
                    .send_message()
                    .queue_url(url)
                    .message_body(text)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("SendMessage to {name} failed: {}", crate::source::describe_call_failure(&e)))?;
                Ok(())
            }
            SinkKind::Sns { client, topic_arn } => {
                client
                    .publish()
                    .topic_arn(topic_arn)
                    .message(text)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("Publish to {topic_arn} failed: {}", crate::source::describe_call_failure(&e)))?;
                Ok(())
            }
            SinkKind::S3 { client, bucket, mapping_uuid } => {
                let timestamp = record["timestamp"].as_str().unwrap_or_default();
                let key = s3_key(mapping_uuid, &batch.shard_id, timestamp, &uuid::Uuid::new_v4().to_string());
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .content_type("application/json")
                    .body(aws_sdk_s3::primitives::ByteStream::from(text.into_bytes()))
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("PutObject {key} to {bucket} failed: {}", crate::source::describe_call_failure(&e)))?;
                Ok(())
            }
        }
    }
}

/// The record as written: with the batch's event as `payload` (the `Records`
/// event the function received, as an object) where `rule` and `requested` say
/// so, and without it when it would not fit the destination's limit.
///
/// The event is spliced into the record's text as the encoder wrote it, not
/// parsed into a `Value` and written again.
pub fn record_text(record: &Value, batch: &Batch, rule: PayloadRule, requested: bool) -> String {
    let text = record.to_string();
    let wanted = match rule {
        PayloadRule::Always => true,
        PayloadRule::IfRequested | PayloadRule::IfRequestedAndFits(_) => requested,
    };
    let Some(open) = text.strip_suffix('}').filter(|_| wanted) else {
        return text;
    };
    let event = crate::event::encode(batch);
    let mut with_payload = String::with_capacity(text.len() + event.len() + 12);
    with_payload.push_str(open);
    with_payload.push_str(",\"payload\":");
    with_payload.push_str(&event);
    with_payload.push('}');
    if let PayloadRule::IfRequestedAndFits(limit) = rule
        && with_payload.len() > limit
    {
        // As Lambda does for SNS: the record goes, its payload is dropped.
        tracing::warn!(shard = %batch.shard_id, bytes = with_payload.len(), limit,
            "the failure record with its payload is over the destination's limit; sending it without the payload");
        return text;
    }
    with_payload
}

/// Lambda's S3 object key: `aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>`,
/// from the record's `timestamp` (`2019-11-14T00:38:06.021Z`).
pub fn s3_key(mapping_uuid: &str, shard_id: &str, timestamp: &str, random: &str) -> String {
    let date = timestamp.get(..10).unwrap_or("1970-01-01");
    let time = timestamp.get(11..19).unwrap_or("00:00:00").replace(':', ".");
    format!("aws/lambda/{mapping_uuid}/{shard_id}/{}/{date}T{time}-{random}", date.replace('-', "/"))
}

/// A mapping's UUID, as Lambda gives every event source mapping one: here it is
/// derived from the function's name and its source, so that it stays the same
/// across restarts, new versions and hosts.
pub fn mapping_uuid(function: &str, source_id: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("{function}|{source_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EventSource, KinesisRecord, Records};

    fn batch(data_bytes: usize) -> Batch {
        Batch {
            event_source: EventSource::Kinesis,
            event_source_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/s".into(),
            aws_region: "us-east-1".into(),
            invoke_identity_arn: "arn:aws:iam::000000000000:role/r".into(),
            shard_id: "shardId-000000000000".into(),
            records: Records::Kinesis(vec![KinesisRecord {
                event_id: "shardId-000000000000:1".into(),
                partition_key: "k".into(),
                sequence_number: "1".into(),
                data: vec![b'x'; data_bytes],
                approximate_arrival_timestamp_ms: 1_573_691_886_000,
                encryption_type: None,
            }]),
            window: None,
        }
    }

    #[test]
    fn the_payload_is_the_event_as_an_object_where_the_destination_takes_it() {
        let record = serde_json::json!({"requestContext": {"condition": "RecordAgeExceeded"}, "version": "1.0"});
        let batch = batch(10);
        let s3: Value = serde_json::from_str(&record_text(&record, &batch, PayloadRule::Always, false)).unwrap();
        assert_eq!(s3["payload"]["Records"][0]["kinesis"]["sequenceNumber"], "1", "an object, not a string: {s3}");
        assert_eq!(s3["version"], "1.0");
        let plain: Value = serde_json::from_str(&record_text(&record, &batch, PayloadRule::IfRequested, false)).unwrap();
        assert!(plain.get("payload").is_none());
        let asked: Value = serde_json::from_str(&record_text(&record, &batch, PayloadRule::IfRequested, true)).unwrap();
        assert!(asked["payload"]["Records"].is_array());
    }

    #[test]
    fn a_payload_over_the_message_limit_is_dropped_and_the_record_still_goes() {
        let record = serde_json::json!({"requestContext": {"condition": "RetryAttemptsExhausted"}});
        let limit = PayloadRule::IfRequestedAndFits(super::MESSAGE_LIMIT_BYTES);
        let small: Value = serde_json::from_str(&record_text(&record, &batch(1000), limit, true)).unwrap();
        assert!(small["payload"].is_object(), "a small payload fits");
        // 200 KB of data is 267 KB in base64: over SNS's and SQS's 256 KB.
        let big = record_text(&record, &batch(200 * 1024), limit, true);
        let big: Value = serde_json::from_str(&big).unwrap();
        assert!(big.get("payload").is_none(), "dropped");
        assert_eq!(big["requestContext"]["condition"], "RetryAttemptsExhausted");
    }

    #[test]
    fn s3_keys_follow_lambdas_layout() {
        assert_eq!(
            s3_key("5bd3f0a1-0000-8000-8000-000000000000", "shardId-000000000000", "2019-11-14T00:38:06.021Z", "r"),
            "aws/lambda/5bd3f0a1-0000-8000-8000-000000000000/shardId-000000000000/2019/11/14/2019-11-14T00.38.06-r"
        );
    }

    #[test]
    fn a_mappings_uuid_is_stable_and_its_own() {
        let a = mapping_uuid("f", "kinesis:arn:aws:kinesis:us-east-1:1:stream/s");
        assert_eq!(a, mapping_uuid("f", "kinesis:arn:aws:kinesis:us-east-1:1:stream/s"));
        assert_ne!(a, mapping_uuid("g", "kinesis:arn:aws:kinesis:us-east-1:1:stream/s"));
        assert!(uuid::Uuid::parse_str(&a).is_ok(), "{a}");
    }
}
