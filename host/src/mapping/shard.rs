//! The loop of one shard:
//! 1. resume after the checkpoint, or where the manifest says to start (a child
//!    shard whose parents this mapping finished starts at its beginning);
//! 2. gather a batch ([`Batcher`]): `BatchSize`, the 6 MB payload or the batching
//!    window, whichever comes first, keeping only records that pass the filters;
//! 3. deliver it ([`Delivery`]): invoke, retry, bisect, discard, checkpoint;
//! 4. at the end of a closed shard, checkpoint [`Checkpoint::ShardEnd`], so its
//!    children start.
//!
//! The checkpoint moves only after the function finished with the records, so a
//! crash repeats at most the batch in flight and never skips one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::batcher::{Batcher, Next};
use super::delivery::{Delivered, Delivery, ShardError};
use crate::filter::RecordFilter;
use super::parallel::{LaneReader, SharedWatermark, deal};
use super::shared::Shared;
use super::window::{CLOSE_GRACE, OpenWindow, split_first_window};
use super::{FunctionVersion, MappingContext};
use crate::manifest::StartingPosition;
use crate::record::Records;
use crate::retry::{Backoff, Waited, until_cancelled};
use crate::source::deaggregating::DeaggregatingReader;
use crate::source::{Position, ShardReader, StreamSource};
use crate::status::ShardHandle;
use crate::store::{Checkpoint, CheckpointKey, StoreError, now_ms};

/// Batches of records queued for each lane of a shard (ParallelizationFactor).
const LANE_QUEUE: usize = 4;

/// Why a shard loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardExit {
    /// The shard is closed and finished: its children may start.
    Ended,
    Stopped,
    /// Another host holds the shard's lease now (cluster mode).
    Lost,
}

pub struct ShardLoop {
    pub key: CheckpointKey,
    pub shard: Arc<str>,
    /// The shard's parents were finished by this mapping: it starts at its beginning.
    pub has_parents: bool,
    pub function: Arc<FunctionVersion>,
    pub source: Arc<dyn StreamSource>,
    pub shared: Arc<Shared>,
    pub context: MappingContext,
    pub status: ShardHandle,
    pub cancel: CancellationToken,
}

impl ShardLoop {
    /// Runs until the shard ends or the mapping stops; an error starts the shard
    /// over from its checkpoint.
    pub async fn run(self) -> ShardExit {
        let mut backoff = Backoff::restart();
        while !self.cancel.is_cancelled() {
            match self.process().await {
                Ok(exit) => return exit,
                Err(lost @ ShardError::LeaseLost { .. }) => {
                    tracing::info!(function = %self.function.name, shard = %self.shard, "{lost}; stopping the shard");
                    return ShardExit::Lost;
                }
                Err(ShardError::Failed(error)) => {
                    tracing::error!(function = %self.function.name, shard = %self.shard,
                        "shard loop failed, restarting from the checkpoint: {error:#}");
                    self.update(|s| s.last_error = Some(format!("{error:#}")));
                    if backoff.wait(&self.cancel).await == Waited::Cancelled {
                        break;
                    }
                }
            }
        }
        ShardExit::Stopped
    }

    fn start_position(&self) -> Position {
        match self.function.manifest.event_source.starting_position {
            _ if self.has_parents && !self.source.supports_timestamps() => Position::TrimHorizon,
            StartingPosition::TrimHorizon => Position::TrimHorizon,
            // A child shard made after the pin starts at its beginning this way too.
            StartingPosition::Latest if self.source.supports_timestamps() => Position::AtTimestamp(self.shared.started_at_ms),
            StartingPosition::Latest => Position::Latest,
            StartingPosition::AtTimestamp(ms) => Position::AtTimestamp(ms),
        }
    }

    async fn process(&self) -> Result<ShardExit, ShardError> {
        let checkpoint = self.context.store.checkpoint(&self.key).await?;
        let position = match &checkpoint {
            Some(Checkpoint::ShardEnd) => return Ok(ShardExit::Ended),
            Some(Checkpoint::Sequence(sequence)) => Position::AfterSequence(sequence.clone()),
            // Inside a KPL aggregate: read it again; the deaggregating reader
            // skips its user records that are done (all of them, should
            // DeaggregateRecords have been turned off since: at least once).
            Some(Checkpoint::SubSequence(sequence, _)) => Position::AtSequence(sequence.clone()),
            // Where a rewind put the shard.
            Some(Checkpoint::AtSequence(sequence)) => Position::AtSequence(sequence.clone()),
            Some(Checkpoint::TrimHorizon) => Position::TrimHorizon,
            Some(Checkpoint::Latest) => Position::Latest,
            Some(Checkpoint::AtTimestamp(ms)) => Position::AtTimestamp(*ms),
            None => self.start_position(),
        };
        self.update(|s| s.checkpoint = checkpoint.clone());
        // Opening reads only (a shard iterator): the stop need not wait for it.
        let reader = tokio::select! {
            reader = self.source.open(&self.shard, position) => reader?,
            () = self.cancel.cancelled() => return Ok(ShardExit::Stopped),
        };

        let config = &self.function.manifest.event_source;
        let reader: Box<dyn ShardReader> = if config.deaggregate_records {
            let resume_after = match checkpoint {
                Some(Checkpoint::SubSequence(sequence, sub)) => Some((sequence, sub)),
                _ => None,
            };
            Box::new(DeaggregatingReader::new(reader, resume_after, &self.function.name, &self.shard))
        } else {
            reader
        };
        if config.parallelization_factor > 1 {
            return self.process_parallel(reader, config.parallelization_factor).await;
        }
        if let Some(width) = config.tumbling_window {
            return self.process_windowed(reader, width).await;
        }
        let mut batcher = self.batcher(reader, self.shared.filter.clone());
        let delivery = self.delivery(&self.cancel, None, None);
        loop {
            let next = batcher.next_batch(&self.cancel).await?;
            self.count_reads(&mut batcher);
            match next {
                Next::Batch(records) => {
                    if delivery.deliver(records).await? == Delivered::Stopped {
                        // The filtered records after the batch wait behind it.
                        return Ok(ShardExit::Stopped);
                    }
                    if let Some(checkpoint) = batcher.take_filtered_through() {
                        delivery.checkpoint_at(checkpoint).await?;
                    }
                }
                Next::FilteredThrough(checkpoint) => delivery.checkpoint_at(checkpoint).await?,
                Next::ShardEnd => return self.finish().await,
                Next::Stopped | Next::Deadline => return Ok(ShardExit::Stopped),
            }
            if self.cancel.is_cancelled() {
                return Ok(ShardExit::Stopped);
            }
        }
    }

    /// TumblingWindowInSeconds: batches never span two windows; a window ends
    /// when a record of a later one comes, when its time is over (plus a grace for
    /// records still being read), or with its shard.
    async fn process_windowed(&self, reader: Box<dyn ShardReader>, width: Duration) -> Result<ShardExit, ShardError> {
        let stored = self.context.store.window(&self.key).await?;
        let open = match stored {
            Some(state) => Some(serde_json::from_str::<OpenWindow>(&state).map_err(|error| {
                anyhow::Error::from(StoreError::Corrupt { what: "window state", value: format!("{state} ({error})") })
            })?),
            None => None,
        };
        let window = Mutex::new(open);
        let end_of = || window.lock().ok().and_then(|w| w.as_ref().map(|w| w.end_ms));
        let start_of = || window.lock().ok().and_then(|w| w.as_ref().map(|w| w.start_ms));
        let mut batcher = self.batcher(reader, self.shared.filter.clone());
        let delivery = self.delivery(&self.cancel, None, Some(&window));
        loop {
            let deadline = end_of().map(|end| {
                let close_at = end + CLOSE_GRACE.as_millis() as u64;
                tokio::time::Instant::now() + Duration::from_millis(close_at.saturating_sub(now_ms()))
            });
            let next = batcher.next_batch_until(&self.cancel, deadline).await?;
            self.count_reads(&mut batcher);
            match next {
                Next::Batch(mut records) => {
                    while !records.is_empty() {
                        let (start, rest) = split_first_window(&mut records, width);
                        if start_of().is_some_and(|open| open != start)
                            && delivery.close_window(false).await? == Delivered::Stopped
                        {
                            return Ok(ShardExit::Stopped);
                        }
                        if let Ok(mut w) = window.lock()
                            && w.is_none()
                        {
                            *w = Some(OpenWindow::new(start, width));
                        }
                        if delivery.deliver(records).await? == Delivered::Stopped {
                            return Ok(ShardExit::Stopped);
                        }
                        let over_cap = window.lock().ok().and_then(|w| w.as_ref().map(|w| w.over_cap)).unwrap_or(false);
                        if over_cap {
                            tracing::warn!(function = %self.function.name, shard = %self.shard,
                                "the window's state passed 1 MB; ending the window early");
                            if delivery.close_window(true).await? == Delivered::Stopped {
                                return Ok(ShardExit::Stopped);
                            }
                            if let Ok(mut w) = window.lock() {
                                *w = Some(OpenWindow::new(start, width));
                            }
                        }
                        records = rest;
                    }
                    if let Some(checkpoint) = batcher.take_filtered_through() {
                        delivery.checkpoint_at(checkpoint).await?;
                    }
                }
                Next::FilteredThrough(checkpoint) => delivery.checkpoint_at(checkpoint).await?,
                Next::Deadline => {
                    if end_of().is_some_and(|end| now_ms() >= end + CLOSE_GRACE.as_millis() as u64)
                        && delivery.close_window(false).await? == Delivered::Stopped
                    {
                        return Ok(ShardExit::Stopped);
                    }
                }
                Next::ShardEnd => {
                    // Windows do not cross a reshard; the shard is finished only
                    // once its last window is.
                    if delivery.close_window(false).await? == Delivered::Stopped {
                        return Ok(ShardExit::Stopped);
                    }
                    return self.finish().await;
                }
                Next::Stopped => return Ok(ShardExit::Stopped),
            }
            if self.cancel.is_cancelled() {
                return Ok(ShardExit::Stopped);
            }
        }
    }

    /// Adds what the batcher read and filtered out to the shard's counts.
    fn count_reads(&self, batcher: &mut Batcher) {
        let counts = batcher.take_counts();
        self.update(|s| {
            s.polled_events += counts.polled;
            s.filtered_out_events += counts.filtered_out;
        });
    }

    fn batcher(&self, reader: Box<dyn ShardReader>, filter: Option<Arc<RecordFilter>>) -> Batcher {
        let config = &self.function.manifest.event_source;
        let info = &self.shared.info;
        let repeated_fields = crate::record::repeated_fields_len(&info.arn, &self.function.identity_arn, &info.region);
        Batcher::new(reader, config.batch_size, config.batching_window, info.clone(), repeated_fields, filter)
    }

    fn delivery<'a>(
        &'a self,
        cancel: &'a CancellationToken,
        watermark: Option<&'a SharedWatermark>,
        window: Option<&'a Mutex<Option<OpenWindow>>>,
    ) -> Delivery<'a> {
        Delivery {
            function: &self.function,
            shard: &self.shard,
            shared: &self.shared,
            key: &self.key,
            store: self.context.store.as_ref(),
            status: &self.status,
            cancel,
            watermark,
            window,
            instance_slot: crate::runtime::InstanceSlot::new(self.function.manifest.execution_environment),
        }
    }

    /// The shard is closed and every record of it done: say so, so its children start.
    async fn finish(&self) -> Result<ShardExit, ShardError> {
        self.context.store.commit(&self.key, &Checkpoint::ShardEnd, None).await?;
        self.update(|s| {
            s.checkpoint = Some(Checkpoint::ShardEnd);
            s.state = crate::status::ShardState::Finished;
        });
        Ok(ShardExit::Ended)
    }

    /// ParallelizationFactor > 1: a distributor deals records to `lanes` lanes by
    /// key; each lane batches and delivers on its own; the checkpoint follows the
    /// watermark of records done.
    async fn process_parallel(&self, mut reader: Box<dyn ShardReader>, lanes: usize) -> Result<ShardExit, ShardError> {
        let watermark = SharedWatermark::default();
        let lanes_cancel = self.cancel.child_token();
        let mut senders = Vec::with_capacity(lanes);
        let mut lane_loops = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            let (sender, receiver) = mpsc::channel(LANE_QUEUE);
            senders.push(sender);
            let delivery = self.delivery(&lanes_cancel, Some(&watermark), None);
            let mut batcher = self.batcher(Box::new(LaneReader::new(receiver)), None);
            let cancel = &lanes_cancel;
            lane_loops.push(async move {
                loop {
                    match batcher.next_batch(cancel).await? {
                        Next::Batch(records) => {
                            if delivery.deliver(records).await? == Delivered::Stopped {
                                return Ok(ShardExit::Stopped);
                            }
                        }
                        Next::FilteredThrough(_) => {}
                        Next::ShardEnd => return Ok::<_, ShardError>(ShardExit::Ended),
                        Next::Stopped | Next::Deadline => return Ok(ShardExit::Stopped),
                    }
                    if cancel.is_cancelled() {
                        return Ok(ShardExit::Stopped);
                    }
                }
            });
        }
        let config = &self.function.manifest.event_source;
        let info = &self.shared.info;
        let distributor = async {
            let read_max = config.batch_size.saturating_mul(lanes);
            loop {
                let mut records = reader.read(read_max).await?;
                self.update(|s| s.polled_events += records.len() as u64);
                if records.is_empty() {
                    if reader.at_end() {
                        // Closing the queues ends each lane once it is done.
                        drop(senders);
                        return Ok::<_, ShardError>(ShardExit::Ended);
                    }
                    if until_cancelled(&self.cancel, reader.idle(None)).await == Waited::Cancelled {
                        return Ok(ShardExit::Stopped);
                    }
                    continue;
                }
                // Every record enters the watermark in shard order; those the
                // filters drop are done at once.
                let keep: Vec<bool> = (0..records.len())
                    .map(|i| self.shared.filter.as_ref().is_none_or(|f| f.matches(&records, i, &info.region, &info.arn)))
                    .collect();
                {
                    let mut w = watermark.lock().await;
                    for (i, keep) in keep.iter().enumerate() {
                        if let Some(checkpoint) = records.checkpoint_through(i) {
                            w.push(checkpoint, !keep);
                        }
                    }
                    if let Some(checkpoint) = w.done(std::iter::empty()) {
                        self.delivery(&self.cancel, None, None).checkpoint_at(checkpoint).await?;
                    }
                }
                let dropped = keep.iter().filter(|k| !**k).count();
                if dropped > 0 {
                    let mut flags = keep.iter();
                    match &mut records {
                        Records::Kinesis(r) => r.retain(|_| *flags.next().unwrap_or(&true)),
                        Records::Dynamodb(r) => r.retain(|_| *flags.next().unwrap_or(&true)),
                    }
                    self.update(|s| s.filtered_out_events += dropped as u64);
                }
                for (lane, records) in deal(records, lanes).into_iter().enumerate() {
                    if records.is_empty() {
                        continue;
                    }
                    tokio::select! {
                        () = self.cancel.cancelled() => return Ok(ShardExit::Stopped),
                        sent = senders[lane].send(records) => {
                            if sent.is_err() {
                                return Ok(ShardExit::Stopped);
                            }
                        }
                    }
                }
            }
        };
        // The first error stops the others; the shard then starts over from the
        // watermark's checkpoint.
        let (dealt, lanes_done) = tokio::try_join!(distributor, futures_util::future::try_join_all(lane_loops))?;
        if dealt == ShardExit::Ended && lanes_done.iter().all(|e| *e == ShardExit::Ended) {
            return self.finish().await;
        }
        Ok(ShardExit::Stopped)
    }

    fn update(&self, f: impl FnOnce(&mut crate::status::ShardStatus)) {
        if let Ok(mut status) = self.status.lock() {
            f(&mut status);
        }
    }
}
