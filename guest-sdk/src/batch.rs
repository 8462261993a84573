//! The batch processor: run a closure per record and turn the records it fails
//! into `batchItemFailures`, as Lambda Powertools' batch processor does.
//!
//! Every record is offered to the closure, even after a failure: the host retries
//! from the lowest failed sequence number on, so later failures only matter for
//! the log, but a handler with side effects sees each record once per attempt.

use std::fmt::Display;

use crate::record::KinesisRecordExt as _;
use crate::{Batch, BatchResponse, DynamodbRecord, KinesisRecord, Records};

/// Runs `handle` on every Kinesis record of `batch`; each `Err` becomes a batch item
/// failure (and an error log line naming the record). Records of another source
/// are all reported as failed.
pub fn process_kinesis<'a, E: Display>(
    batch: &'a Batch,
    mut handle: impl FnMut(&'a KinesisRecord) -> Result<(), E>,
) -> BatchResponse {
    let mut failures = Vec::new();
    match &batch.records {
        Records::Kinesis(records) => {
            for record in records {
                if let Err(error) = handle(record) {
                    let identifier = record.item_identifier();
                    report(&identifier, &error);
                    failures.push(identifier);
                }
            }
        }
        Records::Dynamodb(records) => {
            crate::error!("this handler expects Kinesis records but got DynamoDB records");
            failures.extend(records.iter().map(|r| r.sequence_number.clone()));
        }
    }
    BatchResponse { batch_item_failures: failures, state: None }
}

/// Runs `handle` on every DynamoDB record of `batch`; each `Err` becomes a batch item
/// failure. Records of another source are all reported as failed.
pub fn process_dynamodb<'a, E: Display>(
    batch: &'a Batch,
    mut handle: impl FnMut(&'a DynamodbRecord) -> Result<(), E>,
) -> BatchResponse {
    let mut failures = Vec::new();
    match &batch.records {
        Records::Dynamodb(records) => {
            for record in records {
                if let Err(error) = handle(record) {
                    report(&record.sequence_number, &error);
                    failures.push(record.sequence_number.clone());
                }
            }
        }
        Records::Kinesis(records) => {
            crate::error!("this handler expects DynamoDB records but got Kinesis records");
            failures.extend(records.iter().map(|r| r.sequence_number.clone()));
        }
    }
    BatchResponse { batch_item_failures: failures, state: None }
}

fn report(sequence_number: &str, error: &dyn Display) {
    crate::log::write(
        crate::log::Level::Error,
        &format!("record failed: {error}"),
        &[("sequence_number", sequence_number)],
    );
}
