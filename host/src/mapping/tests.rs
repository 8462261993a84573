//! The mapping loop against a local stream and a scripted handler: the rules of
//! retries, partial failures, bisection, record age and destinations.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::*;
use crate::record::{Batch, BatchResponse};
use crate::runtime::{HandlerResponse, InvokeError, InvokeRequest};
use crate::source::local::{self, LocalSource, PutRecord};
use crate::status::{FunctionState, FunctionStatus, ShardStatus};
use crate::store::{Checkpoint, CheckpointKey};
use crate::store::embedded::EmbeddedStore;

type Answer = Result<Vec<&'static str>, InvokeError>;

/// Answers from a script, one per invocation (success once it runs out), fails
/// every batch holding the poison record, and remembers the sequence numbers of
/// every batch it was given.
struct Scripted {
    script: Mutex<VecDeque<Answer>>,
    poison: Option<&'static str>,
    seen: Mutex<Vec<Vec<String>>>,
    /// How long each invocation takes, and the most that were in flight at once.
    delay: Duration,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Handler for Scripted {
    async fn invoke(&self, batch: &Batch, _: InvokeRequest<'_>) -> Result<HandlerResponse, InvokeError> {
        let seqs: Vec<String> =
            (0..batch.records.len()).filter_map(|i| batch.records.sequence_number(i).map(str::to_owned)).collect();
        let poisoned = self.poison.is_some_and(|p| seqs.iter().any(|s| s == p));
        self.seen.lock().unwrap().push(seqs);
        if !self.delay.is_zero() {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.max_in_flight.fetch_max(now, SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, SeqCst);
        }
        if poisoned {
            return Err(InvokeError::Handler("poison record".into()));
        }
        match self.script.lock().unwrap().pop_front() {
            Some(Ok(failures)) => Ok(HandlerResponse::Typed(BatchResponse {
                batch_item_failures: failures.into_iter().map(str::to_owned).collect(),
                state: None,
            })),
            Some(Err(error)) => Err(error),
            None => Ok(HandlerResponse::Typed(BatchResponse { batch_item_failures: Vec::new(), state: None })),
        }
    }
}

struct Run {
    dir: tempfile::TempDir,
    store: Arc<EmbeddedStore>,
    status: Arc<StatusBoard>,
    handler: Arc<Scripted>,
}

struct Setup<'a> {
    /// Keys of the function (before `[EventSource]`), and of the mapping.
    function: &'a str,
    manifest: &'a str,
    script: Vec<Answer>,
    poison: Option<&'static str>,
    /// Records 1..=n whose arrival is moved this far into the past.
    aged: Option<(i64, Duration)>,
    /// How many records, with partition keys `k0`..`k7` in turn.
    records: u8,
    delay: Duration,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup { function: "", manifest: "", script: Vec::new(), poison: None, aged: None, records: 5, delay: Duration::ZERO }
    }
}

/// Runs a mapping over five records on a one-shard stream until `done` holds.
/// `{dir}` in the manifest is replaced by the run's temporary directory.
async fn run(setup: Setup<'_>, done: impl Fn(&ShardStatus) -> bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let mut conn = store.connect().unwrap();
    local::create(&conn, "s", 1, 24).unwrap();
    let records: Vec<PutRecord> = (1..=setup.records)
        .map(|i| PutRecord { partition_key: if setup.records == 5 { "k".into() } else { format!("k{}", i % 8) }, data: vec![i] })
        .collect();
    local::put(&mut conn, "s", &records).unwrap();
    if let Some((through, age)) = setup.aged {
        conn.execute("UPDATE records SET arrival_ms = arrival_ms - ?1 WHERE seq <= ?2", (age.as_millis() as i64, through))
            .unwrap();
    }
    let handler = Arc::new(Scripted {
        script: Mutex::new(setup.script.into()),
        poison: setup.poison,
        seen: Mutex::new(Vec::new()),
        delay: setup.delay,
        in_flight: Default::default(),
        max_in_flight: Default::default(),
    });
    let text = format!("{}\n[EventSource]\nType = \"Local\"\nStream = \"s\"\n{}\n", setup.function, setup.manifest)
        .replace("{dir}", &dir.path().display().to_string());
    let (status, mapping) = start_mapping(&text, handler.clone(), &store);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let shard = status.snapshot().first().and_then(|f| f.shards.first().cloned());
        if shard.as_ref().is_some_and(&done) {
            break;
        }
        assert!(Instant::now() < deadline, "the mapping did not finish: {shard:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mapping.stop().await;
    Run { dir, store, status, handler }
}

/// Starts function `f`'s mapping of the local stream `s`, with the manifest `text`.
fn start_mapping(text: &str, handler: Arc<dyn Handler>, store: &Arc<EmbeddedStore>) -> (Arc<StatusBoard>, MappingHandle) {
    let manifest = Manifest::parse(text).unwrap();
    let status = Arc::new(StatusBoard::default());
    status.set_function(FunctionStatus::new("f", FunctionState::Running), true);
    let limited = ConcurrencyLimited::wrap(handler, manifest.reserved_concurrency);
    let version = Arc::new(FunctionVersion {
        name: Arc::from("f"),
        manifest,
        handler: limited,
        environment: Arc::from(Vec::new()),
        identity_arn: "arn:aws:iam::000000000000:role/f".into(),
        grants: crate::role::Grants::source_only("f"),
        services: Arc::new(crate::capability::Services::new(Some(Arc::clone(store)))),
    });
    let source = Arc::new(LocalSource::new(Arc::clone(store), "s", Duration::from_millis(5)));
    let store_dyn: Arc<dyn CheckpointStore> = store.clone();
    (Arc::clone(&status), start(version, source, MappingContext { store: store_dyn, status, cluster: None }))
}

/// A LATEST mapping whose stored start cannot be read fails, and reads
/// nothing: taking "now" instead would skip what arrived since it started.
#[tokio::test]
async fn a_corrupt_start_time_fails_the_mapping_rather_than_skip_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let mut conn = store.connect().unwrap();
    local::create(&conn, "s", 1, 24).unwrap();
    local::put(&mut conn, "s", &[PutRecord { partition_key: "k".into(), data: vec![1] }]).unwrap();
    conn.execute("INSERT INTO mapping_starts (function, source, started_ms) VALUES ('f', 'local:s', 'garbage')", []).unwrap();
    let handler = Arc::new(Scripted {
        script: Mutex::new(VecDeque::new()),
        poison: None,
        seen: Mutex::new(Vec::new()),
        delay: Duration::ZERO,
        in_flight: Default::default(),
        max_in_flight: Default::default(),
    });
    let text = "[EventSource]\nType = \"Local\"\nStream = \"s\"\nStartingPosition = \"LATEST\"\n";
    let (status, mapping) = start_mapping(text, handler.clone(), &store);
    let deadline = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        let function = status.snapshot().remove(0);
        if function.state == FunctionState::Failed {
            break function;
        }
        assert!(Instant::now() < deadline, "the mapping did not fail: {function:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    mapping.stop().await;
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("start time of the mapping is corrupt") && error.contains("garbage"), "{error}");
    assert!(failed.shards.is_empty() && handler.seen.lock().unwrap().is_empty(), "{failed:?}");
}

fn seen(run: &Run) -> Vec<Vec<String>> {
    run.handler.seen.lock().unwrap().clone()
}

fn shard(run: &Run) -> ShardStatus {
    run.status.snapshot()[0].shards[0].clone()
}

async fn checkpoint(run: &Run) -> Option<String> {
    let key = CheckpointKey { function: "f".into(), source: "local:s".into(), shard: "shardId-000000000000".into() };
    run.store.checkpoint(&key).await.unwrap().map(|c| c.to_string())
}

fn error() -> Answer {
    Err(InvokeError::Handler("boom".into()))
}

#[tokio::test]
async fn a_partial_failure_checkpoints_before_the_lowest_failure_and_retries_from_it() {
    let setup = Setup {
        manifest: "FunctionResponseTypes = [\"ReportBatchItemFailures\"]",
        script: vec![Ok(vec!["4", "3"]), Ok(vec!["4"])],
        ..Setup::default()
    };
    let run = run(setup, |s| s.records_processed == 5).await;
    assert_eq!(seen(&run), [vec!["1", "2", "3", "4", "5"], vec!["3", "4", "5"], vec!["4", "5"]]);
    assert_eq!(checkpoint(&run).await.as_deref(), Some("5"));
    let s = shard(&run);
    assert_eq!((s.invoked_events, s.failed_invoke_events), (10, 5), "{s:?}");
}

#[tokio::test]
async fn retries_run_out_after_maximum_retry_attempts() {
    let setup = Setup { manifest: "MaximumRetryAttempts = 2", script: vec![error(), error(), error(), error()], ..Setup::default() };
    let run = run(setup, |s| s.records_discarded == 5).await;
    assert_eq!(seen(&run).len(), 3, "one attempt and two retries");
    assert_eq!(checkpoint(&run).await.as_deref(), Some("5"), "the shard moves past the batch");
    assert_eq!(shard(&run).errors_by_kind.get("handler_error"), Some(&3));
}

/// A throttle (no instance free) and code that cannot be loaded again (an idle
/// function whose file now holds another version) never reached the function:
/// neither counts as an attempt.
#[tokio::test]
async fn invocations_that_never_reached_the_function_do_not_count_as_attempts() {
    let errors: [fn() -> InvokeError; 2] = [
        || InvokeError::Throttled("pool full".into()),
        || InvokeError::NotLoaded("the file holds another version now".into()),
    ];
    for error in errors {
        let setup = Setup { manifest: "MaximumRetryAttempts = 0", script: vec![Err(error()), Err(error()), Ok(vec![])], ..Setup::default() };
        let run = run(setup, |s| s.records_processed == 5).await;
        assert_eq!(seen(&run).len(), 3, "{}", error());
        assert_eq!(shard(&run).records_discarded, 0, "{}", error());
    }
}

#[tokio::test]
async fn without_report_batch_item_failures_the_response_is_ignored() {
    let setup = Setup { script: vec![Ok(vec!["3"])], ..Setup::default() };
    let run = run(setup, |s| s.records_processed == 5).await;
    assert_eq!(seen(&run).len(), 1);
    assert_eq!(checkpoint(&run).await.as_deref(), Some("5"));
}

#[tokio::test]
async fn bisection_isolates_a_poison_record_without_counting_splits_as_retries() {
    let setup = Setup {
        manifest: "BisectBatchOnFunctionError = true\nMaximumRetryAttempts = 0\n\
                   [EventSource.DestinationConfig.OnFailure]\nDestination = \"{dir}/failures\"",
        poison: Some("3"),
        ..Setup::default()
    };
    let run = run(setup, |s| s.records_processed == 4 && s.records_discarded == 1).await;
    assert_eq!(
        seen(&run),
        [vec!["1", "2", "3", "4", "5"], vec!["1", "2"], vec!["3", "4", "5"], vec!["3"], vec!["4", "5"]],
        "halves in order; the lone poison record is tried once (no retries) and discarded"
    );
    assert_eq!(checkpoint(&run).await.as_deref(), Some("5"));
    let failures: Vec<_> = std::fs::read_dir(run.dir.path().join("failures")).unwrap().collect();
    assert_eq!(failures.len(), 1);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(failures[0].as_ref().unwrap().path()).unwrap()).unwrap();
    assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3, "the whole batch, its half, then itself");
    assert_eq!(record["responseContext"]["functionError"], "Unhandled", "the poison record makes the handler fail");
    assert_eq!(record["requestContext"]["functionArn"], "arn:aws:lambda:local:000000000000:function:f");
    assert_eq!(record["KinesisBatchInfo"]["startSequenceNumber"], "3");
    assert_eq!(record["KinesisBatchInfo"]["endSequenceNumber"], "3");
    assert_eq!(record["KinesisBatchInfo"]["batchSize"], 1);
    assert_eq!(shard(&run).destination_delivered_events, 1);
}

#[tokio::test]
async fn with_bisect_a_partial_failure_splits_at_the_returned_sequence_number() {
    let setup = Setup {
        manifest: "BisectBatchOnFunctionError = true\nMaximumRetryAttempts = 0\n\
                   FunctionResponseTypes = [\"ReportBatchItemFailures\"]",
        script: vec![Ok(vec!["3"]), Ok(vec![])],
        ..Setup::default()
    };
    let run = run(setup, |s| s.records_processed == 5).await;
    assert_eq!(seen(&run), [vec!["1", "2", "3", "4", "5"], vec!["3", "4", "5"]], "the split is not a retry, so 0 retries allow it");
    assert_eq!(shard(&run).records_discarded, 0);
}

#[tokio::test]
async fn records_older_than_the_maximum_age_are_discarded_before_invoking() {
    let setup = Setup {
        manifest: "MaximumRecordAgeInSeconds = 60\n\
                   [EventSource.DestinationConfig.OnFailure]\nDestination = \"{dir}/failures.jsonl\"\nIncludePayload = true",
        aged: Some((2, Duration::from_secs(120))),
        ..Setup::default()
    };
    let run = run(setup, |s| s.records_processed == 3 && s.records_discarded == 2).await;
    assert_eq!(seen(&run), [vec!["3", "4", "5"]]);
    let text = std::fs::read_to_string(run.dir.path().join("failures.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["requestContext"]["condition"], "RecordAgeExceeded");
    assert_eq!(lines[0]["requestContext"]["approximateInvokeCount"], 1, "AWS writes 1, also for records never invoked");
    assert!(lines[0].get("responseContext").is_none());
    assert_eq!(lines[0]["KinesisBatchInfo"]["endSequenceNumber"], "2");
    assert_eq!(lines[0]["payload"]["Records"][1]["kinesis"]["sequenceNumber"], "2", "the event, as an object");
}

#[tokio::test]
async fn filtered_records_advance_the_checkpoint_and_are_counted() {
    // Record data is one byte, 1..=5: only "5" is JSON that matches (the number 5).
    let setup = Setup {
        manifest: "[EventSource.FilterCriteria]\nFilters = [{ Pattern = '{\"data\":[{\"numeric\":[\">\",100]}]}' }]",
        ..Setup::default()
    };
    let run = run(setup, |s| s.filtered_out_events == 5 && s.checkpoint == Some(Checkpoint::Sequence("5".into()))).await;
    assert!(seen(&run).is_empty(), "nothing matched, so nothing was invoked");
    assert_eq!(shard(&run).polled_events, 5);
}

#[tokio::test]
async fn reserved_concurrency_caps_invocations_in_flight() {
    let setup = Setup {
        function: "ReservedConcurrentExecutions = 1",
        manifest: "ParallelizationFactor = 4\nBatchSize = 2",
        records: 24,
        delay: Duration::from_millis(20),
        ..Setup::default()
    };
    let run = run(setup, |s| s.records_processed == 24 && s.checkpoint == Some(Checkpoint::Sequence("24".into()))).await;
    let max = run.handler.max_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(max, 1, "four lanes, but one invocation at a time");
}

#[tokio::test]
async fn parallelization_runs_batches_of_a_shard_at_once_and_keeps_each_keys_order() {
    let setup = Setup {
        manifest: "ParallelizationFactor = 4\nBatchSize = 2",
        records: 48,
        delay: Duration::from_millis(30),
        ..Setup::default()
    };
    let run = run(setup, |s| s.records_processed == 48 && s.checkpoint == Some(Checkpoint::Sequence("48".into()))).await;
    let max = run.handler.max_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert!(max > 1 && max <= 4, "{max} batches of one shard were in flight at once");
    // Per key (sequence number i has key k{i % 8}): handled in sequence order.
    let order: Vec<u64> = seen(&run).concat().iter().map(|s| s.parse().unwrap()).collect();
    assert_eq!(order.len(), 48);
    for key in 0..8 {
        let of_key: Vec<u64> = order.iter().copied().filter(|i| i % 8 == key).collect();
        assert!(of_key.windows(2).all(|w| w[0] < w[1]), "key k{key}: {of_key:?}");
    }
    assert!(seen(&run).iter().all(|b| b.len() <= 2));
}

/// Every invocation is counted the same way, the final one of a window too: a
/// timeout there shows in the shard's errors by kind (`eddy_function_errors_total`).
#[tokio::test]
async fn a_timeout_in_a_windows_final_invocation_counts_as_a_function_error() {
    let setup = Setup {
        manifest: "TumblingWindowInSeconds = 1\nMaximumRetryAttempts = 0",
        script: vec![Ok(vec![]), Err(InvokeError::Timeout(Duration::from_secs(3)))],
        ..Setup::default()
    };
    let run = run(setup, |s| s.errors_by_kind.get("timeout") == Some(&1)).await;
    let shard = shard(&run);
    assert_eq!(shard.records_processed, 5, "{shard:?}");
    assert!(shard.last_error.as_deref().is_some_and(|e| e.contains("final invocation of the window")), "{shard:?}");
}
