//! `ParallelizationFactor`: up to N batches of one shard in flight at once, with
//! records of one partition key (Kinesis) or item key (DynamoDB) kept in order.
//!
//! One distributor reads the shard, applies the filters, and deals each record to
//! a lane by a hash of its key; each lane batches and delivers like a shard loop
//! of its own. The checkpoint is the last record before the oldest one still in
//! flight in any lane, kept by a [`Watermark`], so a crash never skips a record
//! that a slower lane had not finished.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::record::Records;
use crate::source::ShardReader;
use crate::store::Checkpoint;

/// How long an idle lane waits before looking at its queue again.
const LANE_POLL: Duration = Duration::from_millis(5);

/// The lane of a record: by partition key, or by DynamoDB item key.
pub fn lane_of(records: &Records, index: usize, lanes: usize) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match records {
        Records::Kinesis(r) => r[index].partition_key.hash(&mut hasher),
        Records::Dynamodb(r) => r[index].keys.hash(&mut hasher),
    }
    (hasher.finish() % lanes as u64) as usize
}

/// Splits records into one list per lane, each in its original order.
pub fn deal(records: Records, lanes: usize) -> Vec<Records> {
    let targets: Vec<usize> = (0..records.len()).map(|i| lane_of(&records, i, lanes)).collect();
    match records {
        Records::Kinesis(list) => deal_list(list, &targets, lanes).into_iter().map(Records::Kinesis).collect(),
        Records::Dynamodb(list) => deal_list(list, &targets, lanes).into_iter().map(Records::Dynamodb).collect(),
    }
}

fn deal_list<T>(list: Vec<T>, targets: &[usize], lanes: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = (0..lanes).map(|_| Vec::new()).collect();
    for (record, &lane) in list.into_iter().zip(targets) {
        out[lane].push(record);
    }
    out
}

/// The records read from a shard and not yet done, in shard order: the
/// checkpoint may move up to just before the first of them. Each record is
/// known by the checkpoint its being done allows (user records of one KPL
/// aggregate share a sequence number, not a checkpoint).
#[derive(Default)]
pub struct Watermark {
    /// Each record's checkpoint and whether it is done, in read order.
    queue: VecDeque<(Checkpoint, bool)>,
    /// Position in `queue` (plus `popped`) of each pending record.
    index: HashMap<Checkpoint, u64>,
    popped: u64,
}

impl Watermark {
    /// A record read; `done` for a record the filters dropped.
    pub fn push(&mut self, record: Checkpoint, done: bool) {
        let position = self.popped + self.queue.len() as u64;
        if !done {
            self.index.insert(record.clone(), position);
        }
        self.queue.push_back((record, done));
    }

    /// Marks records done; returns the new checkpoint if it moved.
    pub fn done(&mut self, records: impl Iterator<Item = Checkpoint>) -> Option<Checkpoint> {
        for record in records {
            if let Some(position) = self.index.remove(&record)
                && let Some(entry) = self.queue.get_mut((position - self.popped) as usize)
            {
                entry.1 = true;
            }
        }
        self.advance()
    }

    fn advance(&mut self) -> Option<Checkpoint> {
        let mut moved = None;
        while self.queue.front().is_some_and(|(_, done)| *done) {
            moved = self.queue.pop_front().map(|(c, _)| c);
            self.popped += 1;
        }
        moved
    }
}

/// The checkpoint of a shard whose records are done out of order. An async mutex:
/// whoever moves the watermark writes the checkpoint before letting go.
pub type SharedWatermark = tokio::sync::Mutex<Watermark>;

/// A lane's reader: the records the distributor dealt it.
pub struct LaneReader {
    receiver: mpsc::Receiver<Records>,
    buffer: Option<Records>,
    closed: bool,
}

impl LaneReader {
    pub fn new(receiver: mpsc::Receiver<Records>) -> LaneReader {
        LaneReader { receiver, buffer: None, closed: false }
    }
}

#[async_trait]
impl ShardReader for LaneReader {
    async fn read(&mut self, max: usize) -> anyhow::Result<Records> {
        if self.buffer.as_ref().is_none_or(Records::is_empty) {
            match self.receiver.try_recv() {
                Ok(records) => self.buffer = Some(records),
                Err(mpsc::error::TryRecvError::Disconnected) => self.closed = true,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
        }
        let Some(buffer) = self.buffer.as_mut() else { return Ok(Records::Kinesis(Vec::new())) };
        let take = max.min(buffer.len());
        let rest = buffer.split_off(take);
        Ok(std::mem::replace(buffer, rest))
    }

    fn at_end(&self) -> bool {
        self.closed && self.buffer.as_ref().is_none_or(Records::is_empty)
    }

    fn poll_interval(&self) -> Duration {
        LANE_POLL
    }

    /// Waits for the distributor's next records (`recv` loses nothing when the
    /// deadline comes first).
    async fn idle(&mut self, deadline: Option<tokio::time::Instant>) {
        if self.closed || self.buffer.as_ref().is_some_and(|b| !b.is_empty()) {
            return;
        }
        let next = async {
            match self.receiver.recv().await {
                Some(records) => self.buffer = Some(records),
                None => self.closed = true,
            }
        };
        match deadline {
            Some(deadline) => {
                let _ = tokio::time::timeout_at(deadline, next).await;
            }
            None => next.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(sequence: &str) -> Checkpoint {
        Checkpoint::Sequence(sequence.into())
    }

    #[test]
    fn the_watermark_stops_before_the_oldest_record_in_flight() {
        let mut w = Watermark::default();
        for s in ["1", "2", "3", "4"] {
            w.push(at(s), false);
        }
        w.push(at("5"), true);
        assert_eq!(w.done([at("2"), at("3")].into_iter()), None, "1 is still in flight");
        assert_eq!(w.done([at("1")].into_iter()), Some(at("3")));
        assert_eq!(w.done([at("4")].into_iter()), Some(at("5")), "a filtered record after it is done too");
        assert!(w.queue.is_empty() && w.index.is_empty());
    }

    #[test]
    fn user_records_of_one_aggregate_are_told_apart() {
        let user = |sub| Checkpoint::SubSequence("9".into(), sub);
        let mut w = Watermark::default();
        for sub in 0..3 {
            w.push(user(sub), false);
        }
        assert_eq!(w.done([user(1)].into_iter()), None, "user record 0 is still in flight");
        assert_eq!(w.done([user(0)].into_iter()), Some(user(1)));
        assert_eq!(w.done([user(2)].into_iter()), Some(user(2)));
    }

    #[test]
    fn dealing_keeps_each_keys_records_together_and_in_order() {
        use crate::record::KinesisRecord;
        let records = Records::Kinesis(
            (0..40)
                .map(|i| KinesisRecord {
                    event_id: String::new(),
                    partition_key: format!("k{}", i % 5),
                    sequence_number: i.to_string(),
                    data: Vec::new(),
                    approximate_arrival_timestamp_ms: 0,
                    encryption_type: None,
                })
                .collect(),
        );
        let lanes = deal(records, 3);
        let mut lane_of_key = HashMap::new();
        for (lane, records) in lanes.iter().enumerate() {
            let Records::Kinesis(list) = records else { panic!() };
            let seqs: Vec<u64> = list.iter().map(|r| r.sequence_number.parse().unwrap()).collect();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]));
            for r in list {
                assert_eq!(*lane_of_key.entry(r.partition_key.clone()).or_insert(lane), lane);
            }
        }
        assert_eq!(lane_of_key.len(), 5);
    }
}
