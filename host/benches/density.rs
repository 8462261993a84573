//! Density: how much memory idle functions cost the host, and how big the
//! compile cache grows.
//!
//!     examples/build.sh noop js-lambda python-lambda && cargo bench -p eddy-host --bench density
//!
//! A first `eddy run` compiles the example into the compile cache (what that
//! leaves in its memory is printed apart: a cost per host, not per function).
//! Then it starts `eddy run` again, reads its resident memory (VmRSS), deploys
//! EDDY_BENCH_FUNCTIONS (default 200) functions of one example at a time, each
//! with its own manifest on one shared, empty local stream, waits until all
//! are running, and reads VmRSS again: the difference per function is what an
//! idle function costs (its mapping, its shard loop, its loaded component).
//! Then one batch for each, so each shard keeps a warm instance, and VmRSS
//! again. Then nothing, until every function has waited its `MaxIdleSeconds`
//! (EDDY_BENCH_IDLE_SECONDS, 30, set in each manifest) and let go of its warm
//! instance and its compiled code, and VmRSS again: what an idle function costs
//! once reclaimed, as Lambda reclaims an idle execution environment. Last, the
//! compile cache's size per example (one entry per version). EDDY_BIN measures
//! another build.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let eddy = std::env::var_os("EDDY_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_eddy")), PathBuf::from);
    let count: usize = std::env::var("EDDY_BENCH_FUNCTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let max_idle: u64 = std::env::var("EDDY_BENCH_IDLE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/dist");
    println!("## Density: {count} idle functions of one example on one host\n");
    println!("| example | a first compile leaves | host before | {count} loaded, idle | per loaded function | after one batch each (warm) | per warm function | after MaxIdleSeconds ({max_idle} s) | per idle function | idle functions per GB | compile cache entry |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for example in ["noop", "js-lambda", "python-lambda"] {
        let component = std::fs::read(dist.join(format!("{example}.wasm")))
            .map_err(|e| anyhow::anyhow!("examples/dist/{example}.wasm: {e}; build it with examples/build.sh"))?;
        let dir = tempfile::tempdir()?;
        let functions = dir.path().join("functions");
        std::fs::create_dir_all(&functions)?;
        let out = Command::new(&eddy).args(["stream", "create", "s", "--shards", "1"]).current_dir(dir.path()).output()?;
        anyhow::ensure!(out.status.success(), "stream create: {}", String::from_utf8_lossy(&out.stderr));
        let log_path = dir.path().join("host.log");
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let deploy = |name: &str| -> anyhow::Result<()> {
            std::fs::write(
                functions.join(format!("{name}.toml")),
                format!("[ExecutionEnvironment]\nMaxIdleSeconds = {max_idle}\n\n[EventSource]\nType = \"Local\"\nStream = \"s\"\nStartingPosition = \"LATEST\"\n"),
            )?;
            let aside = functions.join(format!("{name}.partial~"));
            std::fs::write(&aside, &component)?;
            std::fs::rename(&aside, functions.join(format!("{name}.wasm")))?;
            Ok(())
        };

        // A first host compiles the component into the cache. What the compile
        // leaves in the host's memory is a cost per host, not per function, so
        // it is measured apart: the measured host is a restart, as every host is
        // once its functions have been compiled.
        let mut first = start(&eddy, dir.path(), &log_path)?;
        let before_compile = rss_kb(first.id())?;
        deploy("first")?;
        wait_until(Duration::from_secs(600), || Ok(log().contains("\"message\":\"loaded\"")))?;
        std::thread::sleep(Duration::from_secs(3));
        let compile_leaves = rss_kb(first.id())?.saturating_sub(before_compile);
        let _ = first.kill();
        let _ = first.wait();
        for file in ["first.wasm", "first.toml"] {
            std::fs::remove_file(functions.join(file))?;
        }

        let mut host = start(&eddy, dir.path(), &log_path)?;
        let before = rss_kb(host.id())?;
        for i in 0..count {
            deploy(&format!("f{i}"))?;
        }
        let loaded = |log: &str| log.matches("\"message\":\"loaded\"").count();
        wait_until(Duration::from_secs(600), || Ok(loaded(&log()) >= count))?;
        std::thread::sleep(Duration::from_secs(3));
        let idle = rss_kb(host.id())?;
        // One record: every function's shard gets one batch and keeps its instance.
        let out = Command::new(&eddy).args(["put", "s", "-k", "k", "-d", "{\"amount\": 1}"]).current_dir(dir.path()).output()?;
        anyhow::ensure!(out.status.success(), "put: {}", String::from_utf8_lossy(&out.stderr));
        let invoked = |log: &str| log.lines().filter(|l| l.contains("\"target\":\"handler\"")).count();
        if example == "noop" {
            std::thread::sleep(Duration::from_secs(5));
        } else {
            wait_until(Duration::from_secs(600), || Ok(invoked(&log()) >= count))?;
        }
        std::thread::sleep(Duration::from_secs(2));
        let warm = rss_kb(host.id())?;
        // Every function lets go of its instance and its code after MaxIdleSeconds.
        let released = |log: &str| log.matches("its compiled code is let go of").count();
        wait_until(Duration::from_secs(max_idle + 600), || Ok(released(&log()) >= count))?;
        std::thread::sleep(Duration::from_secs(3));
        let reclaimed = rss_kb(host.id())?;
        let cache = dir_bytes(&dir.path().join(".eddy/compiled"));
        let _ = host.kill();
        let _ = host.wait();
        let per = |kb: u64| (kb.saturating_sub(before)) as f64 / count as f64;
        let per_idle = per(reclaimed);
        println!(
            "| `{example}` | {:.0} MB | {:.0} MB | {:.0} MB | {:.0} KB | {:.0} MB | {:.0} KB | {:.0} MB | {:.0} KB | {:.0} | {:.1} MB |",
            compile_leaves as f64 / 1024.0,
            before as f64 / 1024.0,
            idle as f64 / 1024.0,
            per(idle),
            warm as f64 / 1024.0,
            per(warm),
            reclaimed as f64 / 1024.0,
            per_idle,
            if per_idle > 0.0 { 1024.0 * 1024.0 / per_idle } else { f64::INFINITY },
            cache as f64 / 1e6,
        );
    }
    Ok(())
}

/// `eddy run` in `dir`, logging to `log_path`, once it is up and settled.
fn start(eddy: &Path, dir: &Path, log_path: &Path) -> anyhow::Result<std::process::Child> {
    let host = Command::new(eddy)
        .args(["--log-format", "json", "run", "--admin", "127.0.0.1:0", "--max-instances", "1000"])
        .current_dir(dir)
        .env("EDDY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log_path)?)
        .spawn()?;
    wait_until(Duration::from_secs(30), || Ok(std::fs::read_to_string(log_path)?.contains("eddy is running")))?;
    std::thread::sleep(Duration::from_secs(1));
    Ok(host)
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let started = Instant::now();
    while !done()? {
        anyhow::ensure!(started.elapsed() < limit, "not done within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The process's resident memory in KB.
fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok(line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries.flatten().map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            }).sum()
        })
        .unwrap_or(0)
}
