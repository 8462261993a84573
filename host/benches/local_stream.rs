//! The embedded stream's latency and idle cost, through the real `eddy` binary:
//!
//!     examples/build.sh inspect && cargo bench -p eddy-host --bench local_stream
//!
//! 1. put → handler: one record at a time through the ingest endpoint (a put
//!    in the host's own process), and through `eddy put` (another process),
//!    each timed from just before the put to the `inspect` handler's log line
//!    for it (the JSON log's microsecond timestamps). The host runs with
//!    `--local-poll-ms 100`, the default.
//! 2. idle: a function on a 1,024-shard stream with nothing to read; the host's
//!    CPU time (utime + stime from /proc) as a share of one core, 3–13 s after
//!    every shard loop started, and 20–50 s after, settled.
//!
//! EDDY_BIN measures another build of `eddy` (the figures of the build before
//! the wake-ups: `EDDY_BIN=/path/to/old/eddy`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const SAMPLES: usize = 200;

struct Host {
    child: Child,
    admin: String,
    log: PathBuf,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn eddy() -> PathBuf {
    std::env::var_os("EDDY_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_eddy")), PathBuf::from)
}

fn run(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(eddy()).args(args).current_dir(dir).output()?;
    anyhow::ensure!(out.status.success(), "eddy {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// A host with the `inspect` handler on local stream `stream` of `shards` shards.
fn start(dir: &Path, stream: &str, shards: u32) -> anyhow::Result<Host> {
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/dist");
    let inspect = std::fs::read(dist.join("inspect.wasm"))
        .map_err(|e| anyhow::anyhow!("examples/dist/inspect.wasm: {e}; build it with `examples/build.sh inspect`"))?;
    run(dir, &["stream", "create", stream, "--shards", &shards.to_string()])?;
    let functions = dir.join("functions");
    std::fs::create_dir_all(&functions)?;
    std::fs::write(functions.join("f.toml"), format!("[EventSource]\nType = \"Local\"\nStream = \"{stream}\"\nStartingPosition = \"LATEST\"\n"))?;
    std::fs::write(functions.join("f.wasm"), inspect)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let admin = format!("127.0.0.1:{port}");
    let log = dir.join("host.log");
    let child = Command::new(eddy())
        .args(["run", "--admin", &admin, "--local-poll-ms", "100", "--log-format", "json"])
        .env("EDDY_LOG", "info")
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let host = Host { child, admin, log };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status: Option<serde_json::Value> =
            ureq::get(&format!("http://{}/status", host.admin)).call().ok().and_then(|mut r| r.body_mut().read_json().ok());
        // Running once every shard has its loop.
        let running = status.as_ref().and_then(|s| s["functions"][0]["shards"].as_array().map(Vec::len)).unwrap_or(0);
        if running == shards as usize {
            return Ok(host);
        }
        anyhow::ensure!(Instant::now() < deadline, "the function did not start: {status:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// When the handler logged the record whose text is `marker`.
fn logged_at(log: &Path, marker: &str, deadline: Instant) -> anyhow::Result<SystemTime> {
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines().rev() {
            if !line.contains(marker) {
                continue;
            }
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if entry["target"] == "handler"
                && let Some(at) = entry["timestamp"].as_str().and_then(|t| humantime::parse_rfc3339(t).ok())
            {
                return Ok(at);
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "the handler never logged {marker}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// put → handler latencies, `put` putting the record whose text is its argument.
fn latencies(host: &Host, put: impl Fn(&str) -> anyhow::Result<()>) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let marker = format!("probe-{i}-{}", fastrand::u64(..));
        let at = SystemTime::now();
        put(&marker)?;
        let handled = logged_at(&host.log, &marker, Instant::now() + Duration::from_secs(30))?;
        samples.push(handled.duration_since(at).unwrap_or_default());
        // Apart, so that each record is a batch of its own that finds the shard idle.
        std::thread::sleep(Duration::from_millis(20 + fastrand::u64(..30)));
    }
    samples.sort();
    Ok(samples)
}

/// CPU time of `pid` (user + system) in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or_default().split(' ').collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ticks / 100.0)
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let host = start(dir.path(), "latency", 4)?;
    let ingest = format!("http://{}/streams/latency/records", host.admin);
    let in_process = latencies(&host, |marker| {
        let body = serde_json::json!({ "Records": [{ "PartitionKey": "k", "Data": base64_text(marker) }] });
        ureq::post(&ingest).send_json(&body)?;
        Ok(())
    })?;
    let other_process = latencies(&host, |marker| run(dir.path(), &["put", "latency", "-k", "k", "-d", marker]))?;
    drop(host);

    let idle_dir = tempfile::tempdir()?;
    let idle = start(idle_dir.path(), "idle", 1024)?;
    // Two windows: just after every shard loop has started (the tail of the
    // start: first reads, the blocking pool's threads going), and once settled.
    let started = Instant::now();
    let mut windows = Vec::new();
    for (from, window) in [(Duration::from_secs(3), Duration::from_secs(10)), (Duration::from_secs(20), Duration::from_secs(30))] {
        std::thread::sleep(from.saturating_sub(started.elapsed()));
        let before = cpu_seconds(idle.child.id())?;
        std::thread::sleep(window);
        windows.push((from, window, cpu_seconds(idle.child.id())? - before));
    }

    println!("## The embedded stream: put → handler, one record at a time ({SAMPLES} each, local poll 100 ms)\n");
    println!("| put through | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    for (label, samples) in [("the ingest endpoint (the host's process)", &in_process), ("`eddy put` (another process)", &other_process)] {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {label} | {:.2} ms | {:.2} ms | {:.2} ms |",
            ms(percentile(samples, 0.5)),
            ms(percentile(samples, 0.99)),
            ms(percentile(samples, 1.0))
        );
    }
    println!("\n## Idle: 1,024 shards with nothing to read\n");
    println!("| window, after every shard loop started | host CPU | share of one core |");
    println!("|---|---:|---:|");
    for (from, window, used) in windows {
        let to = from + window;
        println!("| {}–{} s | {used:.2} s | {:.2}% |", from.as_secs(), to.as_secs(), used / window.as_secs_f64() * 100.0);
    }
    Ok(())
}

fn base64_text(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
