//! The Kinesis Producer Library's aggregated record format, and splitting an
//! aggregate back into its user records as the Kinesis Client Library does.
//!
//! An aggregate is one Kinesis record whose data is
//! `MAGIC ++ protobuf(AggregatedRecord) ++ md5(protobuf)`:
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;
//! }
//! ```
//!
//! Each user record keeps the aggregate's sequence number and arrival time, takes
//! its own partition key and data, and is told apart by its index in the
//! aggregate, the sub-sequence number, which Eddy appends to its `eventID`
//! (`<shard>:<sequence>:<sub>`). Data that starts with the magic bytes but is not
//! a well-formed aggregate stays one plain record: it is never dropped.

use crate::record::KinesisRecord;
use md5::Digest as _;

/// The four bytes every aggregate starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// One user record of an aggregate, borrowed from the aggregate's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord<'a> {
    pub partition_key: &'a str,
    pub explicit_hash_key: Option<&'a str>,
    pub data: &'a [u8],
}

/// Why data that starts with the magic bytes is not an aggregate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedAggregate {
    #[error("it is too short to hold the protobuf body and its MD5 digest")]
    TooShort,
    #[error("its MD5 digest does not match its body")]
    Checksum,
    #[error("its protobuf body is malformed: {0}")]
    Protobuf(&'static str),
    #[error("user record {record} names partition key {index}, but the table has {table}")]
    PartitionKeyIndex { record: usize, index: u64, table: usize },
    #[error("it holds no user records")]
    Empty,
}

/// Whether `data` is meant as an aggregate (it starts with the magic bytes).
pub fn is_aggregate(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// The user records of an aggregate; `data` must start with [`MAGIC`].
pub fn parse(data: &[u8]) -> Result<Vec<UserRecord<'_>>, MalformedAggregate> {
    let body_and_digest = &data[MAGIC.len().min(data.len())..];
    let Some(body_len) = body_and_digest.len().checked_sub(DIGEST_LEN) else {
        return Err(MalformedAggregate::TooShort);
    };
    let (body, digest) = body_and_digest.split_at(body_len);
    if md5::Md5::digest(body).as_slice() != digest {
        return Err(MalformedAggregate::Checksum);
    }

    let mut partition_keys = Vec::new();
    let mut hash_keys = Vec::new();
    let mut records = Vec::new();
    let mut fields = Fields(body);
    while let Some((number, value)) = fields.next_field()? {
        match (number, value) {
            (1, Value::Bytes(text)) => partition_keys.push(utf8(text)?),
            (2, Value::Bytes(text)) => hash_keys.push(utf8(text)?),
            (3, Value::Bytes(record)) => records.push(RawRecord::parse(record)?),
            (1..=3, _) => return Err(MalformedAggregate::Protobuf("a field has the wrong wire type")),
            _ => {} // unknown fields are skipped, as protobuf readers do
        }
    }
    if records.is_empty() {
        return Err(MalformedAggregate::Empty);
    }
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let partition_key = *usize::try_from(r.partition_key_index)
                .ok()
                .and_then(|index| partition_keys.get(index))
                .ok_or(MalformedAggregate::PartitionKeyIndex { record: i, index: r.partition_key_index, table: partition_keys.len() })?;
            // The KCL ignores an explicit hash key index that points nowhere.
            let explicit_hash_key =
                r.explicit_hash_key_index.and_then(|index| usize::try_from(index).ok()).and_then(|index| hash_keys.get(index).copied());
            Ok(UserRecord { partition_key, explicit_hash_key, data: r.data })
        })
        .collect()
}

/// Splits every aggregate among `records` into its user records, in place of the
/// aggregate; other records pass as they are. An aggregate that is malformed is
/// passed whole, and reported to `malformed`.
pub fn deaggregate(
    records: Vec<KinesisRecord>,
    mut malformed: impl FnMut(&KinesisRecord, MalformedAggregate),
) -> Vec<KinesisRecord> {
    // The common case, no aggregate at all, costs one look at each record.
    if !records.iter().any(|r| is_aggregate(&r.data)) {
        return records;
    }
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        if !is_aggregate(&record.data) {
            out.push(record);
            continue;
        }
        match parse(&record.data) {
            Ok(users) => out.extend(users.into_iter().enumerate().map(|(sub, user)| user_record(&record, sub, user))),
            Err(why) => {
                malformed(&record, why);
                out.push(record);
            }
        }
    }
    out
}

fn user_record(aggregate: &KinesisRecord, sub: usize, user: UserRecord<'_>) -> KinesisRecord {
    KinesisRecord {
        event_id: sub_event_id(&aggregate.event_id, sub),
        partition_key: user.partition_key.to_owned(),
        sequence_number: aggregate.sequence_number.clone(),
        data: user.data.to_vec(),
        approximate_arrival_timestamp_ms: aggregate.approximate_arrival_timestamp_ms,
        encryption_type: aggregate.encryption_type.clone(),
    }
}

/// `<shard>:<sequence>:<sub>`: the aggregate's eventID and the user record's
/// index, in one allocation.
fn sub_event_id(aggregate_event_id: &str, sub: usize) -> String {
    use std::fmt::Write as _;
    let mut id = String::with_capacity(aggregate_event_id.len() + 1 + 6);
    id.push_str(aggregate_event_id);
    // Writing into a String cannot fail.
    let _ = write!(id, ":{sub}");
    id
}

/// A user record as the protobuf body has it.
struct RawRecord<'a> {
    partition_key_index: u64,
    explicit_hash_key_index: Option<u64>,
    data: &'a [u8],
}

impl<'a> RawRecord<'a> {
    fn parse(bytes: &'a [u8]) -> Result<RawRecord<'a>, MalformedAggregate> {
        let (mut partition_key_index, mut explicit_hash_key_index, mut data) = (None, None, None);
        let mut fields = Fields(bytes);
        while let Some((number, value)) = fields.next_field()? {
            match (number, value) {
                (1, Value::Varint(index)) => partition_key_index = Some(index),
                (2, Value::Varint(index)) => explicit_hash_key_index = Some(index),
                (3, Value::Bytes(bytes)) => data = Some(bytes),
                (1..=3, _) => return Err(MalformedAggregate::Protobuf("a field has the wrong wire type")),
                _ => {} // tags (4) and unknown fields
            }
        }
        Ok(RawRecord {
            partition_key_index: partition_key_index
                .ok_or(MalformedAggregate::Protobuf("a user record has no partition key index"))?,
            explicit_hash_key_index,
            data: data.ok_or(MalformedAggregate::Protobuf("a user record has no data"))?,
        })
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, MalformedAggregate> {
    std::str::from_utf8(bytes).map_err(|_| MalformedAggregate::Protobuf("a key is not UTF-8"))
}

/// A protobuf field's value, by wire type (fixed-width values are skipped).
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Reads a protobuf message's fields one after another.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, MalformedAggregate> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| MalformedAggregate::Protobuf("a length is too large"))?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            _ => return Err(MalformedAggregate::Protobuf("unknown wire type")),
        };
        Ok(Some((key >> 3, value)))
    }

    fn varint(&mut self) -> Result<u64, MalformedAggregate> {
        let mut value = 0u64;
        for (i, byte) in self.0.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Ok(value);
            }
        }
        Err(MalformedAggregate::Protobuf("a varint runs past its end"))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], MalformedAggregate> {
        if len > self.0.len() {
            return Err(MalformedAggregate::Protobuf("a field runs past the end of its message"));
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(taken)
    }
}

/// Builds an aggregate, as the KPL writes one: for tests and benchmarks (the host
/// itself never aggregates).
pub fn aggregate(records: &[UserRecord<'_>]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }
    fn bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
        varint(out, (field << 3) | 2);
        varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut hash_keys: Vec<&str> = Vec::new();
    fn index_of<'k>(table: &mut Vec<&'k str>, key: &'k str) -> usize {
        match table.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                table.push(key);
                table.len() - 1
            }
        }
    }
    let mut bodies = Vec::with_capacity(records.len());
    for r in records {
        let mut body = Vec::new();
        varint(&mut body, 1 << 3);
        varint(&mut body, index_of(&mut keys, r.partition_key) as u64);
        if let Some(hash_key) = r.explicit_hash_key {
            varint(&mut body, 2 << 3);
            varint(&mut body, index_of(&mut hash_keys, hash_key) as u64);
        }
        bytes(&mut body, 3, r.data);
        bodies.push(body);
    }
    let mut message = Vec::new();
    for key in &keys {
        bytes(&mut message, 1, key.as_bytes());
    }
    for key in &hash_keys {
        bytes(&mut message, 2, key.as_bytes());
    }
    for body in &bodies {
        bytes(&mut message, 3, body);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&message);
    out.extend_from_slice(&md5::Md5::digest(&message));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user<'a>(key: &'a str, data: &'a str) -> UserRecord<'a> {
        UserRecord { partition_key: key, explicit_hash_key: None, data: data.as_bytes() }
    }

    fn record(sequence: &str, data: Vec<u8>) -> KinesisRecord {
        KinesisRecord {
            event_id: format!("shardId-000000000000:{sequence}"),
            partition_key: "aggregate".into(),
            sequence_number: sequence.into(),
            data,
            approximate_arrival_timestamp_ms: 1_700_000_000_000,
            encryption_type: None,
        }
    }

    /// Bytes the AWS aggregation library for Node.js (aws-kinesis-agg 4.2.8,
    /// `RecordAggregator`) wrote for the user records ("a", "one"), ("b", "two"),
    /// ("a", "three" with explicit hash key "12345"): the format as AWS writes
    /// it, not as this module's own encoder does.
    const FROM_AWS_LIBRARY: &str = "84mawgoBYQoBYhIFMTIzNDUaBwgAGgNvbmUaBwgBGgN0d28aCwgAEAAaBXRocmVlQ5ddDD7SRHxEbPj8XQb/fg==";

    #[test]
    fn an_aggregate_written_by_the_aws_library_splits_into_its_user_records() {
        use base64::Engine as _;
        let data = base64::engine::general_purpose::STANDARD.decode(FROM_AWS_LIBRARY).expect("base64");
        assert!(is_aggregate(&data));
        let users = parse(&data).expect("a well-formed aggregate");
        assert_eq!(
            users,
            [
                user("a", "one"),
                user("b", "two"),
                UserRecord { partition_key: "a", explicit_hash_key: Some("12345"), data: b"three" },
            ]
        );
    }

    #[test]
    fn the_encoder_and_the_parser_agree() {
        let users = [user("k1", "first"), user("k2", ""), user("k1", "third"), UserRecord { explicit_hash_key: Some("7"), ..user("k3", "x") }];
        assert_eq!(parse(&aggregate(&users)).expect("parses"), users);
    }

    #[test]
    fn user_records_keep_the_sequence_and_take_their_own_key_data_and_event_id() {
        let records = vec![
            record("100", b"plain".to_vec()),
            record("101", aggregate(&[user("a", "one"), user("b", "two")])),
            record("102", b"after".to_vec()),
        ];
        let out = deaggregate(records, |_, why| panic!("reported {why}"));
        let seen: Vec<(&str, &str, &str, &[u8])> =
            out.iter().map(|r| (r.event_id.as_str(), r.sequence_number.as_str(), r.partition_key.as_str(), r.data.as_slice())).collect();
        assert_eq!(
            seen,
            [
                ("shardId-000000000000:100", "100", "aggregate", &b"plain"[..]),
                ("shardId-000000000000:101:0", "101", "a", b"one"),
                ("shardId-000000000000:101:1", "101", "b", b"two"),
                ("shardId-000000000000:102", "102", "aggregate", b"after"),
            ]
        );
        assert_eq!(out.iter().map(KinesisRecord::sub_sequence).collect::<Vec<_>>(), [None, Some(0), Some(1), None]);
    }

    #[test]
    fn a_malformed_aggregate_is_passed_whole_and_reported() {
        let good = aggregate(&[user("a", "one")]);
        let mut bad_digest = good.clone();
        *bad_digest.last_mut().expect("a digest") ^= 1;
        // A body whose digest is right but whose protobuf is cut short.
        let cut = {
            let body = [0x0a, 0x05, b'a'];
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&body);
            out.extend_from_slice(&md5::Md5::digest(body));
            out
        };
        let no_records = aggregate(&[]);
        let bad_index = {
            // partition key index 3 in a table of one
            let record = [0x08, 0x03, 0x1a, 0x01, b'x'];
            let mut body = vec![0x0a, 0x01, b'a', 0x1a, record.len() as u8];
            body.extend_from_slice(&record);
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&body);
            out.extend_from_slice(&md5::Md5::digest(&body));
            out
        };
        let cases = [
            (MAGIC.to_vec(), MalformedAggregate::TooShort),
            (bad_digest, MalformedAggregate::Checksum),
            (cut, MalformedAggregate::Protobuf("a field runs past the end of its message")),
            (no_records, MalformedAggregate::Empty),
            (bad_index, MalformedAggregate::PartitionKeyIndex { record: 0, index: 3, table: 1 }),
        ];
        for (data, expected) in cases {
            let mut reported = Vec::new();
            let out = deaggregate(vec![record("7", data.clone())], |r, why| reported.push((r.sequence_number.clone(), why)));
            assert_eq!(reported, [("7".to_owned(), expected)]);
            assert_eq!(out.len(), 1);
            assert_eq!((out[0].data.as_slice(), out[0].event_id.as_str()), (data.as_slice(), "shardId-000000000000:7"));
        }
    }

    #[test]
    fn records_without_aggregates_pass_untouched() {
        let records = vec![record("1", b"x".to_vec()), record("2", vec![0xF3, 0x89])];
        let fields = |list: &[KinesisRecord]| list.iter().map(|r| (r.event_id.clone(), r.data.clone())).collect::<Vec<_>>();
        let out = deaggregate(records.clone(), |_, why| panic!("reported {why}"));
        assert_eq!(fields(&out), fields(&records));
    }
}
