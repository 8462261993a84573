//! Totals per key: each record's data is a JSON object such as
//! `{"amount": 12.5}`; the handler adds the amounts up per partition key and logs
//! the totals of the batch. A record whose data is not such JSON is reported as a
//! batch item failure, so the host retries from it (and, once retries run out,
//! moves past it).

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
        let mut totals: BTreeMap<&str, f64> = BTreeMap::new();
        let response = process_kinesis(&batch, |record| {
            let sale: Sale = record.data_as_json()?;
            *totals.entry(record.partition_key.as_str()).or_default() += sale.amount;
            Ok::<_, serde_json::Error>(())
        });
        // Keys borrow from the batch, so the totals are logged before it is dropped.
        let summary: Vec<String> = totals.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let (first, last) = sequence_range(&batch);
        info!(
            "{}: {} records ({first}..{last}) on {}, {} failed; totals {}",
            context.function_name,
            batch_len(&batch),
            batch.shard_id,
            response.batch_item_failures.len(),
            summary.join(" ")
        );
        Ok(response)
    }
}

/// The first and last sequence numbers of the batch.
fn sequence_range(batch: &Batch) -> (&str, &str) {
    match &batch.records {
        Records::Kinesis(r) => (
            r.first().map_or("", |r| r.sequence_number.as_str()),
            r.last().map_or("", |r| r.sequence_number.as_str()),
        ),
        Records::Dynamodb(r) => (
            r.first().map_or("", |r| r.sequence_number.as_str()),
            r.last().map_or("", |r| r.sequence_number.as_str()),
        ),
    }
}

fn batch_len(batch: &Batch) -> usize {
    match &batch.records {
        Records::Kinesis(r) => r.len(),
        Records::Dynamodb(r) => r.len(),
    }
}

eddy_guest::export_typed_handler!(Totals);
