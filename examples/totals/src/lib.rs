//! Totals per key: each record's data is a JSON object such as
//! `{"amount": 12.5}`; the handler adds the amounts up per partition key and logs
//! the totals of the batch. A record whose data is not such JSON is reported as a
//! batch item failure, so the host retries from it (and, once retries run out,
//! moves past it).
//!
//! With `TumblingWindowInSeconds` in its manifest, the totals run over the whole
//! window instead: they are the window's state, handed back and forth with the
//! host, and the final invocation of each window logs them.

use std::collections::BTreeMap;

use eddy_guest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Sale {
    amount: f64,
}

pub struct Totals;

impl TypedHandler for Totals {
    fn handle(batch: Batch, context: Context) -> Result<BatchResponse, String> {
        // In a tumbling window the running totals are the window's state.
        let mut totals: BTreeMap<String, f64> = match &batch.window {
            Some(window) => serde_json::from_str(&window.state).map_err(|e| format!("bad window state: {e}"))?,
            None => BTreeMap::new(),
        };
        if let Some(window) = batch.window.as_ref().filter(|w| w.is_final_invoke_for_window) {
            info!(
                "window {}..{} on {}{}: final totals {}",
                window.start_ms,
                window.end_ms,
                batch.shard_id,
                if window.is_window_terminated_early { " (ended early)" } else { "" },
                summary(&totals)
            );
            return Ok(BatchResponse { batch_item_failures: Vec::new(), state: None });
        }
        let mut response = process_kinesis(&batch, |record| {
            let sale: Sale = record.data_as_json()?;
            // Look the key up before inserting it: it is copied only the first time.
            match totals.get_mut(record.partition_key.as_str()) {
                Some(total) => *total += sale.amount,
                None => {
                    totals.insert(record.partition_key.clone(), sale.amount);
                }
            }
            Ok::<_, serde_json::Error>(())
        });
        let (first, last) = batch.records.sequence_range().unwrap_or_default();
        info!(
            "{}: {} records ({first}..{last}) on {}, {} failed; totals {}",
            context.function_name,
            batch.records.len(),
            batch.shard_id,
            response.batch_item_failures.len(),
            summary(&totals)
        );
        if batch.window.is_some() {
            response.state = Some(serde_json::to_string(&totals).map_err(|e| e.to_string())?);
        }
        Ok(response)
    }
}

fn summary(totals: &BTreeMap<String, f64>) -> String {
    totals.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

eddy_guest::export_typed_handler!(Totals);

// Compiled natively, the handler is a plain type: its logic is tested with `cargo test`.
#[cfg(test)]
mod tests {
    use super::*;
    use eddy_guest::{EventSource, KinesisRecord};

    fn record(seq: &str, data: &str) -> KinesisRecord {
        KinesisRecord {
            event_id: format!("shardId-000000000000:{seq}"),
            partition_key: "k".into(),
            sequence_number: seq.into(),
            data: data.as_bytes().to_vec(),
            approximate_arrival_timestamp_ms: 0,
            encryption_type: None,
        }
    }

    #[test]
    fn records_that_are_not_sales_are_batch_item_failures() {
        eddy_guest::log::set_native_output(false);
        let batch = Batch {
            event_source: EventSource::Kinesis,
            event_source_arn: String::new(),
            aws_region: String::new(),
            invoke_identity_arn: String::new(),
            shard_id: "shardId-000000000000".into(),
            records: Records::Kinesis(vec![
                record("1", r#"{"amount": 2}"#),
                record("2", "oops"),
                record("3", r#"{"amount": 1.5}"#),
                record("4", r#"{"price": 1}"#),
            ]),
            window: None,
        };
        let context = Context { function_name: "t".into(), request_id: "r".into(), deadline_ms: 0, memory_limit_mb: 128 };
        let response = Totals::handle(batch, context).expect("handled");
        assert_eq!(response.batch_item_failures, ["2", "4"]);
    }
}
