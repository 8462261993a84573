//! The Kinesis API on a local stream beside kinesalite: the same producer (the
//! AWS SDK for Rust, PutRecords of 500 records of 100 bytes, one request at a
//! time) writes `EDDY_API_RECORDS` (50,000) records to a 4-shard stream on each,
//! interleaved over `EDDY_API_ROUNDS` (3) rounds; then reads them all back with
//! GetRecords. Prints records per second and the server's CPU per record (user +
//! system time of its process, from /proc). Then boto3 (the peers' virtualenv)
//! writes the same records to a stream of its own on each server, PutRecords of
//! 500, timed by the script around its put loop.
//!
//!     tests/setup.sh && tests/benches/peers/install.sh   # kinesalite
//!     cargo bench -p eddy-tests --bench kinesis_api

use std::time::Instant;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use eddy_tests::emulators::{self, Emulator};
use eddy_tests::kinesis::runtime;
use eddy_tests::{Host, Workspace, cpu_seconds};

const SHARDS: i32 = 4;
const PER_REQUEST: usize = 500;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Server {
    label: &'static str,
    pid: u32,
    endpoint: String,
    client: Client,
}

struct Figures {
    put_per_second: f64,
    put_cpu_us: f64,
    get_per_second: f64,
    get_cpu_us: f64,
    boto3_put_per_second: f64,
    boto3_put_cpu_us: f64,
}

/// The boto3 producer: makes the stream, waits for it, then puts `count`
/// records of 100 bytes in PutRecords of 500 and prints the seconds the puts took.
const BOTO3_PRODUCER: &str = r#"
import sys, time, boto3
endpoint, stream, count, shards = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="any", aws_secret_access_key="any")
kinesis.create_stream(StreamName=stream, ShardCount=shards)
while kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
    time.sleep(0.01)
data = b"x" * 100
started = time.perf_counter()
for first in range(0, count, 500):
    records = [{"PartitionKey": f"key-{i}", "Data": data} for i in range(first, min(first + 500, count))]
    assert kinesis.put_records(StreamName=stream, Records=records)["FailedRecordCount"] == 0
print(time.perf_counter() - started)
"#;

/// boto3's PutRecords: records per second (the script's own clock) and the
/// server's CPU per record (over the whole script, stream creation included).
fn boto3_put(server: &Server, stream: &str, count: usize) -> (f64, f64) {
    let python = eddy_tests::repo_root().join("tests/benches/peers/venv/bin/python");
    assert!(python.exists(), "{} is missing: run tests/benches/peers/install.sh", python.display());
    let cpu = cpu_seconds(server.pid);
    let out = std::process::Command::new(&python)
        .args(["-c", BOTO3_PRODUCER, &server.endpoint, stream, &count.to_string(), &SHARDS.to_string()])
        .output()
        .expect("python runs");
    let server_cpu = cpu_seconds(server.pid) - cpu;
    assert!(out.status.success(), "boto3 on {}: {}", server.label, String::from_utf8_lossy(&out.stderr));
    let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("the put's seconds");
    (count as f64 / seconds, server_cpu * 1e6 / count as f64)
}

fn run(rt: &tokio::runtime::Runtime, server: &Server, stream: &str, count: usize) -> Figures {
    let client = &server.client;
    rt.block_on(client.create_stream().stream_name(stream).shard_count(SHARDS).send()).expect("CreateStream");
    loop {
        let d = rt.block_on(client.describe_stream_summary().stream_name(stream).send()).expect("DescribeStreamSummary");
        if d.stream_description_summary().is_some_and(|s| s.stream_status().as_str() == "ACTIVE") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let data = Blob::new(vec![b'x'; 100]);
    let requests: Vec<Vec<PutRecordsRequestEntry>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(PER_REQUEST)
        .map(|chunk| {
            chunk
                .iter()
                .map(|i| {
                    PutRecordsRequestEntry::builder().partition_key(format!("key-{i}")).data(data.clone()).build().expect("entry")
                })
                .collect()
        })
        .collect();
    let (cpu, at) = (cpu_seconds(server.pid), Instant::now());
    for records in requests {
        let out = rt.block_on(client.put_records().stream_name(stream).set_records(Some(records)).send()).expect("PutRecords");
        assert_eq!(out.failed_record_count(), Some(0), "{}", server.label);
    }
    let (put_wall, put_cpu) = (at.elapsed().as_secs_f64(), cpu_seconds(server.pid) - cpu);

    let (cpu, at) = (cpu_seconds(server.pid), Instant::now());
    let mut read = 0;
    let shards = rt.block_on(client.list_shards().stream_name(stream).send()).expect("ListShards");
    for shard in shards.shards() {
        let it = rt.block_on(
            client
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(shard.shard_id())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send(),
        );
        let mut iterator = it.expect("GetShardIterator").shard_iterator().map(str::to_owned);
        while let Some(current) = iterator {
            let got = rt.block_on(client.get_records().shard_iterator(current).limit(10_000).send()).expect("GetRecords");
            read += got.records().len();
            iterator = if got.records().is_empty() { None } else { got.next_shard_iterator().map(str::to_owned) };
        }
    }
    assert_eq!(read, count, "{} read back every record", server.label);
    let (get_wall, get_cpu) = (at.elapsed().as_secs_f64(), cpu_seconds(server.pid) - cpu);
    let (boto3_put_per_second, boto3_put_cpu_us) = boto3_put(server, &format!("{stream}-boto3"), count);
    Figures {
        put_per_second: count as f64 / put_wall,
        put_cpu_us: put_cpu * 1e6 / count as f64,
        get_per_second: count as f64 / get_wall,
        get_cpu_us: get_cpu * 1e6 / count as f64,
        boto3_put_per_second,
        boto3_put_cpu_us,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let count = env_number("EDDY_API_RECORDS", 50_000);
    let rounds = env_number("EDDY_API_ROUNDS", 3);
    let rt = runtime();
    let ws = Workspace::new();
    let host = Host::start_with(&ws, &[]);
    let kinesalite: Emulator = emulators::kinesalite();
    let servers = [
        Server {
            label: "Eddy's local stream (Kinesis API on the admin port)",
            pid: host.pid(),
            endpoint: format!("http://{}", host.admin),
            client: Client::new(&rt.block_on(emulators::sdk_config(&format!("http://{}", host.admin)))),
        },
        Server {
            label: "kinesalite 3.3.3",
            pid: kinesalite.pid(),
            endpoint: kinesalite.endpoint.clone(),
            client: Client::new(&rt.block_on(emulators::sdk_config(&kinesalite.endpoint))),
        },
    ];
    println!("## The Kinesis API: {count} records of 100 bytes, {SHARDS} shards, PutRecords of {PER_REQUEST} from the AWS SDK for Rust\n");
    println!(
        "| round | server | PutRecords records/s | server CPU µs/record put | GetRecords records/s | server CPU µs/record read \
         | boto3 PutRecords records/s | server CPU µs/record, boto3 put |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    let mut all: Vec<(usize, Figures)> = Vec::new();
    for round in 0..rounds {
        for turn in 0..servers.len() {
            let index = (turn + round) % servers.len();
            let f = run(&rt, &servers[index], &format!("api-{round}"), count);
            println!(
                "| {} | {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.0} | {:.1} |",
                round + 1,
                servers[index].label,
                f.put_per_second,
                f.put_cpu_us,
                f.get_per_second,
                f.get_cpu_us,
                f.boto3_put_per_second,
                f.boto3_put_cpu_us
            );
            all.push((index, f));
        }
    }
    println!(
        "\n| server | PutRecords records/s (median of {rounds}) | CPU µs/record put | GetRecords records/s | CPU µs/record read \
         | boto3 PutRecords records/s | CPU µs/record, boto3 put |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (index, server) in servers.iter().enumerate() {
        let pick = |f: fn(&Figures) -> f64| median(all.iter().filter(|(i, _)| *i == index).map(|(_, x)| f(x)).collect());
        println!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.1} | {:.0} | {:.1} |",
            server.label,
            pick(|f| f.put_per_second),
            pick(|f| f.put_cpu_us),
            pick(|f| f.get_per_second),
            pick(|f| f.get_cpu_us),
            pick(|f| f.boto3_put_per_second),
            pick(|f| f.boto3_put_cpu_us)
        );
    }
}
