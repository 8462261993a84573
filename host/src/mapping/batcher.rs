//! Gathering a batch from a shard reader, as Lambda does: invoke when the batch
//! holds `BatchSize` records, when its payload would pass 6 MB, or when the
//! batching window ends, whichever comes first. With no window, whatever one poll
//! finds is a batch. The window starts when the previous invocation has completed.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::record::{KinesisRecord, Records, kinesis_record_event_size};
use crate::source::ShardReader;

/// Lambda's cap on an invocation's payload.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

pub struct Batcher {
    reader: Box<dyn ShardReader>,
    batch_size: usize,
    window: Duration,
    /// Records read but left out of the previous batch by the payload cap.
    carry: Option<Records>,
}

impl Batcher {
    pub fn new(reader: Box<dyn ShardReader>, batch_size: usize, window: Duration) -> Batcher {
        Batcher { reader, batch_size, window, carry: None }
    }

    /// The next batch, or `None` once `cancel` fires.
    pub async fn next_batch(&mut self, cancel: &CancellationToken) -> anyhow::Result<Option<Records>> {
        let window_end = Instant::now() + self.window;
        let mut batch = self.carry.take();
        loop {
            let (len, payload) = batch.as_ref().map_or((0, 0), |b| (b.len(), payload_size(b)));
            if len < self.batch_size && payload < MAX_PAYLOAD_BYTES {
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
                if let Some(rest) = split_at_payload_cap(b) {
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

fn record_sizes(records: &Records) -> Vec<usize> {
    match records {
        Records::Kinesis(r) => r.iter().map(|r: &KinesisRecord| kinesis_record_event_size(r, 200)).collect(),
        Records::Dynamodb(r) => r.iter().map(|r| r.size_bytes as usize * 2 + 500).collect(),
    }
}

fn payload_size(records: &Records) -> usize {
    record_sizes(records).iter().sum()
}

/// If the batch's payload passes the cap, cuts it at the last record that fits (at
/// least one record stays) and returns the rest.
fn split_at_payload_cap(batch: &mut Records) -> Option<Records> {
    let mut total = 0;
    let cut = record_sizes(batch).iter().position(|size| {
        total += size;
        total > MAX_PAYLOAD_BYTES
    })?;
    let cut = cut.max(1);
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
        let mut b = Batcher::new(Box::new(reader), 10, Duration::ZERO);
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
        let mut no_window = Batcher::new(Box::new(reader), 100, Duration::ZERO);
        assert_eq!(no_window.next_batch(&cancel).await.unwrap().unwrap().len(), 2);
        let reader = ListReader { records: (1..=9).map(|i| record(i, 10)).collect(), per_read: 2 };
        let mut windowed = Batcher::new(Box::new(reader), 100, Duration::from_millis(200));
        assert_eq!(windowed.next_batch(&cancel).await.unwrap().unwrap().len(), 9);
    }

    #[tokio::test]
    async fn the_payload_cap_splits_batches_in_order() {
        // 1 MiB records: base64 makes each about 1.33 MiB, so four fit in 6 MiB.
        let reader = ListReader { records: (1..=10).map(|i| record(i, 1 << 20)).collect(), per_read: 100 };
        let mut b = Batcher::new(Box::new(reader), 100, Duration::ZERO);
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
        let mut b = Batcher::new(Box::new(reader), 10, Duration::ZERO);
        let cancel = CancellationToken::new();
        cancel.cancel();
        assert!(b.next_batch(&cancel).await.unwrap().is_none());
    }
}
