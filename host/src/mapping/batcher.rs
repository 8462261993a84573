//! Gathering a batch from a shard reader, as Lambda does: invoke when the batch
//! holds `BatchSize` records, when its payload would pass 6 MB, or when the
//! batching window ends, whichever comes first. With no window, whatever one poll
//! finds is a batch. The window starts when the previous invocation has completed.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::{Records, dynamodb_record_event_size, kinesis_record_event_size};
use crate::filter::RecordFilter;
use crate::source::{ShardReader, SourceInfo};
use crate::store::Checkpoint;

/// Lambda's cap on an invocation's payload.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

pub struct Batcher {
    reader: Box<dyn ShardReader>,
    batch_size: usize,
    window: Duration,
    /// Length of the fields every record repeats in the event (ARNs, region).
    repeated_fields: usize,
    filter: Option<Arc<RecordFilter>>,
    info: SourceInfo,
    /// Records read but left out of the previous batch by the payload cap.
    carry: Option<Records>,
    /// The last record read, when the filter dropped it: nothing read before it
    /// is waiting, so the checkpoint may move to it.
    filtered_through: Option<Checkpoint>,
    /// Records seen and dropped by the filter since the last call to [`Batcher::take_counts`].
    counts: ReadCounts,
}

/// What came off the shard: Lambda's PolledEventCount and FilteredOutEventCount.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadCounts {
    pub polled: u64,
    pub filtered_out: u64,
}

/// What [`Batcher::next_batch`] found.
#[derive(Debug)]
pub enum Next {
    Batch(Records),
    /// No batch, but the filter dropped records up to this checkpoint: write
    /// it so they are not read again.
    FilteredThrough(Checkpoint),
    /// The shard is closed and every record of it has been handed out.
    ShardEnd,
    /// The mapping is stopping.
    Stopped,
    /// Nothing came before the deadline the caller gave.
    Deadline,
}

impl Batcher {
    pub fn new(
        reader: Box<dyn ShardReader>,
        batch_size: usize,
        window: Duration,
        info: SourceInfo,
        repeated_fields: usize,
        filter: Option<Arc<RecordFilter>>,
    ) -> Batcher {
        Batcher {
            reader,
            batch_size,
            window,
            repeated_fields,
            filter,
            info,
            carry: None,
            filtered_through: None,
            counts: ReadCounts::default(),
        }
    }

    /// Counts since the last call.
    pub fn take_counts(&mut self) -> ReadCounts {
        std::mem::take(&mut self.counts)
    }

    /// After a batch is done: the checkpoint past filtered records that came
    /// after it, if the checkpoint may move there.
    pub fn take_filtered_through(&mut self) -> Option<Checkpoint> {
        if self.carry.is_some() {
            return None;
        }
        self.filtered_through.take()
    }

    /// The next batch, the end of the shard, or `Stopped` once `cancel` fires.
    pub async fn next_batch(&mut self, cancel: &CancellationToken) -> anyhow::Result<Next> {
        self.next_batch_until(cancel, None).await
    }

    /// As [`Batcher::next_batch`], but returns `Deadline` if `until` passes while
    /// no record is waiting.
    pub async fn next_batch_until(&mut self, cancel: &CancellationToken, until: Option<Instant>) -> anyhow::Result<Next> {
        let window_end = Instant::now() + self.window;
        let mut batch = self.carry.take();
        loop {
            let len = batch.as_ref().map_or(0, Records::len);
            let within_cap = batch.as_ref().is_none_or(|b| over_cap_at(b, self.repeated_fields).is_none());
            if len < self.batch_size && within_cap {
                // A read in flight is given up at the stop: the records of a batch
                // not yet handed to the function are read again from the checkpoint.
                let mut read = tokio::select! {
                    read = self.reader.read(self.batch_size - len) => read?,
                    () = cancel.cancelled() => return Ok(Next::Stopped),
                };
                self.counts.polled += read.len() as u64;
                if let Some(filter) = &self.filter {
                    let last = read.checkpoint_through(read.len().wrapping_sub(1));
                    let dropped = filter.retain(&mut read, &self.info.region, &self.info.arn);
                    self.counts.filtered_out += dropped as u64;
                    if dropped > 0 && last != read.checkpoint_through(read.len().wrapping_sub(1)) {
                        self.filtered_through = last;
                    } else if !read.is_empty() {
                        self.filtered_through = None;
                    }
                }
                if !read.is_empty() {
                    batch = Some(match batch.take() {
                        None => read,
                        Some(mut b) => {
                            b.append(read);
                            b
                        }
                    });
                }
            }
            if let Some(b) = batch.as_mut() {
                if let Some(rest) = split_at_payload_cap(b, self.repeated_fields) {
                    self.carry = Some(rest);
                    return Ok(batch.map_or(Next::ShardEnd, Next::Batch));
                }
                let full = b.len() >= self.batch_size;
                // A closed shard has nothing more to wait for.
                if full || self.window.is_zero() || Instant::now() >= window_end || self.reader.at_end() {
                    return Ok(batch.map_or(Next::ShardEnd, Next::Batch));
                }
            } else if let Some(checkpoint) = self.filtered_through.take() {
                return Ok(Next::FilteredThrough(checkpoint));
            } else if self.reader.at_end() {
                return Ok(Next::ShardEnd);
            } else if until.is_some_and(|until| Instant::now() >= until) {
                return Ok(Next::Deadline);
            }
            // Nothing more for now: wait for records, or the window's end.
            let deadline = if batch.is_some() { Some(window_end) } else { until };
            if crate::retry::until_cancelled(cancel, self.reader.idle(deadline)).await == crate::retry::Waited::Cancelled {
                return Ok(Next::Stopped);
            }
        }
    }
}

/// The index of the first record that takes the batch's payload past the cap.
fn over_cap_at(records: &Records, repeated_fields: usize) -> Option<usize> {
    let mut total = 0;
    let mut passes = |size: usize| {
        total += size;
        total > MAX_PAYLOAD_BYTES
    };
    match records {
        Records::Kinesis(r) => r.iter().position(|r| passes(kinesis_record_event_size(r, repeated_fields))),
        Records::Dynamodb(r) => r.iter().position(|r| passes(dynamodb_record_event_size(r, repeated_fields))),
    }
}

/// If the batch's payload passes the cap, cuts it at the last record that fits (at
/// least one record stays) and returns the rest.
fn split_at_payload_cap(batch: &mut Records, repeated_fields: usize) -> Option<Records> {
    let cut = over_cap_at(batch, repeated_fields)?.max(1);
    if cut >= batch.len() {
        return None;
    }
    Some(batch.split_off(cut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    use crate::record::KinesisRecord;

    /// A reader over a fixed list that hands out at most `per_read` per call.
    struct ListReader {
        records: Vec<KinesisRecord>,
        per_read: usize,
        closed: bool,
    }

    fn reader(records: Vec<KinesisRecord>, per_read: usize) -> Box<ListReader> {
        Box::new(ListReader { records, per_read, closed: false })
    }

    fn info() -> SourceInfo {
        SourceInfo { event_source: crate::record::EventSource::Kinesis, arn: "arn".into(), region: "r".into() }
    }

    fn batcher(reader: Box<ListReader>, size: usize, window: Duration) -> Batcher {
        Batcher::new(reader, size, window, info(), 200, None)
    }

    async fn next(b: &mut Batcher, cancel: &CancellationToken) -> Records {
        match b.next_batch(cancel).await.unwrap() {
            Next::Batch(records) => records,
            other => panic!("expected a batch, got {other:?}"),
        }
    }

    #[async_trait]
    impl ShardReader for ListReader {
        async fn read(&mut self, max: usize) -> anyhow::Result<Records> {
            let n = max.min(self.per_read).min(self.records.len());
            Ok(Records::Kinesis(self.records.drain(..n).collect()))
        }
        fn at_end(&self) -> bool {
            self.records.is_empty() && self.closed
        }
        fn poll_interval(&self) -> Duration {
            Duration::from_millis(5)
        }
    }

    fn record(seq: usize, size: usize) -> KinesisRecord {
        KinesisRecord {
            event_id: format!("shardId-000000000000:{seq}"),
            partition_key: "k".into(),
            sequence_number: seq.to_string(),
            data: vec![b'x'; size],
            approximate_arrival_timestamp_ms: 0,
            encryption_type: None,
        }
    }

    #[tokio::test]
    async fn batch_size_caps_a_batch() {
        let mut b = batcher(reader((1..=25).map(|i| record(i, 10)).collect(), 100), 10, Duration::ZERO);
        let cancel = CancellationToken::new();
        let mut sizes = Vec::new();
        for _ in 0..3 {
            sizes.push(next(&mut b, &cancel).await.len());
        }
        assert_eq!(sizes, [10, 10, 5]);
    }

    #[tokio::test]
    async fn a_window_gathers_several_polls() {
        let cancel = CancellationToken::new();
        let mut no_window = batcher(reader((1..=9).map(|i| record(i, 10)).collect(), 2), 100, Duration::ZERO);
        assert_eq!(next(&mut no_window, &cancel).await.len(), 2);
        let mut windowed = batcher(reader((1..=9).map(|i| record(i, 10)).collect(), 2), 100, Duration::from_millis(200));
        assert_eq!(next(&mut windowed, &cancel).await.len(), 9);
    }

    #[tokio::test]
    async fn the_payload_cap_splits_batches_in_order() {
        // 1 MiB records: base64 makes each about 1.33 MiB, so four fit in 6 MiB.
        let mut b = batcher(reader((1..=10).map(|i| record(i, 1 << 20)).collect(), 100), 100, Duration::ZERO);
        let cancel = CancellationToken::new();
        let first = next(&mut b, &cancel).await;
        assert_eq!(first.len(), 4);
        let second = next(&mut b, &cancel).await;
        assert_eq!(second.sequence_number(0), Some("5"));
        assert_eq!(second.len(), 4);
        let third = next(&mut b, &cancel).await;
        assert_eq!(third.sequence_number(0), Some("9"));
        assert_eq!(third.len(), 2);
    }

    /// A record whose event alone passes the 6 MB cap (a stream takes records up
    /// to 10 MiB) is handed out alone, never held back: the shard goes on.
    #[tokio::test]
    async fn a_record_over_the_payload_cap_is_a_batch_of_its_own() {
        let records = vec![record(1, 10), record(2, 10), record(3, 8 << 20), record(4, 10)];
        let mut b = batcher(reader(records, 100), 100, Duration::ZERO);
        let cancel = CancellationToken::new();
        let mut batches = Vec::new();
        for _ in 0..3 {
            let batch = next(&mut b, &cancel).await;
            batches.push((0..batch.len()).filter_map(|i| batch.sequence_number(i).map(str::to_owned)).collect::<Vec<_>>());
        }
        assert_eq!(batches, [vec!["1", "2"], vec!["3"], vec!["4"]]);
    }

    #[tokio::test]
    async fn cancel_ends_an_idle_wait() {
        let mut b = batcher(reader(Vec::new(), 1), 10, Duration::ZERO);
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(matches!(b.next_batch(&cancel).await.unwrap(), Next::Stopped));
    }

    #[tokio::test]
    async fn a_closed_shard_ends_without_waiting_for_the_window() {
        let closed = Box::new(ListReader { records: (1..=3).map(|i| record(i, 10)).collect(), per_read: 100, closed: true });
        let mut b = batcher(closed, 100, Duration::from_secs(300));
        let cancel = CancellationToken::new();
        assert_eq!(next(&mut b, &cancel).await.len(), 3);
        assert!(matches!(b.next_batch(&cancel).await.unwrap(), Next::ShardEnd));
    }

    #[tokio::test]
    async fn filtered_records_are_counted_and_move_the_checkpoint() {
        let mut records: Vec<KinesisRecord> = (1..=6).map(|i| record(i, 1)).collect();
        for (i, r) in records.iter_mut().enumerate() {
            r.data = format!(r#"{{"keep":{}}}"#, i < 2).into_bytes();
        }
        let filter = Arc::new(RecordFilter::new(&[r#"{"data":{"keep":[true]}}"#.to_owned()]).unwrap());
        let mut b = Batcher::new(reader(records, 3), 100, Duration::ZERO, info(), 200, Some(filter));
        let cancel = CancellationToken::new();
        assert_eq!(next(&mut b, &cancel).await.len(), 2, "records 1 and 2 match; 3 is dropped");
        assert_eq!(b.take_filtered_through(), Some(Checkpoint::Sequence("3".into())));
        assert!(matches!(b.next_batch(&cancel).await.unwrap(), Next::FilteredThrough(Checkpoint::Sequence(s)) if s == "6"));
        assert_eq!(b.take_counts(), ReadCounts { polled: 6, filtered_out: 4 });
    }
}
