//! The Kinesis API on the admin port: real AWS clients (the AWS SDK for Rust,
//! boto3) create, describe, write and read local streams through it, and a
//! function's mapping on the stream handles what they wrote.

use std::collections::BTreeSet;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::ProvideErrorMetadata as _;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use eddy_tests::kinesis::{handled, runtime};
use eddy_tests::*;

fn client(rt: &tokio::runtime::Runtime, host: &Host) -> Client {
    Client::new(&rt.block_on(emulators::sdk_config(&format!("http://{}", host.admin))))
}

#[test]
fn the_rust_sdk_writes_and_reads_a_local_stream_and_a_function_handles_what_it_wrote() {
    let ws = Workspace::new();
    let host = Host::start_with(&ws, &[]);
    let rt = runtime();
    let kinesis = client(&rt, &host);

    rt.block_on(kinesis.create_stream().stream_name("orders").shard_count(2).send()).expect("CreateStream");
    let again = rt.block_on(kinesis.create_stream().stream_name("orders").shard_count(2).send()).expect_err("a second create");
    assert!(again.into_service_error().is_resource_in_use_exception(), "CreateStream of an existing stream");
    let summary = rt.block_on(kinesis.describe_stream_summary().stream_name("orders").send()).expect("DescribeStreamSummary");
    let summary = summary.stream_description_summary().expect("summary");
    assert_eq!((summary.open_shard_count(), summary.stream_status().as_str()), (2, "ACTIVE"));
    let shards = rt.block_on(kinesis.list_shards().stream_name("orders").send()).expect("ListShards");
    let shard_ids: Vec<String> = shards.shards().iter().map(|s| s.shard_id().to_owned()).collect();
    assert_eq!(shard_ids, ["shardId-000000000000", "shardId-000000000001"]);

    // A function on the stream, then records from the SDK.
    ws.deploy("reader", "inspect", &manifest("orders", "StartingPosition = \"TRIM_HORIZON\""));
    host.wait_state("reader", "running");
    let entries: Vec<PutRecordsRequestEntry> = (0..10)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(format!("user-{i}"))
                .data(Blob::new(format!("order {i}")))
                .build()
                .expect("entry")
        })
        .collect();
    let put = rt.block_on(kinesis.put_records().stream_name("orders").set_records(Some(entries)).send()).expect("PutRecords");
    assert_eq!(put.failed_record_count(), Some(0));
    assert_eq!(put.records().len(), 10);
    let one = rt
        .block_on(kinesis.put_record().stream_name("orders").partition_key("user-10").data(Blob::new("order 10")).send())
        .expect("PutRecord");
    assert!(shard_ids.contains(&one.shard_id().to_owned()), "{}", one.shard_id());

    let seen = wait_for("the function to handle the 11 records", || {
        let texts: BTreeSet<String> = handled(&host, "reader").into_iter().map(|h| format!("{} {}", h.key, h.text)).collect();
        (texts.len() == 11).then_some(texts)
    });
    assert!(seen.contains("user-10 order 10"), "{seen:?}");

    // Read back from each shard, from the oldest record, then after the first.
    let mut read = Vec::new();
    for shard in &shard_ids {
        let iterator = rt
            .block_on(
                kinesis
                    .get_shard_iterator()
                    .stream_name("orders")
                    .shard_id(shard)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send(),
            )
            .expect("GetShardIterator");
        let got = rt
            .block_on(kinesis.get_records().shard_iterator(iterator.shard_iterator().expect("iterator")).send())
            .expect("GetRecords");
        assert_eq!(got.millis_behind_latest(), Some(0));
        let records = got.records();
        for r in records {
            read.push((r.partition_key().unwrap_or_default().to_owned(), String::from_utf8(r.data().as_ref().to_vec()).expect("utf8")));
        }
        // Nothing new after the last: the next iterator reads nothing.
        let next = rt
            .block_on(kinesis.get_records().shard_iterator(got.next_shard_iterator().expect("next")).send())
            .expect("GetRecords again");
        assert!(next.records().is_empty());
        if let Some(first) = records.first() {
            let after = rt
                .block_on(
                    kinesis
                        .get_shard_iterator()
                        .stream_name("orders")
                        .shard_id(shard)
                        .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                        .starting_sequence_number(first.sequence_number())
                        .send(),
                )
                .expect("GetShardIterator AFTER_SEQUENCE_NUMBER");
            let rest = rt
                .block_on(kinesis.get_records().shard_iterator(after.shard_iterator().expect("iterator")).send())
                .expect("GetRecords");
            assert_eq!(rest.records().len(), records.len() - 1, "all but the first of {shard}");
        }
    }
    read.sort();
    let mut put_in: Vec<(String, String)> = (0..11).map(|i| (format!("user-{i}"), format!("order {i}"))).collect();
    put_in.sort();
    assert_eq!(read, put_in);
}

#[test]
fn kinesis_errors_come_in_kinesis_shapes() {
    let ws = Workspace::new();
    let host = Host::start_with(&ws, &[]);
    let rt = runtime();
    let kinesis = client(&rt, &host);

    let missing = rt.block_on(kinesis.describe_stream().stream_name("nowhere").send()).expect_err("a missing stream");
    let missing = missing.into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
    assert!(missing.message().is_some_and(|m| m.contains("nowhere")), "{missing:?}");

    let put = rt.block_on(kinesis.put_record().stream_name("nowhere").partition_key("k").data(Blob::new("x")).send());
    assert!(put.expect_err("put to a missing stream").into_service_error().is_resource_not_found_exception());

    rt.block_on(kinesis.create_stream().stream_name("s").shard_count(1).send()).expect("CreateStream");
    let big = rt.block_on(
        kinesis.put_record().stream_name("s").partition_key("k").data(Blob::new(vec![b'x'; (1 << 20) + 1])).send(),
    );
    let big = big.expect_err("a record over 1 MiB");
    assert_eq!(big.code(), Some("ValidationException"), "{big:?}");

    // A record the producer places by hash key is refused, not put elsewhere.
    let placed = rt.block_on(
        kinesis.put_record().stream_name("s").partition_key("k").explicit_hash_key("42").data(Blob::new("x")).send(),
    );
    assert!(placed.expect_err("ExplicitHashKey").into_service_error().is_invalid_argument_exception());

    let forged = rt.block_on(kinesis.get_records().shard_iterator("forged").send()).expect_err("a forged iterator");
    assert!(forged.into_service_error().is_invalid_argument_exception());

    let no_shard = rt.block_on(
        kinesis
            .get_shard_iterator()
            .stream_name("s")
            .shard_id("shardId-000000000007")
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send(),
    );
    assert!(no_shard.expect_err("a shard the stream lacks").into_service_error().is_resource_not_found_exception());
    // Nothing was put by the refused calls.
    let iterator = rt
        .block_on(
            kinesis
                .get_shard_iterator()
                .stream_name("s")
                .shard_id("shardId-000000000000")
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send(),
        )
        .expect("GetShardIterator");
    let got = rt.block_on(kinesis.get_records().shard_iterator(iterator.shard_iterator().expect("it")).send()).expect("GetRecords");
    assert!(got.records().is_empty());
}

/// Runs a boto3 script (from the moto virtualenv `tests/emulators/install.sh`
/// makes) with the host's admin URL as its argument; it prints "boto3 ok" at its end.
fn run_boto3(host: &Host, script: &str) {
    let python = repo_root().join("tests/emulators/moto/bin/python");
    assert!(python.exists(), "{} is missing: run tests/emulators/install.sh", python.display());
    let out = std::process::Command::new(&python)
        .args(["-c", script, &format!("http://{}", host.admin)])
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("boto3 ok"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// boto3 as a producer and a consumer, by endpoint URL alone.
#[test]
fn boto3_writes_and_reads_a_local_stream_by_endpoint_url() {
    let ws = Workspace::new();
    let host = Host::start_with(&ws, &[]);
    ws.deploy("reader", "inspect", &manifest("clicks", "StartingPosition = \"TRIM_HORIZON\""));
    host.wait_state("reader", "running");
    let script = r#"
import sys, boto3
from botocore.exceptions import ClientError
kinesis = boto3.client("kinesis", endpoint_url=sys.argv[1], region_name="us-east-1",
                       aws_access_key_id="any", aws_secret_access_key="any")
summary = kinesis.describe_stream_summary(StreamName="clicks")["StreamDescriptionSummary"]
assert summary["StreamStatus"] == "ACTIVE", summary
put = kinesis.put_records(StreamName="clicks",
                          Records=[{"PartitionKey": f"p{i}", "Data": f"click {i}".encode()} for i in range(5)])
assert put["FailedRecordCount"] == 0, put
read = []
for shard in kinesis.list_shards(StreamName="clicks")["Shards"]:
    it = kinesis.get_shard_iterator(StreamName="clicks", ShardId=shard["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    read += [r["Data"].decode() for r in kinesis.get_records(ShardIterator=it)["Records"]]
assert sorted(read) == [f"click {i}" for i in range(5)], read
try:
    kinesis.describe_stream(StreamName="nowhere")
    raise SystemExit("a missing stream was described")
except kinesis.exceptions.ResourceNotFoundException:
    pass
print("boto3 ok")
"#;
    run_boto3(&host, script);
    let texts = wait_for("the function to handle boto3's records", || {
        let texts: BTreeSet<String> = handled(&host, "reader").into_iter().map(|h| h.text).collect();
        (texts.len() == 5).then_some(texts)
    });
    assert!(texts.contains("click 4"), "{texts:?}");
}

/// Records up to 10 MiB: boto3 makes a stream for them (MaxRecordSizeInKiB) and
/// raises another's limit (UpdateMaxRecordSize); a stream keeps Kinesis' 1 MiB
/// until then. A record whose event passes Lambda's 6 MB payload is handed to
/// the function alone, and the shard goes on past it.
#[test]
fn records_up_to_10_mib_are_taken_where_the_stream_allows_and_a_large_one_is_invoked_alone() {
    let ws = Workspace::new();
    let host = Host::start_with(&ws, &[]);
    let script = r#"
import sys, boto3
kinesis = boto3.client("kinesis", endpoint_url=sys.argv[1], region_name="us-east-1",
                       aws_access_key_id="any", aws_secret_access_key="any")
kinesis.create_stream(StreamName="big", ShardCount=1, MaxRecordSizeInKiB=10240)
summary = kinesis.describe_stream_summary(StreamName="big")["StreamDescriptionSummary"]
assert summary["MaxRecordSizeInKiB"] == 10240, summary
for data in [b"small before", b"L" * (7 << 20), b"small after"]:
    kinesis.put_record(StreamName="big", PartitionKey="k", Data=data)
kinesis.create_stream(StreamName="small", ShardCount=1)
summary = kinesis.describe_stream_summary(StreamName="small")["StreamDescriptionSummary"]
assert summary["MaxRecordSizeInKiB"] == 1024, summary
two_mib = b"x" * (2 << 20)
try:
    kinesis.put_record(StreamName="small", PartitionKey="k", Data=two_mib)
    raise SystemExit("a 2 MiB record went into a stream of 1 MiB records")
except kinesis.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "ValidationException", e.response
    assert "1024 KiB" in e.response["Error"]["Message"], e.response
kinesis.update_max_record_size(StreamARN=summary["StreamARN"], MaxRecordSizeInKiB=4096)
kinesis.put_records(StreamName="small", Records=[{"PartitionKey": "k", "Data": two_mib}])
try:
    kinesis.update_max_record_size(StreamARN=summary["StreamARN"], MaxRecordSizeInKiB=20480)
    raise SystemExit("a maximum record size over 10 MiB was taken")
except kinesis.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "ValidationException", e.response
print("boto3 ok")
"#;
    run_boto3(&host, script);

    // `inspect` logs each record's text: room for a 7 MiB line.
    ws.deploy("reader", "inspect", &format!("LogLimitBytes = 10485760\n{}", manifest("big", "StartingPosition = \"TRIM_HORIZON\"")));
    let seen = wait_for("the three records", || {
        let seen = handled(&host, "reader");
        (seen.len() == 3).then_some(seen)
    });
    let texts: Vec<usize> = seen.iter().map(|h| h.text.len()).collect();
    assert_eq!(texts, [12, 7 << 20, 11], "in order, the large one whole");
    assert_ne!(seen[1].request, seen[0].request, "the large record is invoked alone");
    assert_ne!(seen[1].request, seen[2].request, "the large record is invoked alone");
    let f = wait_for("the checkpoint past the large record", || {
        host.function("reader").filter(|f| shard_total(f, "records_processed") == 3)
    });
    assert_eq!(shard_total(&f, "failed_invocations"), 0, "{f}");
}

/// The AWS SDK for JavaScript v3 (installed by tests/emulators/install.sh) as a
/// producer and a consumer, with the HTTP/1.1 handler the README names.
#[test]
fn the_javascript_sdk_writes_and_reads_a_local_stream_by_endpoint_url() {
    let ws = Workspace::new();
    let host = Host::start_with(&ws, &[]);
    let script = r#"
const k = require("@aws-sdk/client-kinesis");
const { NodeHttpHandler } = require("@smithy/node-http-handler");
const client = new k.KinesisClient({
  endpoint: process.argv[1], region: "us-east-1",
  credentials: { accessKeyId: "any", secretAccessKey: "any" },
  requestHandler: new NodeHttpHandler(),
});
(async () => {
  await client.send(new k.CreateStreamCommand({ StreamName: "node", ShardCount: 2 }));
  const summary = (await client.send(new k.DescribeStreamSummaryCommand({ StreamName: "node" }))).StreamDescriptionSummary;
  if (summary.StreamStatus !== "ACTIVE" || summary.OpenShardCount !== 2) throw new Error(JSON.stringify(summary));
  const put = await client.send(new k.PutRecordsCommand({
    StreamName: "node",
    Records: [0, 1, 2, 3, 4, 5].map((i) => ({ PartitionKey: `n${i}`, Data: Buffer.from(`node ${i}`) })),
  }));
  if (put.FailedRecordCount !== 0) throw new Error(JSON.stringify(put));
  const read = [];
  for (const shard of (await client.send(new k.ListShardsCommand({ StreamName: "node" }))).Shards) {
    const it = await client.send(new k.GetShardIteratorCommand({
      StreamName: "node", ShardId: shard.ShardId, ShardIteratorType: "TRIM_HORIZON",
    }));
    const got = await client.send(new k.GetRecordsCommand({ ShardIterator: it.ShardIterator }));
    read.push(...got.Records.map((r) => Buffer.from(r.Data).toString()));
  }
  read.sort();
  if (JSON.stringify(read) !== JSON.stringify([0, 1, 2, 3, 4, 5].map((i) => `node ${i}`))) throw new Error(JSON.stringify(read));
  try {
    await client.send(new k.DescribeStreamSummaryCommand({ StreamName: "nowhere" }));
    throw new Error("a missing stream was described");
  } catch (e) {
    if (!(e instanceof k.ResourceNotFoundException)) throw e;
  }
  console.log("node ok");
})().catch((e) => { console.error(e); process.exit(1); });
"#;
    // `node -e` resolves `require` from its working directory.
    let modules = repo_root().join("tests/emulators");
    assert!(
        modules.join("node_modules/@aws-sdk/client-kinesis").is_dir(),
        "the AWS SDK for JavaScript is missing: run tests/emulators/install.sh"
    );
    let out = std::process::Command::new("node")
        .current_dir(&modules)
        .args(["-e", script, &format!("http://{}", host.admin)])
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("node ok"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    ws.deploy("reader", "inspect", &manifest("node", "StartingPosition = \"TRIM_HORIZON\""));
    let texts = wait_for("the function to handle the JavaScript SDK's records", || {
        let texts: BTreeSet<String> = handled(&host, "reader").into_iter().map(|h| h.text).collect();
        (texts.len() == 6).then_some(texts)
    });
    assert!(texts.contains("node 5"), "{texts:?}");
}
