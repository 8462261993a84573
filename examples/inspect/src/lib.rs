//! Inspect, a handler of the JSON world: it receives Lambda's event JSON exactly as
//! a Lambda function would, logs each Kinesis record's decoded text (reporting one
//! whose data is not UTF-8 text as a batch item failure) and each DynamoDB
//! record's change: its event name, keys and images.

use base64::Engine as _;
use eddy_guest::prelude::*;
use serde_json::Value;

pub struct Inspect;

impl JsonHandler for Inspect {
    fn handle(event: &str, context: Context) -> Result<String, String> {
        let event: Value = serde_json::from_str(event).map_err(|e| format!("bad event: {e}"))?;
        let records = event["Records"].as_array().ok_or("event has no Records array")?;
        let mut failed = Vec::new();
        for record in records {
            if record["eventSource"] == "aws:dynamodb" {
                let change = &record["dynamodb"];
                let image = |name: &str| change.get(name).map_or("-".to_owned(), Value::to_string);
                info!(
                    "{} {} [{}] keys={} new={} old={}",
                    record["eventID"].as_str().unwrap_or_default(),
                    record["eventName"].as_str().unwrap_or_default(),
                    context.request_id,
                    change["Keys"],
                    image("NewImage"),
                    image("OldImage")
                );
                continue;
            }
            let sequence = record["kinesis"]["sequenceNumber"].as_str().unwrap_or_default();
            let data = record["kinesis"]["data"].as_str().unwrap_or_default();
            let text = base64::engine::general_purpose::STANDARD
                .decode(data)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            match text {
                Some(text) => info!(
                    "{} {} [{}] {}",
                    record["eventID"].as_str().unwrap_or_default(),
                    record["kinesis"]["partitionKey"].as_str().unwrap_or_default(),
                    context.request_id,
                    text
                ),
                None => {
                    warn!("record {sequence} is not UTF-8 text");
                    failed.push(sequence.to_owned());
                }
            }
        }
        Ok(eddy_guest::json::response(&failed))
    }
}

eddy_guest::export_json_handler!(Inspect);
