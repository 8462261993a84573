//! The record format producers write, for `eddy put --file` (one JSON object a
//! line) and the admin port's `POST /streams/<name>/records` (Kinesis PutRecords'
//! `{"Records":[...]}`).
//!
//! A record names its partition key and gives its data one of three ways:
//! `{"PartitionKey":"k","Data":"<base64>"}` as Kinesis takes it,
//! `{"PartitionKey":"k","Text":"plain text"}`, or `{"PartitionKey":"k","Json":{...}}`
//! (stored as the JSON's text).

use base64::Engine as _;
use serde::Deserialize;

use crate::source::local::PutRecord;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordIn {
    #[serde(rename = "PartitionKey", alias = "partitionKey")]
    partition_key: String,
    #[serde(rename = "Data", alias = "data", default)]
    data: Option<String>,
    #[serde(rename = "Text", alias = "text", default)]
    text: Option<String>,
    #[serde(rename = "Json", alias = "json", default)]
    json: Option<serde_json::Value>,
}

/// Kinesis PutRecords' request body.
#[derive(Deserialize)]
pub struct PutRecordsRequest {
    #[serde(rename = "Records")]
    records: Vec<serde_json::Value>,
}

/// Turns one record object into a record to put.
pub fn parse_record(value: serde_json::Value) -> Result<PutRecord, String> {
    let r: RecordIn = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let data = match (r.data, r.text, r.json) {
        (Some(b64), None, None) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("Data is not base64: {e}"))?,
        (None, Some(text), None) => text.into_bytes(),
        (None, None, Some(json)) => json.to_string().into_bytes(),
        _ => return Err("give exactly one of Data (base64), Text or Json".into()),
    };
    Ok(PutRecord { partition_key: r.partition_key, data })
}

/// Parses PutRecords' body into records to put.
pub fn parse_put_records(body: &[u8]) -> Result<Vec<PutRecord>, String> {
    let request: PutRecordsRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    request
        .records
        .into_iter()
        .enumerate()
        .map(|(i, r)| parse_record(r).map_err(|e| format!("record {i}: {e}")))
        .collect()
}

/// Parses JSON lines (blank lines skipped) into records to put.
pub fn parse_json_lines(text: &str) -> Result<Vec<PutRecord>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let value = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            parse_record(value).map_err(|e| format!("line {}: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_ways_to_give_data() {
        let records = parse_json_lines(
            "{\"PartitionKey\":\"a\",\"Data\":\"aGk=\"}\n\n{\"partitionKey\":\"b\",\"Text\":\"hi\"}\n{\"PartitionKey\":\"c\",\"Json\":{\"n\":1}}\n",
        )
        .expect("parses");
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].data, b"hi");
        assert_eq!(records[1].data, b"hi");
        assert_eq!(records[1].partition_key, "b");
        assert_eq!(records[2].data, br#"{"n":1}"#);
    }

    #[test]
    fn bad_records_say_where() {
        let err = parse_json_lines("{\"PartitionKey\":\"a\",\"Text\":\"x\"}\nnot json\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        let err = parse_json_lines("{\"PartitionKey\":\"a\",\"Text\":\"x\",\"Data\":\"eA==\"}").unwrap_err();
        assert!(err.contains("exactly one"), "{err}");
        let err = parse_put_records(br#"{"Records":[{"PartitionKey":"a","Data":"%%"}]}"#).unwrap_err();
        assert!(err.contains("record 0") && err.contains("base64"), "{err}");
    }
}
