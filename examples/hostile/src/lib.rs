//! A misbehaving handler, for the tests: what it does depends on the first
//! record's data.
//! - `loop`: spins forever (the host's timeout must stop it);
//! - `oom`: allocates without bound (the memory limit must stop it);
//! - `trap`: panics;
//! - `error`: returns an error;
//! - anything else: succeeds and logs the data.

use eddy_guest::prelude::*;

pub struct Hostile;

impl TypedHandler for Hostile {
    fn handle(batch: Batch, _context: Context) -> Result<BatchResponse, String> {
        let Records::Kinesis(records) = &batch.records else {
            return Err("expected Kinesis records".into());
        };
        let first = records.first().map(|r| r.data.as_slice()).unwrap_or_default();
        match first {
            b"loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            b"oom" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            b"trap" => panic!("asked to trap"),
            b"error" => Err("asked to fail".into()),
            _ => {
                for record in records {
                    info!("ok {}", String::from_utf8_lossy(&record.data));
                }
                Ok(BatchResponse { batch_item_failures: Vec::new(), state: None })
            }
        }
    }
}

eddy_guest::export_typed_handler!(Hostile);
