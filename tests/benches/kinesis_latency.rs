//! put → handler on a Kinesis stream, through the real `eddy` binary and a
//! kinesis-mock started here (as the tests start it):
//!
//!     tests/setup.sh && examples/build.sh inspect && cargo bench -p eddy-tests --bench kinesis_latency
//!
//! One record at a time, put with the AWS SDK, timed from just before the
//! PutRecords call until the `inspect` handler's log line for it is in the
//! host's log (looked for every millisecond), with
//! PollingIntervalInMilliseconds = 100.
//! EDDY_BIN measures another build of `eddy`.

use std::time::{Duration, Instant};

use eddy_tests::kinesis::Kinesis;
use eddy_tests::{Host, Workspace, wait_for};

const SAMPLES: usize = 150;

fn main() {
    let kinesis = Kinesis::start();
    kinesis.create_stream("latency", 1);
    let ws = Workspace::new();
    ws.deploy("inspect", "inspect", &kinesis.manifest("latency", "StartingPosition = \"LATEST\""));
    let host = Host::start(&ws);
    host.wait_state("inspect", "running");
    wait_for("the shard's loop", || host.function("inspect").filter(|f| f["shards"].as_array().is_some_and(|s| !s.is_empty())));
    // LATEST starts from the mapping's first moment: let the reader settle.
    std::thread::sleep(Duration::from_secs(2));
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let marker = format!("probe-{i}-{}", eddy_tests::unique());
        let at = Instant::now();
        kinesis.put("latency", &[("k".to_owned(), marker.clone())]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !host.log_text().contains(&marker) {
            assert!(Instant::now() < deadline, "the handler never logged {marker}");
            std::thread::sleep(Duration::from_millis(1));
        }
        samples.push(at.elapsed());
        std::thread::sleep(Duration::from_millis(50 + (i as u64 * 37) % 100));
    }
    samples.sort();
    let ms = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
    println!("## Kinesis (kinesis-mock): put → handler, one record at a time ({SAMPLES}, PollingIntervalInMilliseconds = 100)\n");
    println!("| p50 | p99 | max |");
    println!("|---:|---:|---:|");
    println!("| {:.1} ms | {:.1} ms | {:.1} ms |", ms(0.5), ms(0.99), ms(1.0));
}
