//! {{name}}: each record's data is an order as JSON, such as `{"amount": 12.5}`.
//! A record that is not one is reported as a batch item failure, so the host
//! retries from it (and, once retries run out, sends it to the on-failure
//! destination). Build with `eddy build .`; try with
//! `eddy generate-event kinesis --data '{"amount": 3}' > event.json` and
//! `eddy invoke functions/{{name}}.wasm --event event.json`.

use eddy_guest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Order {
    amount: f64,
}

pub struct Handler;

impl TypedHandler for Handler {
    fn handle(batch: Batch, context: Context) -> Result<BatchResponse, String> {
        let mut total = 0.0;
        let response = process_kinesis(&batch, |record| {
            let order: Order = record.data_as_json()?;
            total += order.amount;
            Ok::<_, serde_json::Error>(())
        });
        info!(
            "{}: {} records, {} failed; total {total}",
            context.function_name,
            batch.records.len(),
            response.batch_item_failures.len()
        );
        Ok(response)
    }
}

eddy_guest::export_typed_handler!(Handler);
