//! kinesis-mock as the tests drive it: streams, puts, manifests, and reading
//! back what the `inspect` example handled (`eventID partitionKey [requestId] text`).

use std::collections::BTreeMap;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde_json::{Value, json};

use crate::emulators::{self, Emulator};
use crate::wait_for;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime")
}

pub struct Kinesis {
    pub emulator: Emulator,
    pub client: Client,
    pub rt: tokio::runtime::Runtime,
}

impl Kinesis {
    pub fn start() -> Kinesis {
        Kinesis::on(emulators::kinesis())
    }

    /// The same, on another Kinesis emulator (kinesalite, for the peer benchmark).
    pub fn on(emulator: Emulator) -> Kinesis {
        let rt = runtime();
        let client = Client::new(&rt.block_on(emulators::sdk_config(&emulator.endpoint)));
        Kinesis { emulator, client, rt }
    }

    pub fn create_stream(&self, name: &str, shards: i32) {
        self.rt.block_on(self.client.create_stream().stream_name(name).shard_count(shards).send()).expect("CreateStream");
        wait_for(&format!("stream {name} to be active"), || {
            let d = self.rt.block_on(self.client.describe_stream_summary().stream_name(name).send()).ok()?;
            (d.stream_description_summary()?.stream_status().as_str() == "ACTIVE").then_some(())
        });
    }

    pub fn stream_arn(&self, name: &str) -> String {
        let out = self.rt.block_on(self.client.describe_stream_summary().stream_name(name).send()).expect("DescribeStreamSummary");
        out.stream_description_summary().expect("a summary").stream_arn().to_owned()
    }

    /// Puts records in order, 500 a call, and returns each record's shard.
    pub fn put(&self, stream: &str, records: &[(String, String)]) -> Vec<String> {
        let mut shards = Vec::new();
        for chunk in records.chunks(500) {
            let entries = chunk
                .iter()
                .map(|(key, data)| {
                    PutRecordsRequestEntry::builder().partition_key(key).data(Blob::new(data.as_bytes())).build().expect("entry")
                })
                .collect();
            let out = self.rt.block_on(self.client.put_records().stream_name(stream).set_records(Some(entries)).send()).expect("PutRecords");
            assert_eq!(out.failed_record_count(), Some(0), "PutRecords failed some records");
            shards.extend(out.records().iter().map(|r| r.shard_id().unwrap_or_default().to_owned()));
        }
        shards
    }

    pub fn shards(&self, stream: &str) -> Vec<aws_sdk_kinesis::types::Shard> {
        self.rt.block_on(self.client.list_shards().stream_name(stream).send()).expect("ListShards").shards().to_vec()
    }

    pub fn manifest(&self, stream: &str, extra: &str) -> String {
        format!(
            "[EventSource]\nType = \"Kinesis\"\nStream = \"{stream}\"\nEndpointUrl = \"{}\"\nPollingIntervalInMilliseconds = 100\n{extra}\n",
            self.emulator.endpoint
        )
    }
}

/// A handled record, from inspect's log line `eventID partitionKey [requestId] text`.
#[derive(Debug, Clone)]
pub struct Handled {
    pub shard: String,
    pub sequence: String,
    pub key: String,
    pub request: String,
    pub text: String,
}

pub fn handled(host: &crate::Host, function: &str) -> Vec<Handled> {
    parse_handled(&host.handler_messages(function))
}

pub fn handled_in(log: &std::path::Path, function: &str) -> Vec<Handled> {
    parse_handled(&crate::handler_messages_in(log, function))
}

pub fn parse_handled(messages: &[String]) -> Vec<Handled> {
    messages
        .iter()
        .filter_map(|line| {
            let (event_id, rest) = line.split_once(' ')?;
            let (key, rest) = rest.split_once(" [")?;
            let (request, text) = rest.split_once("] ")?;
            let (shard, sequence) = event_id.split_once(':')?;
            Some(Handled { shard: shard.into(), sequence: sequence.into(), key: key.into(), request: request.into(), text: text.into() })
        })
        .collect()
}

/// Kinesis sequence numbers are decimal strings: compare by length, then text.
pub fn sequence_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Per key, the numbers `i` of records `{"key":..,"i":..}` in the order handled,
/// first handling only (a replay after a crash repeats, it does not reorder).
pub fn first_seen_per_key(records: &[Handled]) -> BTreeMap<String, Vec<u64>> {
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in records {
        let Ok(data) = serde_json::from_str::<Value>(&r.text) else { continue };
        let i = data["i"].as_u64().expect("i");
        let list = seen.entry(r.key.clone()).or_default();
        if !list.contains(&i) {
            list.push(i);
        }
    }
    seen
}

pub fn assert_in_order_and_complete(seen: &BTreeMap<String, Vec<u64>>, keys: usize, per_key: u64) {
    assert_eq!(seen.len(), keys, "every key was handled: {:?}", seen.keys().collect::<Vec<_>>());
    for (key, list) in seen {
        let expected: Vec<u64> = (0..per_key).collect();
        assert_eq!(list, &expected, "key {key}: every record, in the order it was put");
    }
}

pub fn records(keys: usize, range: std::ops::Range<u64>) -> Vec<(String, String)> {
    range.flat_map(|i| (0..keys).map(move |k| (format!("key-{k}"), json!({"key": format!("key-{k}"), "i": i}).to_string()))).collect()
}

