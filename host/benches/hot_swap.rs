//! Drop → first invocation: how long after a function's files land in the
//! watched folder its handler is first called, with a record already waiting
//! on its stream.
//!
//!     examples/build.sh inspect && cargo bench -p eddy-host --bench hot_swap
//!
//! It starts `eddy run` at its default scan interval (250 ms) on a one-shard
//! local stream holding one record, then deploys the `inspect` example under a
//! new name, round after round, as a careful user does (the manifest, then the
//! component written aside and renamed into place), and as `cp` does (written
//! in place). The clock runs from the component's rename (or the end of its
//! write) to the handler's first log line. The first round compiles; the others
//! find the component in the compile cache. EDDY_BIN measures another build.

use std::io::{BufRead as _, Seek as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;

fn main() -> anyhow::Result<()> {
    let eddy = std::env::var_os("EDDY_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_eddy")), PathBuf::from);
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/dist");
    let component = std::fs::read(dist.join("inspect.wasm"))
        .map_err(|e| anyhow::anyhow!("examples/dist/inspect.wasm: {e}; build it with `examples/build.sh inspect`"))?;
    let dir = tempfile::tempdir()?;
    let functions = dir.path().join("functions");
    std::fs::create_dir_all(&functions)?;
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new(&eddy).args(args).current_dir(dir.path()).output()?;
        anyhow::ensure!(out.status.success(), "eddy {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    run(&["stream", "create", "s", "--shards", "1"])?;
    run(&["put", "s", "-k", "k", "-d", "{\"waiting\": true}"])?;

    let log_path = dir.path().join("host.log");
    let mut host = Command::new(&eddy)
        .args(["--log-format", "json", "run", "--admin", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("EDDY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .spawn()?;
    let mut log = LogTail::open(&log_path)?;
    log.wait_for(Duration::from_secs(30), |line| line.contains("admin port listening"))?;

    println!("## Drop → first invocation (`inspect`, 0.1 MB Rust; eddy run's default 250 ms scan)\n");
    println!("| written by | round | compiled | drop → first invocation |");
    println!("|---|---|---|---:|");
    let mut cached: Vec<(&str, Duration)> = Vec::new();
    for (style, renamed) in [("rename into place", true), ("cp (written in place)", false)] {
        for round in 0..ROUNDS {
            let name = format!("f{}{round}", if renamed { "r" } else { "c" });
            write(&functions.join(format!("{name}.toml")), b"[EventSource]\nType = \"Local\"\nStream = \"s\"\n", true)?;
            // Let the manifest be seen first: the clock is the component's.
            std::thread::sleep(Duration::from_millis(600));
            let wasm = functions.join(format!("{name}.wasm"));
            write(&wasm, &component, renamed)?;
            let dropped = Instant::now();
            let needle = format!("\"function\":\"{name}\"");
            log.wait_for(Duration::from_secs(60), |line| line.contains("\"target\":\"handler\"") && line.contains(&needle))?;
            let took = dropped.elapsed();
            let compiled = round == 0 && renamed;
            if !compiled {
                cached.push((style, took));
            }
            if round < 3 || round == ROUNDS - 1 {
                println!("| {style} | {round} | {} | {:.0} ms |", if compiled { "yes" } else { "cached" }, took.as_secs_f64() * 1e3);
            }
        }
    }
    for style in ["rename into place", "cp (written in place)"] {
        let mut times: Vec<Duration> = cached.iter().filter(|(s, _)| *s == style).map(|(_, t)| *t).collect();
        times.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "\n{style}, cached: p50 {:.0} ms, max {:.0} ms over {} rounds",
            ms(times[times.len() / 2]),
            ms(times[times.len() - 1]),
            times.len()
        );
    }
    let _ = host.kill();
    let _ = host.wait();
    Ok(())
}

/// Writes `bytes` to `path`: to a temporary name renamed into place, or in place.
fn write(path: &Path, bytes: &[u8], rename: bool) -> anyhow::Result<()> {
    if rename {
        let aside = path.with_extension("partial~");
        std::fs::write(&aside, bytes)?;
        std::fs::rename(&aside, path)?;
    } else {
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// Reads a log file's new lines as they are written.
struct LogTail {
    reader: std::io::BufReader<std::fs::File>,
}

impl LogTail {
    fn open(path: &Path) -> anyhow::Result<LogTail> {
        Ok(LogTail { reader: std::io::BufReader::new(std::fs::File::open(path)?) })
    }

    /// Waits for a line that passes `wanted`, polling every 0.2 ms.
    fn wait_for(&mut self, limit: Duration, wanted: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut line = String::new();
        loop {
            let position = self.reader.stream_position()?;
            line.clear();
            if self.reader.read_line(&mut line)? > 0 && line.ends_with('\n') {
                if wanted(&line) {
                    return Ok(());
                }
                continue;
            }
            // A line still being written: read it whole next time.
            self.reader.seek(std::io::SeekFrom::Start(position))?;
            anyhow::ensure!(started.elapsed() < limit, "the line did not come within {limit:?}");
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}
