//! Delivering one batch: invoke the function until every record of it is done,
//! by Lambda's rules (`host/docs/semantics.md`; [`super::decision`] decides
//! what each result means):
//!
//! - success: checkpoint the batch;
//! - partial failure (`ReportBatchItemFailures`): checkpoint before the lowest
//!   failed record and go on from it. With `BisectBatchOnFunctionError` that is
//!   the split point, and it is not a retry; without, it counts as one;
//! - function error: with `BisectBatchOnFunctionError`, split the batch in halves
//!   and deliver each (a split is not a retry; the halves carry the count so far);
//!   otherwise retry, backing off from 100 ms to 10 s with jitter;
//! - a throttle (no free instance) never reached the function: it is retried
//!   without counting;
//! - `MaximumRetryAttempts` spent, or records older than `MaximumRecordAgeInSeconds`
//!   before an attempt: the records are discarded, a record describing them goes
//!   to the on-failure destination, and only once it is accepted does the
//!   checkpoint move past them.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::FunctionVersion;
use super::decision::{RetryRules, Then, decide};
use super::destination::{Condition, Discarded, LastAttempt, failure_record};
use super::outcome::{self, Outcome};
use super::parallel::SharedWatermark;
use super::shared::Shared;
use super::window::{OpenWindow, returned_state};
use crate::record::{Batch, Records};
use crate::retry::{Backoff, Waited};
use crate::runtime::{HandlerResponse, InstanceSlot, InvokeError, InvokeRequest};
use crate::status::{ProcessingResult, ShardHandle, ShardState, ShardStatus};
use crate::store::{Checkpoint, CheckpointKey, CheckpointStore, StoreError, now_ms};

/// Why a pass of a shard loop ended early.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// Cluster mode: another host holds the shard's lease now. The loop stops.
    #[error("the lease of {shard} is held by another host now; the checkpoint was not written")]
    LeaseLost { shard: String },
    /// Anything else: the loop starts over from the checkpoint.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<StoreError> for ShardError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::LeaseLost { shard } => ShardError::LeaseLost { shard },
            other => ShardError::Failed(other.into()),
        }
    }
}

pub struct Delivery<'a> {
    pub function: &'a FunctionVersion,
    pub shard: &'a std::sync::Arc<str>,
    pub shared: &'a Shared,
    pub key: &'a CheckpointKey,
    pub store: &'a dyn CheckpointStore,
    pub status: &'a ShardHandle,
    pub cancel: &'a CancellationToken,
    /// With ParallelizationFactor > 1: records finish out of order, and the
    /// checkpoint follows the watermark.
    pub watermark: Option<&'a SharedWatermark>,
    /// With TumblingWindowInSeconds: the shard's open window, if any.
    pub window: Option<&'a Mutex<Option<OpenWindow>>>,
    /// Where this shard (or lane) keeps its warm instance between invocations.
    pub instance_slot: InstanceSlot,
}

/// How a delivery ended.
#[must_use = "records after an unfinished delivery must not be checkpointed"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    /// Every record is done: handled, or discarded and its failure record sent.
    All,
    /// The mapping stopped first: some records are not done, and whoever resumes
    /// from the checkpoint delivers them again. Nothing after them may be
    /// checkpointed (not even records the filters dropped).
    Stopped,
}

/// An invocation's result, as [`Delivery::invoke_recorded`] made it.
struct Invoked {
    result: Result<HandlerResponse, InvokeError>,
    request_id: String,
    elapsed: std::time::Duration,
}

/// How the delivery of one part ended.
enum PartEnd {
    Done,
    /// To be bisected: the halves, first half first.
    Split([Part; 2]),
    Stopped,
}

/// Records still to deliver, and what has been spent on them.
struct Part {
    records: Records,
    /// Retries so far (Lambda's count for MaximumRetryAttempts).
    retries: u32,
    /// Invocations so far (Lambda's approximateInvokeCount).
    invocations: u32,
    /// How the last invocation that reached the function ended.
    last: LastAttempt,
}

impl Delivery<'_> {
    /// Delivers `records` until all are done (handled or discarded) or the mapping
    /// stops; what is not done then is delivered again by whoever resumes from the
    /// checkpoint.
    pub async fn deliver(&self, records: Records) -> Result<Delivered, ShardError> {
        // A stack: the first half of a split is on top.
        let mut parts = vec![Part { records, retries: 0, invocations: 0, last: LastAttempt::FunctionError }];
        while let Some(part) = parts.pop() {
            if self.cancel.is_cancelled() {
                return Ok(Delivered::Stopped);
            }
            match self.deliver_part(part).await? {
                PartEnd::Done => {}
                PartEnd::Split([first, second]) => {
                    parts.push(second);
                    parts.push(first);
                }
                PartEnd::Stopped => return Ok(Delivered::Stopped),
            }
        }
        Ok(Delivered::All)
    }

    /// Delivers one part, until it is done, to be bisected, or the mapping stops.
    /// [`decide`] says what each invocation's result means; this carries it out.
    async fn deliver_part(&self, mut part: Part) -> Result<PartEnd, ShardError> {
        let config = &self.function.manifest.event_source;
        let rules = RetryRules::of(config);
        let mut backoff = Backoff::invocation();
        loop {
            if let Some(max_age) = config.maximum_record_age {
                let too_old = count_older_than(&part.records, now_ms().saturating_sub(max_age.as_millis() as u64));
                if too_old > 0 {
                    let rest = part.records.split_off(too_old);
                    tracing::warn!(function = %self.function.name, shard = %self.shard,
                        "{too_old} records are older than MaximumRecordAgeInSeconds; discarding them");
                    if !self.discard(part.records, Condition::RecordAgeExceeded, part.invocations).await? {
                        return Ok(PartEnd::Stopped);
                    }
                    part.records = rest;
                }
                if part.records.is_empty() {
                    return Ok(PartEnd::Done);
                }
            }

            let count = part.records.len();
            let batch = self.batch(std::mem::replace(&mut part.records, Records::Kinesis(Vec::new())));
            let Invoked { result, request_id, elapsed } = self.invoke_recorded(&batch).await;
            part.records = batch.records;
            let throttled = result.as_ref().is_err_and(|e| !e.reached_function());
            let mut outcome = outcome::classify(&result, &part.records, config.report_batch_item_failures);
            if self.window.is_some()
                && let (Ok(response), Outcome::Success | Outcome::PartialFailure { .. }) = (&result, &outcome)
            {
                match returned_state(response) {
                    Ok(Some(state)) => {
                        self.with_window(|w| w.update(Some(state)));
                    }
                    Ok(None) => {}
                    Err(message) => outcome = Outcome::Failure(message),
                }
            }
            // One line per invocation, as Lambda's START/END/REPORT lines.
            tracing::info!(function = %self.function.name, shard = %self.shard, request_id = %request_id,
                first_sequence = part.records.sequence_number(0).unwrap_or_default(),
                last_sequence = part.records.sequence_number(count.saturating_sub(1)).unwrap_or_default(),
                records = count, duration_ms = elapsed.as_micros() as f64 / 1e3, outcome = outcome.label(),
                "invoked with {count} records: {} in {:.1} ms", outcome.label(), elapsed.as_secs_f64() * 1e3);
            if !throttled {
                part.invocations += 1;
                // A response that fails the batch is not a function error.
                part.last = if result.is_ok() { LastAttempt::Returned } else { LastAttempt::FunctionError };
            }

            let decision = decide(&outcome, count, throttled, part.retries, &rules);
            if decision.done > 0 {
                self.checkpoint(&part.records, decision.done).await?;
                part.records.drop_front(decision.done);
            }
            self.update(|s| {
                s.records_processed += decision.done as u64;
                match &outcome {
                    Outcome::Success => s.state = ShardState::Ok,
                    Outcome::PartialFailure { .. } => {
                        s.failed_invocations += 1;
                        s.failed_invoke_events += (count - decision.done) as u64;
                        let failed_at = part.records.sequence_number(0).unwrap_or_default();
                        s.last_error = Some(format!("batch item failure at sequence number {failed_at}"));
                    }
                    Outcome::Failure(message) => {
                        s.failed_invocations += 1;
                        s.failed_invoke_events += count as u64;
                        s.last_error = Some(message.clone());
                    }
                }
            });
            match &outcome {
                Outcome::PartialFailure { first_failed } => tracing::warn!(function = %self.function.name, shard = %self.shard,
                    request_id = %request_id, "{first_failed} of {count} records done; going on from sequence number {}",
                    part.records.sequence_number(0).unwrap_or_default()),
                Outcome::Failure(message) => tracing::error!(function = %self.function.name, shard = %self.shard,
                    request_id = %request_id, "invocation failed ({count} records): {message}"),
                Outcome::Success => {}
            }

            match decision.then {
                Then::Finished => return Ok(PartEnd::Done),
                Then::Continue => {}
                Then::Split { at } => {
                    let second = part.records.split_off(at);
                    tracing::info!(function = %self.function.name, shard = %self.shard,
                        "bisecting the batch into {} and {} records", part.records.len(), second.len());
                    let (retries, invocations, last) = (part.retries, part.invocations, part.last);
                    return Ok(PartEnd::Split([part, Part { records: second, retries, invocations, last }]));
                }
                Then::GiveUp { .. } => {
                    tracing::error!(function = %self.function.name, shard = %self.shard,
                        "retries exhausted after {} attempts; discarding {} records, sequence numbers {} to {}",
                        part.invocations, part.records.len(),
                        part.records.sequence_number(0).unwrap_or_default(),
                        part.records.sequence_number(part.records.len().saturating_sub(1)).unwrap_or_default());
                    let condition = Condition::RetryAttemptsExhausted { last: part.last };
                    let sent = self.discard(part.records, condition, part.invocations).await?;
                    return Ok(if sent { PartEnd::Done } else { PartEnd::Stopped });
                }
                Then::Retry { retries } => {
                    part.retries = retries;
                    let max_attempts = rules.maximum_retry_attempts.map(|max| max + 1);
                    self.update(|s| {
                        let retrying_since_ms = match s.state {
                            ShardState::Retrying { retrying_since_ms, .. } => retrying_since_ms,
                            _ => now_ms(),
                        };
                        s.state = ShardState::Retrying { next_attempt: retries + 1, max_attempts, retrying_since_ms };
                    });
                    // Stopped (a new version, or shutdown): the records are
                    // delivered again by whoever resumes from the checkpoint.
                    if backoff.wait(self.cancel).await == Waited::Cancelled {
                        return Ok(PartEnd::Stopped);
                    }
                }
            }
        }
    }

    /// One invocation, logged and counted in the shard's status (every kind of
    /// invocation goes through here, so the counts cannot drift apart).
    async fn invoke_recorded(&self, batch: &Batch) -> Invoked {
        let count = batch.records.len();
        let newest = batch.records.arrival_ms(count.saturating_sub(1));
        let iterator_age = newest.map(|t| now_ms().saturating_sub(t));
        let request_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let result = self.invoke(batch, &request_id).await;
        let elapsed = started.elapsed();
        let throttled = result.as_ref().is_err_and(|e| !e.reached_function());
        self.update(|s| {
            s.invocations += 1;
            if !throttled {
                s.last_processing_result = if result.is_ok() { ProcessingResult::Ok } else { ProcessingResult::FunctionCallFailed };
                s.last_processing_result_ms = now_ms();
            }
            s.invoked_events += count as u64;
            if let Some(age) = iterator_age {
                s.iterator_age_ms = age;
            }
            s.invocation_duration.observe(elapsed);
            if let Err(error) = &result {
                *s.errors_by_kind.entry(Cow::Borrowed(error.kind())).or_default() += 1;
            }
        });
        Invoked { result, request_id, elapsed }
    }

    /// One invocation, under the request id it is logged with.
    async fn invoke(&self, batch: &Batch, request_id: &str) -> Result<HandlerResponse, InvokeError> {
        let request = InvokeRequest {
            function: &self.function.name,
            shard: self.shard,
            request_id: request_id.to_owned(),
            timeout: self.function.manifest.timeout,
            memory_mb: self.function.manifest.memory_mb,
            environment: &self.function.environment,
            log_limit_bytes: self.function.manifest.log_limit_bytes,
            grants: &self.function.grants,
            services: &self.function.services,
            instance_slot: Some(&self.instance_slot),
        };
        let before = self.instance_slot.instances_started();
        let result = self.function.handler.invoke(batch, request).await;
        let started = self.instance_slot.instances_started() - before;
        if started > 0 {
            self.update(|s| s.instances_started += started);
        }
        result
    }

    fn batch(&self, records: Records) -> Batch {
        let info = &self.shared.info;
        Batch {
            event_source: info.event_source,
            event_source_arn: info.arn.clone(),
            aws_region: info.region.clone(),
            invoke_identity_arn: self.function.identity_arn.clone(),
            shard_id: self.shard.to_string(),
            records,
            window: self.window.and_then(|w| w.lock().ok()?.as_ref().map(|w| w.for_invocation(false, false))),
        }
    }

    fn with_window<T>(&self, f: impl FnOnce(&mut OpenWindow) -> T) -> Option<T> {
        let mut guard = self.window?.lock().ok()?;
        guard.as_mut().map(f)
    }

    /// Ends the open window: invokes the function once more, with no records and
    /// `isFinalInvokeForWindow` (and `isWindowTerminatedEarly` when its state grew
    /// past 1 MB), retrying as a batch would; then forgets the window. Stopped
    /// first, the window stays open (and stored) for whoever resumes.
    pub async fn close_window(&self, terminated_early: bool) -> Result<Delivered, ShardError> {
        let Some(window) = self.with_window(|w| w.for_invocation(true, terminated_early)) else {
            return Ok(Delivered::All);
        };
        let config = &self.function.manifest.event_source;
        let mut batch = self.batch(match self.shared.info.event_source {
            crate::record::EventSource::Kinesis => Records::Kinesis(Vec::new()),
            crate::record::EventSource::Dynamodb => Records::Dynamodb(Vec::new()),
        });
        batch.window = Some(window);
        let rules = RetryRules { bisect: false, ..RetryRules::of(config) };
        let mut retries = 0;
        let mut backoff = Backoff::invocation();
        loop {
            let Invoked { result, request_id, .. } = self.invoke_recorded(&batch).await;
            let throttled = result.as_ref().is_err_and(|e| !e.reached_function());
            let outcome = match &result {
                Ok(_) => Outcome::Success,
                Err(error) => {
                    tracing::error!(function = %self.function.name, shard = %self.shard, request_id = %request_id,
                        "the final invocation of the window failed: {error}");
                    self.update(|s| {
                        s.failed_invocations += 1;
                        s.last_error = Some(format!("final invocation of the window: {error}"));
                    });
                    Outcome::Failure(error.to_string())
                }
            };
            match decide(&outcome, 0, throttled, retries, &rules).then {
                Then::Retry { retries: now } => retries = now,
                Then::GiveUp { .. } => {
                    tracing::error!(function = %self.function.name, shard = %self.shard,
                        "retries exhausted; the window's final state is dropped");
                    break;
                }
                Then::Finished | Then::Continue | Then::Split { .. } => break,
            }
            if backoff.wait(self.cancel).await == Waited::Cancelled {
                return Ok(Delivered::Stopped);
            }
        }
        if let Some(window) = self.window
            && let Ok(mut open) = window.lock()
        {
            *open = None;
        }
        self.store.close_window(self.key).await?;
        Ok(Delivered::All)
    }

    /// Gives up on `records`: sends their failure record to the destination (until
    /// it is accepted) and checkpoints past them. False if the mapping stopped first.
    async fn discard(&self, records: Records, condition: Condition, invocations: u32) -> Result<bool, ShardError> {
        let count = records.len();
        if let Some(sink) = &self.shared.sink {
            let request_id = uuid::Uuid::new_v4().to_string();
            let batch = self.batch(records);
            let record = failure_record(&Discarded {
                batch: &batch,
                condition,
                request_id: &request_id,
                function_arn: &self.shared.function_arn,
                invoke_count: invocations,
            });
            let mut backoff = Backoff::invocation();
            let mut attempts = 0;
            loop {
                match sink.send(&record, &batch).await {
                    Ok(()) => break,
                    Err(error) => {
                        attempts += 1;
                        tracing::error!(function = %self.function.name, shard = %self.shard,
                            "the on-failure destination did not accept the record: {error:#}; retrying");
                        // The shard waits here, and says so: the records are not skipped.
                        self.update(|s| {
                            let refused_since_ms = match s.state {
                                ShardState::DestinationRefused { refused_since_ms, .. } => refused_since_ms,
                                _ => now_ms(),
                            };
                            s.state = ShardState::DestinationRefused { attempts, refused_since_ms };
                            s.last_error = Some(format!("on-failure destination: {error:#}"));
                        });
                        if backoff.wait(self.cancel).await == Waited::Cancelled {
                            return Ok(false);
                        }
                    }
                }
            }
            self.checkpoint(&batch.records, count).await?;
            self.update(|s| s.destination_delivered_events += count as u64);
        } else {
            self.checkpoint(&records, count).await?;
        }
        self.update(|s| {
            s.records_discarded += count as u64;
            s.state = ShardState::Ok;
        });
        Ok(true)
    }

    /// Checkpoints the first `done` records of `records` as finished.
    async fn checkpoint(&self, records: &Records, done: usize) -> Result<(), ShardError> {
        if let Some(watermark) = self.watermark {
            // Held across the write, so that lanes finishing together write their
            // checkpoints in the order the watermark moved.
            let mut w = watermark.lock().await;
            return match w.done((0..done).filter_map(|i| records.checkpoint_through(i))) {
                Some(checkpoint) => self.checkpoint_at(checkpoint).await,
                None => Ok(()),
            };
        }
        match done.checked_sub(1).and_then(|i| records.checkpoint_through(i)) {
            Some(checkpoint) => self.checkpoint_at(checkpoint).await,
            None => Ok(()),
        }
    }

    /// Writes the shard's checkpoint (past records done), with the open window's state.
    pub async fn checkpoint_at(&self, checkpoint: Checkpoint) -> Result<(), ShardError> {
        // The window's state goes with the checkpoint, in one write.
        let window = self.with_window(|w| serde_json::to_string(w)).transpose().map_err(anyhow::Error::from)?;
        self.store.commit(self.key, &checkpoint, window.as_deref()).await?;
        self.update(|s| s.checkpoint = Some(checkpoint));
        Ok(())
    }

    fn update(&self, f: impl FnOnce(&mut ShardStatus)) {
        if let Ok(mut status) = self.status.lock() {
            f(&mut status);
        }
    }
}

/// How many records at the front arrived before `cutoff_ms`.
fn count_older_than(records: &Records, cutoff_ms: u64) -> usize {
    (0..records.len()).take_while(|&i| records.arrival_ms(i).is_some_and(|t| t < cutoff_ms)).count()
}
