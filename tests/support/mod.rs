//! Helpers for the end-to-end tests: find the `eddy` binary and the example
//! components, run `eddy run` in a scratch folder, read its JSON log, put records
//! through its admin port, and wait for conditions with generous deadlines (these
//! tests must pass on a slow, shared machine).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod browser;
pub mod destinations;
pub mod emulators;
pub mod kinesis;
pub mod stall;

/// How long a test waits for something that should happen in well under a second.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The repository's root. `cargo test` sets `CARGO_MANIFEST_DIR` for the test
/// process, which is right even when this library was compiled in another
/// checkout sharing the target directory; the compile-time value is the fallback.
pub fn repo_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let manifest_dir = manifest_dir.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().expect("tests/ has a parent").to_path_buf()
}

/// The `eddy` binary: `$EDDY_BIN`, or the one cargo built next to this test.
pub fn eddy_bin() -> PathBuf {
    if let Ok(path) = std::env::var("EDDY_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test> -> target/<profile>/eddy
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join("eddy");
    assert!(bin.exists(), "{} is missing: build it first (`cargo build -p eddy-host`) or set EDDY_BIN", bin.display());
    bin
}

/// An example component built by `examples/build.sh`.
pub fn component(name: &str) -> PathBuf {
    let dist = std::env::var("EDDY_DIST").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("examples/dist"));
    let path = dist.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run examples/build.sh first", path.display());
    path
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// Runs `eddy` with `args` to completion.
pub fn eddy(args: &[&str], dir: &Path) -> Output {
    Command::new(eddy_bin()).args(args).current_dir(dir).output().expect("eddy runs")
}

/// What `eddy invoke` did.
pub struct Invoked {
    pub ok: bool,
    /// The exit code: 0 the batch succeeds, 1 a function error, 2 it fails at a
    /// sequence number, 3 its response fails it whole.
    pub code: Option<i32>,
    /// Standard output as printed, and parsed as JSON (`Null` when it is not JSON).
    pub stdout: String,
    pub response: Value,
    /// Standard error: the handler's log lines and the host's errors.
    pub log: String,
}

/// Runs `eddy invoke <component> --event <event> <extra>...`.
pub fn invoke(component: &Path, event: &Path, extra: &[&str]) -> Invoked {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec!["invoke", component.to_str().expect("utf-8"), "--event", event.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let out = eddy(&args, dir.path());
    Invoked {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        response: serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Waits until `check` returns `Some`, or panics with `what` after [`PATIENCE`].
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A scratch workspace with a functions folder and a data directory.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(dir.path().join("functions")).expect("functions dir");
        Workspace { dir }
    }

    /// A workspace with one local stream of `shards` shards and one function on it.
    pub fn with_function(stream: &str, shards: u32, function: &str, component_name: &str, manifest_extra: &str) -> Workspace {
        let ws = Workspace::new();
        ws.create_stream(stream, shards);
        ws.deploy(function, component_name, &manifest(stream, manifest_extra));
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn functions(&self) -> PathBuf {
        self.path().join("functions")
    }

    /// Deploys a function the way a careful user does: the manifest, then the
    /// component written under a temporary name and renamed into place.
    pub fn deploy(&self, name: &str, component_name: &str, manifest: &str) {
        self.write_manifest(name, manifest);
        self.write_component(name, component_name);
    }

    pub fn write_manifest(&self, name: &str, manifest: &str) {
        atomic_write(&self.functions().join(format!("{name}.toml")), manifest.as_bytes());
    }

    pub fn write_component(&self, name: &str, component_name: &str) {
        let bytes = fs::read(component(component_name)).expect("component");
        atomic_write(&self.functions().join(format!("{name}.wasm")), &bytes);
    }

    /// Writes `functions/roles/<name>.json`.
    pub fn write_role(&self, name: &str, policy: &str) {
        let dir = self.functions().join("roles");
        fs::create_dir_all(&dir).expect("roles dir");
        atomic_write(&dir.join(format!("{name}.json")), policy.as_bytes());
    }

    pub fn remove(&self, name: &str) {
        let _ = fs::remove_file(self.functions().join(format!("{name}.wasm")));
        let _ = fs::remove_file(self.functions().join(format!("{name}.toml")));
    }

    pub fn create_stream(&self, name: &str, shards: u32) {
        let out = eddy(&["stream", "create", name, "--shards", &shards.to_string()], self.path());
        assert!(out.status.success(), "stream create: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Workspace::new()
    }
}

pub fn atomic_write(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("partial~");
    fs::write(&tmp, bytes).expect("write");
    fs::rename(&tmp, path).expect("rename");
}

/// A minimal manifest for a local stream, which the host creates if it is missing.
pub fn manifest(stream: &str, extra: &str) -> String {
    let create = if extra.contains("CreateStream") { "" } else { "CreateStream = true\n" };
    format!("[EventSource]\nType = \"Local\"\nStream = \"{stream}\"\n{create}{extra}\n")
}

/// A running `eddy run`, stopped (SIGKILL) when dropped.
pub struct Host {
    child: Option<Child>,
    log: PathBuf,
    pub admin: String,
}

impl Host {
    /// Starts `eddy run` in `ws`, with JSON logs and quick polling.
    pub fn start(ws: &Workspace) -> Host {
        Host::start_with(ws, &[])
    }

    pub fn start_with(ws: &Workspace, extra_args: &[&str]) -> Host {
        Host::start_with_env(ws, extra_args, &[])
    }

    /// As [`Host::start_with`], with more environment variables for the host.
    pub fn start_with_env(ws: &Workspace, extra_args: &[&str], env: &[(&str, &str)]) -> Host {
        let log = ws.path().join(format!("host-{}.log", unique()));
        let log_file = fs::File::create(&log).expect("log file");
        let child = Command::new(eddy_bin())
            .args(["--log-format", "json", "run", "--admin", "127.0.0.1:0", "--local-poll-ms", "20"])
            // Quick scans, unless the test sets its own.
            .args(if extra_args.contains(&"--scan-ms") { &[][..] } else { &["--scan-ms", "50"][..] })
            .args(extra_args)
            .current_dir(ws.path())
            .env("EDDY_LOG", "info")
            .envs(emulators::AWS_ENV)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("eddy run starts");
        let mut host = Host { child: Some(child), log, admin: String::new() };
        host.admin = wait_for("the admin port", || {
            host.lines().iter().find_map(|l| {
                l["fields"]["message"].as_str()?.strip_prefix("admin port listening on http://").map(str::to_owned)
            })
        });
        host
    }

    /// Every log line so far, parsed.
    pub fn lines(&self) -> Vec<Value> {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The messages a function's handler logged, in order.
    pub fn handler_messages(&self, function: &str) -> Vec<String> {
        handler_messages_in(&self.log, function)
    }

    /// The host's log file, to read after the host is gone.
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn status(&self) -> Value {
        get_json(&format!("http://{}/status", self.admin))
    }

    /// `/metrics`, as Prometheus scrapes it.
    pub fn metrics(&self) -> String {
        ureq::get(&format!("http://{}/metrics", self.admin))
            .call()
            .expect("metrics")
            .body_mut()
            .read_to_string()
            .expect("text")
    }

    /// A function's entry in `/status`.
    pub fn function(&self, name: &str) -> Option<Value> {
        self.status()["functions"].as_array()?.iter().find(|f| f["name"] == name).cloned()
    }

    /// Waits until the function's state is `state`, and returns its entry.
    pub fn wait_state(&self, name: &str, state: &str) -> Value {
        wait_for(&format!("{name} to be {state}"), || self.function(name).filter(|f| f["state"] == state))
    }

    /// Puts text records with one partition key through the ingest endpoint.
    pub fn put(&self, stream: &str, partition_key: &str, texts: &[String]) -> Value {
        let records: Vec<Value> =
            texts.iter().map(|t| serde_json::json!({"PartitionKey": partition_key, "Text": t})).collect();
        let url = format!("http://{}/streams/{stream}/records", self.admin);
        ureq::post(&url)
            .send_json(serde_json::json!({ "Records": records }))
            .expect("ingest")
            .body_mut()
            .read_json()
            .expect("ingest response")
    }

    /// The host's process id (to read its CPU time in /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops the host with SIGTERM and waits for it to exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        terminate(&child);
        child.wait().expect("exit status")
    }

    /// Stops the host with SIGTERM and waits up to `patience` for it to exit;
    /// `None` (and the host killed) if it did not.
    pub fn stop_within(mut self, patience: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take().expect("running");
        terminate(&child);
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Kills the host at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends SIGTERM, as an operator's stop does.
fn terminate(child: &Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let mut stderr = std::io::stderr();
            // The host's own lines, and the last of the handlers' (which can be many).
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail_from = lines.len().saturating_sub(40);
            let shown: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, l)| *i >= tail_from || !l.contains(r#""target":"handler""#))
                .map(|(_, l)| *l)
                .collect();
            let _ = writeln!(stderr, "---- host log ({}), host lines and the last 40 ----\n{}", self.log.display(), shown.join("\n"));
        }
    }
}

/// The messages a function's handler logged in a host's log file, in order.
pub fn handler_messages_in(log: &Path, function: &str) -> Vec<String> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "handler" && l["fields"]["function"] == function)
        .filter_map(|l| l["fields"]["message"].as_str().map(str::to_owned))
        .collect()
}

pub fn get_json(url: &str) -> Value {
    ureq::get(url).call().expect("GET").body_mut().read_json().expect("JSON")
}

pub fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// The log lines of one target (`audit`, `handler`, ...), parsed.
pub fn lines_of(lines: &[Value], target: &str) -> Vec<Value> {
    lines.iter().filter(|l| l["target"] == target).cloned().collect()
}

/// Sums a shard counter over every shard of a function.
pub fn shard_total(function: &Value, counter: &str) -> u64 {
    function["shards"].as_array().map_or(0, |s| s.iter().filter_map(|s| s[counter].as_u64()).sum())
}

/// A small xorshift generator for tests that pick at random (kill points,
/// garbage bytes): each run differs, and the seed is printed so a failing run
/// can be repeated (`EDDY_FAULTS_SEED`).
pub struct Random(u64);

impl Random {
    pub fn new() -> Random {
        let seed = std::env::var("EDDY_FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(unique() as u64 | 1);
        eprintln!("fault suite seed: EDDY_FAULTS_SEED={seed}");
        Random(seed)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

impl Default for Random {
    fn default() -> Self {
        Random::new()
    }
}

/// A process's user + system CPU so far, in seconds, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // The fields after the command's closing parenthesis start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        let out = Command::new("getconf").arg("CLK_TCK").output().expect("getconf");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("CLK_TCK")
    })
}
