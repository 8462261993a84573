//! The on-failure destinations on moto's server: SQS queues, SNS topics (read
//! through an SQS subscription) and S3 buckets, created and read back with the AWS
//! SDK, and the checks every failure record must pass, key by key.

use std::time::Duration;

use serde_json::Value;

use super::emulators::{self, Emulator};
use super::wait_for;

/// moto's account: the one its ARNs name.
pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

pub struct Moto {
    pub emulator: Emulator,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub s3: aws_sdk_s3::Client,
    pub rt: tokio::runtime::Runtime,
}

impl Moto {
    pub fn start() -> Moto {
        let emulator = emulators::moto();
        let rt = super::kinesis::runtime();
        let config = rt.block_on(emulators::sdk_config(&emulator.endpoint));
        let s3_config = aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build();
        Moto {
            sqs: aws_sdk_sqs::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            emulator,
            rt,
        }
    }

    /// The `[EventSource.DestinationConfig.OnFailure]` table for `arn`, reached at moto.
    pub fn on_failure(&self, arn: &str) -> String {
        format!("[EventSource.DestinationConfig.OnFailure]\nDestination = \"{arn}\"\nEndpointUrl = \"{}\"\n", self.emulator.endpoint)
    }

    /// Creates a queue; returns its ARN.
    pub fn create_queue(&self, name: &str) -> String {
        self.rt.block_on(self.sqs.create_queue().queue_name(name).send()).expect("CreateQueue");
        queue_arn(name)
    }

    /// Creates a topic with a queue subscribed to it; returns the topic's ARN.
    pub fn create_topic(&self, name: &str) -> String {
        let topic = self.rt.block_on(self.sns.create_topic().name(name).send()).expect("CreateTopic");
        let topic_arn = topic.topic_arn().expect("a topic ARN").to_owned();
        let queue = self.create_queue(&format!("{name}-subscriber"));
        self.rt
            .block_on(self.sns.subscribe().topic_arn(&topic_arn).protocol("sqs").endpoint(queue).send())
            .expect("Subscribe");
        topic_arn
    }

    /// Creates a bucket; returns its ARN.
    pub fn create_bucket(&self, name: &str) -> String {
        self.rt.block_on(self.s3.create_bucket().bucket(name).send()).expect("CreateBucket");
        format!("arn:aws:s3:::{name}")
    }

    /// The bodies of the messages in a queue, waiting until there are `count`.
    pub fn messages(&self, queue: &str, count: usize) -> Vec<Value> {
        let url = format!("{}/{ACCOUNT}/{queue}", self.emulator.endpoint);
        let mut bodies = Vec::new();
        wait_for(&format!("{count} messages in {queue}"), || {
            let out = self
                .rt
                .block_on(self.sqs.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1).send())
                .ok()?;
            for message in out.messages() {
                let body = message.body().unwrap_or_default();
                bodies.push(serde_json::from_str(body).unwrap_or_else(|e| panic!("a message of {queue} is not JSON ({e}): {body}")));
                if let Some(receipt) = message.receipt_handle() {
                    let _ = self.rt.block_on(self.sqs.delete_message().queue_url(&url).receipt_handle(receipt).send());
                }
            }
            (bodies.len() >= count).then(|| bodies.clone())
        })
    }

    /// The records published to a topic (made by [`Moto::create_topic`]),
    /// unwrapped from SNS's notifications.
    pub fn published(&self, topic: &str, count: usize) -> Vec<Value> {
        self.messages(&format!("{topic}-subscriber"), count)
            .into_iter()
            .map(|notification| {
                assert_eq!(notification["Type"], "Notification", "{notification}");
                let message = notification["Message"].as_str().expect("the notification's Message is a string");
                serde_json::from_str(message).expect("the message is the failure record, as JSON")
            })
            .collect()
    }

    /// Every object in a bucket, key and parsed body, waiting until there are `count`.
    pub fn objects(&self, bucket: &str, count: usize) -> Vec<(String, Value)> {
        let keys = wait_for(&format!("{count} objects in {bucket}"), || {
            let out = self.rt.block_on(self.s3.list_objects_v2().bucket(bucket).send()).ok()?;
            let keys: Vec<String> = out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
            (keys.len() >= count).then_some(keys)
        });
        keys.into_iter()
            .map(|key| {
                let object = self.rt.block_on(self.s3.get_object().bucket(bucket).key(&key).send()).expect("GetObject");
                let bytes = self.rt.block_on(object.body.collect()).expect("the object's body").into_bytes();
                let body = serde_json::from_slice(&bytes).expect("the object is the failure record, as JSON");
                (key, body)
            })
            .collect()
    }

    /// Nothing more arrives in `queue` for `quiet`.
    pub fn no_more_messages(&self, queue: &str, quiet: Duration) -> bool {
        let url = format!("{}/{ACCOUNT}/{queue}", self.emulator.endpoint);
        let deadline = std::time::Instant::now() + quiet;
        while std::time::Instant::now() < deadline {
            let out = self.rt.block_on(self.sqs.receive_message().queue_url(&url).wait_time_seconds(1).send());
            if out.is_ok_and(|o| !o.messages().is_empty()) {
                return false;
            }
        }
        true
    }
}

pub fn queue_arn(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

/// What a failure record must say, besides the shape every one has.
pub struct Expected<'a> {
    pub condition: &'a str,
    /// `Some("Unhandled")`, `Some(null)`: `None` for RecordAgeExceeded (no responseContext).
    pub function_error: Option<Value>,
    pub invoke_count: u64,
    pub batch_size: u64,
    pub start_sequence: Option<&'a str>,
    pub stream_arn: &'a str,
    pub shard: &'a str,
}

/// Checks a failure record key by key against the shape Lambda writes (design
/// notes, "On-failure record"): exactly these keys, these types, these values.
pub fn check_failure_record(record: &Value, expected: &Expected<'_>) {
    let object = record.as_object().unwrap_or_else(|| panic!("not an object: {record}"));
    let is_dynamodb = object.contains_key("DDBStreamBatchInfo");
    let info_key = if is_dynamodb { "DDBStreamBatchInfo" } else { "KinesisBatchInfo" };
    let mut keys: Vec<&str> = object.keys().map(String::as_str).filter(|k| *k != "payload").collect();
    keys.sort_unstable();
    let mut want = vec!["requestContext", "timestamp", "version", info_key];
    if expected.function_error.is_some() {
        want.push("responseContext");
    }
    want.sort_unstable();
    assert_eq!(keys, want, "the record's keys: {record}");

    let request = &record["requestContext"];
    let mut request_keys: Vec<&str> = request.as_object().expect("requestContext").keys().map(String::as_str).collect();
    request_keys.sort_unstable();
    assert_eq!(request_keys, ["approximateInvokeCount", "condition", "functionArn", "requestId"], "{record}");
    assert_eq!(request["condition"], expected.condition, "{record}");
    assert_eq!(request["approximateInvokeCount"], expected.invoke_count, "approximateInvokeCount: {record}");
    assert!(request["functionArn"].as_str().is_some_and(|a| a.starts_with("arn:aws:lambda:")), "{record}");
    assert!(request["requestId"].as_str().is_some_and(|id| id.len() == 36), "a UUID: {record}");

    if let Some(function_error) = &expected.function_error {
        let response = &record["responseContext"];
        let mut response_keys: Vec<&str> = response.as_object().expect("responseContext").keys().map(String::as_str).collect();
        response_keys.sort_unstable();
        assert_eq!(response_keys, ["executedVersion", "functionError", "statusCode"], "{record}");
        assert_eq!(response["statusCode"], 200);
        assert_eq!(response["executedVersion"], "$LATEST");
        assert_eq!(&response["functionError"], function_error, "functionError: {record}");
    }
    assert_eq!(record["version"], "1.0");
    let timestamp = record["timestamp"].as_str().expect("timestamp");
    assert!(is_iso8601(timestamp, true), "the timestamp has milliseconds: {timestamp}");

    let info = &record[info_key];
    let mut info_keys: Vec<&str> = info.as_object().expect("batch info").keys().map(String::as_str).collect();
    info_keys.sort_unstable();
    assert_eq!(
        info_keys,
        [
            "approximateArrivalOfFirstRecord",
            "approximateArrivalOfLastRecord",
            "batchSize",
            "endSequenceNumber",
            "shardId",
            "startSequenceNumber",
            "streamArn"
        ],
        "{record}"
    );
    assert_eq!(info["batchSize"], expected.batch_size, "{record}");
    assert_eq!(info["streamArn"], expected.stream_arn, "{record}");
    assert_eq!(info["shardId"], expected.shard, "{record}");
    if let Some(start) = expected.start_sequence {
        assert_eq!(info["startSequenceNumber"], start, "{record}");
    }
    for key in ["approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"] {
        let time = info[key].as_str().unwrap_or_default();
        // Kinesis' arrival times have milliseconds; DynamoDB's whole seconds.
        assert!(is_iso8601(time, !is_dynamodb), "{key} {time:?} ({info_key}): {record}");
    }
}

/// `2019-11-14T00:38:06.021Z` (with milliseconds) or `2019-11-14T00:38:06Z`.
fn is_iso8601(text: &str, millis: bool) -> bool {
    let b = text.as_bytes();
    if b.len() != if millis { 24 } else { 20 } {
        return false;
    }
    let digits = |range: std::ops::Range<usize>| range.into_iter().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    let date_time = digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10) && b[10] == b'T';
    let clock = date_time && digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19);
    if millis { clock && b[19] == b'.' && digits(20..23) && b[23] == b'Z' } else { clock && b[19] == b'Z' }
}
