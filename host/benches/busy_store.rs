//! The host beside one large `eddy put`: does it keep answering, and do its
//! checkpoints keep moving?
//!
//!     examples/build.sh noop && cargo bench -p eddy-host --bench busy_store
//!
//! It starts `eddy run` with the `noop` handler on a 4-shard local stream, then
//! runs `eddy put` of 3,000,000 records (EDDY_BENCH_PUT_RECORDS to change it)
//! from a file, and meanwhile
//! - asks `/healthz` every 20 ms, and times each answer;
//! - writes a checkpoint to the same database every 20 ms, as a shard does, and
//!   times each write (the wait for the write lock is the put's doing);
//! - has a second function work through a backlog, one record a batch, so that
//!   the host itself checkpoints many times a second all the while;
//! - counts the host's shard restarts ("shard loop failed", e.g. `database is
//!   locked`).
//!
//! It prints p50, p99 and max of both, the put's duration, and the restarts.
//! EDDY_BIN measures another build of `eddy` (the checkpoint writes are this
//! build's).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eddy::store::embedded::EmbeddedStore;
use eddy::store::{Checkpoint, CheckpointKey, CheckpointStore};

/// Records the second function works through, one a batch.
const BACKLOG: usize = 300_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {name} | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(samples.last().copied().unwrap_or_default())
    );
}

fn main() -> anyhow::Result<()> {
    let records: usize = std::env::var("EDDY_BENCH_PUT_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000_000);
    // EDDY_BIN: another build of `eddy` to measure (an older one, say).
    let eddy = std::env::var_os("EDDY_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_eddy")), PathBuf::from);
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/dist");
    let noop = std::fs::read(dist.join("noop.wasm"))
        .map_err(|e| anyhow::anyhow!("examples/dist/noop.wasm: {e}; build it with `examples/build.sh noop`"))?;
    let dir = tempfile::tempdir()?;
    let functions = dir.path().join("functions");
    std::fs::create_dir_all(&functions)?;
    let run = |args: &[&str]| Command::new(&eddy).args(args).current_dir(dir.path()).output();
    anyhow::ensure!(run(&["stream", "create", "big", "--shards", "4"])?.status.success(), "stream create failed");
    std::fs::write(functions.join("f.toml"), "[EventSource]\nType = \"Local\"\nStream = \"big\"\nBatchSize = 100\n")?;
    std::fs::write(functions.join("f.wasm"), &noop)?;
    // A second function works through a backlog one record a batch all the
    // while, so the host checkpoints many times a second during the put.
    anyhow::ensure!(run(&["stream", "create", "steady", "--shards", "2"])?.status.success(), "stream create failed");
    let backlog = dir.path().join("backlog.jsonl");
    std::fs::write(&backlog, (0..BACKLOG).map(|i| format!("{{\"PartitionKey\":\"k{i}\",\"Text\":\"b\"}}\n")).collect::<String>())?;
    anyhow::ensure!(run(&["put", "steady", "--file", "backlog.jsonl"])?.status.success(), "backlog put failed");
    std::fs::write(functions.join("g.toml"), "[EventSource]\nType = \"Local\"\nStream = \"steady\"\nBatchSize = 1\n")?;
    std::fs::write(functions.join("g.wasm"), &noop)?;

    // The records, one JSON line each.
    let file = dir.path().join("records.jsonl");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file)?);
        for i in 0..records {
            writeln!(out, "{{\"PartitionKey\":\"k{}\",\"Text\":\"record {i}\"}}", i % 1000)?;
        }
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let admin = format!("127.0.0.1:{port}");
    let log = dir.path().join("host.log");
    let mut host = Command::new(&eddy)
        .args(["--log-format", "json", "run", "--admin", &admin])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let healthz = format!("http://{admin}/healthz");
    let started = Instant::now();
    while ureq::get(&healthz).call().is_err() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "the host did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let store = EmbeddedStore::open(&dir.path().join(".eddy"))?;

    let done = Arc::new(AtomicBool::new(false));
    let prober = std::thread::spawn({
        let done = Arc::clone(&done);
        move || {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let at = Instant::now();
                let answered = ureq::get(&healthz).config().timeout_global(Some(Duration::from_secs(60))).build().call().is_ok();
                samples.push(if answered { at.elapsed() } else { Duration::from_secs(60) });
                std::thread::sleep(Duration::from_millis(20));
            }
            samples
        }
    });
    let checkpointer = std::thread::spawn({
        let done = Arc::clone(&done);
        move || -> anyhow::Result<(Vec<Duration>, usize)> {
            let key = CheckpointKey { function: "bench".into(), source: "local:big".into(), shard: "probe".into() };
            let (mut samples, mut failures) = (Vec::new(), 0);
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                let at = Instant::now();
                match rt.block_on(store.commit(&key, &Checkpoint::Sequence(n.to_string()), None)) {
                    Ok(()) => samples.push(at.elapsed()),
                    Err(_) => failures += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok((samples, failures))
        }
    });

    let put_started = Instant::now();
    let put = Command::new(&eddy)
        .args(["put", "big", "--file", "records.jsonl"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .output()?;
    let put_took = put_started.elapsed();
    anyhow::ensure!(put.status.success(), "put failed: {}", String::from_utf8_lossy(&put.stderr));
    done.store(true, Ordering::Relaxed);
    let health = prober.join().map_err(|_| anyhow::anyhow!("prober panicked"))?;
    let (checkpoints, failed_checkpoints) = checkpointer.join().map_err(|_| anyhow::anyhow!("checkpointer panicked"))??;
    let status: serde_json::Value = ureq::get(&format!("http://{admin}/status")).call()?.body_mut().read_json()?;
    let g_records: u64 = status["functions"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["name"] == "g"))
        .and_then(|g| g["shards"].as_array())
        .map_or(0, |shards| shards.iter().filter_map(|s| s["records_processed"].as_u64()).sum());
    let _ = host.kill();
    let _ = host.wait();
    let restarts = std::fs::read_to_string(&log)?.matches("shard loop failed").count();

    println!("## The host during one `eddy put` of {records} records ({:.1} s)\n", put_took.as_secs_f64());
    println!("| what | samples | p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|");
    summary("`/healthz`", health);
    summary("checkpoint write", checkpoints);
    println!("\nfailed checkpoint writes: {failed_checkpoints}; shard restarts: {restarts}; \
              the backlog function's records by the end of the put: {g_records}");
    Ok(())
}
