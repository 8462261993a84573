//! Eddy's benchmark: the cost of an invocation and the throughput of the loop.
//!
//!     examples/build.sh noop totals hostile && cargo bench -p eddy-host --bench invoke
//!
//! Prints, for the `noop` and `totals` (JSON-parsing) example handlers:
//! 1. time per invocation at batch sizes 1, 100 and 1000: fresh (instantiate and
//!    call) and warm (call the instance kept from the last invocation, as a
//!    shard does), next to the same handler compiled natively and called
//!    in-process (the limit: no sandbox, no copy into guest memory beyond a clone);
//! 2. records per second through the whole loop (read from the embedded stream,
//!    batch, invoke, checkpoint) on a 4-shard stream of 100,000 records, with the
//!    Wasm handler and with the native one (the batch copied into the guest SDK's
//!    types, as lowering copies it into guest memory): the median of
//!    EDDY_BENCH_LOOP_ROUNDS (5) rounds, wasm and native taking turns, in
//!    records/s of wall time and in the process's CPU time per record;
//!
//! 3. the cost of capability calls from the `hostile` example's probes: key-value
//!    calls and record puts on the embedded store, and a call the role denies.
//!
//! 4. per language (the examples of tests/languages.rs): component size, first
//!    load (compile, and write the compile cache), cached load (read it back),
//!    and an invocation with a batch of 100 records, fresh and warm.
//!
//! Set EDDY_BENCH_RECORDS to change the loop's record count,
//! EDDY_BENCH_ONLY=loop to print the loop's table alone (for a profile), and
//! EDDY_BENCH_ONLY=languages to print the languages table alone (it needs every
//! example built: `examples/build.sh`), and EDDY_BENCH_EXAMPLES=js-lambda,... to
//! keep only those rows of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy::manifest::Manifest;
use eddy::mapping::{self, FunctionVersion, Handler, MappingContext, WasmHandler};
use eddy::record::Batch;
use eddy::manifest::ExecutionEnvironment;
use eddy::runtime::{HandlerResponse, InstanceSlot, InvokeError, InvokeRequest, LoadedComponent, Runtime, RuntimeConfig};
use eddy::source::local::{self, LocalSource, PutRecord};
use eddy::status::StatusBoard;
use eddy::store::CheckpointStore;
use eddy::store::embedded::EmbeddedStore;
use eddy_guest::TypedHandler;

const SIZES: [usize; 3] = [1, 100, 1000];
const DATA: &str = r#"{"amount": 12.5, "item": "widget-0042", "customer": "c-123456"}"#;

fn main() -> anyhow::Result<()> {
    eddy_guest::log::set_native_output(false);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let runtime = Arc::new(Runtime::new(&RuntimeConfig { max_instances: 32, ..RuntimeConfig::default() })?);
    let dist = std::env::var("EDDY_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/dist"));

    if std::env::var("EDDY_BENCH_ONLY").is_ok_and(|v| v == "languages") {
        return rt.block_on(languages(&dist));
    }

    let loop_only = std::env::var("EDDY_BENCH_ONLY").is_ok_and(|v| v == "loop");
    if !loop_only {
        println!("## Invocation: fresh (instantiate + call) and warm (call a kept instance), per invocation\n");
    }
    let mut components = Vec::new();
    let source_only = (eddy::role::Grants::source_only("bench"), Arc::new(eddy::capability::Services::new(None)));
    for name in ["noop", "totals"] {
        let bytes = std::fs::read(dist.join(format!("{name}.wasm")))
            .map_err(|e| anyhow::anyhow!("{name}.wasm: {e} (run examples/build.sh first)"))?;
        let component = Arc::new(runtime.load(&bytes)?);
        components.push((name, Arc::clone(&component)));
        if loop_only {
            continue;
        }
        if name == "noop" {
            println!("| handler | batch | fresh p50 | warm p50 | warm p99 | native p50 | native p99 | warm per record |");
            println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        }
        for size in SIZES {
            let batch = host_batch(size);
            let guest = guest_batch(size);
            let iterations = match size {
                1 => 5000,
                100 => 1000,
                _ => 200,
            };
            let fresh = rt.block_on(time_wasm(&runtime, &component, &batch, iterations, &source_only, None));
            let slot = InstanceSlot::new(ExecutionEnvironment::default());
            let wasm = rt.block_on(time_wasm(&runtime, &component, &batch, iterations, &source_only, Some(&slot)));
            let native = time_native(name, &guest, iterations);
            println!(
                "| {name} | {size} | {} | {} | {} | {} | {} | {} |",
                fmt(percentile(&fresh, 50)),
                fmt(percentile(&wasm, 50)),
                fmt(percentile(&wasm, 99)),
                fmt(percentile(&native, 50)),
                fmt(percentile(&native, 99)),
                fmt(percentile(&wasm, 50) / size as u32),
            );
        }
    }

    let records: usize = std::env::var("EDDY_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let rounds: usize = std::env::var("EDDY_BENCH_LOOP_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    println!("\n## Whole loop on the embedded stream ({records} records, 4 shards, BatchSize 1000), median of {rounds} interleaved rounds\n");
    println!("| handler | wasm records/s | native records/s | wasm / native | wasm CPU per record | native CPU per record | native / wasm CPU |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, component) in components {
        let component = Arc::into_inner(component).ok_or_else(|| anyhow::anyhow!("component still shared"))?;
        let wasm: Arc<dyn Handler> = Arc::new(WasmHandler::new(Arc::clone(&runtime), component));
        let native: Arc<dyn Handler> = Arc::new(Native { name });
        // Wasm and native take turns, each going first every other round, so
        // that a machine slowing down mid-run tilts neither; the CPU time is
        // steadier than the wall time on a shared machine.
        let (mut wasm_runs, mut native_runs) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let order = if round % 2 == 0 { [true, false] } else { [false, true] };
            for is_wasm in order {
                let handler = if is_wasm { Arc::clone(&wasm) } else { Arc::clone(&native) };
                let run = rt.block_on(time_loop(handler, name, records))?;
                if is_wasm { wasm_runs.push(run) } else { native_runs.push(run) }
            }
        }
        let rate = |runs: &[LoopRun]| median(runs.iter().map(|r| r.records as f64 / r.elapsed.as_secs_f64()).collect());
        let cpu = |runs: &[LoopRun]| median(runs.iter().map(|r| r.cpu.as_secs_f64() * 1e6 / r.records as f64).collect());
        let (wasm_rate, native_rate, wasm_cpu, native_cpu) = (rate(&wasm_runs), rate(&native_runs), cpu(&wasm_runs), cpu(&native_runs));
        println!(
            "| {name} | {wasm_rate:.0} | {native_rate:.0} | {:.2} | {wasm_cpu:.2} µs | {native_cpu:.2} µs | {:.2} |",
            wasm_rate / native_rate,
            native_cpu / wasm_cpu
        );
    }

    if loop_only {
        return Ok(());
    }
    capability_calls(&rt, &runtime, &dist)?;

    println!("\n## FilterCriteria: matching one record (Kinesis JSON data, 63 bytes)\n");
    println!("| pattern | per record | records/s |");
    println!("|---|---:|---:|");
    let batch = host_batch(1000);
    let eddy::record::Records::Kinesis(records) = &batch.records else { anyhow::bail!("a Kinesis batch") };
    for pattern in [
        r#"{"data":{"item":[{"prefix":"widget-"}]}}"#,
        r#"{"data":{"amount":[{"numeric":[">",10,"<=",1000]}],"customer":[{"anything-but":["c-000000"]}]}}"#,
        r#"{"$or":[{"data":{"amount":[{"numeric":[">",100]}]}},{"data":{"item":[{"equals-ignore-case":"WIDGET-0042"}]}}]}"#,
    ] {
        let filter = eddy::filter::RecordFilter::new(&[pattern.to_owned()])?;
        let rounds = 200;
        let started = std::time::Instant::now();
        let mut kept = 0usize;
        for _ in 0..rounds {
            kept += records.iter().filter(|r| filter.matches_kinesis(r)).count();
        }
        let per_record = started.elapsed() / (rounds * records.len()) as u32;
        anyhow::ensure!(kept > 0, "the pattern matched nothing: {pattern}");
        println!("| `{pattern}` | {} | {:.0} |", fmt(per_record), 1.0 / per_record.as_secs_f64());
    }
    Ok(())
}

type Capabilities = (Arc<eddy::role::Grants>, Arc<eddy::capability::Services>);

/// Per language: the size of the example's component, its first load (compile
/// and cache) and cached load (each with a fresh engine), and an invocation with
/// 100 records.
async fn languages(dist: &std::path::Path) -> anyhow::Result<()> {
    println!("\n## Languages: the examples of tests/languages.rs\n");
    println!("| language | example | world | component | first load | cached load | 100 records fresh p50 | warm p50 | warm p99 |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    let examples = [
        ("Rust", "totals"),
        ("C", "c-totals"),
        ("Go (wasip1 command)", "go-totals"),
        ("JavaScript", "js-totals"),
        ("JavaScript, Lambda handler", "js-lambda"),
        ("Python", "python-totals"),
        ("Python, Lambda handler", "python-lambda"),
    ];
    let capabilities = (eddy::role::Grants::source_only("bench"), Arc::new(eddy::capability::Services::new(None)));
    let batch = host_batch(100);
    let chosen = std::env::var("EDDY_BENCH_EXAMPLES").unwrap_or_default();
    let chosen: Vec<&str> = chosen.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    for (language, name) in examples {
        if !chosen.is_empty() && !chosen.contains(&name) {
            continue;
        }
        let path = dist.join(format!("{name}.wasm"));
        let bytes = std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e} (run examples/build.sh first)", path.display()))?;
        let cache = tempfile::tempdir()?;
        let config = RuntimeConfig { max_instances: 4, cache_dir: Some(cache.path().to_path_buf()), ..RuntimeConfig::default() };
        let first_runtime = Runtime::new(&config)?;
        let started = Instant::now();
        let first = first_runtime.load(&bytes)?;
        let first_load = started.elapsed();
        anyhow::ensure!(first.compiled, "{name}: the first load compiled");
        drop(first);
        drop(first_runtime);
        let runtime = Runtime::new(&config)?;
        let started = Instant::now();
        let component = runtime.load(&bytes)?;
        let cached_load = started.elapsed();
        anyhow::ensure!(!component.compiled, "{name}: the second load came from the cache");
        let iterations = if bytes.len() > 1 << 20 { 100 } else { 500 };
        let fresh = time_wasm(&runtime, &component, &batch, iterations, &capabilities, None).await;
        let slot = InstanceSlot::new(ExecutionEnvironment::default());
        let times = time_wasm(&runtime, &component, &batch, iterations * 4, &capabilities, Some(&slot)).await;
        println!(
            "| {language} | `{name}` | {} | {:.1} MB | {} | {} | {} | {} | {} |",
            component.world.name(),
            bytes.len() as f64 / 1e6,
            fmt(first_load),
            fmt(cached_load),
            fmt(percentile(&fresh, 50)),
            fmt(percentile(&times, 50)),
            fmt(percentile(&times, 99)),
        );
    }
    Ok(())
}

/// Invocations of the `hostile` example whose one record is a probe: what a
/// capability call costs, allowed and denied.
fn capability_calls(rt: &tokio::runtime::Runtime, runtime: &Runtime, dist: &std::path::Path) -> anyhow::Result<()> {
    println!("\n## Capability calls (`hostile` probes, embedded store), per invocation\n");
    println!("| probe | calls | p50 | p99 | p50 per call, less an empty probe |");
    println!("|---|---:|---:|---:|---:|");
    let bytes = std::fs::read(dist.join("hostile.wasm"))
        .map_err(|e| anyhow::anyhow!("hostile.wasm: {e} (run examples/build.sh first)"))?;
    let component = runtime.load(&bytes)?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(dir.path())?);
    local::create(&store.connect()?, "bench-out", 4, 24)?;
    let policy = eddy::role::policy::Policy::parse(
        r#"{"Statement":[{"Effect":"Allow","Action":["kinesis:PutRecord","dynamodb:*Item"],"Resource":"arn:aws:*:local:*:*/bench-*"}]}"#,
    )?;
    let grants = Arc::new(eddy::role::Grants::new(Arc::from("bench"), Arc::new(eddy::role::Role::from_policy("bench", policy)), None));
    let capabilities = (grants, Arc::new(eddy::capability::Services::new(Some(store))));
    let mut baseline = Duration::ZERO;
    for (probe, calls) in [("nothing", 0u32), ("kv bench-table", 5), ("put bench-out", 1), ("put denied-out", 1)] {
        let mut batch = host_batch(1);
        if let eddy::record::Records::Kinesis(records) = &mut batch.records {
            records[0].data = probe.as_bytes().to_vec();
        }
        let slot = InstanceSlot::new(ExecutionEnvironment::default());
        let times = rt.block_on(time_wasm(runtime, &component, &batch, 1000, &capabilities, Some(&slot)));
        let p50 = percentile(&times, 50);
        if calls == 0 {
            baseline = p50;
        }
        let per_call = if calls == 0 { "".to_owned() } else { fmt(p50.saturating_sub(baseline) / calls) };
        println!("| `{probe}` | {calls} | {} | {} | {per_call} |", fmt(p50), fmt(percentile(&times, 99)));
    }
    Ok(())
}

async fn time_wasm(
    runtime: &Runtime,
    component: &LoadedComponent,
    batch: &Batch,
    iterations: usize,
    (grants, services): &Capabilities,
    instance_slot: Option<&InstanceSlot>,
) -> Vec<Duration> {
    let function: Arc<str> = Arc::from("bench");
    let shard: Arc<str> = Arc::from("shardId-000000000000");
    let environment: Arc<[(String, String)]> = Arc::from(Vec::new());
    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations + iterations / 10 {
        let started = Instant::now();
        let result = runtime
            .invoke(
                component,
                batch,
                InvokeRequest {
                    function: &function,
                    shard: &shard,
                    request_id: String::new(),
                    timeout: Duration::from_secs(30),
                    memory_mb: 128,
                    environment: &environment,
                    log_limit_bytes: eddy::manifest::DEFAULT_LOG_LIMIT_BYTES,
                    grants,
                    services,
                    instance_slot,
                },
            )
            .await;
        let elapsed = started.elapsed();
        assert!(result.is_ok(), "{result:?}");
        if i >= iterations / 10 {
            times.push(elapsed); // the first tenth warms up
        }
    }
    times
}

fn time_native(name: &str, batch: &eddy_guest::Batch, iterations: usize) -> Vec<Duration> {
    let context = eddy_guest::Context {
        function_name: "bench".into(),
        request_id: String::new(),
        deadline_ms: 0,
        memory_limit_mb: 128,
    };
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let result = match name {
            "noop" => eddy_example_noop::Noop::handle(batch.clone(), context.clone()),
            _ => eddy_example_totals::Totals::handle(batch.clone(), context.clone()),
        };
        times.push(started.elapsed());
        assert!(result.is_ok_and(|r| r.batch_item_failures.is_empty()));
    }
    times
}

/// The example handler compiled natively, as the mapping's handler.
struct Native {
    name: &'static str,
}

#[async_trait::async_trait]
impl Handler for Native {
    async fn invoke(&self, batch: &Batch, request: InvokeRequest<'_>) -> Result<HandlerResponse, InvokeError> {
        let context = eddy_guest::Context {
            function_name: request.function.to_string(),
            request_id: request.request_id,
            deadline_ms: 0,
            memory_limit_mb: request.memory_mb,
        };
        let guest = to_guest(batch);
        let result = match self.name {
            "noop" => eddy_example_noop::Noop::handle(guest, context),
            _ => eddy_example_totals::Totals::handle(guest, context),
        };
        result
            .map(|r| HandlerResponse::Typed(eddy::record::BatchResponse { batch_item_failures: r.batch_item_failures, state: r.state }))
            .map_err(InvokeError::Handler)
    }
}

/// Copies a host batch into the guest SDK's types (Kinesis records only).
fn to_guest(batch: &Batch) -> eddy_guest::Batch {
    let records = match &batch.records {
        eddy::record::Records::Kinesis(records) => records
            .iter()
            .map(|r| eddy_guest::KinesisRecord {
                event_id: r.event_id.clone(),
                partition_key: r.partition_key.clone(),
                sequence_number: r.sequence_number.clone(),
                data: r.data.clone(),
                approximate_arrival_timestamp_ms: r.approximate_arrival_timestamp_ms,
                encryption_type: r.encryption_type.clone(),
            })
            .collect(),
        eddy::record::Records::Dynamodb(_) => Vec::new(),
    };
    eddy_guest::Batch {
        event_source: eddy_guest::EventSource::Kinesis,
        event_source_arn: batch.event_source_arn.clone(),
        aws_region: batch.aws_region.clone(),
        invoke_identity_arn: batch.invoke_identity_arn.clone(),
        shard_id: batch.shard_id.clone(),
        records: eddy_guest::Records::Kinesis(records),
        window: None,
    }
}

/// One run of the whole loop: how long it took, and the CPU the process spent.
struct LoopRun {
    elapsed: Duration,
    cpu: Duration,
    records: u64,
}

/// The CPU time (user and system) of this process so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    time(usage.ru_utime) + time(usage.ru_stime)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn time_loop(handler: Arc<dyn Handler>, name: &str, records: usize) -> anyhow::Result<LoopRun> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(dir.path())?);
    let mut conn = store.connect()?;
    local::create(&conn, "bench", 4, 24)?;
    let mut put = 0;
    while put < records {
        let chunk: Vec<PutRecord> = (put..(put + 1000).min(records))
            .map(|i| PutRecord { partition_key: format!("key-{i}"), data: DATA.as_bytes().to_vec() })
            .collect();
        put += chunk.len();
        local::put(&mut conn, "bench", &chunk)?;
    }
    let manifest = Manifest::parse("[EventSource]\nType = \"Local\"\nStream = \"bench\"\nBatchSize = 1000\n")?;
    let version = Arc::new(FunctionVersion {
        name: Arc::from(name),
        manifest,
        handler,
        environment: Arc::from(Vec::new()),
        identity_arn: String::new(),
        grants: eddy::role::Grants::source_only(name),
        services: Arc::new(eddy::capability::Services::new(None)),
    });
    let status = Arc::new(StatusBoard::default());
    status.set_function(eddy::status::FunctionStatus::new(name, eddy::status::FunctionState::Running), true);
    let checkpoints: Arc<dyn CheckpointStore> = store.clone();
    let source = Arc::new(LocalSource::new(Arc::clone(&store), "bench", Duration::from_millis(10)));
    let (started, cpu) = (Instant::now(), process_cpu());
    let mapping = mapping::start(
        version,
        source,
        MappingContext { store: checkpoints, status: Arc::clone(&status), cluster: None },
    );
    loop {
        let done: u64 = status.snapshot().iter().flat_map(|f| &f.shards).map(|s| s.records_processed).sum();
        if done >= records as u64 {
            let (elapsed, cpu) = (started.elapsed(), process_cpu() - cpu);
            mapping.stop().await;
            return Ok(LoopRun { elapsed, cpu, records: done });
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The same batch as the host's type and as the guest SDK's type: the two are
/// generated from one WIT record, so one macro builds either.
macro_rules! batch {
    ($types:ident, $size:expr) => {
        $types::Batch {
            event_source: $types::EventSource::Kinesis,
            event_source_arn: local::stream_arn("bench"),
            aws_region: "local".into(),
            invoke_identity_arn: String::new(),
            shard_id: "shardId-000000000000".into(),
            records: $types::Records::Kinesis(
                (0..$size)
                    .map(|i| $types::KinesisRecord {
                        event_id: format!("shardId-000000000000:{}", i + 1),
                        partition_key: format!("key-{}", i % 10),
                        sequence_number: (i + 1).to_string(),
                        data: DATA.as_bytes().to_vec(),
                        approximate_arrival_timestamp_ms: 1_700_000_000_000,
                        encryption_type: None,
                    })
                    .collect(),
            ),
            window: None,
        }
    };
}

fn host_batch(size: usize) -> Batch {
    use eddy::record as host_types;
    batch!(host_types, size)
}

fn guest_batch(size: usize) -> eddy_guest::Batch {
    use eddy_guest as guest_types;
    batch!(guest_types, size)
}

fn percentile(times: &[Duration], p: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}
