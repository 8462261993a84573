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
