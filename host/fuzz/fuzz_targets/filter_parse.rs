//! FilterCriteria patterns on arbitrary text: a filter or an error, and a
//! filter matches a record without panicking.
#![no_main]

use eddy::filter::RecordFilter;
use eddy::record::{KinesisRecord, Records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(filter) = RecordFilter::new(&[text.to_owned()]) else { return };
    let records = Records::Kinesis(vec![KinesisRecord {
        event_id: "shardId-000000000000:1".into(),
        partition_key: "pk-1".into(),
        sequence_number: "1".into(),
        data: br#"{"type":"sale","amount":50}"#.to_vec(),
        approximate_arrival_timestamp_ms: 1_700_000_000_000,
        encryption_type: None,
    }]);
    let _ = filter.matches(&records, 0, "us-east-1", "arn:aws:kinesis:us-east-1:1:stream/s");
});
