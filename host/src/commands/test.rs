//! `eddy test`: a function run through its real mapping over a scenario of
//! records on a simulated clock ([`eddy::test_driver`]), and what happened,
//! printed as a timeline or as JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use eddy::runtime::{Runtime, RuntimeConfig};
use eddy::test_driver::{Ended, Report, Scenario};

#[derive(clap::Args)]
pub struct TestArgs {
    /// The function, by its name in the functions folder.
    pub function: String,
    /// The scenario's records: JSON lines as `eddy put --file` takes them, each
    /// with an optional "At", its time in seconds after the start.
    #[arg(long, short)]
    pub records: PathBuf,
    /// The functions folder holding FUNCTION.wasm, FUNCTION.toml and roles/.
    #[arg(long, default_value = "functions", env = "EDDY_FUNCTIONS")]
    pub functions: PathBuf,
    /// Shards of the stream the records are put to (by partition key).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub shards: u32,
    /// Stop after so many invocations.
    #[arg(long, default_value_t = 1000)]
    pub max_invocations: usize,
    /// Simulated time the run may go on after the last record (`90s`, `15m`, `2h`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub run_for: Duration,
    /// When the simulated clock starts (RFC 3339).
    #[arg(long, default_value = "2030-01-01T00:00:00Z", value_parser = humantime::parse_rfc3339_weak)]
    pub start: std::time::SystemTime,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: TestArgs) -> anyhow::Result<std::process::ExitCode> {
    let name = &args.function;
    let roles_dir = args.functions.join("roles");
    let (wasm, toml) = (args.functions.join(format!("{name}.wasm")), args.functions.join(format!("{name}.toml")));
    let files = eddy::registry::FunctionFiles::read(&wasm, &toml, &roles_dir)
        .with_context(|| format!("cannot read {} and {}", wasm.display(), toml.display()))?;
    let manifest = eddy::function::parse_manifest(name, &files.manifest)?;
    let policy = files.role.as_ref().and_then(|(_, policy)| policy.as_deref());
    let role = eddy::function::resolve_role(name, &manifest, policy, &roles_dir)?;
    let text = std::fs::read_to_string(&args.records).with_context(|| format!("cannot read {}", args.records.display()))?;
    let records = eddy::test_driver::parse_records(&text).with_context(|| format!("{}", args.records.display()))?;
    let runtime = Arc::new(Runtime::new(&RuntimeConfig {
        max_instances: 16,
        cache_dir: eddy::runtime::user_cache_dir(),
        ..RuntimeConfig::default()
    })?);
    let component = eddy::function::load_component(&runtime, &format!("{name}.wasm"), &files.wasm)?;
    let start_ms = args.start.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let scenario = Scenario {
        function: Arc::from(name.as_str()),
        manifest,
        role,
        component,
        runtime,
        records,
        shards: args.shards,
        start_ms,
        max_invocations: args.max_invocations,
        run_for: args.run_for,
    };
    // A runtime of its own, on a thread of its own: one thread whose clock is
    // paused, and jumps ahead whenever nothing is ready to run.
    let report = std::thread::spawn(move || -> anyhow::Result<Report> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?;
        rt.block_on(eddy::test_driver::run(scenario))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the test driver panicked"))??;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_timeline(&report);
    }
    Ok(if report.ended == Ended::Done { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}

fn seconds(ms: u64) -> String {
    format!("+{:.3}s", ms as f64 / 1000.0)
}

/// Record identifiers, shortened: `1..5` for a run of consecutive sequence
/// numbers, and at most 12 shown.
fn ids(records: &[String]) -> String {
    let numbers: Option<Vec<u64>> = records.iter().map(|r| r.parse().ok()).collect();
    if let Some(n) = numbers
        && n.len() > 2
        && n.windows(2).all(|w| w[1] == w[0] + 1)
    {
        return format!("{}..{}", n[0], n[n.len() - 1]);
    }
    if records.len() <= 12 {
        return records.join(" ");
    }
    format!("{} ... {} ({} records)", records[..6].join(" "), records[records.len() - 3..].join(" "), records.len())
}

fn print_timeline(report: &Report) {
    // (time, order within the same time, line)
    let mut lines: Vec<(u64, u8, String)> = Vec::new();
    let mut puts = report.puts.iter().peekable();
    while let Some(first) = puts.next() {
        let mut group = vec![first.sequence_number.clone()];
        while let Some(next) = puts.next_if(|p| p.at_ms == first.at_ms && p.shard == first.shard) {
            group.push(next.sequence_number.clone());
        }
        lines.push((first.at_ms, 0, format!("put         {}  {}", first.shard, ids(&group))));
    }
    for i in &report.invocations {
        let window = i.window.as_ref().map_or(String::new(), |w| {
            let mut text = format!("  window [{}, {}) state {}", seconds(w.start_ms.max(0) as u64), seconds(w.end_ms.max(0) as u64), w.state);
            if w.is_final {
                text.push_str(" (final)");
            }
            if w.terminated_early {
                text.push_str(" (terminated early)");
            }
            text
        });
        let records = if i.records.is_empty() { "(no records)".to_owned() } else { ids(&i.records) };
        // An error is the outcome already; a response is shown beside it.
        let response = i.response.as_deref().map_or(String::new(), |r| format!("  {r}"));
        lines.push((i.at_ms, 1, format!("invoke      {}  {records}{window}  -> {}{response}", i.shard, i.outcome)));
    }
    for c in &report.checkpoints {
        let window = c.window.as_deref().map_or(String::new(), |w| format!("  window {w}"));
        lines.push((c.at_ms, 2, format!("checkpoint  {}  {}{window}", c.shard, c.checkpoint)));
    }
    lines.sort_by_key(|(at, order, _)| (*at, *order));

    let ended = match report.ended {
        Ended::Done => "done: every record is behind its checkpoint",
        Ended::InvocationLimit => "stopped at the invocation limit (--max-invocations)",
        Ended::TimeLimit => "stopped at the time limit (--run-for)",
        Ended::MappingFailed => "the mapping failed",
    };
    println!(
        "eddy test {}: {} records, {} invocations; {ended}, after {} of simulated time ({} ms of real time)\n",
        report.function,
        report.puts.len(),
        report.invocations.len(),
        seconds(report.simulated_ms).trim_start_matches('+'),
        report.wall_ms
    );
    for (at, _, line) in &lines {
        println!("{:>10}  {line}", seconds(*at));
    }
    if !report.failure_records.is_empty() {
        println!("\nfailure records (the on-failure destination):");
        for record in &report.failure_records {
            println!("  {record}");
        }
    }
    println!("\nshards:");
    for s in &report.shards {
        let checkpoint = s.checkpoint.as_ref().map_or("none".to_owned(), ToString::to_string);
        let error = s.last_error.as_deref().map_or(String::new(), |e| format!("; last error: {e}"));
        println!(
            "  {}: checkpoint {checkpoint}; {} put, {} processed, {} discarded, {} filtered out{error}",
            s.shard, s.records_put, s.records_processed, s.records_discarded, s.filtered_out
        );
    }
}
