//! The peer benchmark: Eddy beside what a user writes instead of it, a hand-rolled
//! Kinesis poller that calls a Lambda handler in-process (Node.js with the AWS SDK
//! v3, Python with boto3: `tests/benches/peers/consumer.{mjs,py}`), all reading
//! from one kinesalite on this machine, interleaved in one run:
//!
//!     tests/setup.sh && tests/benches/peers/install.sh
//!     examples/build.sh totals js-lambda python-lambda
//!     cargo bench -p eddy-tests --bench peers
//!
//! The handlers are the repository's Lambda examples, unchanged: the peers import
//! `examples/js-lambda/index.mjs` and `examples/python-lambda/lambda_function.py`,
//! Eddy runs the same files built into components, and the Rust `totals`. Each
//! parses every record's JSON and sums a field per partition key.
//!
//! 1. CPU per record. A stream of 4 shards is filled with `EDDY_PEERS_RECORDS`
//!    (100,000) records of 100 bytes, then one consumer reads it all from
//!    TRIM_HORIZON, 1,000 records per GetRecords (BatchSize 1000 for Eddy). CPU
//!    is the consumer's user + system time from /proc, from the moment it is
//!    ready (a peer: SDK loaded, client made, shard iterators held; Eddy: the host
//!    up with an empty folder, the component already in its compile cache) until
//!    it has handled every record. So Eddy's figure includes loading the
//!    function and starting the mapping; the peers' does not include their
//!    start-up. "Net" takes off what the same Eddy steps cost on an empty
//!    stream for as long. `EDDY_PEERS_ROUNDS` (2) rounds, the consumers' order
//!    rotated.
//! 2. put → handler. Every consumer on its own new 1-shard stream from
//!    TRIM_HORIZON (Eddy's LATEST is pinned to the mapping's first moment with
//!    AT_TIMESTAMP, and kinesalite never answers a GetShardIterator AT_TIMESTAMP
//!    past its newest record), at a 100 ms idle poll; one record at a time,
//!    each consumer in turn, timed from just before the SDK's PutRecords call
//!    until the handler's log line naming the record's partition key is seen
//!    (looked for every millisecond).
//!    `EDDY_PEERS_SAMPLES` (150) each.
//!
//! EDDY_BIN measures another build of `eddy`; `EDDY_PEERS_ONLY=eddy-rust,node`
//! runs only the named consumers' CPU part (for a profile), and
//! `EDDY_PEERS_SAMPLES=0` leaves out the latency part.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_tests::emulators::{self, AWS_ENV};
use eddy_tests::kinesis::Kinesis;
use eddy_tests::{Host, Workspace, cpu_seconds, repo_root, shard_total, wait_for};

const SHARDS: i32 = 4;
const RECORD_BYTES: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Consumer {
    Node,
    Python,
    EddyRust,
    EddyJs,
    EddyPython,
}

impl Consumer {
    const ALL: [Consumer; 5] = [Consumer::Node, Consumer::Python, Consumer::EddyRust, Consumer::EddyJs, Consumer::EddyPython];

    fn label(self) -> &'static str {
        match self {
            Consumer::Node => "Node 20 + AWS SDK v3, `js-lambda` handler",
            Consumer::Python => "Python 3.11 + boto3, `python-lambda` handler",
            Consumer::EddyRust => "Eddy, Rust handler (`totals`)",
            Consumer::EddyJs => "Eddy, the same JS handler (`js-lambda`)",
            Consumer::EddyPython => "Eddy, the same Python handler (`python-lambda`)",
        }
    }

    /// Short, for stream and function names.
    fn name(self) -> &'static str {
        match self {
            Consumer::Node => "node",
            Consumer::Python => "python",
            Consumer::EddyRust => "eddy-rust",
            Consumer::EddyJs => "eddy-js",
            Consumer::EddyPython => "eddy-python",
        }
    }

    /// The example component Eddy runs; `None` for a peer.
    fn component(self) -> Option<&'static str> {
        match self {
            Consumer::Node | Consumer::Python => None,
            Consumer::EddyRust => Some("totals"),
            Consumer::EddyJs => Some("js-lambda"),
            Consumer::EddyPython => Some("python-lambda"),
        }
    }
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A peer consumer's process: `ready`, then a line on stdin, then polling; its
/// stdout (the handler's log) is collected as it comes.
struct Peer {
    child: Child,
    stdin: ChildStdin,
    output: Arc<Mutex<String>>,
}

impl Peer {
    fn start(consumer: Consumer, endpoint: &str, stream: &str, position: &str, records: usize) -> Peer {
        let peers = repo_root().join("tests/benches/peers");
        let mut command = match consumer {
            Consumer::Node => {
                let mut c = Command::new("node");
                c.arg(peers.join("consumer.mjs")).args(["--handler", "examples/js-lambda/index.mjs"]);
                c
            }
            Consumer::Python => {
                let python = peers.join("venv/bin/python");
                assert!(python.exists(), "{} is missing: run tests/benches/peers/install.sh first", python.display());
                let mut c = Command::new(python);
                c.arg("-u").arg(peers.join("consumer.py")).args(["--handler", "examples/python-lambda/lambda_function.py"]);
                c
            }
            _ => unreachable!("{consumer:?} is not a peer"),
        };
        let mut child = command
            .args(["--endpoint", endpoint, "--stream", stream, "--position", position, "--records", &records.to_string()])
            .args(["--poll-ms", "100", "--limit", "1000"])
            .current_dir(repo_root())
            .envs(AWS_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the peer starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut text = sink.lock().expect("output");
                text.push_str(&line);
                text.push('\n');
            }
        });
        Peer { child, stdin, output }
    }

    fn contains(&self, text: &str) -> bool {
        self.output.lock().expect("output").contains(text)
    }

    fn wait_line(&self, line: &str, patience: Duration) {
        let deadline = Instant::now() + patience;
        while !self.output.lock().expect("output").lines().any(|l| l.starts_with(line)) {
            assert!(Instant::now() < deadline, "the peer never printed {line:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn go(&mut self) {
        self.stdin.write_all(b"go\n").and_then(|()| self.stdin.flush()).expect("the peer's stdin");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` records of exactly RECORD_BYTES of JSON, over 100 partition keys.
fn records(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let head = format!(r#"{{"amount": 12.5, "item": "widget-0042", "customer": "c-123456", "seq": {i}, "pad": ""#);
            let pad = "x".repeat(RECORD_BYTES - head.len() - 2);
            (format!("user-{:02}", i % 100), format!("{head}{pad}\"}}"))
        })
        .collect()
}

fn eddy_manifest(kinesis: &Kinesis, stream: &str, position: &str) -> String {
    kinesis.manifest(
        stream,
        &format!("StartingPosition = \"{position}\"\nBatchSize = 1000\nFunctionResponseTypes = [\"ReportBatchItemFailures\"]"),
    )
}

/// The host as a user runs it: the default scan interval.
fn start_host(ws: &Workspace) -> Host {
    Host::start_with(ws, &["--scan-ms", "250"])
}

struct CpuRun {
    consumer: Consumer,
    cpu: f64,
    wall: Duration,
    /// Eddy only: the CPU of the same steps on an empty stream for as long
    /// (loading the function, starting the mapping, idle polls).
    start_up: Option<f64>,
}

fn cpu_run(kinesis: &Kinesis, ws: &Workspace, consumer: Consumer, stream: &str, count: usize) -> CpuRun {
    let patience = Duration::from_secs(900);
    match consumer.component() {
        None => {
            let mut peer = Peer::start(consumer, &kinesis.emulator.endpoint, stream, "TRIM_HORIZON", count);
            peer.wait_line("ready", Duration::from_secs(60));
            let (cpu, at) = (cpu_seconds(peer.child.id()), Instant::now());
            peer.go();
            peer.wait_line("done", patience);
            CpuRun { consumer, cpu: cpu_seconds(peer.child.id()) - cpu, wall: at.elapsed(), start_up: None }
        }
        Some(_) => {
            let (cpu, wall) = eddy_cpu(kinesis, ws, consumer, stream, |host, name| {
                let deadline = Instant::now() + patience;
                loop {
                    let done = host.function(name).map_or(0, |f| shard_total(&f, "records_processed"));
                    if done >= count as u64 {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{name} handled {done} of {count} records");
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
            // What the run cost besides its records: the same steps on an empty
            // stream, for as long.
            let idle = format!("idle-{stream}");
            kinesis.create_stream(&idle, SHARDS);
            let (start_up, _) = eddy_cpu(kinesis, ws, consumer, &idle, |_, _| std::thread::sleep(wall));
            CpuRun { consumer, cpu, wall, start_up: Some(start_up) }
        }
    }
}

/// An Eddy run: a host up with an empty folder, `consumer`'s function dropped in
/// on `stream`, and `until` waited for. Returns the host's CPU and the time from
/// the drop until `until` returned.
fn eddy_cpu(kinesis: &Kinesis, ws: &Workspace, consumer: Consumer, stream: &str, until: impl FnOnce(&Host, &str)) -> (f64, Duration) {
    let host = start_host(ws);
    std::thread::sleep(Duration::from_secs(1));
    let name = format!("{}-{stream}", consumer.name());
    let (cpu, at) = (cpu_seconds(host.pid()), Instant::now());
    ws.deploy(&name, consumer.component().expect("an Eddy consumer"), &eddy_manifest(kinesis, stream, "TRIM_HORIZON"));
    until(&host, &name);
    let run = (cpu_seconds(host.pid()) - cpu, at.elapsed());
    host.stop();
    ws.remove(&name);
    run
}

/// Loads every Eddy component once, so that the measured runs find it compiled.
fn fill_compile_cache(kinesis: &Kinesis, ws: &Workspace) {
    kinesis.create_stream("warm-up", 1);
    let host = start_host(ws);
    for consumer in Consumer::ALL {
        if let Some(component) = consumer.component() {
            ws.deploy(consumer.name(), component, &eddy_manifest(kinesis, "warm-up", "TRIM_HORIZON"));
        }
    }
    for consumer in Consumer::ALL.into_iter().filter(|c| c.component().is_some()) {
        host.wait_state(consumer.name(), "running");
    }
    host.stop();
    for consumer in Consumer::ALL {
        ws.remove(consumer.name());
    }
}

fn latencies(kinesis: &Kinesis, ws: &Workspace, samples: usize) -> Vec<(Consumer, Vec<Duration>)> {
    let stream = |c: Consumer| format!("latency-{}", c.name());
    for consumer in Consumer::ALL {
        kinesis.create_stream(&stream(consumer), 1);
    }
    let host = start_host(ws);
    let mut peers = Vec::new();
    for consumer in Consumer::ALL {
        match consumer.component() {
            Some(component) => ws.deploy(consumer.name(), component, &eddy_manifest(kinesis, &stream(consumer), "TRIM_HORIZON")),
            None => peers.push((consumer, Peer::start(consumer, &kinesis.emulator.endpoint, &stream(consumer), "TRIM_HORIZON", 0))),
        }
    }
    for (_, peer) in &mut peers {
        peer.wait_line("ready", Duration::from_secs(60));
        peer.go();
    }
    for consumer in Consumer::ALL.into_iter().filter(|c| c.component().is_some()) {
        host.wait_state(consumer.name(), "running");
        wait_for("the shard's loop", || host.function(consumer.name()).filter(|f| f["shards"].as_array().is_some_and(|s| !s.is_empty())));
    }
    // Let every reader settle into its idle polling.
    std::thread::sleep(Duration::from_secs(2));
    let mut times: Vec<(Consumer, Vec<Duration>)> = Consumer::ALL.iter().map(|&c| (c, Vec::with_capacity(samples))).collect();
    for i in 0..samples {
        for turn in 0..times.len() {
            let index = (turn + i) % times.len();
            let consumer = times[index].0;
            let marker = format!("probe{i}x{}", eddy_tests::unique());
            let at = Instant::now();
            kinesis.put(&stream(consumer), &[(marker.clone(), r#"{"amount": 1}"#.to_owned())]);
            let deadline = Instant::now() + Duration::from_secs(30);
            let seen = || match peers.iter().find(|(c, _)| *c == consumer) {
                Some((_, peer)) => peer.contains(&marker),
                None => host.log_text().contains(&marker),
            };
            while !seen() {
                assert!(Instant::now() < deadline, "{} never logged {marker}", consumer.label());
                std::thread::sleep(Duration::from_millis(1));
            }
            times[index].1.push(at.elapsed());
            std::thread::sleep(Duration::from_millis(50 + (i as u64 * 37) % 100));
        }
    }
    drop(peers);
    host.stop();
    times
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn main() {
    let count = env_number("EDDY_PEERS_RECORDS", 100_000);
    let rounds = env_number("EDDY_PEERS_ROUNDS", 2);
    let samples = env_number("EDDY_PEERS_SAMPLES", 150);
    let kinesis = Kinesis::on(emulators::kinesalite());
    let ws = Workspace::new();
    fill_compile_cache(&kinesis, &ws);
    let data = records(count);
    let only = std::env::var("EDDY_PEERS_ONLY").unwrap_or_default();
    let chosen: Vec<Consumer> =
        Consumer::ALL.into_iter().filter(|c| only.is_empty() || only.split(',').any(|n| n.trim() == c.name())).collect();

    println!("## CPU per record: {count} records of {RECORD_BYTES} bytes, {SHARDS} shards, kinesalite, 1,000 per GetRecords\n");
    println!("| round | consumer | CPU | wall | CPU µs/record | Eddy's start-up and idle for as long | net µs/record |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    let mut runs = Vec::new();
    for round in 0..rounds {
        for turn in 0..chosen.len() {
            let consumer = chosen[(turn + round) % chosen.len()];
            let stream = format!("cpu-{}-{round}", consumer.name());
            kinesis.create_stream(&stream, SHARDS);
            kinesis.put(&stream, &data);
            let run = cpu_run(&kinesis, &ws, consumer, &stream, count);
            let (start_up, net) = match run.start_up {
                Some(cpu) => (format!("{cpu:.2} s"), format!("{:.1}", (run.cpu - cpu) * 1e6 / count as f64)),
                None => ("—".to_owned(), "—".to_owned()),
            };
            println!(
                "| {} | {} | {:.2} s | {:.2} s | {:.1} | {start_up} | {net} |",
                round + 1,
                consumer.label(),
                run.cpu,
                run.wall.as_secs_f64(),
                run.cpu * 1e6 / count as f64
            );
            runs.push(run);
        }
    }
    // Gross: everything from ready to done. Net: less Eddy's start-up.
    let per_record = |consumer: Consumer, net: bool| {
        let mut values: Vec<f64> = runs
            .iter()
            .filter(|r| r.consumer == consumer)
            .map(|r| (r.cpu - if net { r.start_up.unwrap_or(0.0) } else { 0.0 }) * 1e6 / count as f64)
            .collect();
        median(&mut values)
    };
    let node = per_record(Consumer::Node, false);
    let python = per_record(Consumer::Python, false);
    println!("\n| consumer | CPU µs/record (median of {rounds}) | beside Node | beside Python | net of start-up | net beside Node | net beside Python |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    // A peer left out of the run (EDDY_PEERS_ONLY) has no figure to compare with.
    let ratio = |value: f64, peer: f64| if peer.is_nan() { "—".to_owned() } else { format!("{:.2}", value / peer) };
    for consumer in chosen {
        let (gross, net) = (per_record(consumer, false), per_record(consumer, true));
        println!(
            "| {} | {gross:.1} | {} | {} | {net:.1} | {} | {} |",
            consumer.label(),
            ratio(gross, node),
            ratio(gross, python),
            ratio(net, node),
            ratio(net, python)
        );
    }

    if samples == 0 {
        return;
    }
    let times = latencies(&kinesis, &ws, samples);
    println!("\n## put → handler on kinesalite, one record at a time ({samples} each, interleaved), 100 ms idle poll\n");
    println!("| consumer | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    for (consumer, mut samples) in times {
        samples.sort();
        let ms = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
        println!("| {} | {:.1} ms | {:.1} ms | {:.1} ms |", consumer.label(), ms(0.5), ms(0.99), ms(1.0));
    }
}
