//! A healthy function beside hostile ones: how much of its throughput is left?
//!
//!     examples/build.sh noop hostile && cargo bench -p eddy-host --bench neighbours
//!
//! The healthy function (`noop`, BatchSize 100) works through a backlog of
//! 1,000,000 records on a 4-shard local stream (EDDY_BENCH_RECORDS to change it).
//! Its rate alone is the reference. Then it runs again, in a fresh host, beside
//! one hostile function (the `hostile` example on its own 4-shard stream, every
//! record of one kind, one record a batch, MaximumRetryAttempts 0 so that it
//! goes on failing at full speed), and beside all six at once. It prints each
//! rate as a share of the rate alone. EDDY_BIN measures another build of `eddy`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOSTILE: [&str; 6] = ["loop", "oom", "recurse", "big-response", "log-flood", "trap"];

struct Setup {
    eddy: PathBuf,
    noop: Vec<u8>,
    hostile: Vec<u8>,
    records: usize,
}

/// Runs one host with the healthy function and `hostile` neighbours; returns
/// the healthy function's records per second.
fn healthy_rate(setup: &Setup, hostile: &[&str]) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let functions = dir.path().join("functions");
    std::fs::create_dir_all(&functions)?;
    let run = |args: &[&str]| Command::new(&setup.eddy).args(args).current_dir(dir.path()).output();
    let put_file = |stream: &str, lines: String| -> anyhow::Result<()> {
        anyhow::ensure!(run(&["stream", "create", stream, "--shards", "4"])?.status.success(), "stream create");
        let file = dir.path().join(format!("{stream}.jsonl"));
        std::fs::write(&file, lines)?;
        let put = run(&["put", stream, "--file", file.to_str().unwrap_or_default()])?;
        anyhow::ensure!(put.status.success(), "put: {}", String::from_utf8_lossy(&put.stderr));
        Ok(())
    };
    put_file("healthy", (0..setup.records).map(|i| format!("{{\"PartitionKey\":\"k{i}\",\"Text\":\"{{}}\"}}\n")).collect())?;
    for kind in hostile {
        // Enough that it never runs out while the healthy function works.
        put_file(kind, (0..2000).map(|i| format!("{{\"PartitionKey\":\"k{i}\",\"Text\":\"{kind}\"}}\n")).collect())?;
        std::fs::write(
            functions.join(format!("{kind}.toml")),
            format!("[EventSource]\nType = \"Local\"\nStream = \"{kind}\"\nBatchSize = 1\nMaximumRetryAttempts = 0\n"),
        )?;
        std::fs::write(functions.join(format!("{kind}.wasm")), &setup.hostile)?;
    }
    // The healthy function is deployed once the neighbours run.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let admin = format!("127.0.0.1:{port}");
    let mut host = Command::new(&setup.eddy)
        .args(["run", "--admin", &admin])
        .env("EDDY_LOG", "error")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = measure(setup, &admin, &functions, hostile);
    let _ = host.kill();
    let _ = host.wait();
    result
}

fn processed(admin: &str, name: &str) -> Option<(String, u64)> {
    let status: serde_json::Value = ureq::get(&format!("http://{admin}/status")).call().ok()?.body_mut().read_json().ok()?;
    let f = status["functions"].as_array()?.iter().find(|f| f["name"] == name)?.clone();
    let records = f["shards"].as_array().map_or(0, |s| s.iter().filter_map(|s| s["records_processed"].as_u64()).sum());
    Some((f["state"].as_str().unwrap_or_default().to_owned(), records))
}

fn measure(setup: &Setup, admin: &str, functions: &Path, hostile: &[&str]) -> anyhow::Result<f64> {
    let started = Instant::now();
    let wait = |what: &str, check: &dyn Fn() -> bool| -> anyhow::Result<()> {
        while !check() {
            anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    };
    for kind in hostile {
        wait(kind, &|| processed(admin, kind).is_some_and(|(state, _)| state == "running"))?;
    }
    // A second for the neighbours to get going.
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(functions.join("healthy.toml"), "[EventSource]\nType = \"Local\"\nStream = \"healthy\"\nBatchSize = 100\n")?;
    std::fs::write(functions.join("healthy.wasm"), &setup.noop)?;
    wait("the healthy function's first records", &|| processed(admin, "healthy").is_some_and(|(_, n)| n > 0))?;
    let first = Instant::now();
    let (_, at_first) = processed(admin, "healthy").unwrap_or_default();
    wait("the healthy function's backlog", &|| processed(admin, "healthy").is_some_and(|(_, n)| n as usize >= setup.records))?;
    Ok((setup.records as u64 - at_first) as f64 / first.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/dist");
    let read = |name: &str| {
        std::fs::read(dist.join(format!("{name}.wasm")))
            .map_err(|e| anyhow::anyhow!("examples/dist/{name}.wasm: {e}; build it with `examples/build.sh {name}`"))
    };
    let setup = Setup {
        eddy: std::env::var_os("EDDY_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_eddy")), PathBuf::from),
        noop: read("noop")?,
        hostile: read("hostile")?,
        records: std::env::var("EDDY_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000),
    };
    let alone = healthy_rate(&setup, &[])?;
    println!("## A healthy function beside hostile ones ({} records, 4 shards)\n", setup.records);
    println!("| neighbour | healthy records/s | share of its rate alone |");
    println!("|---|---:|---:|");
    println!("| none | {alone:.0} | 1.00 |");
    for kind in HOSTILE {
        let rate = healthy_rate(&setup, &[kind])?;
        println!("| {kind} | {rate:.0} | {:.2} |", rate / alone);
    }
    let rate = healthy_rate(&setup, &HOSTILE)?;
    println!("| all six | {rate:.0} | {:.2} |", rate / alone);
    Ok(())
}
