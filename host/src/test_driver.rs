//! The test driver behind `eddy test`: a function's real mapping (batching,
//! filters, ReportBatchItemFailures, retries, bisection, discards, windows, KPL
//! de-aggregation) over an in-memory scenario, on a simulated clock, with no
//! host, no AWS and no waiting. Kafka Streams' TopologyTestDriver is the model.
//!
//! A scenario is the function (its component, manifest and role, as the host
//! reads them) and records, each put at a time given as an offset from the start.
//! The driver runs the mapping on a paused tokio runtime (`crate::clock`), so
//! batching windows, back-offs between retries, record ages and tumbling windows
//! pass in simulated time while invocations run for real. It swaps in:
//! - a local stream in a temporary data directory for the manifest's source
//!   (capability calls reach that directory's streams and tables too);
//! - a temporary directory for the on-failure destination, read back into the
//!   report;
//! - recording wrappers around the handler and the checkpoint store, which write
//!   down each invocation and each checkpoint, at their simulated times.
//!
//! The run ends once every record put is behind its shard's checkpoint and no
//! tumbling window is open, or at the scenario's limits.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use serde::Serialize;

use crate::capability::Services;
use crate::clock;
use crate::manifest::{Destination, Manifest, OnFailure, SourceRef, StreamName};
use crate::mapping::handler::{ConcurrencyLimited, Handler, WasmHandler};
use crate::mapping::outcome::{Outcome, classify};
use crate::mapping::{self, FunctionVersion, MappingContext};
use crate::record::{Batch, Records};
use crate::role::{Grants, Role};
use crate::runtime::{HandlerResponse, InvokeError, InvokeRequest, LoadedComponent, Runtime};
use crate::source::local::{self, LocalSource, PutRecord};
use crate::status::{FunctionState, FunctionStatus, StatusBoard};
use crate::store::embedded::EmbeddedStore;
use crate::store::{
    Checkpoint, CheckpointKey, CheckpointStore, MappingControl, MappingKey, Rewind, RewindTarget, ShardProgress,
    StoreError, StoredCheckpoint,
};

/// The name of the stream that stands in for the manifest's source.
pub const STREAM: &str = "test";
/// How often the driver looks at the function's state and the limits when
/// nothing has been written down, in simulated time. (Whether every record is
/// done is looked at after each checkpoint write: a look reads the store, in
/// real time, and a long run of simulated time must not cost one per tick.)
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// One record of a scenario: put at `at` after the start.
#[derive(Debug, Clone)]
pub struct ScenarioRecord {
    pub at: Duration,
    pub record: PutRecord,
}

/// What to run.
pub struct Scenario {
    pub function: Arc<str>,
    pub manifest: Manifest,
    pub role: Role,
    pub component: LoadedComponent,
    pub runtime: Arc<Runtime>,
    pub records: Vec<ScenarioRecord>,
    /// Shards of the stream the records are put to (by partition key, as Kinesis does).
    pub shards: u32,
    /// The simulated clock's start, in milliseconds since the epoch.
    pub start_ms: u64,
    /// The run stops after so many invocations (a handler that fails for ever,
    /// with retries for ever, would otherwise never end).
    pub max_invocations: usize,
    /// ... or once this much simulated time has passed since the last record.
    pub run_for: Duration,
}

/// Reads a scenario's records: JSON lines in `eddy put`'s format
/// (`{"PartitionKey":"k","Text":"..."}`, `"Json"` or base64 `"Data"`), each with
/// an optional `"At"`, its time in seconds after the start (the previous
/// record's when left out, 0 for the first). Blank lines are skipped.
pub fn parse_records(text: &str) -> anyhow::Result<Vec<ScenarioRecord>> {
    let mut records = Vec::new();
    let mut at = Duration::ZERO;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut value: serde_json::Value = serde_json::from_str(line).with_context(|| format!("line {}: not JSON", i + 1))?;
        if let Some(fields) = value.as_object_mut()
            && let Some(given) = fields.remove("At").or_else(|| fields.remove("at"))
        {
            let seconds = given
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                .with_context(|| format!("line {}: At must be a number of seconds, 0 or more: {given}", i + 1))?;
            let next = Duration::from_secs_f64(seconds);
            anyhow::ensure!(next >= at, "line {}: At {seconds} is before the previous record's", i + 1);
            at = next;
        }
        let record = crate::ingest::parse_record(value).map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?;
        records.push(ScenarioRecord { at, record });
    }
    Ok(records)
}

/// What happened, in simulated time (milliseconds after the start).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub function: String,
    /// Why the run ended.
    pub ended: Ended,
    /// Records put, and where each landed.
    pub puts: Vec<Put>,
    pub invocations: Vec<Invocation>,
    /// Every checkpoint write, in order.
    pub checkpoints: Vec<CheckpointWrite>,
    /// The failure records sent to the on-failure destination, in order.
    pub failure_records: Vec<serde_json::Value>,
    /// Each shard's state at the end.
    pub shards: Vec<ShardEnd>,
    pub simulated_ms: u64,
    pub wall_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Every record is behind its shard's checkpoint and no window is open.
    Done,
    /// The invocation limit was reached first.
    InvocationLimit,
    /// The simulated time limit was reached first.
    TimeLimit,
    /// The mapping failed (its error is in `shards`).
    MappingFailed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Put {
    pub at_ms: u64,
    pub shard: String,
    pub sequence_number: String,
    pub partition_key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    pub at_ms: u64,
    pub shard: String,
    /// Each record's identifier (its sequence number, `SEQ:SUB` for a user record
    /// of a KPL aggregate).
    pub records: Vec<String>,
    /// Set in a tumbling window: its start and end (ms after the start), the
    /// state handed in, and whether this is the window's final invocation.
    pub window: Option<WindowSeen>,
    /// What the handler answered, as JSON (`None` when it failed: `outcome` says how).
    pub response: Option<String>,
    /// How the mapping took it: `success`, `partial failure at <id>`, or
    /// `failure: <why>`.
    pub outcome: String,
    /// How long the invocation took, in real time.
    pub wall_us: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct WindowSeen {
    pub start_ms: i64,
    pub end_ms: i64,
    pub state: String,
    pub is_final: bool,
    pub terminated_early: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointWrite {
    pub at_ms: u64,
    pub shard: String,
    pub checkpoint: Checkpoint,
    /// The open window's state written with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShardEnd {
    pub shard: String,
    pub checkpoint: Option<Checkpoint>,
    pub records_put: usize,
    pub records_processed: u64,
    pub records_discarded: u64,
    pub filtered_out: u64,
    pub last_error: Option<String>,
}

/// The journal the recording wrappers write to.
#[derive(Default)]
struct Journal {
    start_ms: u64,
    invocations: Mutex<Vec<Invocation>>,
    checkpoints: Mutex<Vec<CheckpointWrite>>,
    /// Something was written down since the driver last looked.
    changed: tokio::sync::Notify,
    checkpoint_moved: std::sync::atomic::AtomicBool,
}

impl Journal {
    fn note_checkpoint(&self) {
        self.checkpoint_moved.store(true, std::sync::atomic::Ordering::Release);
        self.changed.notify_one();
    }

    fn now(&self) -> u64 {
        clock::now_ms().saturating_sub(self.start_ms)
    }

    fn offset(&self, ms: u64) -> i64 {
        ms as i64 - self.start_ms as i64
    }
}

/// Runs `scenario`; call it inside a current-thread tokio runtime started
/// paused (`tokio::runtime::Builder::start_paused`), once per process.
pub async fn run(scenario: Scenario) -> anyhow::Result<Report> {
    // The scenario's records are Kinesis records; a DynamoDB handler would be
    // handed records of the wrong kind.
    anyhow::ensure!(
        !matches!(scenario.manifest.event_source.source, SourceRef::Dynamodb { .. }),
        "{}.toml reads a DynamoDB stream: eddy test puts Kinesis records, so it runs Kinesis and local mappings only",
        scenario.function
    );
    anyhow::ensure!(clock::simulate(scenario.start_ms), "the test driver runs once per process");
    let wall = std::time::Instant::now();
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let store = Arc::new(EmbeddedStore::open(dir.path())?);
    let mut conn = store.connect()?;
    local::create(&conn, STREAM, scenario.shards, 24 * 365)?;

    let mut manifest = scenario.manifest.clone();
    let source_ref = &mut manifest.event_source.source;
    *source_ref = SourceRef::Local { stream: StreamName::parse(STREAM).context("the test stream's name")?, create: false };
    let failures_dir = dir.path().join("failures");
    if let Some(on_failure) = &manifest.event_source.on_failure {
        manifest.event_source.on_failure =
            Some(OnFailure { destination: Destination::Directory(failures_dir.clone()), include_payload: on_failure.include_payload });
    }
    let report_batch_item_failures = manifest.event_source.report_batch_item_failures;

    let journal = Arc::new(Journal { start_ms: scenario.start_ms, ..Journal::default() });
    let status = Arc::new(StatusBoard::default());
    status.set_function(FunctionStatus::new(&scenario.function, FunctionState::Running), true);
    let wasm: Arc<dyn Handler> = Arc::new(WasmHandler::new(Arc::clone(&scenario.runtime), scenario.component));
    let recorded: Arc<dyn Handler> =
        Arc::new(RecordingHandler { inner: wasm, journal: Arc::clone(&journal), report_batch_item_failures });
    let role = Arc::new(scenario.role);
    let version = Arc::new(FunctionVersion {
        identity_arn: role.arn.clone(),
        grants: Arc::new(Grants::new(Arc::clone(&scenario.function), role, Some(Arc::clone(&status)))),
        services: Arc::new(Services::new(Some(Arc::clone(&store)))),
        environment: manifest.environment.clone().into(),
        name: Arc::clone(&scenario.function),
        handler: ConcurrencyLimited::wrap(recorded, manifest.reserved_concurrency),
        manifest,
    });
    let checkpoints: Arc<dyn CheckpointStore> =
        Arc::new(RecordingStore { inner: Arc::clone(&store) as Arc<dyn CheckpointStore>, journal: Arc::clone(&journal) });
    let source = Arc::new(LocalSource::new(Arc::clone(&store), STREAM, Duration::from_millis(100)));
    let running = mapping::start(
        Arc::clone(&version),
        source,
        MappingContext { store: Arc::clone(&checkpoints), status: Arc::clone(&status), cluster: None },
    );

    let mapping_key = MappingKey { function: scenario.function.to_string(), source: version.manifest.event_source.source.id() };
    // The records, each at its time; then a look now and then whether all is done.
    let start = tokio::time::Instant::now();
    let mut puts: Vec<(Put, Vec<u8>)> = Vec::with_capacity(scenario.records.len());
    let mut pending = scenario.records.as_slice();
    let last_at = scenario.records.last().map_or(Duration::ZERO, |r| r.at);
    let ended = loop {
        if let Some(first) = pending.first() {
            tokio::time::sleep_until(start + first.at).await;
            let due = pending.iter().take_while(|r| r.at <= first.at).count();
            let (now, rest) = pending.split_at(due);
            pending = rest;
            let batch: Vec<PutRecord> = now.iter().map(|r| r.record.clone()).collect();
            let landed = local::put(&mut conn, STREAM, &batch)?;
            local::announce(&store, STREAM, &landed);
            for (put, record) in landed.into_iter().zip(batch) {
                puts.push((
                    Put { at_ms: journal.now(), shard: put.shard_id, sequence_number: put.sequence_number, partition_key: record.partition_key },
                    record.data,
                ));
            }
            // Look once after the last put, even if no checkpoint moves again.
            journal.note_checkpoint();
            continue;
        }
        if journal.invocations.lock().map_or(0, |i| i.len()) >= scenario.max_invocations {
            break Ended::InvocationLimit;
        }
        if status.function(&scenario.function).is_some_and(|f| matches!(f.state, FunctionState::Failed)) {
            break Ended::MappingFailed;
        }
        if journal.checkpoint_moved.swap(false, std::sync::atomic::Ordering::AcqRel)
            && all_done(&*checkpoints, &mapping_key, &puts, version.manifest.event_source.deaggregate_records).await?
        {
            break Ended::Done;
        }
        if tokio::time::Instant::now() >= start + last_at + scenario.run_for {
            break Ended::TimeLimit;
        }
        tokio::select! {
            () = journal.changed.notified() => {}
            () = tokio::time::sleep(LOOK_EVERY) => {}
        }
    };
    let simulated_ms = journal.now();
    running.stop().await;

    let shards = shard_ends(&status, &scenario.function, &puts);
    let failure_records = read_failure_records(&failures_dir)?;
    let invocations = journal.invocations.lock().map(|i| i.clone()).unwrap_or_default();
    let checkpoints = journal.checkpoints.lock().map(|c| c.clone()).unwrap_or_default();
    Ok(Report {
        function: scenario.function.to_string(),
        ended,
        puts: puts.into_iter().map(|(put, _)| put).collect(),
        invocations,
        checkpoints,
        failure_records,
        shards,
        simulated_ms,
        wall_ms: wall.elapsed().as_millis() as u64,
    })
}

/// Every record put is behind its shard's checkpoint, and no window is open.
async fn all_done(store: &dyn CheckpointStore, mapping: &MappingKey, puts: &[(Put, Vec<u8>)], deaggregate: bool) -> anyhow::Result<bool> {
    let mut last_of_shard: Vec<(&str, &Put, &[u8])> = Vec::new();
    for (put, data) in puts {
        match last_of_shard.iter_mut().find(|(shard, _, _)| *shard == put.shard) {
            Some(last) => *last = (&put.shard, put, data),
            None => last_of_shard.push((&put.shard, put, data)),
        }
    }
    for (shard, last, data) in last_of_shard {
        let key = CheckpointKey { function: mapping.function.clone(), source: mapping.source.clone(), shard: shard.to_owned() };
        let last_sequence: u64 = last.sequence_number.parse().unwrap_or(u64::MAX);
        let behind = match store.checkpoint(&key).await? {
            Some(Checkpoint::ShardEnd) => true,
            Some(Checkpoint::Sequence(s)) => s.parse::<u64>().is_ok_and(|s| s >= last_sequence),
            // Inside an aggregate: done once its last user record is.
            Some(Checkpoint::SubSequence(s, sub)) => s.parse::<u64>().is_ok_and(|s| {
                let users = if deaggregate && crate::kpl::is_aggregate(data) { crate::kpl::parse(data).map_or(1, |u| u.len()) } else { 1 };
                s > last_sequence || (s == last_sequence && sub as usize + 1 >= users)
            }),
            _ => false,
        };
        if !behind || store.window(&key).await?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn shard_ends(status: &StatusBoard, function: &str, puts: &[(Put, Vec<u8>)]) -> Vec<ShardEnd> {
    let Some(f) = status.function(function) else { return Vec::new() };
    f.shards
        .iter()
        .map(|s| ShardEnd {
            shard: s.shard.clone(),
            checkpoint: s.checkpoint.clone(),
            records_put: puts.iter().filter(|(p, _)| p.shard == s.shard).count(),
            records_processed: s.records_processed,
            records_discarded: s.records_discarded,
            filtered_out: s.filtered_out_events,
            last_error: s.last_error.clone(),
        })
        .collect()
}

/// The failure records in the stand-in destination, oldest first (their file
/// names start with the simulated time they were written at).
fn read_failure_records(dir: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
        })
        .collect()
}

/// The function's handler, writing down each invocation.
struct RecordingHandler {
    inner: Arc<dyn Handler>,
    journal: Arc<Journal>,
    report_batch_item_failures: bool,
}

#[async_trait]
impl Handler for RecordingHandler {
    async fn invoke(&self, batch: &Batch, request: InvokeRequest<'_>) -> Result<HandlerResponse, InvokeError> {
        let at_ms = self.journal.now();
        let started = std::time::Instant::now();
        let result = self.inner.invoke(batch, request).await;
        let wall_us = started.elapsed().as_micros() as u64;
        let outcome = match classify(&result, &batch.records, self.report_batch_item_failures) {
            Outcome::Success => "success".to_owned(),
            Outcome::PartialFailure { first_failed } => format!("partial failure at {}", identifier(&batch.records, first_failed)),
            Outcome::Failure(why) => format!("failure: {why}"),
        };
        let response = match &result {
            Ok(HandlerResponse::Json(text)) => Some(text.clone()),
            Ok(HandlerResponse::Typed(response)) => {
                let failures: Vec<_> =
                    response.batch_item_failures.iter().map(|id| serde_json::json!({ "itemIdentifier": id })).collect();
                let mut out = serde_json::json!({ "batchItemFailures": failures });
                if let Some(state) = &response.state {
                    out["state"] = serde_json::from_str(state).unwrap_or_else(|_| state.clone().into());
                }
                Some(out.to_string())
            }
            Err(_) => None,
        };
        let window = batch.window.as_ref().map(|w| WindowSeen {
            start_ms: self.journal.offset(w.start_ms),
            end_ms: self.journal.offset(w.end_ms),
            state: w.state.clone(),
            is_final: w.is_final_invoke_for_window,
            terminated_early: w.is_window_terminated_early,
        });
        let invocation = Invocation {
            at_ms,
            shard: batch.shard_id.clone(),
            records: (0..batch.records.len()).map(|i| identifier(&batch.records, i)).collect(),
            window,
            response,
            outcome,
            wall_us,
        };
        if let Ok(mut invocations) = self.journal.invocations.lock() {
            invocations.push(invocation);
        }
        self.journal.changed.notify_one();
        result
    }
}

/// How a record is named in `batchItemFailures`.
fn identifier(records: &Records, index: usize) -> String {
    match records {
        Records::Kinesis(r) => r.get(index).map(|r| r.checkpoint().encode().into_owned()).unwrap_or_default(),
        Records::Dynamodb(r) => r.get(index).map(|r| r.sequence_number.clone()).unwrap_or_default(),
    }
}

/// The checkpoint store, writing down each checkpoint.
struct RecordingStore {
    inner: Arc<dyn CheckpointStore>,
    journal: Arc<Journal>,
}

#[async_trait]
impl CheckpointStore for RecordingStore {
    async fn checkpoint(&self, key: &CheckpointKey) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.checkpoint(key).await
    }
    async fn window(&self, key: &CheckpointKey) -> Result<Option<String>, StoreError> {
        self.inner.window(key).await
    }
    async fn commit(&self, key: &CheckpointKey, checkpoint: &Checkpoint, window: Option<&str>) -> Result<(), StoreError> {
        self.inner.commit(key, checkpoint, window).await?;
        let write = CheckpointWrite {
            at_ms: self.journal.now(),
            shard: key.shard.clone(),
            checkpoint: checkpoint.clone(),
            window: window.map(str::to_owned),
        };
        if let Ok(mut checkpoints) = self.journal.checkpoints.lock() {
            checkpoints.push(write);
        }
        self.journal.note_checkpoint();
        Ok(())
    }
    async fn close_window(&self, key: &CheckpointKey) -> Result<(), StoreError> {
        self.inner.close_window(key).await?;
        self.journal.note_checkpoint();
        Ok(())
    }
    async fn mapping_start(&self, mapping: &MappingKey) -> Result<Option<u64>, StoreError> {
        self.inner.mapping_start(mapping).await
    }
    async fn record_mapping_start(&self, mapping: &MappingKey, started_ms: u64) -> Result<u64, StoreError> {
        self.inner.record_mapping_start(mapping, started_ms).await
    }
    async fn list(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        self.inner.list().await
    }
    async fn control(&self, mapping: &MappingKey) -> Result<MappingControl, StoreError> {
        self.inner.control(mapping).await
    }
    async fn set_paused(&self, mapping: &MappingKey, paused: bool) -> Result<(), StoreError> {
        self.inner.set_paused(mapping, paused).await
    }
    async fn request_rewind(&self, mapping: &MappingKey, to: &RewindTarget) -> Result<Rewind, StoreError> {
        self.inner.request_rewind(mapping, to).await
    }
    async fn progress(&self, key: &CheckpointKey) -> Result<ShardProgress, StoreError> {
        self.inner.progress(key).await
    }
    async fn apply_rewind(&self, key: &CheckpointKey, checkpoint: Option<&Checkpoint>, id: u64) -> Result<(), StoreError> {
        self.inner.apply_rewind(key, checkpoint, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_with_their_times() {
        let text = "{\"PartitionKey\":\"a\",\"Text\":\"one\"}\n\n{\"PartitionKey\":\"b\",\"Json\":{\"n\":2},\"At\":1.5}\n{\"PartitionKey\":\"c\",\"Text\":\"three\"}\n";
        let records = parse_records(text).expect("valid");
        let seen: Vec<(Duration, &str, &[u8])> =
            records.iter().map(|r| (r.at, r.record.partition_key.as_str(), r.record.data.as_slice())).collect();
        assert_eq!(
            seen,
            [
                (Duration::ZERO, "a", &b"one"[..]),
                (Duration::from_millis(1500), "b", b"{\"n\":2}"),
                (Duration::from_millis(1500), "c", b"three"),
            ]
        );
    }

    #[test]
    fn bad_records_are_refused_with_their_line() {
        for (text, expected) in [
            ("{\"PartitionKey\":\"a\",\"Text\":\"x\",\"At\":-1}", "line 1: At must be"),
            ("{\"PartitionKey\":\"a\",\"Text\":\"x\",\"At\":2}\n{\"PartitionKey\":\"a\",\"Text\":\"y\",\"At\":1}", "line 2: At 1 is before"),
            ("not json", "line 1: not JSON"),
            ("{\"PartitionKey\":\"a\"}", "line 1: give exactly one of"),
        ] {
            let error = format!("{:#}", parse_records(text).expect_err(text));
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
