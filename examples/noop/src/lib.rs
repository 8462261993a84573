//! The smallest handler: accepts every batch and does nothing. The benchmark
//! uses it to measure the host's own cost per invocation.

use eddy_guest::prelude::*;

pub struct Noop;

impl TypedHandler for Noop {
    fn handle(_batch: Batch, _context: Context) -> Result<BatchResponse, String> {
        Ok(BatchResponse { batch_item_failures: Vec::new(), state: None })
    }
}

eddy_guest::export_typed_handler!(Noop);
