//! Typed accessors on records.

use serde::de::DeserializeOwned;

use crate::{DynamodbRecord, KinesisRecord};

/// Accessors on a Kinesis record's data.
pub trait KinesisRecordExt {
    /// The record's data, as Kinesis stored it (no base64).
    fn data(&self) -> &[u8];
    /// The data as UTF-8 text.
    fn data_as_str(&self) -> Result<&str, std::str::Utf8Error>;
    /// The data parsed as JSON into `T`.
    fn data_as_json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error>;
    /// For a user record the host split out of a KPL aggregate
    /// (`DeaggregateRecords`), its index in the aggregate: the last part of its
    /// event id, `<shard>:<sequence>:<sub>`. The aggregate's user records share
    /// its sequence number.
    fn sub_sequence_number(&self) -> Option<u32>;
    /// What names exactly this record in `batchItemFailures`: its sequence
    /// number, or `<sequence>:<sub>` for a user record of an aggregate.
    fn item_identifier(&self) -> String;
}

impl KinesisRecordExt for KinesisRecord {
    fn data(&self) -> &[u8] {
        &self.data
    }

    fn data_as_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.data)
    }

    fn data_as_json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.data)
    }

    fn sub_sequence_number(&self) -> Option<u32> {
        let (head, sub) = self.event_id.rsplit_once(':')?;
        let shard = head.strip_suffix(self.sequence_number.as_str())?.strip_suffix(':')?;
        if shard.is_empty() {
            return None;
        }
        sub.parse().ok()
    }

    fn item_identifier(&self) -> String {
        match self.sub_sequence_number() {
            Some(sub) => format!("{}:{sub}", self.sequence_number),
            None => self.sequence_number.clone(),
        }
    }
}

/// Accessors on a DynamoDB record's keys and images, as `serde_json::Value`.
///
/// The `*_json` accessors return DynamoDB's attribute-value form
/// (`{"id":{"S":"1"}}`); [`crate::dynamodb::unmarshall`] turns that into plain JSON
/// (`{"id":"1"}`).
pub trait DynamodbRecordExt {
    fn keys_json(&self) -> Result<serde_json::Value, serde_json::Error>;
    fn new_image_json(&self) -> Option<Result<serde_json::Value, serde_json::Error>>;
    fn old_image_json(&self) -> Option<Result<serde_json::Value, serde_json::Error>>;
}

impl DynamodbRecordExt for DynamodbRecord {
    fn keys_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.keys)
    }

    fn new_image_json(&self) -> Option<Result<serde_json::Value, serde_json::Error>> {
        self.new_image.as_deref().map(serde_json::from_str)
    }

    fn old_image_json(&self) -> Option<Result<serde_json::Value, serde_json::Error>> {
        self.old_image.as_deref().map(serde_json::from_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(event_id: &str, sequence: &str) -> KinesisRecord {
        KinesisRecord {
            event_id: event_id.into(),
            partition_key: "k".into(),
            sequence_number: sequence.into(),
            data: Vec::new(),
            approximate_arrival_timestamp_ms: 0,
            encryption_type: None,
        }
    }

    #[test]
    fn user_records_of_an_aggregate_are_named_by_their_sub_sequence_number() {
        let user = record("shardId-000000000000:49:3", "49");
        assert_eq!((user.sub_sequence_number(), user.item_identifier()), (Some(3), "49:3".to_owned()));
        let plain = record("shardId-000000000000:49", "49");
        assert_eq!((plain.sub_sequence_number(), plain.item_identifier()), (None, "49".to_owned()));
        // An event id that only looks like one (a hand-written event).
        assert_eq!(record("49:3", "49").sub_sequence_number(), None);
        assert_eq!(record("shardId-000000000000:48:3", "49").sub_sequence_number(), None);
    }
}
