//! The Kinesis API for local streams, served on the admin port: a producer or
//! consumer written against an AWS SDK (or the AWS CLI) reads and writes Eddy's
//! embedded streams when its endpoint URL is the admin address.
//!
//! The protocol is Kinesis' JSON 1.1: `POST /`, the operation in the
//! `X-Amz-Target` header (`Kinesis_20131202.PutRecords`), JSON bodies with the
//! data in base64, errors as `{"__type": "...Exception", "message": "..."}` with
//! status 400. CBOR (the Java SDK's default) is refused with what to set instead.
//! Signatures are not checked: any credentials will do, as with the ingest
//! endpoint. Sequence numbers are the local stream's own (1, 2, ...), which the
//! API treats as opaque strings; a shard iterator names the stream, the shard and
//! the sequence number it reads after, and does not expire.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::source::Position;
use crate::source::local::{self, PutRecord};
use crate::store::embedded::EmbeddedStore;
use crate::store::now_ms;

/// The content type of Kinesis' JSON protocol.
const JSON_1_1: &str = "application/x-amz-json-1.1";
/// The largest number of records GetRecords returns, as Kinesis.
const MAX_GET_RECORDS: usize = 10_000;
/// The largest number of records in one PutRecords, as Kinesis.
const MAX_PUT_RECORDS: usize = 500;

/// An error in Kinesis' shape: its exception name and message.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorKind {
    ResourceNotFound,
    ResourceInUse,
    InvalidArgument,
    Validation,
    UnknownOperation,
    Internal,
}

impl ErrorKind {
    fn exception(self) -> &'static str {
        match self {
            ErrorKind::ResourceNotFound => "ResourceNotFoundException",
            ErrorKind::ResourceInUse => "ResourceInUseException",
            ErrorKind::InvalidArgument => "InvalidArgumentException",
            ErrorKind::Validation => "ValidationException",
            ErrorKind::UnknownOperation => "UnknownOperationException",
            ErrorKind::Internal => "InternalFailure",
        }
    }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> ApiError {
    ApiError { kind, message: message.into() }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        error(ErrorKind::Internal, format!("{e:#}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = if self.kind == ErrorKind::Internal { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::BAD_REQUEST };
        let body = json!({ "__type": self.kind.exception(), "message": self.message });
        (
            status,
            [(header::CONTENT_TYPE, JSON_1_1), (header::HeaderName::from_static("x-amzn-errortype"), self.kind.exception())],
            body.to_string(),
        )
            .into_response()
    }
}

/// The operations served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    CreateStream,
    DescribeStream,
    DescribeStreamSummary,
    ListStreams,
    ListShards,
    PutRecord,
    PutRecords,
    GetShardIterator,
    GetRecords,
    UpdateMaxRecordSize,
}

impl Operation {
    /// The operation an `X-Amz-Target` header names.
    fn from_target(target: &str) -> Result<Operation, ApiError> {
        let name = target.strip_prefix("Kinesis_20131202.").ok_or_else(|| {
            error(ErrorKind::UnknownOperation, format!("{target:?} is not a Kinesis operation (Kinesis_20131202.<Operation>)"))
        })?;
        Ok(match name {
            "CreateStream" => Operation::CreateStream,
            "DescribeStream" => Operation::DescribeStream,
            "DescribeStreamSummary" => Operation::DescribeStreamSummary,
            "ListStreams" => Operation::ListStreams,
            "ListShards" => Operation::ListShards,
            "PutRecord" => Operation::PutRecord,
            "PutRecords" => Operation::PutRecords,
            "GetShardIterator" => Operation::GetShardIterator,
            "GetRecords" => Operation::GetRecords,
            "UpdateMaxRecordSize" => Operation::UpdateMaxRecordSize,
            other => {
                return Err(error(
                    ErrorKind::UnknownOperation,
                    format!(
                        "local streams serve CreateStream, DescribeStream, DescribeStreamSummary, ListStreams, \
                         ListShards, PutRecord, PutRecords, GetShardIterator, GetRecords and UpdateMaxRecordSize, \
                         not {other}"
                    ),
                ));
            }
        })
    }
}

/// Whether a request is meant for this API (it names a Kinesis target).
pub fn is_kinesis_request(headers: &HeaderMap) -> bool {
    headers.contains_key("x-amz-target")
}

/// Serves one request; `body` has been read whole (and within the admin port's limit).
pub async fn serve(store: &std::sync::Arc<EmbeddedStore>, headers: &HeaderMap, body: Bytes) -> Response {
    match answer(store, headers, body).await {
        Ok(value) => ([(header::CONTENT_TYPE, JSON_1_1)], value.to_string()).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn answer(store: &std::sync::Arc<EmbeddedStore>, headers: &HeaderMap, body: Bytes) -> Result<Value, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.contains("cbor") {
        return Err(error(
            ErrorKind::InvalidArgument,
            "local streams speak Kinesis' JSON protocol, not CBOR: set AWS_CBOR_DISABLE=true (the Java SDK and KPL) \
             or the client's equivalent",
        ));
    }
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let operation = Operation::from_target(target)?;
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| error(ErrorKind::Validation, format!("the body is not JSON: {e}")))?
    };
    match operation {
        Operation::PutRecord => {
            let put: PutRecordRequest = parse(request)?;
            let stream = put.stream.name()?;
            let record = put_record(put.record)?;
            let landed = put_records(store, stream, vec![record]).await?;
            let first = landed.into_iter().next().ok_or_else(|| error(ErrorKind::Internal, "nothing was put"))?;
            Ok(json!({ "ShardId": first.shard_id, "SequenceNumber": first.sequence_number, "EncryptionType": "NONE" }))
        }
        Operation::PutRecords => {
            let put: PutRecordsRequest = parse(request)?;
            let stream = put.stream.name()?;
            if put.records.is_empty() || put.records.len() > MAX_PUT_RECORDS {
                return Err(error(
                    ErrorKind::Validation,
                    format!("a PutRecords request has 1 to {MAX_PUT_RECORDS} records, not {}", put.records.len()),
                ));
            }
            let records =
                put.records.into_iter().map(put_record).collect::<Result<Vec<_>, _>>()?;
            let landed = put_records(store, stream, records).await?;
            Ok(json!({ "FailedRecordCount": 0, "Records": landed, "EncryptionType": "NONE" }))
        }
        Operation::GetShardIterator => {
            let get: GetShardIteratorRequest = parse(request)?;
            let stream = get.stream.name()?.to_owned();
            let shard = local::shard_index(&get.shard_id)
                .ok_or_else(|| error(ErrorKind::ResourceNotFound, format!("{:?} is not a shard id", get.shard_id)))?;
            let from = match get.iterator_type.as_str() {
                "TRIM_HORIZON" => Position::TrimHorizon,
                "LATEST" => Position::Latest,
                "AT_TIMESTAMP" => {
                    let seconds = get.timestamp.ok_or_else(|| error(ErrorKind::InvalidArgument, "AT_TIMESTAMP needs a Timestamp"))?;
                    Position::AtTimestamp((seconds * 1000.0).max(0.0) as u64)
                }
                kind @ ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER") => {
                    let text = get
                        .starting_sequence_number
                        .ok_or_else(|| error(ErrorKind::InvalidArgument, format!("{kind} needs a StartingSequenceNumber")))?;
                    let seq: i64 = text.parse().map_err(|_| {
                        error(ErrorKind::InvalidArgument, format!("{text:?} is not a sequence number of a local stream"))
                    })?;
                    let after = if kind == "AT_SEQUENCE_NUMBER" { seq - 1 } else { seq };
                    Position::AfterSequence(after.max(0).to_string())
                }
                other => {
                    return Err(error(
                        ErrorKind::InvalidArgument,
                        format!("ShardIteratorType is TRIM_HORIZON, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER, not {other:?}"),
                    ));
                }
            };
            let after = store
                .run(move |conn| {
                    let description = existing(&conn, &stream)?;
                    if shard >= description.shard_count {
                        return Ok(Err(error(
                            ErrorKind::ResourceNotFound,
                            format!("shard {} of stream {stream} under account {} not found", local::shard_id(shard), local::LOCAL_ACCOUNT),
                        )));
                    }
                    Ok(Ok((stream.clone(), local::sequence_before(&conn, &stream, shard, &from)?)))
                })
                .await
                .map_err(kinesis_error)??;
            Ok(json!({ "ShardIterator": ShardIterator { stream: after.0, shard, after: after.1 }.encode() }))
        }
        Operation::GetRecords => {
            let get: GetRecordsRequest = parse(request)?;
            let iterator = ShardIterator::decode(&get.shard_iterator)?;
            let limit = get.limit.unwrap_or(MAX_GET_RECORDS);
            if !(1..=MAX_GET_RECORDS).contains(&limit) {
                return Err(error(ErrorKind::Validation, format!("Limit is 1 to {MAX_GET_RECORDS}, not {limit}")));
            }
            let at = iterator.clone();
            let (records, newest) = store
                .run(move |conn| {
                    existing(&conn, &at.stream)?;
                    let shard_id = local::shard_id(at.shard);
                    let records = local::read_after(&conn, &at.stream, at.shard, &shard_id, at.after, limit)?;
                    let newest = local::last_sequence(&conn, &at.stream, at.shard)?;
                    Ok((records, newest))
                })
                .await
                .map_err(kinesis_error)?;
            let next_after = records.last().and_then(|r| r.sequence_number.parse().ok()).unwrap_or(iterator.after);
            // How far the last record returned is behind the shard's newest one.
            let behind = match records.last() {
                Some(last) if next_after < newest => now_ms().saturating_sub(last.approximate_arrival_timestamp_ms),
                _ => 0,
            };
            let engine = base64::engine::general_purpose::STANDARD;
            let records: Vec<Value> = records
                .iter()
                .map(|r| {
                    json!({
                        "SequenceNumber": r.sequence_number,
                        "ApproximateArrivalTimestamp": r.approximate_arrival_timestamp_ms as f64 / 1000.0,
                        "Data": engine.encode(&r.data),
                        "PartitionKey": r.partition_key,
                    })
                })
                .collect();
            let next = ShardIterator { after: next_after, ..iterator };
            Ok(json!({ "Records": records, "NextShardIterator": next.encode(), "MillisBehindLatest": behind }))
        }
        Operation::CreateStream => {
            let create: CreateStreamRequest = parse(request)?;
            if crate::names::StreamName::parse(&create.stream_name).is_none() {
                return Err(error(
                    ErrorKind::Validation,
                    format!(
                        "StreamName {:?} breaks Kinesis' rule: 1 to {} of a-z, A-Z, 0-9, `_`, `.` and `-`",
                        create.stream_name,
                        crate::names::STREAM_NAME_MAX
                    ),
                ));
            }
            let shards = create.shard_count.unwrap_or(local::DEFAULT_SHARDS);
            if !(1..=1024).contains(&shards) {
                return Err(error(ErrorKind::InvalidArgument, format!("a local stream has 1 to 1024 shards, not {shards}")));
            }
            let max_record_size = create.max_record_size_kib.unwrap_or(local::DEFAULT_MAX_RECORD_SIZE_KIB);
            check_max_record_size(max_record_size)?;
            let name = create.stream_name;
            let created = store
                .run(move |conn| {
                    if local::describe(&conn, &name)?.is_some() {
                        return Ok(false);
                    }
                    local::create_with_max_record_size(&conn, &name, shards, local::DEFAULT_RETENTION_HOURS, max_record_size)?;
                    Ok(true)
                })
                .await?;
            if !created {
                return Err(error(ErrorKind::ResourceInUse, "a stream of that name already exists"));
            }
            Ok(json!({}))
        }
        Operation::DescribeStream | Operation::DescribeStreamSummary | Operation::ListShards => {
            let named: NamedStream = parse(request)?;
            let name = named.name()?.to_owned();
            let description = store.run(move |conn| existing(&conn, &name)).await.map_err(kinesis_error)?;
            Ok(match operation {
                Operation::DescribeStream => json!({ "StreamDescription": {
                    "StreamName": description.name,
                    "StreamARN": local::stream_arn(&description.name),
                    "StreamStatus": "ACTIVE",
                    "StreamModeDetails": { "StreamMode": "PROVISIONED" },
                    "Shards": shards(&description),
                    "HasMoreShards": false,
                    "RetentionPeriodHours": description.retention_hours,
                    "StreamCreationTimestamp": description.created_ms as f64 / 1000.0,
                    "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                    "EncryptionType": "NONE",
                }}),
                Operation::DescribeStreamSummary => json!({ "StreamDescriptionSummary": {
                    "StreamName": description.name,
                    "StreamARN": local::stream_arn(&description.name),
                    "StreamStatus": "ACTIVE",
                    "StreamModeDetails": { "StreamMode": "PROVISIONED" },
                    "RetentionPeriodHours": description.retention_hours,
                    "StreamCreationTimestamp": description.created_ms as f64 / 1000.0,
                    "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                    "EncryptionType": "NONE",
                    "OpenShardCount": description.shard_count,
                    "ConsumerCount": 0,
                    "MaxRecordSizeInKiB": description.max_record_size_kib,
                }}),
                _ => json!({ "Shards": shards(&description) }),
            })
        }
        Operation::UpdateMaxRecordSize => {
            let update: UpdateMaxRecordSizeRequest = parse(request)?;
            check_max_record_size(update.max_record_size_kib)?;
            let name = update.stream.name()?.to_owned();
            store
                .run(move |conn| {
                    existing(&conn, &name)?;
                    local::set_max_record_size(&conn, &name, update.max_record_size_kib)
                })
                .await
                .map_err(kinesis_error)?;
            Ok(json!({}))
        }
        Operation::ListStreams => {
            let streams = store.run(|conn| local::list(&conn)).await?;
            let summaries: Vec<Value> = streams
                .iter()
                .map(|s| {
                    json!({
                        "StreamName": s.name,
                        "StreamARN": local::stream_arn(&s.name),
                        "StreamStatus": "ACTIVE",
                        "StreamModeDetails": { "StreamMode": "PROVISIONED" },
                        "StreamCreationTimestamp": s.created_ms as f64 / 1000.0,
                    })
                })
                .collect();
            let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
            Ok(json!({ "StreamNames": names, "HasMoreStreams": false, "StreamSummaries": summaries }))
        }
    }
}

/// The request's fields, or a ValidationException naming what is wrong.
fn parse<T: serde::de::DeserializeOwned>(request: Value) -> Result<T, ApiError> {
    serde_json::from_value(request).map_err(|e| error(ErrorKind::Validation, e.to_string()))
}

/// A record to put, its data decoded and within Kinesis' limits.
fn put_record(RecordEntry { data, partition_key, explicit_hash_key }: RecordEntry) -> Result<PutRecord, ApiError> {
    if explicit_hash_key.is_some() {
        // Placing it by its partition key instead would put it on another shard
        // than the producer asked for, without a word.
        return Err(error(
            ErrorKind::InvalidArgument,
            "local streams place records by their partition key; ExplicitHashKey is not supported",
        ));
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(data.as_bytes())
        .map_err(|e| error(ErrorKind::Validation, format!("Data is not base64: {e}")))?;
    // Kinesis' own cap on any record; the stream's MaxRecordSizeInKiB, which
    // may be lower, is checked by the put.
    if data.len() > MAX_DATA_BYTES {
        return Err(error(
            ErrorKind::Validation,
            format!("1 validation error detected: Value at 'data' failed to satisfy constraint: Member must have length less than or equal to {MAX_DATA_BYTES}"),
        ));
    }
    let key_chars = partition_key.chars().count();
    if !(1..=local::MAX_PARTITION_KEY_CHARS).contains(&key_chars) {
        return Err(error(
            ErrorKind::Validation,
            format!("PartitionKey has 1 to {} characters, not {key_chars}", local::MAX_PARTITION_KEY_CHARS),
        ));
    }
    Ok(PutRecord { partition_key, data })
}

async fn put_records(
    store: &std::sync::Arc<EmbeddedStore>,
    stream: &str,
    records: Vec<PutRecord>,
) -> Result<Vec<local::PutResult>, ApiError> {
    let name = stream.to_owned();
    let landed = store
        .run(move |mut conn| {
            existing(&conn, &name)?;
            local::put(&mut conn, &name, &records)
        })
        .await
        .map_err(kinesis_error)?;
    local::announce(store, stream, &landed);
    Ok(landed)
}

/// The largest data blob Kinesis takes in any stream (10 MiB).
const MAX_DATA_BYTES: usize = 10 * 1024 * 1024;

/// A ValidationException for a `MaxRecordSizeInKiB` outside Kinesis' range.
fn check_max_record_size(kib: u32) -> Result<(), ApiError> {
    if local::MAX_RECORD_SIZE_KIB_RANGE.contains(&kib) {
        return Ok(());
    }
    Err(error(
        ErrorKind::Validation,
        format!(
            "1 validation error detected: Value '{kib}' at 'maxRecordSizeInKiB' failed to satisfy constraint: \
             Member must have value between {} and {}",
            local::MAX_RECORD_SIZE_KIB_RANGE.start(),
            local::MAX_RECORD_SIZE_KIB_RANGE.end()
        ),
    ))
}

/// The stream of that name, or a [`StreamNotFound`] error.
fn existing(conn: &Connection, name: &str) -> anyhow::Result<local::StreamDescription> {
    local::describe(conn, name)?.ok_or_else(|| StreamNotFound(name.to_owned()).into())
}

#[derive(Debug, thiserror::Error)]
#[error("Stream {0} under account 000000000000 not found.")]
struct StreamNotFound(String);

/// An error of the store in Kinesis' shapes: a missing stream, a record over
/// the stream's maximum size, or else an internal failure.
fn kinesis_error(e: anyhow::Error) -> ApiError {
    if let Some(missing) = e.downcast_ref::<StreamNotFound>() {
        return error(ErrorKind::ResourceNotFound, missing.to_string());
    }
    if let Some(too_large) = e.downcast_ref::<local::RecordTooLarge>() {
        return error(ErrorKind::Validation, too_large.to_string());
    }
    e.into()
}

/// A stream's shards as Kinesis lists them.
fn shards(description: &local::StreamDescription) -> Vec<Value> {
    (0..description.shard_count)
        .map(|i| {
            let (start, end) = local::hash_key_range(i, description.shard_count);
            json!({
                "ShardId": local::shard_id(i),
                "HashKeyRange": { "StartingHashKey": start.to_string(), "EndingHashKey": end.to_string() },
                "SequenceNumberRange": { "StartingSequenceNumber": "1" },
            })
        })
        .collect()
}

/// Where a shard iterator reads: after sequence number `after` of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardIterator {
    stream: String,
    shard: u32,
    after: i64,
}

impl ShardIterator {
    /// `shard/after/stream` in URL-safe base64: opaque, as Kinesis' own.
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}/{}/{}", self.shard, self.after, self.stream))
    }

    fn decode(text: &str) -> Result<ShardIterator, ApiError> {
        let invalid = || error(ErrorKind::InvalidArgument, format!("{text:?} is not a shard iterator of a local stream"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let mut parts = text.splitn(3, '/');
        let shard = parts.next().and_then(|p| p.parse().ok()).ok_or_else(invalid)?;
        let after = parts.next().and_then(|p| p.parse().ok()).ok_or_else(invalid)?;
        let stream = parts.next().filter(|s| !s.is_empty()).ok_or_else(invalid)?.to_owned();
        Ok(ShardIterator { stream, shard, after })
    }
}

/// A stream named by `StreamName` or `StreamARN`.
#[derive(Debug, Deserialize)]
struct NamedStream {
    #[serde(rename = "StreamName")]
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

impl NamedStream {
    fn name(&self) -> Result<&str, ApiError> {
        match (&self.stream_name, &self.stream_arn) {
            (Some(name), _) => Ok(name),
            (None, Some(arn)) => arn
                .rsplit_once(":stream/")
                .map(|(_, name)| name)
                .filter(|name| !name.is_empty())
                .ok_or_else(|| error(ErrorKind::InvalidArgument, format!("{arn:?} is not a stream ARN"))),
            (None, None) => Err(error(ErrorKind::InvalidArgument, "the request names no stream (StreamName or StreamARN)")),
        }
    }
}

#[derive(Debug, Deserialize)]
struct PutRecordRequest {
    #[serde(flatten)]
    stream: NamedStream,
    #[serde(flatten)]
    record: RecordEntry,
}

#[derive(Debug, Deserialize)]
struct PutRecordsRequest {
    #[serde(flatten)]
    stream: NamedStream,
    #[serde(rename = "Records")]
    records: Vec<RecordEntry>,
}

/// One record of a PutRecord or PutRecords request.
#[derive(Debug, Deserialize)]
struct RecordEntry {
    #[serde(rename = "Data")]
    data: String,
    #[serde(rename = "PartitionKey")]
    partition_key: String,
    #[serde(rename = "ExplicitHashKey")]
    explicit_hash_key: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GetShardIteratorRequest {
    #[serde(flatten)]
    stream: NamedStream,
    #[serde(rename = "ShardId")]
    shard_id: String,
    #[serde(rename = "ShardIteratorType")]
    iterator_type: String,
    #[serde(rename = "StartingSequenceNumber")]
    starting_sequence_number: Option<String>,
    /// Seconds since the epoch, as the SDKs send it.
    #[serde(rename = "Timestamp")]
    timestamp: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct GetRecordsRequest {
    #[serde(rename = "ShardIterator")]
    shard_iterator: String,
    #[serde(rename = "Limit")]
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct CreateStreamRequest {
    #[serde(rename = "StreamName")]
    stream_name: String,
    #[serde(rename = "ShardCount")]
    shard_count: Option<u32>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_kib: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct UpdateMaxRecordSizeRequest {
    #[serde(flatten)]
    stream: NamedStream,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_kib: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_iterator_survives_its_round_trip_and_a_forged_one_is_refused() {
        let iterator = ShardIterator { stream: "orders/eu".to_owned(), shard: 3, after: 42 };
        assert_eq!(ShardIterator::decode(&iterator.encode()).expect("decodes"), iterator);
        let err = ShardIterator::decode("not-an-iterator").expect_err("refused");
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
    }

    #[test]
    fn operations_are_named_by_the_target_header() {
        assert_eq!(Operation::from_target("Kinesis_20131202.PutRecords").expect("known"), Operation::PutRecords);
        let err = Operation::from_target("Kinesis_20131202.SplitShard").expect_err("not served");
        assert_eq!(err.kind, ErrorKind::UnknownOperation);
        assert!(err.message.contains("SplitShard"), "{}", err.message);
    }

    #[test]
    fn the_hash_key_ranges_are_the_ones_records_are_placed_by() {
        for count in [1, 2, 3, 4, 7, 1024] {
            let mut next = 0u128;
            for i in 0..count {
                let (start, end) = local::hash_key_range(i, count);
                assert_eq!(start, next, "shard {i} of {count} starts where the last ended");
                next = end.wrapping_add(1);
            }
            assert_eq!(local::hash_key_range(count - 1, count).1, u128::MAX);
        }
        // Every partition key's hash falls in the range of the shard it goes to.
        for key in ["a", "alice", "bob", "user-17", "k9"] {
            use md5::Digest as _;
            let hash = u128::from_be_bytes(md5::Md5::digest(key.as_bytes()).into());
            for count in [2, 3, 4, 7] {
                let (start, end) = local::hash_key_range(local::shard_for_key(key, count), count);
                assert!((start..=end).contains(&hash), "{key} in {count} shards");
            }
        }
    }
}
