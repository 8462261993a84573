//! Forwards each record to the local stream `delivered`, once, however often its
//! batch is delivered: the SDK's `Idempotency` marks each `eventID` done in the
//! key-value table `processed-once` and skips the ones marked.
//!
//! To show it, a record whose data is `crash` makes the first delivery of its
//! batch trap right after forwarding it (as a crash would): the host delivers
//! the batch again, and the records up to the crash are skipped.

use eddy_guest::capability::{kv, streams};
use eddy_guest::idempotency::Idempotency;
use eddy_guest::prelude::*;

pub struct Once;

impl TypedHandler for Once {
    fn handle(batch: Batch, context: Context) -> Result<BatchResponse, String> {
        let Records::Kinesis(records) = &batch.records else {
            return Err("this handler reads Kinesis records".into());
        };
        let processed = Idempotency::new("processed-once", &context);
        let (mut forwarded, mut skipped) = (0, 0);
        for record in records {
            let ran = processed
                .once(&record.event_id, || streams::put_record("delivered", &record.partition_key, &record.data))
                .map_err(|e| e.to_string())?;
            if ran.is_some() { forwarded += 1 } else { skipped += 1 }
            // The demo's crash, once per crash record (the flag is kept in a table
            // too; eventIDs are unique within a stream only, so the key names the function).
            let flag = format!("{}/{}", context.function_name, record.event_id);
            if record.data == b"crash"
                && kv::compare_and_set("once-demo", &flag, None, b"crashed").map_err(|e| e.message().to_owned())?
            {
                panic!("crashing midway through the batch, after {} records", forwarded + skipped);
            }
        }
        info!("{}: forwarded {forwarded}, skipped {skipped} already done", context.function_name);
        Ok(BatchResponse { batch_item_failures: Vec::new(), state: None })
    }
}

eddy_guest::export_typed_handler!(Once);
