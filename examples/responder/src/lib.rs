//! Responder, a handler of the JSON world that answers what it is told: the
//! response is the batch's first record's text (a Kinesis record's decoded data,
//! a DynamoDB record's `respond` string attribute in its NewImage), with `$SEQ0`,
//! `$SEQ1`, ... replaced by the batch's sequence numbers and `$ITEM0`, `$ITEM1`,
//! ... by its records' item identifiers (`<sequence>:<sub>` for a user record
//! of a KPL aggregate, `kinesis.subSequenceNumber`); the text `raise` makes
//! it fail instead, as a handler that throws. The tests use it to check every
//! response shape of Lambda's `ReportBatchItemFailures` rules, and the failure
//! records each leaves, against real streams.

use base64::Engine as _;
use eddy_guest::prelude::*;
use serde_json::Value;

pub struct Responder;

impl JsonHandler for Responder {
    fn handle(event: &str, _context: Context) -> Result<String, String> {
        let event: Value = serde_json::from_str(event).map_err(|e| format!("bad event: {e}"))?;
        let records = event["Records"].as_array().ok_or("event has no Records array")?;
        let sequence = |r: &Value| {
            let kinesis = r["kinesis"]["sequenceNumber"].as_str();
            kinesis.or(r["dynamodb"]["SequenceNumber"].as_str()).unwrap_or_default().to_owned()
        };
        let first = records.first().ok_or("empty batch")?;
        let mut response = match first["kinesis"]["data"].as_str() {
            Some(data) => {
                let text = base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| format!("data is not base64: {e}"))?;
                String::from_utf8(text).map_err(|_| "data is not UTF-8".to_owned())?
            }
            None => first["dynamodb"]["NewImage"]["respond"]["S"].as_str().unwrap_or_default().to_owned(),
        };
        if response == "raise" {
            return Err("raised, as the record asked".to_owned());
        }
        let item = |r: &Value| match r["kinesis"]["subSequenceNumber"].as_u64() {
            Some(sub) => format!("{}:{sub}", sequence(r)),
            None => sequence(r),
        };
        // Highest index first, so that $SEQ1 does not eat the start of $SEQ10.
        for (i, record) in records.iter().enumerate().rev() {
            response = response.replace(&format!("$SEQ{i}"), &sequence(record));
            response = response.replace(&format!("$ITEM{i}"), &item(record));
        }
        info!("answered {response}");
        Ok(response)
    }
}

eddy_guest::export_json_handler!(Responder);
