//! FilterCriteria: EventBridge-style patterns a record must match to be handed to
//! the function. Records that match no pattern are dropped before batching and
//! the checkpoint moves past them.
//!
//! Matching is done by the `quamina` crate, which covers exact values, `null`,
//! `""`, lists of alternatives, `prefix`, `suffix`, `equals-ignore-case`,
//! `anything-but`, `numeric` (comparisons and ranges) and `exists`. It lacks
//! `$or`, so a pattern with `$or` is expanded here into the patterns it stands for
//! (their union), and those are added in its place.
//!
//! What a pattern is matched against, as Lambda does:
//! - Kinesis: `{"kinesisSchemaVersion", "partitionKey", "sequenceNumber",
//!   "approximateArrivalTimestamp", "data"}` with `data` base64-decoded and parsed
//!   as JSON. A record whose data is not JSON can only match patterns that do not
//!   name `data` (Lambda's Kinesis filters name only `data`; Eddy also allows the
//!   metadata fields).
//! - DynamoDB: the record as it appears in the event, images in attribute-value
//!   form (`{"dynamodb":{"NewImage":{"n":{"N":["5"]}}}}`).

use quamina::Quamina;
use serde_json::{Map, Value};

use crate::record::{DynamodbRecord, KinesisRecord, Records};

/// Lambda's limits on FilterCriteria.
pub const MAX_FILTERS: usize = 5;
pub const MAX_PATTERN_CHARS: usize = 4096;
/// A cap on how many patterns one `$or` pattern may expand into.
const MAX_EXPANSION: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("at most {MAX_FILTERS} filters are allowed, found {0}")]
    TooMany(usize),
    #[error("filter {index}: the pattern is {len} characters; at most {MAX_PATTERN_CHARS} are allowed")]
    TooLong { index: usize, len: usize },
    #[error("filter {index}: {message}")]
    Invalid { index: usize, message: String },
}

/// The compiled filters of a mapping.
pub struct RecordFilter {
    /// Every pattern.
    all: Quamina<usize>,
    /// The patterns that do not name `data`: all a Kinesis record whose data is
    /// not JSON can match.
    without_data: Quamina<usize>,
}

impl std::fmt::Debug for RecordFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordFilter").field("patterns", &self.all.pattern_count()).finish()
    }
}

impl RecordFilter {
    /// Compiles the patterns, refusing any that Lambda would refuse.
    pub fn new(patterns: &[String]) -> Result<RecordFilter, FilterError> {
        if patterns.len() > MAX_FILTERS {
            return Err(FilterError::TooMany(patterns.len()));
        }
        let mut all = Quamina::new();
        let mut without_data = Quamina::new();
        // Values per field, over every pattern: the matcher's automaton holds at
        // most 255 transitions per state (quamina panics past that when it
        // first matches), so a mapping is refused before it gets there.
        let mut values_per_field: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (index, text) in patterns.iter().enumerate() {
            let invalid = |message: String| FilterError::Invalid { index, message };
            if text.chars().count() > MAX_PATTERN_CHARS {
                return Err(FilterError::TooLong { index, len: text.chars().count() });
            }
            let pattern: Value = serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
            if !pattern.is_object() || pattern.as_object().is_some_and(Map::is_empty) {
                return Err(invalid("a pattern is a non-empty JSON object".into()));
            }
            let names_data = pattern.get("data").is_some() || names_data_in_or(&pattern);
            for expanded in expand_or(&pattern).map_err(invalid)? {
                count_values(&expanded, String::new(), &mut values_per_field);
                if let Some((field, n)) = values_per_field.iter().find(|(_, n)| **n > MAX_VALUES_PER_FIELD) {
                    return Err(invalid(format!(
                        "the filters give {n} values for {field}; at most {MAX_VALUES_PER_FIELD} in all the filters"
                    )));
                }
                let expanded = expanded.to_string();
                all.add_pattern(index, &expanded).map_err(|e| invalid(e.to_string()))?;
                if !names_data {
                    without_data.add_pattern(index, &expanded).map_err(|e| invalid(e.to_string()))?;
                }
            }
        }
        Ok(RecordFilter { all, without_data })
    }

    /// Keeps the records that match, in order; returns how many were dropped.
    pub fn retain(&self, records: &mut Records, aws_region: &str, event_source_arn: &str) -> usize {
        let before = records.len();
        match records {
            Records::Kinesis(r) => r.retain(|r| self.matches_kinesis(r)),
            Records::Dynamodb(r) => r.retain(|r| self.matches_dynamodb(r, aws_region, event_source_arn)),
        }
        before - records.len()
    }

    /// Whether the record at `index` matches.
    pub fn matches(&self, records: &Records, index: usize, aws_region: &str, event_source_arn: &str) -> bool {
        match records {
            Records::Kinesis(r) => r.get(index).is_some_and(|r| self.matches_kinesis(r)),
            Records::Dynamodb(r) => r.get(index).is_some_and(|r| self.matches_dynamodb(r, aws_region, event_source_arn)),
        }
    }

    pub fn matches_kinesis(&self, record: &KinesisRecord) -> bool {
        let data_is_json = serde_json::from_slice::<serde::de::IgnoredAny>(&record.data).is_ok();
        let mut text = format!(
            r#"{{"kinesisSchemaVersion":"1.0","partitionKey":{},"sequenceNumber":"{}","approximateArrivalTimestamp":{}"#,
            Value::String(record.partition_key.clone()),
            record.sequence_number,
            record.approximate_arrival_timestamp_ms as f64 / 1000.0,
        );
        let matcher = if data_is_json {
            text.push_str(r#","data":"#);
            // Valid JSON is valid UTF-8.
            text.push_str(std::str::from_utf8(&record.data).unwrap_or("null"));
            &self.all
        } else {
            &self.without_data
        };
        text.push('}');
        has_matches(matcher, text.as_bytes())
    }

    pub fn matches_dynamodb(&self, record: &DynamodbRecord, aws_region: &str, event_source_arn: &str) -> bool {
        let text = crate::event::dynamodb_record_json(aws_region, event_source_arn, record);
        has_matches(&self.all, text.as_bytes())
    }
}

/// The matcher's answer. Should it panic (on a limit of its own that `new`
/// does not know of), the shard loop goes on and the record is delivered:
/// better a record the function did not ask for than one lost.
fn has_matches(matcher: &Quamina<usize>, event: &[u8]) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| matcher.has_matches(event))) {
        Ok(result) => result.unwrap_or(false),
        Err(_) => {
            tracing::error!("the filter's matcher failed on a record; delivering the record");
            true
        }
    }
}

/// The most values (and matchers) all the filters may give one field.
const MAX_VALUES_PER_FIELD: usize = 200;

/// Adds the number of values each field's list holds in `pattern` to `counts`.
fn count_values(pattern: &Value, path: String, counts: &mut std::collections::HashMap<String, usize>) {
    match pattern {
        Value::Object(fields) => {
            for (name, value) in fields {
                let path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                count_values(value, path, counts);
            }
        }
        Value::Array(values) => *counts.entry(path).or_default() += values.len(),
        _ => {}
    }
}

fn names_data_in_or(pattern: &Value) -> bool {
    pattern
        .get("$or")
        .and_then(Value::as_array)
        .is_some_and(|alternatives| alternatives.iter().any(|a| a.get("data").is_some() || names_data_in_or(a)))
}

/// The `$or`-free patterns whose union is `pattern`.
fn expand_or(pattern: &Value) -> Result<Vec<Value>, String> {
    let Value::Object(fields) = pattern else {
        return Ok(vec![pattern.clone()]);
    };
    // Each field contributes its alternatives; the result is their product.
    let mut results = vec![Map::new()];
    for (key, value) in fields {
        let alternatives: Vec<Map<String, Value>> = if key == "$or" {
            let Value::Array(options) = value else {
                return Err("\"$or\" takes an array of patterns".into());
            };
            if options.len() < 2 {
                return Err("\"$or\" needs at least two patterns".into());
            }
            let mut out = Vec::new();
            for option in options {
                if !option.is_object() {
                    return Err("each pattern in \"$or\" is a JSON object".into());
                }
                for expanded in expand_or(option)? {
                    if let Value::Object(map) = expanded {
                        out.push(map);
                    }
                }
            }
            out
        } else if value.is_object() {
            expand_or(value)?.into_iter().map(|v| Map::from_iter([(key.clone(), v)])).collect()
        } else {
            vec![Map::from_iter([(key.clone(), value.clone())])]
        };
        let mut product = Vec::with_capacity(results.len() * alternatives.len());
        for base in &results {
            for alternative in &alternatives {
                let mut merged = base.clone();
                for (k, v) in alternative {
                    merge(&mut merged, k, v.clone());
                }
                product.push(merged);
            }
        }
        if product.len() > MAX_EXPANSION {
            return Err(format!("\"$or\" expands into more than {MAX_EXPANSION} patterns"));
        }
        results = product;
    }
    Ok(results.into_iter().map(Value::Object).collect())
}

/// Adds a field to a pattern; two objects under one key (from `$or` and a sibling)
/// merge field by field.
fn merge(into: &mut Map<String, Value>, key: &str, value: Value) {
    match (into.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(more)) => {
            for (k, v) in more {
                merge(existing, &k, v);
            }
        }
        (_, value) => {
            into.insert(key.to_owned(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::DynamodbEventName;

    fn kinesis(data: &str) -> KinesisRecord {
        KinesisRecord {
            event_id: "shardId-000000000000:1".into(),
            partition_key: "pk-1".into(),
            sequence_number: "1".into(),
            data: data.as_bytes().to_vec(),
            approximate_arrival_timestamp_ms: 1_700_000_000_000,
            encryption_type: None,
        }
    }

    fn dynamodb(name: DynamodbEventName, new_image: Option<&str>) -> DynamodbRecord {
        DynamodbRecord {
            event_id: "e1".into(),
            event_name: name,
            sequence_number: "100".into(),
            approximate_creation_date_time_ms: 1_700_000_000_000,
            keys: r#"{"id":{"S":"a"}}"#.into(),
            new_image: new_image.map(str::to_owned),
            old_image: None,
            size_bytes: 10,
            stream_view_type: "NEW_IMAGE".into(),
            user_identity_principal: None,
        }
    }

    fn filter(pattern: &str) -> RecordFilter {
        RecordFilter::new(&[pattern.to_owned()]).unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    /// Every operator of Lambda's filter syntax, against Kinesis JSON data.
    #[test]
    fn operators_on_kinesis_json_data() {
        let cases: &[(&str, &str, bool)] = &[
            (r#"{"data":{"type":["sale"]}}"#, r#"{"type":"sale"}"#, true),
            (r#"{"data":{"type":["sale"]}}"#, r#"{"type":"refund"}"#, false),
            (r#"{"data":{"type":["sale","refund"]}}"#, r#"{"type":"refund"}"#, true),
            (r#"{"data":{"note":[null]}}"#, r#"{"note":null}"#, true),
            (r#"{"data":{"note":[null]}}"#, r#"{"note":"x"}"#, false),
            (r#"{"data":{"note":[""]}}"#, r#"{"note":""}"#, true),
            (r#"{"data":{"note":[""]}}"#, r#"{"note":"x"}"#, false),
            (r#"{"data":{"type":[{"equals-ignore-case":"SALE"}]}}"#, r#"{"type":"Sale"}"#, true),
            (r#"{"data":{"type":[{"prefix":"sa"}]}}"#, r#"{"type":"sale"}"#, true),
            (r#"{"data":{"type":[{"prefix":"re"}]}}"#, r#"{"type":"sale"}"#, false),
            (r#"{"data":{"type":[{"suffix":"le"}]}}"#, r#"{"type":"sale"}"#, true),
            (r#"{"data":{"type":[{"anything-but":["sale"]}]}}"#, r#"{"type":"refund"}"#, true),
            (r#"{"data":{"type":[{"anything-but":["sale"]}]}}"#, r#"{"type":"sale"}"#, false),
            (r#"{"data":{"n":[{"numeric":["=",5]}]}}"#, r#"{"n":5}"#, true),
            (r#"{"data":{"n":[{"numeric":["=",5]}]}}"#, r#"{"n":5.0}"#, true),
            (r#"{"data":{"n":[{"numeric":[">",10,"<=",20]}]}}"#, r#"{"n":20}"#, true),
            (r#"{"data":{"n":[{"numeric":[">",10,"<=",20]}]}}"#, r#"{"n":10}"#, false),
            (r#"{"data":{"n":[{"numeric":["<",0]}]}}"#, r#"{"n":-1.5}"#, true),
            (r#"{"data":{"n":[{"numeric":[">=",100]}]}}"#, r#"{"n":99.9}"#, false),
            (r#"{"data":{"user":[{"exists":true}]}}"#, r#"{"user":"ann"}"#, true),
            (r#"{"data":{"user":[{"exists":true}]}}"#, r#"{"type":"sale"}"#, false),
            (r#"{"data":{"user":[{"exists":false}]}}"#, r#"{"type":"sale"}"#, true),
            (r#"{"data":{"user":[{"exists":false}]}}"#, r#"{"user":"ann"}"#, false),
            (r#"{"data":{"type":["sale"],"n":[{"numeric":[">",1]}]}}"#, r#"{"type":"sale","n":0}"#, false),
            (r#"{"data":{"type":["sale"],"n":[{"numeric":[">",1]}]}}"#, r#"{"type":"sale","n":2}"#, true),
            (r#"{"data":{"a":{"b":["deep"]}}}"#, r#"{"a":{"b":"deep"}}"#, true),
            (r#"{"data":{"$or":[{"type":["sale"]},{"n":[{"numeric":[">",100]}]}]}}"#, r#"{"type":"x","n":101}"#, true),
            (r#"{"data":{"$or":[{"type":["sale"]},{"n":[{"numeric":[">",100]}]}]}}"#, r#"{"type":"x","n":1}"#, false),
            (r#"{"$or":[{"data":{"type":["sale"]}},{"partitionKey":["pk-1"]}]}"#, r#"{"type":"x"}"#, true),
            (r#"{"partitionKey":[{"prefix":"pk-"}]}"#, r#"{"type":"x"}"#, true),
        ];
        for (pattern, data, expected) in cases {
            assert_eq!(filter(pattern).matches_kinesis(&kinesis(data)), *expected, "{pattern} on {data}");
        }
    }

    #[test]
    fn non_json_data_is_dropped_by_patterns_that_name_data_only() {
        let record = kinesis("plain text, not JSON");
        assert!(!filter(r#"{"data":{"type":[{"exists":false}]}}"#).matches_kinesis(&record));
        assert!(filter(r#"{"partitionKey":["pk-1"]}"#).matches_kinesis(&record));
        let either = RecordFilter::new(&[r#"{"data":{"t":["x"]}}"#.into(), r#"{"partitionKey":["pk-1"]}"#.into()]).unwrap();
        assert!(either.matches_kinesis(&record), "filters are ORed");
    }

    #[test]
    fn dynamodb_patterns_use_type_descriptors() {
        let insert = dynamodb(DynamodbEventName::Insert, Some(r#"{"id":{"S":"a"},"n":{"N":"5"},"tag":{"S":"red"}}"#));
        let cases: &[(&str, bool)] = &[
            (r#"{"eventName":["INSERT"]}"#, true),
            (r#"{"eventName":["REMOVE"]}"#, false),
            (r#"{"dynamodb":{"NewImage":{"tag":{"S":["red"]}}}}"#, true),
            (r#"{"dynamodb":{"NewImage":{"tag":{"S":[{"prefix":"bl"}]}}}}"#, false),
            // N values are strings in the event, so they match as strings.
            (r#"{"dynamodb":{"NewImage":{"n":{"N":["5"]}}}}"#, true),
            (r#"{"dynamodb":{"NewImage":{"n":{"N":[{"numeric":[">",1]}]}}}}"#, false),
            (r#"{"dynamodb":{"Keys":{"id":{"S":["a"]}}}}"#, true),
            (r#"{"dynamodb":{"OldImage":{"id":[{"exists":true}]}}}"#, false),
            (r#"{"$or":[{"eventName":["REMOVE"]},{"dynamodb":{"NewImage":{"tag":{"S":["red"]}}}}]}"#, true),
        ];
        for (pattern, expected) in cases {
            assert_eq!(filter(pattern).matches_dynamodb(&insert, "r", "arn"), *expected, "{pattern}");
        }
    }

    #[test]
    fn retain_keeps_order_and_counts_drops() {
        let f = filter(r#"{"data":{"keep":[true]}}"#);
        let mut records = Records::Kinesis(vec![
            kinesis(r#"{"keep":true,"i":1}"#),
            kinesis(r#"{"keep":false}"#),
            kinesis("not json"),
            kinesis(r#"{"keep":true,"i":2}"#),
        ]);
        assert_eq!(f.retain(&mut records, "r", "arn"), 2);
        let Records::Kinesis(kept) = records else { panic!() };
        assert_eq!(kept.iter().map(|r| r.data.clone()).collect::<Vec<_>>(), [br#"{"keep":true,"i":1}"#.to_vec(), br#"{"keep":true,"i":2}"#.to_vec()]);
    }

    #[test]
    fn invalid_patterns_are_refused_with_their_index() {
        for (patterns, expected) in [
            (vec!["not json".to_owned()], "filter 0: not JSON"),
            (vec![r#"{"data":{"t":["x"]}}"#.to_owned(), r#"["x"]"#.to_owned()], "filter 1: a pattern is a non-empty JSON object"),
            (vec![r#"{"t":"x"}"#.to_owned()], "filter 0"),
            (vec![r#"{"$or":[{"t":["x"]}]}"#.to_owned()], "at least two"),
            (vec![r#"{"t":["x"]}"#.to_owned(); 6], "at most 5 filters"),
            (vec![format!(r#"{{"t":["{}"]}}"#, "x".repeat(4100))], "at most 4096"),
        ] {
            let err = RecordFilter::new(&patterns).unwrap_err().to_string();
            assert!(err.contains(expected), "{patterns:?}: {err}");
        }
    }

    /// Found by `examples/fuzz_parsers.rs`: a numeric matcher beside 300 plain
    /// numbers in one list made the matcher panic at its first record. Such
    /// filters are refused; up to the limit, they match.
    #[test]
    fn a_field_with_too_many_values_is_refused_and_one_within_the_limit_matches() {
        let pattern = |n: usize| {
            let numbers = vec!["10"; n].join(",");
            format!(r#"{{"data":{{"amount":[{{"numeric":[">",10,"<=",100]}},{numbers},120]}}}}"#)
        };
        let err = RecordFilter::new(&[pattern(300)]).unwrap_err().to_string();
        assert!(err.contains("302 values for data.amount; at most 200"), "{err}");
        // Spread over several filters, the values count together.
        let err = RecordFilter::new(&[pattern(120), pattern(120)]).unwrap_err().to_string();
        assert!(err.contains("values for data.amount"), "{err}");
        let filter = RecordFilter::new(&[pattern(197)]).expect("within the limit");
        let records = Records::Kinesis(vec![kinesis(r#"{"amount":50}"#), kinesis(r#"{"amount":5}"#)]);
        assert!(filter.matches(&records, 0, "us-east-1", "arn:aws:kinesis:us-east-1:1:stream/s"));
        assert!(!filter.matches(&records, 1, "us-east-1", "arn:aws:kinesis:us-east-1:1:stream/s"));
        // 255 transitions is the matcher's limit: 200 distinct strings work too.
        let strings: Vec<String> = (0..200).map(|i| format!("\"v{i}\"")).collect();
        let filter = RecordFilter::new(&[format!(r#"{{"data":{{"s":[{}]}}}}"#, strings.join(","))]).expect("valid");
        let records = Records::Kinesis(vec![kinesis(r#"{"s":"v199"}"#)]);
        assert!(filter.matches(&records, 0, "us-east-1", "arn:aws:kinesis:us-east-1:1:stream/s"));
    }

}
