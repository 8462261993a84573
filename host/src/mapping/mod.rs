//! The event source mapping: for each shard of a function's source, one loop
//! that reads, batches, invokes and checkpoints, in shard order.
//!
//! Per shard, top to bottom:
//! 1. resume after the checkpoint (or at the manifest's starting position);
//! 2. gather a batch: up to `BatchSize` records, the 6 MB payload, or the end of
//!    the batching window, whichever comes first;
//! 3. invoke the function;
//! 4. success: checkpoint the batch's last record. Partial failure: checkpoint
//!    the record before the lowest failure and retry from it. Failure: retry the
//!    batch, with backoff, until it succeeds or `MaximumRetryAttempts` runs out
//!    (then the batch is skipped and logged).
//!
//! The checkpoint moves only after the function finished with the records, so a
//! crash repeats at most the batch in flight and never skips one. Each shard and
//! each function runs in its own task: a slow or failing handler holds up only
//! its own shard.

mod batcher;
pub mod handler;
pub mod outcome;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::manifest::{Manifest, StartingPosition};
use crate::record::{Batch, Records};
use crate::runtime::{InvokeError, InvokeRequest};
use crate::source::{Position, StreamSource};
use crate::status::{ShardHandle, StatusBoard};
use crate::store::{CheckpointKey, CheckpointStore, now_ms};
use batcher::Batcher;
pub use handler::{Handler, WasmHandler};
use outcome::Outcome;

/// The first wait before retrying a failed batch; it doubles up to `MAX_BACKOFF`.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a shard loop that hit an error (a store or source failure, not a
/// function error) waits before it starts over from its checkpoint.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// One loaded version of a function: its manifest and its handler.
pub struct FunctionVersion {
    pub name: Arc<str>,
    pub manifest: Manifest,
    pub handler: Arc<dyn Handler>,
    pub environment: Arc<[(String, String)]>,
    /// `invokeIdentityArn` in the events: the function's execution role.
    pub identity_arn: String,
}

/// What every shard loop of a mapping shares.
#[derive(Clone)]
pub struct MappingContext {
    pub store: Arc<dyn CheckpointStore>,
    pub status: Arc<StatusBoard>,
}

/// A running mapping; dropping it does not stop it, [`MappingHandle::stop`] does.
pub struct MappingHandle {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl MappingHandle {
    /// Stops the mapping: each shard finishes the invocation in flight (and
    /// checkpoints it if it succeeded), then its loop ends.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Starts the mapping of `function` on `source`: one loop per shard. Listing the
/// shards is retried until it succeeds or the mapping is stopped, so a source
/// that is briefly unreachable delays the mapping rather than failing it.
pub fn start(function: Arc<FunctionVersion>, source: Arc<dyn StreamSource>, context: MappingContext) -> MappingHandle {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_mapping(function, source, context, cancel.clone()));
    MappingHandle { cancel, task }
}

async fn run_mapping(
    function: Arc<FunctionVersion>,
    source: Arc<dyn StreamSource>,
    context: MappingContext,
    cancel: CancellationToken,
) {
    let mut failed = false;
    let shards = loop {
        match source.list_shards().await {
            Ok(shards) => {
                if failed {
                    context.status.clear_error(&function.name);
                }
                break shards;
            }
            Err(error) => {
                let message = format!("cannot list the source's shards: {error:#}");
                tracing::error!(function = %function.name, "{message}; retrying");
                context.status.set_error(&function.name, crate::status::FunctionState::Running, message);
                failed = true;
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(RESTART_DELAY) => {}
                }
            }
        }
    };
    let mut tasks = JoinSet::new();
    for shard in shards {
        let status = context.status.add_shard(&function.name, &shard);
        let shard_loop = ShardLoop {
            key: CheckpointKey {
                function: function.name.to_string(),
                source: function.manifest.event_source.source.id(),
                shard: shard.clone(),
            },
            shard: Arc::from(shard.as_str()),
            function: Arc::clone(&function),
            source: Arc::clone(&source),
            context: context.clone(),
            status,
            cancel: cancel.child_token(),
        };
        tasks.spawn(shard_loop.run());
    }
    while tasks.join_next().await.is_some() {}
}

struct ShardLoop {
    key: CheckpointKey,
    shard: Arc<str>,
    function: Arc<FunctionVersion>,
    source: Arc<dyn StreamSource>,
    context: MappingContext,
    status: ShardHandle,
    cancel: CancellationToken,
}

impl ShardLoop {
    /// Runs until cancelled; an error starts the shard over from its checkpoint.
    async fn run(self) {
        while !self.cancel.is_cancelled() {
            match self.process().await {
                Ok(()) => break,
                Err(error) => {
                    tracing::error!(function = %self.function.name, shard = %self.shard,
                        "shard loop failed, restarting from the checkpoint: {error:#}");
                    self.update(|s| s.last_error = Some(format!("{error:#}")));
                    tokio::select! {
                        () = self.cancel.cancelled() => break,
                        () = tokio::time::sleep(RESTART_DELAY) => {}
                    }
                }
            }
        }
    }

    async fn process(&self) -> anyhow::Result<()> {
        let store = &self.context.store;
        let checkpoint = store.get(&self.key).await?;
        let position = match &checkpoint {
            Some(sequence) => Position::AfterSequence(sequence.clone()),
            None => match self.function.manifest.event_source.starting_position {
                StartingPosition::TrimHorizon => Position::TrimHorizon,
                StartingPosition::Latest => Position::Latest,
                StartingPosition::AtTimestamp(ms) => Position::AtTimestamp(ms),
            },
        };
        let reader = self.source.open(&self.shard, position.clone()).await?;
        let mut shown = checkpoint;
        if shown.is_none() && matches!(position, Position::Latest | Position::AtTimestamp(_)) {
            // Pin LATEST / AT_TIMESTAMP to where they resolved now, so that a restart
            // does not skip the records that arrive in between.
            store.set(&self.key, reader.position()).await?;
            shown = Some(reader.position().to_owned());
        }
        self.update(|s| s.checkpoint = shown);

        let config = &self.function.manifest.event_source;
        let info = self.source.info();
        let repeated_fields = crate::record::repeated_fields_len(&info.arn, &self.function.identity_arn, &info.region);
        let mut batcher = Batcher::new(reader, config.batch_size, config.batching_window, repeated_fields);
        while let Some(records) = batcher.next_batch(&self.cancel).await? {
            let batch = Batch {
                event_source: info.event_source,
                event_source_arn: info.arn.clone(),
                aws_region: info.region.clone(),
                invoke_identity_arn: self.function.identity_arn.clone(),
                shard_id: self.shard.to_string(),
                records,
            };
            self.deliver(batch).await?;
            if self.cancel.is_cancelled() {
                break;
            }
        }
        Ok(())
    }

    /// Invokes the function with `batch` until every record is done, retries run
    /// out, or the mapping is stopped.
    async fn deliver(&self, mut batch: Batch) -> anyhow::Result<()> {
        let config = &self.function.manifest.event_source;
        let mut retries: u32 = 0;
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let started = Instant::now();
            let iterator_age = last_arrival_ms(&batch.records).map_or(0, |t| now_ms().saturating_sub(t));
            let result = self
                .function
                .handler
                .invoke(
                    &batch,
                    InvokeRequest {
                        function: &self.function.name,
                        shard: &self.shard,
                        request_id: uuid::Uuid::new_v4().to_string(),
                        timeout: self.function.manifest.timeout,
                        memory_mb: self.function.manifest.memory_mb,
                        environment: &self.function.environment,
                    },
                )
                .await;
            let outcome = outcome::classify(&result, &batch.records, config.report_batch_item_failures);
            let count = batch.records.len();
            tracing::debug!(function = %self.function.name, shard = %self.shard, records = count,
                elapsed_ms = started.elapsed().as_millis() as u64, ?outcome, "invoked");
            self.update(|s| {
                s.invocations += 1;
                s.iterator_age_ms = iterator_age;
                if let Err(error) = &result {
                    *s.errors_by_kind.entry(error.kind()).or_default() += 1;
                }
            });

            match outcome {
                Outcome::Success => {
                    self.checkpoint(&batch.records, count).await?;
                    self.update(|s| {
                        s.records_processed += count as u64;
                        s.retrying_attempt = 0;
                    });
                    return Ok(());
                }
                Outcome::PartialFailure { first_failed } => {
                    let failed_at = batch.records.sequence_number(first_failed).unwrap_or_default().to_owned();
                    tracing::warn!(function = %self.function.name, shard = %self.shard,
                        "{} of {count} records done; retrying from sequence number {failed_at}", first_failed);
                    if first_failed > 0 {
                        self.checkpoint(&batch.records, first_failed).await?;
                        batch.records.drop_front(first_failed);
                    }
                    self.update(|s| {
                        s.records_processed += first_failed as u64;
                        s.failed_invocations += 1;
                        s.last_error = Some(format!("batch item failure at sequence number {failed_at}"));
                    });
                }
                Outcome::Failure(message) => {
                    tracing::error!(function = %self.function.name, shard = %self.shard,
                        "invocation failed ({count} records): {message}");
                    self.update(|s| {
                        s.failed_invocations += 1;
                        s.last_error = Some(message);
                    });
                }
            }

            // Throttles never reached the function: as in Lambda, they are retried
            // without counting against MaximumRetryAttempts.
            let throttled = matches!(result, Err(InvokeError::Throttled(_)));
            if !throttled {
                retries += 1;
            }
            if config.maximum_retry_attempts.is_some_and(|max| retries > max) {
                let (first, last) = (
                    batch.records.sequence_number(0).unwrap_or_default().to_owned(),
                    batch.records.sequence_number(batch.records.len().saturating_sub(1)).unwrap_or_default().to_owned(),
                );
                tracing::error!(function = %self.function.name, shard = %self.shard,
                    "retries exhausted after {} attempts; skipping {} records, sequence numbers {first} to {last}",
                    retries, batch.records.len());
                let skipped = batch.records.len();
                self.checkpoint(&batch.records, skipped).await?;
                self.update(|s| {
                    s.records_discarded += skipped as u64;
                    s.retrying_attempt = 0;
                });
                return Ok(());
            }
            self.update(|s| s.retrying_attempt = retries);
            tokio::select! {
                // Stopped (a new version, or shutdown): the batch is retried by
                // whoever resumes from the checkpoint.
                () = self.cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Checkpoints the first `done` records of `records` as finished.
    async fn checkpoint(&self, records: &Records, done: usize) -> anyhow::Result<()> {
        let Some(sequence) = done.checked_sub(1).and_then(|i| records.sequence_number(i)) else {
            return Ok(());
        };
        self.context.store.set(&self.key, sequence).await?;
        self.update(|s| s.checkpoint = Some(sequence.to_owned()));
        Ok(())
    }

    fn update(&self, f: impl FnOnce(&mut crate::status::ShardStatus)) {
        if let Ok(mut status) = self.status.lock() {
            f(&mut status);
        }
    }
}

fn last_arrival_ms(records: &Records) -> Option<u64> {
    match records {
        Records::Kinesis(r) => r.last().map(|r| r.approximate_arrival_timestamp_ms),
        Records::Dynamodb(r) => r.last().map(|r| r.approximate_creation_date_time_ms),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::record::BatchResponse;
    use crate::runtime::HandlerResponse;
    use crate::source::local::{self, LocalSource, PutRecord};
    use crate::status::{FunctionState, FunctionStatus};
    use crate::store::embedded::EmbeddedStore;

    /// Answers from a script, one per invocation (success once it runs out), and
    /// remembers the sequence numbers of every batch it was given.
    struct Scripted {
        script: Mutex<VecDeque<Result<Vec<&'static str>, InvokeError>>>,
        seen: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait]
    impl Handler for Scripted {
        async fn invoke(&self, batch: &Batch, _: InvokeRequest<'_>) -> Result<HandlerResponse, InvokeError> {
            let seqs = (0..batch.records.len()).filter_map(|i| batch.records.sequence_number(i).map(str::to_owned)).collect();
            self.seen.lock().unwrap().push(seqs);
            match self.script.lock().unwrap().pop_front() {
                Some(Ok(failures)) => Ok(HandlerResponse::Typed(BatchResponse {
                    batch_item_failures: failures.into_iter().map(str::to_owned).collect(),
                })),
                Some(Err(error)) => Err(error),
                None => Ok(HandlerResponse::Typed(BatchResponse { batch_item_failures: Vec::new() })),
            }
        }
    }

    struct Run {
        _dir: tempfile::TempDir,
        store: Arc<EmbeddedStore>,
        status: Arc<StatusBoard>,
        handler: Arc<Scripted>,
    }

    /// Runs a mapping over five records on a one-shard stream until `done` holds.
    async fn run(extra: &str, script: Vec<Result<Vec<&'static str>, InvokeError>>, done: impl Fn(&crate::status::ShardStatus) -> bool) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let mut conn = store.connect().unwrap();
        local::create(&conn, "s", 1, 24).unwrap();
        let records: Vec<PutRecord> = (1..=5).map(|i| PutRecord { partition_key: "k".into(), data: vec![i] }).collect();
        local::put(&mut conn, "s", &records).unwrap();
        let handler = Arc::new(Scripted { script: Mutex::new(script.into()), seen: Mutex::new(Vec::new()) });
        let manifest = Manifest::parse(&format!("[EventSource]\nType = \"Local\"\nStream = \"s\"\n{extra}\n")).unwrap();
        let status = Arc::new(StatusBoard::default());
        status.set_function(
            FunctionStatus { name: "f".into(), state: FunctionState::Running, world: None, digest: None, source: None, error: None, shards: Vec::new() },
            true,
        );
        let version = Arc::new(FunctionVersion {
            name: Arc::from("f"),
            manifest,
            handler: handler.clone(),
            environment: Arc::from(Vec::new()),
            identity_arn: String::new(),
        });
        let source = Arc::new(LocalSource::new(Arc::clone(&store), "s", Duration::from_millis(5)));
        let store_dyn: Arc<dyn CheckpointStore> = store.clone();
        let mapping = start(version, source, MappingContext { store: store_dyn, status: Arc::clone(&status) });
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
        Run { _dir: dir, store, status, handler }
    }

    fn seen(run: &Run) -> Vec<Vec<String>> {
        run.handler.seen.lock().unwrap().clone()
    }

    async fn checkpoint(run: &Run) -> Option<String> {
        let key = CheckpointKey { function: "f".into(), source: "local:s".into(), shard: "shardId-000000000000".into() };
        run.store.get(&key).await.unwrap()
    }

    #[tokio::test]
    async fn a_partial_failure_checkpoints_before_the_lowest_failure_and_retries_from_it() {
        let run = run(
            "FunctionResponseTypes = [\"ReportBatchItemFailures\"]",
            vec![Ok(vec!["4", "3"]), Ok(vec!["4"])],
            |s| s.records_processed == 5,
        )
        .await;
        assert_eq!(seen(&run), [vec!["1", "2", "3", "4", "5"], vec!["3", "4", "5"], vec!["4", "5"]]);
        assert_eq!(checkpoint(&run).await.as_deref(), Some("5"));
    }

    #[tokio::test]
    async fn retries_run_out_after_maximum_retry_attempts() {
        let error = || Err(InvokeError::Handler("boom".into()));
        let run = run("MaximumRetryAttempts = 2", vec![error(), error(), error(), error()], |s| s.records_discarded == 5).await;
        assert_eq!(seen(&run).len(), 3, "one attempt and two retries");
        assert_eq!(checkpoint(&run).await.as_deref(), Some("5"), "the shard moves past the batch");
        let shard = run.status.snapshot()[0].shards[0].clone();
        assert_eq!(shard.errors_by_kind.get("handler_error"), Some(&3));
    }

    #[tokio::test]
    async fn throttles_do_not_count_as_attempts() {
        let throttle = || Err(InvokeError::Throttled("pool full".into()));
        let run = run("MaximumRetryAttempts = 0", vec![throttle(), throttle(), Ok(vec![])], |s| s.records_processed == 5).await;
        assert_eq!(seen(&run).len(), 3);
        assert_eq!(run.status.snapshot()[0].shards[0].records_discarded, 0);
    }

    #[tokio::test]
    async fn without_report_batch_item_failures_the_response_is_ignored() {
        let run = run("", vec![Ok(vec!["3"])], |s| s.records_processed == 5).await;
        assert_eq!(seen(&run).len(), 1);
        assert_eq!(checkpoint(&run).await.as_deref(), Some("5"));
    }
}
