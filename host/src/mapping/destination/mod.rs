//! On-failure destinations (`DestinationConfig.OnFailure`): when a batch is
//! discarded, because its retries ran out or its records grew too old, a record
//! describing it goes here, in the shape Lambda writes (`host/docs/semantics.md`, "Failure records"). The
//! shard moves on only once the destination has accepted the record.

pub mod sink;


use serde_json::{Value, json};

use crate::record::{Batch, Records};

pub use sink::FailureSink;

/// Why a batch was discarded: Lambda's `condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `MaximumRetryAttempts` spent; how the last attempt ended decides the
    /// record's `functionError`.
    RetryAttemptsExhausted { last: LastAttempt },
    RecordAgeExceeded,
}

/// How a batch's last invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastAttempt {
    /// The handler raised, trapped or timed out: `"functionError": "Unhandled"`.
    FunctionError,
    /// The handler returned, and its response failed the batch (batch item
    /// failures, an invalid response): `"functionError": null`, as AWS writes.
    Returned,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::RetryAttemptsExhausted { .. } => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// What is known about a discarded batch.
pub struct Discarded<'a> {
    pub batch: &'a Batch,
    pub condition: Condition,
    pub request_id: &'a str,
    pub function_arn: &'a str,
    /// Invocations of these records so far.
    pub invoke_count: u32,
}

impl Discarded<'_> {
    /// Lambda's `approximateInvokeCount`: the invocations, and always 1 for
    /// records that grew too old, whether or not they were invoked before (AWS
    /// writes 1 there).
    fn approximate_invoke_count(&self) -> u32 {
        match self.condition {
            Condition::RecordAgeExceeded => 1,
            Condition::RetryAttemptsExhausted { .. } => self.invoke_count,
        }
    }
}

/// Lambda's on-failure record for a discarded batch, without the batch's event
/// (the destination adds it as `payload` where it takes one: [`sink::record_text`]).
pub fn failure_record(discarded: &Discarded<'_>) -> Value {
    let batch = discarded.batch;
    let records = &batch.records;
    let first_arrival = records.arrival_ms(0).unwrap_or(0);
    let last_arrival = records.arrival_ms(records.len().saturating_sub(1)).unwrap_or(0);
    // Kinesis' arrival times have milliseconds; DynamoDB's, as its creation
    // times, whole seconds.
    let arrival = |ms: u64| match records {
        Records::Kinesis(_) => crate::event::iso8601(ms),
        Records::Dynamodb(_) => crate::event::iso8601_seconds(ms),
    };
    let batch_info = json!({
        "shardId": batch.shard_id,
        "startSequenceNumber": records.sequence_number(0).unwrap_or_default(),
        "endSequenceNumber": records.sequence_number(records.len().saturating_sub(1)).unwrap_or_default(),
        "approximateArrivalOfFirstRecord": arrival(first_arrival),
        "approximateArrivalOfLastRecord": arrival(last_arrival),
        "batchSize": records.len(),
        "streamArn": batch.event_source_arn,
    });
    let mut record = json!({
        "requestContext": {
            "requestId": discarded.request_id,
            "functionArn": discarded.function_arn,
            "condition": discarded.condition.as_str(),
            "approximateInvokeCount": discarded.approximate_invoke_count(),
        },
        "version": "1.0",
        "timestamp": crate::event::iso8601(crate::store::now_ms()),
    });
    if let Condition::RetryAttemptsExhausted { last } = discarded.condition {
        let function_error = match last {
            LastAttempt::FunctionError => Value::String("Unhandled".into()),
            LastAttempt::Returned => Value::Null,
        };
        record["responseContext"] = json!({
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": function_error,
        });
    }
    let info_key = match records {
        Records::Kinesis(_) => "KinesisBatchInfo",
        Records::Dynamodb(_) => "DDBStreamBatchInfo",
    };
    record[info_key] = batch_info;
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EventSource, KinesisRecord};

    /// `batch` discarded after `invoke_count` invocations, the last one failing.
    fn exhausted_after_an_error(batch: &Batch, invoke_count: u32) -> Discarded<'_> {
        Discarded {
            batch,
            condition: Condition::RetryAttemptsExhausted { last: LastAttempt::FunctionError },
            request_id: "req-1",
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f",
            invoke_count,
        }
    }

    #[test]
    fn the_failure_record_has_lambdas_fields() {
        let records = (1..=3u64)
            .map(|i| KinesisRecord {
                event_id: format!("shardId-000000000001:{i}"),
                partition_key: "k".into(),
                sequence_number: i.to_string(),
                data: b"x".to_vec(),
                approximate_arrival_timestamp_ms: 1_573_691_886_000 + i,
                encryption_type: None,
            })
            .collect();
        let batch = Batch {
            event_source: EventSource::Kinesis,
            event_source_arn: "arn:aws:kinesis:us-east-1:000000000000:stream/s".into(),
            aws_region: "us-east-1".into(),
            invoke_identity_arn: "arn:aws:iam::000000000000:role/r".into(),
            shard_id: "shardId-000000000001".into(),
            records: Records::Kinesis(records),
            window: None,
        };
        let discarded = exhausted_after_an_error(&batch, 3);
        let record = failure_record(&discarded);
        assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(record["responseContext"]["functionError"], "Unhandled");
        assert_eq!(record["version"], "1.0");
        let info = &record["KinesisBatchInfo"];
        assert_eq!(info["shardId"], "shardId-000000000001");
        assert_eq!(info["startSequenceNumber"], "1");
        assert_eq!(info["endSequenceNumber"], "3");
        assert_eq!(info["batchSize"], 3);
        assert_eq!(info["approximateArrivalOfFirstRecord"], "2019-11-14T00:38:06.001Z");
        assert_eq!(info["streamArn"], "arn:aws:kinesis:us-east-1:000000000000:stream/s");
        assert!(record.get("payload").is_none());

        // The function returned, and its response failed the batch: null.
        let returned = Discarded { condition: Condition::RetryAttemptsExhausted { last: LastAttempt::Returned }, ..discarded };
        let record = failure_record(&returned);
        assert!(record["responseContext"]["functionError"].is_null(), "{record}");
        assert!(record["responseContext"].as_object().is_some_and(|c| c.contains_key("functionError")), "null, not absent");

        let aged = Discarded { condition: Condition::RecordAgeExceeded, invoke_count: 0, ..discarded };
        let record = failure_record(&aged);
        assert!(record.get("responseContext").is_none(), "RecordAgeExceeded has no responseContext");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 1, "AWS writes 1 for records never invoked");
        // And 1 for records that were invoked and retried before they grew too old.
        let aged_after_retries = Discarded { condition: Condition::RecordAgeExceeded, invoke_count: 3, ..discarded };
        let record = failure_record(&aged_after_retries);
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 1, "AWS writes 1 in every RecordAgeExceeded record");
    }

    #[test]
    fn dynamodb_arrival_times_have_whole_seconds() {
        use crate::record::{DynamodbEventName, DynamodbRecord};
        let record = |seq: &str, ms: u64| DynamodbRecord {
            event_id: format!("e{seq}"),
            event_name: DynamodbEventName::Insert,
            sequence_number: seq.into(),
            approximate_creation_date_time_ms: ms,
            keys: r#"{"id":{"S":"1"}}"#.into(),
            new_image: None,
            old_image: None,
            size_bytes: 10,
            stream_view_type: "KEYS_ONLY".into(),
            user_identity_principal: None,
        };
        let batch = Batch {
            event_source: EventSource::Dynamodb,
            event_source_arn: "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2019-11-14T00:00:00.000".into(),
            aws_region: "us-east-1".into(),
            invoke_identity_arn: "arn:aws:iam::000000000000:role/r".into(),
            shard_id: "shardId-00000001573689600000-abcdef12".into(),
            records: Records::Dynamodb(vec![record("100", 1_573_691_886_500), record("200", 1_573_691_887_999)]),
            window: None,
        };
        let discarded = exhausted_after_an_error(&batch, 1);
        let record = failure_record(&discarded);
        let info = &record["DDBStreamBatchInfo"];
        assert_eq!(info["approximateArrivalOfFirstRecord"], "2019-11-14T00:38:06Z", "{info}");
        assert_eq!(info["approximateArrivalOfLastRecord"], "2019-11-14T00:38:07Z", "{info}");
        assert_eq!(info["startSequenceNumber"], "100");
    }

}
