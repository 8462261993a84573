//! Responder, a handler of the JSON world that answers what it is told: the
//! response is the decoded data of the batch's first record, with `$SEQ0`,
//! `$SEQ1`, ... replaced by the batch's sequence numbers. The tests use it to check
//! every response shape of Lambda's `ReportBatchItemFailures` rules against a real
//! stream.

use base64::Engine as _;
use eddy_guest::prelude::*;
use serde_json::Value;

pub struct Responder;

impl JsonHandler for Responder {
    fn handle(event: &str, _context: Context) -> Result<String, String> {
        let event: Value = serde_json::from_str(event).map_err(|e| format!("bad event: {e}"))?;
        let records = event["Records"].as_array().ok_or("event has no Records array")?;
        let sequence = |r: &Value| r["kinesis"]["sequenceNumber"].as_str().unwrap_or_default().to_owned();
        let first = records.first().ok_or("empty batch")?;
        let template = base64::engine::general_purpose::STANDARD
            .decode(first["kinesis"]["data"].as_str().unwrap_or_default())
            .map_err(|e| format!("data is not base64: {e}"))?;
        let mut response = String::from_utf8(template).map_err(|_| "data is not UTF-8".to_owned())?;
        // Highest index first, so that $SEQ1 does not eat the start of $SEQ10.
        for (i, record) in records.iter().enumerate().rev() {
            response = response.replace(&format!("$SEQ{i}"), &sequence(record));
        }
        info!("answered {response}");
        Ok(response)
    }
}

eddy_guest::export_json_handler!(Responder);
