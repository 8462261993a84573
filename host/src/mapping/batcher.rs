//! Gathering a batch from a shard reader, as Lambda does: invoke when the batch
//! holds `BatchSize` records, when its payload would pass 6 MB, or when the
//! batching window ends, whichever comes first. With no window, whatever one poll
//! finds is a batch. The window starts when the previous invocation has completed.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::{Records, dynamodb_record_event_size, kinesis_record_event_size};
use crate::source::ShardReader;

/// Lambda's cap on an invocation's payload.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

pub struct Batcher {
    reader: Box<dyn ShardReader>,
    batch_size: usize,
    window: Duration,
    /// Length of the fields every record repeats in the event (ARNs, region).
    repeated_fields: usize,
    /// Records read but left out of the previous batch by the payload cap.
    carry: Option<Records>,
}

impl Batcher {
    pub fn new(reader: Box<dyn ShardReader>, batch_size: usize, window: Duration, repeated_fields: usize) -> Batcher {
        Batcher { reader, batch_size, window, repeated_fields, carry: None }
    }

    /// The next batch, or `None` once `cancel` fires.
    pub async fn next_batch(&mut self, cancel: &CancellationToken) -> anyhow::Result<Option<Records>> {
        let window_end = Instant::now() + self.window;
        let mut batch = self.carry.take();
        loop {
            let len = batch.as_ref().map_or(0, Records::len);
            let within_cap = batch.as_ref().is_none_or(|b| over_cap_at(b, self.repeated_fields).is_none());
            if len < self.batch_size && within_cap {
                let read = self.reader.read(self.batch_size - len).await?;
                if !read.is_empty() {
                    batch = Some(match batch.take() {
                        None => read,
                        Some(mut b) => {
                            append(&mut b, read);
                            b
                        }
                    });
                }
            }
            if let Some(b) = batch.as_mut() {
                if let Some(rest) = split_at_payload_cap(b, self.repeated_fields) {
                    self.carry = Some(rest);
                    return Ok(batch);
                }
                let full = b.len() >= self.batch_size;
                if full || self.window.is_zero() || Instant::now() >= window_end {
                    return Ok(batch);
                }
            }
            // Nothing more for now: wait for the next poll, or the window's end.
            let mut wait = self.reader.poll_interval();
            if batch.is_some() {
                wait = wait.min(window_end.saturating_duration_since(Instant::now()));
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(None),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn append(batch: &mut Records, more: Records) {
    match (batch, more) {
        (Records::Kinesis(a), Records::Kinesis(b)) => a.extend(b),
        (Records::Dynamodb(a), Records::Dynamodb(b)) => a.extend(b),
        // A reader yields records of one kind only.
        _ => {}
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
    Some(match batch {
        Records::Kinesis(r) => Records::Kinesis(r.split_off(cut)),
        Records::Dynamodb(r) => Records::Dynamodb(r.split_off(cut)),
    })
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
    }

    #[async_trait]
    impl ShardReader for ListReader {
        async fn read(&mut self, max: usize) -> anyhow::Result<Records> {
            let n = max.min(self.per_read).min(self.records.len());
            Ok(Records::Kinesis(self.records.drain(..n).collect()))
        }
        fn position(&self) -> &str {
            ""
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

    fn lens(r: &Records) -> usize {
        r.len()
    }

    #[tokio::test]
    async fn batch_size_caps_a_batch() {
        let reader = ListReader { records: (1..=25).map(|i| record(i, 10)).collect(), per_read: 100 };
        let mut b = Batcher::new(Box::new(reader), 10, Duration::ZERO, 200);
        let cancel = CancellationToken::new();
        let sizes: Vec<usize> = [
            b.next_batch(&cancel).await.unwrap().unwrap(),
            b.next_batch(&cancel).await.unwrap().unwrap(),
            b.next_batch(&cancel).await.unwrap().unwrap(),
        ]
        .iter()
        .map(lens)
        .collect();
        assert_eq!(sizes, [10, 10, 5]);
    }

    #[tokio::test]
    async fn a_window_gathers_several_polls() {
        let reader = ListReader { records: (1..=9).map(|i| record(i, 10)).collect(), per_read: 2 };
        let cancel = CancellationToken::new();
        let mut no_window = Batcher::new(Box::new(reader), 100, Duration::ZERO, 200);
        assert_eq!(no_window.next_batch(&cancel).await.unwrap().unwrap().len(), 2);
        let reader = ListReader { records: (1..=9).map(|i| record(i, 10)).collect(), per_read: 2 };
        let mut windowed = Batcher::new(Box::new(reader), 100, Duration::from_millis(200), 200);
        assert_eq!(windowed.next_batch(&cancel).await.unwrap().unwrap().len(), 9);
    }

    #[tokio::test]
    async fn the_payload_cap_splits_batches_in_order() {
        // 1 MiB records: base64 makes each about 1.33 MiB, so four fit in 6 MiB.
        let reader = ListReader { records: (1..=10).map(|i| record(i, 1 << 20)).collect(), per_read: 100 };
        let mut b = Batcher::new(Box::new(reader), 100, Duration::ZERO, 200);
        let cancel = CancellationToken::new();
        let first = b.next_batch(&cancel).await.unwrap().unwrap();
        assert_eq!(first.len(), 4);
        let second = b.next_batch(&cancel).await.unwrap().unwrap();
        assert_eq!(second.sequence_number(0), Some("5"));
        assert_eq!(second.len(), 4);
        let third = b.next_batch(&cancel).await.unwrap().unwrap();
        assert_eq!(third.sequence_number(0), Some("9"));
        assert_eq!(third.len(), 2);
    }

    #[tokio::test]
    async fn cancel_ends_an_idle_wait() {
        let reader = ListReader { records: Vec::new(), per_read: 1 };
        let mut b = Batcher::new(Box::new(reader), 10, Duration::ZERO, 200);
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(b.next_batch(&cancel).await.unwrap().is_none());
    }
}
