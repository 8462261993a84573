//! What the polling reader ([`super::kinesis`]) and the enhanced fan-out reader
//! ([`super::kinesis_fanout`]) share of the Kinesis API: naming the stream in
//! a request, and a record as the WIT record.

use aws_sdk_kinesis::types::EncryptionType;

pub use crate::manifest::KinesisStream;
use crate::record::KinesisRecord;

/// Sets the stream of a request builder, by name or by ARN.
macro_rules! with_stream {
    ($builder:expr, $stream:expr) => {
        match $stream {
            KinesisStream::Name(name) => $builder.stream_name(name.as_str()),
            KinesisStream::Arn(arn) => $builder.stream_arn(arn),
        }
    };
}
pub(super) use with_stream;

/// A Kinesis record as the WIT record (its data moved, not copied).
pub(super) fn convert(shard_id: &str, record: aws_sdk_kinesis::types::Record) -> KinesisRecord {
    let arrival = record.approximate_arrival_timestamp.and_then(|t| t.to_millis().ok()).unwrap_or(0);
    KinesisRecord {
        event_id: crate::record::kinesis_event_id(shard_id, &record.sequence_number),
        partition_key: record.partition_key.unwrap_or_default(),
        data: record.data.into_inner(),
        sequence_number: record.sequence_number,
        approximate_arrival_timestamp_ms: u64::try_from(arrival).unwrap_or(0),
        encryption_type: match record.encryption_type {
            None | Some(EncryptionType::None) => None,
            Some(other) => Some(other.as_str().to_owned()),
        },
    }
}
