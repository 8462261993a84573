//! `eddy invoke`'s judgement: what a mapping with `ReportBatchItemFailures`
//! would do with one invocation's result, by the host's own rules
//! ([`crate::mapping::outcome`]), and the error as Lambda's runtimes print it.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::mapping::outcome::{Outcome, classify};
use crate::record::{KinesisRecord, Records};
use crate::runtime::{HandlerResponse, InvokeError};

/// How the batch would end.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every record is done: exit 0.
    Succeeds,
    /// The handler raised, trapped, timed out or ran out of memory: the whole
    /// batch is retried (`functionError: "Unhandled"`): exit 1.
    FunctionError(String),
    /// `batchItemFailures` names records: the batch is checkpointed before the
    /// lowest and retried from it: exit 2.
    FailsAt { index: usize, sequence_number: String },
    /// The response fails the whole batch (not JSON, an empty, missing or unknown
    /// `itemIdentifier`, ...): exit 3.
    InvalidResponse(String),
}

impl Verdict {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Verdict::Succeeds => 0,
            Verdict::FunctionError(_) => 1,
            Verdict::FailsAt { .. } => 2,
            Verdict::InvalidResponse(_) => 3,
        })
    }

    /// One line for the user.
    pub fn describe(&self, records: &Records) -> String {
        let n = records.len();
        let rule = "as a mapping with ReportBatchItemFailures judges it; without, only a function error fails the batch";
        match self {
            Verdict::Succeeds if n == 1 => format!("eddy: the batch succeeds: its record is done ({rule})"),
            Verdict::Succeeds => format!("eddy: the batch succeeds: all {n} records are done ({rule})"),
            Verdict::FunctionError(message) => {
                format!("eddy: the batch fails whole, as a function error (functionError \"Unhandled\"): {message}")
            }
            Verdict::FailsAt { index, sequence_number } => format!(
                "eddy: the batch fails at sequence number {sequence_number} (record {} of {n}): the {index} before it are \
                 checkpointed, and it and the {} after it are retried ({rule})",
                index + 1,
                n - index - 1
            ),
            Verdict::InvalidResponse(message) => {
                format!("eddy: the batch fails whole, for its response (functionError null): {message} ({rule})")
            }
        }
    }
}

/// The verdict on `result` for a batch of `records`.
pub fn judge(result: &Result<HandlerResponse, InvokeError>, records: &Records) -> Verdict {
    if let Err(error) = result {
        return Verdict::FunctionError(error.to_string());
    }
    match classify(result, records, true) {
        Outcome::Success => Verdict::Succeeds,
        Outcome::PartialFailure { first_failed } => Verdict::FailsAt {
            index: first_failed,
            sequence_number: records.sequence_number(first_failed).unwrap_or_default().to_owned(),
        },
        Outcome::Failure(message) => Verdict::InvalidResponse(message),
    }
}

/// The sequence numbers of an event's records (Kinesis' `kinesis.sequenceNumber`,
/// DynamoDB's `dynamodb.SequenceNumber`), which are all the judgement needs.
pub fn event_records(event: &str) -> Records {
    let value: Value = serde_json::from_str(event).unwrap_or(Value::Null);
    let records = value["Records"].as_array().map(Vec::as_slice).unwrap_or_default();
    Records::Kinesis(
        records
            .iter()
            .map(|r| {
                let sequence = r["kinesis"]["sequenceNumber"].as_str().or(r["dynamodb"]["SequenceNumber"].as_str());
                KinesisRecord {
                    event_id: String::new(),
                    partition_key: String::new(),
                    sequence_number: sequence.unwrap_or_default().to_owned(),
                    data: Vec::new(),
                    approximate_arrival_timestamp_ms: 0,
                    encryption_type: None,
                }
            })
            .collect(),
    )
}

/// The error as Lambda's runtimes report it: `{"errorMessage", "errorType",
/// "stackTrace"}`. A handler's own report (the Python and JavaScript SDKs send
/// Lambda's shape) is kept as it is; the host's errors name their kind.
pub fn error_response(error: &InvokeError) -> Value {
    if let InvokeError::Handler(text) = error
        && let Ok(Value::Object(reported)) = serde_json::from_str::<Value>(text)
        && reported.get("errorMessage").is_some_and(Value::is_string)
    {
        let mut response = json!({
            "errorMessage": reported["errorMessage"],
            "errorType": reported.get("errorType").cloned().unwrap_or(json!("Error")),
            "stackTrace": reported.get("stackTrace").cloned().unwrap_or(json!([])),
        });
        if let Some(cause) = reported.get("cause") {
            response["cause"] = cause.clone();
        }
        return response;
    }
    let message = match error {
        InvokeError::Handler(text) => text.clone(),
        other => other.to_string(),
    };
    json!({ "errorMessage": message, "errorType": error.kind(), "stackTrace": [] })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> &'static str {
        r#"{"Records":[{"kinesis":{"sequenceNumber":"10"}},{"kinesis":{"sequenceNumber":"11"}},{"dynamodb":{"SequenceNumber":"12"}}]}"#
    }

    fn verdict(response: &str) -> Verdict {
        judge(&Ok(HandlerResponse::Json(response.into())), &event_records(event()))
    }

    #[test]
    fn each_outcome_has_its_verdict_and_exit_code() {
        assert_eq!(verdict("null"), Verdict::Succeeds);
        assert_eq!(verdict(r#"{"batchItemFailures":[]}"#), Verdict::Succeeds);
        assert_eq!(
            verdict(r#"{"batchItemFailures":[{"itemIdentifier":"12"},{"itemIdentifier":"11"}]}"#),
            Verdict::FailsAt { index: 1, sequence_number: "11".into() }
        );
        assert!(matches!(verdict(r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#), Verdict::InvalidResponse(_)));
        assert!(matches!(verdict(r#"{"batchItemFailures":[{"itemIdentifier":"99"}]}"#), Verdict::InvalidResponse(_)));
        let error = judge(&Err(InvokeError::Handler("boom".into())), &event_records(event()));
        assert!(matches!(error, Verdict::FunctionError(_)));
        let codes: Vec<ExitCode> = [
            Verdict::Succeeds,
            error,
            Verdict::FailsAt { index: 0, sequence_number: "10".into() },
            Verdict::InvalidResponse(String::new()),
        ]
        .iter()
        .map(Verdict::exit_code)
        .collect();
        assert_eq!(codes, [ExitCode::from(0), ExitCode::from(1), ExitCode::from(2), ExitCode::from(3)]);
        let line = Verdict::FailsAt { index: 1, sequence_number: "11".into() }.describe(&event_records(event()));
        assert!(line.contains("sequence number 11 (record 2 of 3)"), "{line}");
    }

    #[test]
    fn errors_are_printed_as_lambdas_runtimes_print_them() {
        let python = InvokeError::Handler(r#"{"errorType": "ValueError", "errorMessage": "not a sale"}"#.into());
        assert_eq!(error_response(&python), json!({"errorMessage": "not a sale", "errorType": "ValueError", "stackTrace": []}));
        let plain = error_response(&InvokeError::Handler("asked to fail".into()));
        assert_eq!(plain, json!({"errorMessage": "asked to fail", "errorType": "handler_error", "stackTrace": []}));
        let timeout = error_response(&InvokeError::Timeout(std::time::Duration::from_secs(1)));
        assert_eq!(timeout["errorType"], "timeout");
        assert!(timeout["errorMessage"].as_str().is_some_and(|m| m.contains("timed out")));
    }
}
