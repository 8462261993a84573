//! The cost of KPL de-aggregation (`EventSource.DeaggregateRecords`) per user
//! record: splitting aggregates read from a shard into the records the handler
//! sees (MD5 check, protobuf walk, one copy of each user record's data and key).
//!
//!     cargo bench -p eddy-host --bench kpl
//!
//! Prints, for user records of 100 B and 1 KiB packed 10, 100 and 500 to an
//! aggregate (as the KPL packs them, up to 1 MiB), the time per user record and
//! the throughput; and the cost per record of a stream with no aggregates in
//! it, where the reader only looks at each record's first bytes.

use std::time::Instant;

use eddy::kpl::{self, UserRecord};
use eddy::record::KinesisRecord;

/// User records split per measurement, whatever the aggregate size.
const USER_RECORDS: usize = 200_000;

fn kinesis_record(sequence: usize, data: Vec<u8>) -> KinesisRecord {
    KinesisRecord {
        event_id: format!("shardId-000000000000:{}", 49_000_000_000_000_000_000_000_000u128 + sequence as u128),
        partition_key: "aggregate".into(),
        sequence_number: (49_000_000_000_000_000_000_000_000u128 + sequence as u128).to_string(),
        data,
        approximate_arrival_timestamp_ms: 1_700_000_000_000,
        encryption_type: None,
    }
}

/// Times `deaggregate` over `records` (fresh copies each round, so that building
/// them is not counted); the best of five rounds, in ns per output record.
fn time(records: &[KinesisRecord]) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut out_len = 0;
    for _ in 0..5 {
        let input = records.to_vec();
        let start = Instant::now();
        let out = kpl::deaggregate(input, |_, why| panic!("malformed: {why}"));
        let elapsed = start.elapsed();
        out_len = out.len();
        drop(out);
        best = best.min(elapsed.as_nanos() as f64 / out_len as f64);
    }
    (best, out_len)
}

fn main() {
    println!("KPL de-aggregation, {USER_RECORDS} user records per measurement (best of 5)");
    println!("{:>10} {:>14} {:>14} {:>12}", "user size", "per aggregate", "ns/user rec", "MB/s");
    for size in [100usize, 1024] {
        let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        for per_aggregate in [10usize, 100, 500] {
            let keys: Vec<String> = (0..per_aggregate).map(|i| format!("user-{}", i % 50)).collect();
            let users: Vec<UserRecord> =
                keys.iter().map(|k| UserRecord { partition_key: k, explicit_hash_key: None, data: &payload }).collect();
            let aggregate = kpl::aggregate(&users);
            let records: Vec<KinesisRecord> =
                (0..USER_RECORDS / per_aggregate).map(|i| kinesis_record(i, aggregate.clone())).collect();
            let (ns, count) = time(&records);
            assert_eq!(count, USER_RECORDS);
            let mb_per_s = size as f64 / ns * 1e3;
            println!("{size:>9}B {per_aggregate:>14} {ns:>14.1} {mb_per_s:>12.0}");
        }
    }
    // The format's MD5 digest check alone, over 1 MiB: the floor of the above.
    let block = vec![b'a'; 1 << 20];
    let start = Instant::now();
    let mut digest = 0u8;
    for _ in 0..100 {
        use md5::Digest as _;
        digest ^= md5::Md5::digest(&block)[0];
    }
    let mb_per_s = 100.0 / start.elapsed().as_secs_f64() * 1.048_576;
    println!("the MD5 digest alone: {mb_per_s:.0} MB/s ({digest})");
    let plain: Vec<KinesisRecord> = (0..USER_RECORDS).map(|i| kinesis_record(i, vec![b'{'; 100])).collect();
    let (ns, _) = time(&plain);
    println!("no aggregates in the stream (100 B records): {ns:.2} ns/record");
}
