//! What an invocation's result means for the batch, by Lambda's rules for
//! `ReportBatchItemFailures` (`host/docs/semantics.md`, "The response"):
//!
//! - success: an empty body, or a JSON value that is empty or falsy (`null`,
//!   `""`, `0`, `false`, `[]`, `{}`), or `batchItemFailures` that is empty or
//!   `null`;
//! - partial failure: `batchItemFailures` lists sequence numbers of the batch;
//!   the batch is checkpointed before the lowest one and retried from there;
//! - failure of the whole batch: a function error, a response that is not JSON,
//!   or an item whose `itemIdentifier` is empty, `null`, missing, misspelled, not a
//!   string, or not a sequence number of the batch.
//!
//! Where Lambda is silent, Eddy decides: any other response that is JSON but
//! neither an object nor an array (say `"ok"` or `1`) fails the batch, since it cannot
//! be the response Lambda expects; an object without `batchItemFailures` (say a
//! tumbling window's `{"state":{}}`) is success. Without `ReportBatchItemFailures`
//! the response is ignored, as Lambda ignores it.

use serde_json::Value;

use crate::record::Records;
use crate::runtime::{HandlerResponse, InvokeError};

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every record is done.
    Success,
    /// The records before `first_failed` are done; the rest are to be retried.
    PartialFailure { first_failed: usize },
    /// No record is done.
    Failure(String),
}

impl Outcome {
    /// A word or two for the invocation's log line.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::PartialFailure { .. } => "partial failure",
            Outcome::Failure(_) => "failure",
        }
    }
}

/// Classifies an invocation's result for a batch of `records`.
pub fn classify(result: &Result<HandlerResponse, InvokeError>, records: &Records, report_batch_item_failures: bool) -> Outcome {
    let response = match result {
        Ok(response) => response,
        Err(error) => return Outcome::Failure(error.to_string()),
    };
    if !report_batch_item_failures {
        return Outcome::Success;
    }
    let identifiers: Vec<&str> = match response {
        HandlerResponse::Typed(r) => r.batch_item_failures.iter().map(String::as_str).collect(),
        HandlerResponse::Json(text) => match json_failures(text) {
            Ok(ids) => return lowest(ids.iter().map(String::as_str), records),
            Err(message) => return Outcome::Failure(message),
        },
    };
    lowest(identifiers.into_iter(), records)
}

/// The `itemIdentifier`s of a JSON response, or why the response fails the batch.
fn json_failures(text: &str) -> Result<Vec<String>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("the response is not valid JSON: {e}"))?;
    let failures = match &value {
        // Every empty or falsy value is success: AWS recorded `""` (a handler's
        // `return ""`), `null`, `[]` and `{}`, and treats `0` and `false` alike.
        Value::Null | Value::Bool(false) => return Ok(Vec::new()),
        Value::Number(n) if n.as_f64() == Some(0.0) => return Ok(Vec::new()),
        Value::String(s) if s.is_empty() => return Ok(Vec::new()),
        Value::Array(items) if items.is_empty() => return Ok(Vec::new()),
        Value::Object(fields) => match fields.get("batchItemFailures") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err("batchItemFailures in the response is not a list".into()),
        },
        _ => return Err(format!("the response {} is not Lambda's batch response", truncate(text))),
    };
    failures
        .iter()
        .map(|item| match item.get("itemIdentifier") {
            Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
            _ => Err(format!("batch item failure {item} has no itemIdentifier that is a non-empty string")),
        })
        .collect()
}

fn lowest<'a>(identifiers: impl Iterator<Item = &'a str>, records: &Records) -> Outcome {
    let mut first_failed: Option<usize> = None;
    for id in identifiers {
        match records.position_of(id) {
            Some(index) => first_failed = Some(first_failed.map_or(index, |f| f.min(index))),
            None => {
                return Outcome::Failure(format!(
                    "batch item failure {:?} is not the sequence number of a record in the batch",
                    truncate(id)
                ))
            }
        }
    }
    match first_failed {
        None => Outcome::Success,
        Some(first_failed) => Outcome::PartialFailure { first_failed },
    }
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(100) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BatchResponse, KinesisRecord};

    fn records(seqs: &[&str]) -> Records {
        Records::Kinesis(
            seqs.iter()
                .map(|s| KinesisRecord {
                    event_id: format!("shardId-000000000000:{s}"),
                    partition_key: "k".into(),
                    sequence_number: (*s).into(),
                    data: vec![],
                    approximate_arrival_timestamp_ms: 0,
                    encryption_type: None,
                })
                .collect(),
        )
    }

    fn json(text: &str) -> Outcome {
        classify(&Ok(HandlerResponse::Json(text.into())), &records(&["10", "11", "12"]), true)
    }

    #[test]
    fn lambdas_success_responses() {
        let falsy = ["\"\"", "0", "0.0", "false"];
        for text in ["", "  ", "null", "[]", "{}", r#"{"batchItemFailures":[]}"#, r#"{"batchItemFailures":null}"#, r#"{"state":{"n":1}}"#]
            .into_iter()
            .chain(falsy)
        {
            assert_eq!(json(text), Outcome::Success, "{text:?}");
        }
    }

    #[test]
    fn the_lowest_failed_sequence_number_wins() {
        assert_eq!(json(r#"{"batchItemFailures":[{"itemIdentifier":"12"},{"itemIdentifier":"11"}]}"#),
                   Outcome::PartialFailure { first_failed: 1 });
        assert_eq!(json(r#"{"batchItemFailures":[{"itemIdentifier":"10"}]}"#), Outcome::PartialFailure { first_failed: 0 });
    }

    #[test]
    fn malformed_identifiers_fail_the_whole_batch() {
        for text in [
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifer":"11"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":11}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"99"}]}"#,
            r#"{"batchItemFailures":"11"}"#,
            "not json",
            r#""ok""#,
            "[1]",
        ] {
            assert!(matches!(json(text), Outcome::Failure(_)), "{text:?} -> {:?}", json(text));
        }
    }

    #[test]
    fn typed_responses_follow_the_same_rules() {
        let batch = records(&["10", "11", "12"]);
        let typed = |ids: &[&str]| {
            classify(
                &Ok(HandlerResponse::Typed(BatchResponse { batch_item_failures: ids.iter().map(|s| (*s).into()).collect(), state: None })),
                &batch,
                true,
            )
        };
        assert_eq!(typed(&[]), Outcome::Success);
        assert_eq!(typed(&["12", "11"]), Outcome::PartialFailure { first_failed: 1 });
        assert!(matches!(typed(&[""]), Outcome::Failure(_)));
        assert!(matches!(typed(&["13"]), Outcome::Failure(_)));
    }

    #[test]
    fn user_records_of_an_aggregate_are_named_by_sequence_and_sub_sequence() {
        let user = |sub: u32| KinesisRecord {
            event_id: format!("shardId-000000000000:20:{sub}"),
            partition_key: "k".into(),
            sequence_number: "20".into(),
            data: vec![],
            approximate_arrival_timestamp_ms: 0,
            encryption_type: None,
        };
        let batch = Records::Kinesis(vec![user(2), user(3), user(4)]);
        let failed = |id: &str| classify(&Ok(HandlerResponse::Json(format!(r#"{{"batchItemFailures":[{{"itemIdentifier":"{id}"}}]}}"#))), &batch, true);
        assert_eq!(failed("20:3"), Outcome::PartialFailure { first_failed: 1 });
        // The bare sequence number names the aggregate: its first user record here.
        assert_eq!(failed("20"), Outcome::PartialFailure { first_failed: 0 });
        for unknown in ["20:1", "20:5", "20:x", "21:3"] {
            assert!(matches!(failed(unknown), Outcome::Failure(_)), "{unknown}");
        }
    }

    #[test]
    fn without_report_batch_item_failures_the_response_is_ignored() {
        let out = classify(&Ok(HandlerResponse::Json("not json".into())), &records(&["1"]), false);
        assert_eq!(out, Outcome::Success);
        let err = classify(&Err(InvokeError::Handler("boom".into())), &records(&["1"]), false);
        assert!(matches!(err, Outcome::Failure(m) if m.contains("boom")));
    }
}
