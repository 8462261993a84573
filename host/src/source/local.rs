//! The embedded local stream: a Kinesis-like stream kept in the embedded store.
//!
//! Like Kinesis, a stream has N shards that split the 128-bit key space evenly; a
//! record goes to the shard whose range holds the MD5 hash of its partition key,
//! and gets the next sequence number of that shard. Records older than the
//! stream's retention are trimmed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use md5::{Digest, Md5};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Position, Shard, ShardReader, SourceInfo, StreamSource};
use crate::record::{EventSource, KinesisRecord, Records};
use crate::store::embedded::EmbeddedStore;
use crate::store::now_ms;

/// Kinesis's limits on one record: its data and partition key together may
/// take up to the stream's `MaxRecordSizeInKiB`, 1 MiB unless the stream was
/// made or updated for more, and at most 10 MiB.
pub const DEFAULT_MAX_RECORD_SIZE_KIB: u32 = 1024;
pub const MAX_RECORD_SIZE_KIB_RANGE: std::ops::RangeInclusive<u32> = 1024..=10240;
pub const MAX_PARTITION_KEY_CHARS: usize = 256;
pub const DEFAULT_SHARDS: u32 = 4;
pub const DEFAULT_RETENTION_HOURS: u32 = 24;
/// The account and region written into local ARNs.
pub const LOCAL_ACCOUNT: &str = "000000000000";
pub const LOCAL_REGION: &str = "local";

/// A local stream's description.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamDescription {
    pub name: String,
    pub shard_count: u32,
    pub retention_hours: u32,
    pub created_ms: u64,
    /// The largest record (data and partition key) the stream takes, in KiB.
    #[serde(default = "default_max_record_size_kib")]
    pub max_record_size_kib: u32,
}

fn default_max_record_size_kib() -> u32 {
    DEFAULT_MAX_RECORD_SIZE_KIB
}

/// A record over its stream's `MaxRecordSizeInKiB`.
#[derive(Debug, thiserror::Error)]
#[error(
    "record {index}: {size} bytes of data and partition key is over the stream's maximum record size of \
     {limit_kib} KiB (a stream takes up to 10240 KiB: `eddy stream create --max-record-size-kib`, or the \
     Kinesis API's MaxRecordSizeInKiB)"
)]
pub struct RecordTooLarge {
    pub index: usize,
    pub size: usize,
    pub limit_kib: u32,
}

/// A record to put.
#[derive(Debug, Clone)]
pub struct PutRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// Where a put record landed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PutResult {
    #[serde(rename = "ShardId")]
    pub shard_id: String,
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
}

/// Kinesis's shard id format.
pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

pub fn shard_index(shard_id: &str) -> Option<u32> {
    shard_id.strip_prefix("shardId-")?.parse().ok()
}

/// The stream's ARN, in Kinesis's form.
pub fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:{LOCAL_REGION}:{LOCAL_ACCOUNT}:stream/{name}")
}

/// The shard that holds `partition_key`: the MD5 hash of the key, as a 128-bit
/// number, falls in one of `shard_count` equal ranges (the last one takes the
/// remainder), as in a Kinesis stream created with that many shards.
pub fn shard_for_key(partition_key: &str, shard_count: u32) -> u32 {
    if shard_count <= 1 {
        return 0;
    }
    let hash = u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into());
    (hash / range_width(shard_count)).min(u128::from(shard_count) - 1) as u32
}

/// floor(2^128 / shards), computed without overflowing.
fn range_width(shard_count: u32) -> u128 {
    let n = u128::from(shard_count.max(1));
    if n == 1 {
        return u128::MAX;
    }
    u128::MAX / n + u128::from(u128::MAX % n == n - 1)
}

/// The hash keys shard `index` of `shard_count` holds, first and last: the
/// ranges [`shard_for_key`] uses, as Kinesis describes them.
pub fn hash_key_range(index: u32, shard_count: u32) -> (u128, u128) {
    if shard_count <= 1 {
        return (0, u128::MAX);
    }
    let width = range_width(shard_count);
    let start = u128::from(index) * width;
    let end = if index + 1 >= shard_count { u128::MAX } else { start + width - 1 };
    (start, end)
}

/// Creates a stream with Kinesis' default maximum record size (1 MiB), or
/// returns the existing one of that name unchanged.
pub fn create(conn: &Connection, name: &str, shards: u32, retention_hours: u32) -> anyhow::Result<StreamDescription> {
    create_with_max_record_size(conn, name, shards, retention_hours, DEFAULT_MAX_RECORD_SIZE_KIB)
}

/// As [`create`], with a maximum record size of `max_record_size_kib` (1024 to 10240).
pub fn create_with_max_record_size(
    conn: &Connection,
    name: &str,
    shards: u32,
    retention_hours: u32,
    max_record_size_kib: u32,
) -> anyhow::Result<StreamDescription> {
    if !(1..=1024).contains(&shards) {
        bail!("a local stream has 1 to 1024 shards, not {shards}");
    }
    if !(1..=8760).contains(&retention_hours) {
        bail!("retention is 1 to 8760 hours, not {retention_hours}");
    }
    check_max_record_size(max_record_size_kib)?;
    conn.execute(
        "INSERT OR IGNORE INTO streams (name, shard_count, retention_hours, created_ms, max_record_size_kib)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![name, shards, retention_hours, now_ms() as i64, max_record_size_kib],
    )?;
    describe(conn, name)?.context("stream vanished after it was created")
}

/// Sets a stream's maximum record size (Kinesis' UpdateMaxRecordSize).
pub fn set_max_record_size(conn: &Connection, name: &str, max_record_size_kib: u32) -> anyhow::Result<StreamDescription> {
    check_max_record_size(max_record_size_kib)?;
    if conn.execute("UPDATE streams SET max_record_size_kib = ?2 WHERE name = ?1", params![name, max_record_size_kib])? == 0 {
        return Err(NoSuchStream::new(conn, name)?.into());
    }
    describe(conn, name)?.context("stream vanished after it was updated")
}

fn check_max_record_size(kib: u32) -> anyhow::Result<()> {
    if !MAX_RECORD_SIZE_KIB_RANGE.contains(&kib) {
        bail!(
            "the maximum record size is {} to {} KiB, not {kib}",
            MAX_RECORD_SIZE_KIB_RANGE.start(),
            MAX_RECORD_SIZE_KIB_RANGE.end()
        );
    }
    Ok(())
}

pub fn describe(conn: &Connection, name: &str) -> anyhow::Result<Option<StreamDescription>> {
    Ok(conn
        .query_row(
            "SELECT name, shard_count, retention_hours, created_ms, max_record_size_kib FROM streams WHERE name = ?1",
            params![name],
            |row| {
                Ok(StreamDescription {
                    name: row.get(0)?,
                    shard_count: row.get(1)?,
                    retention_hours: row.get(2)?,
                    created_ms: row.get::<_, i64>(3)? as u64,
                    max_record_size_kib: row.get(4)?,
                })
            },
        )
        .optional()?)
}

pub fn list(conn: &Connection) -> anyhow::Result<Vec<StreamDescription>> {
    stream_names(conn)?.iter().filter_map(|n| describe(conn, n).transpose()).collect()
}

/// The names of the local streams, in order.
fn stream_names(conn: &Connection) -> anyhow::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM streams ORDER BY name")?;
    let names = stmt.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
    Ok(names)
}

/// A local stream that is not there, with what is there instead.
#[derive(Debug, thiserror::Error)]
#[error("no local stream named {name:?}{}; {}; create it with `eddy stream create {name}`", closest_hint(.closest), existing_list(.existing))]
pub struct NoSuchStream {
    pub name: String,
    /// Every local stream of the data directory, by name.
    pub existing: Vec<String>,
    /// The existing name nearest to `name`, when one is near enough to be a typo.
    pub closest: Option<String>,
}

fn closest_hint(closest: &Option<String>) -> String {
    closest.as_ref().map(|c| format!(" (did you mean {c:?}?)")).unwrap_or_default()
}

fn existing_list(existing: &[String]) -> String {
    if existing.is_empty() { "there are no local streams".to_owned() } else { format!("the local streams are {}", existing.join(", ")) }
}

impl NoSuchStream {
    /// The error for `name`, naming the streams `conn` has.
    pub fn new(conn: &Connection, name: &str) -> anyhow::Result<NoSuchStream> {
        let existing = stream_names(conn)?;
        Ok(NoSuchStream { name: name.to_owned(), closest: closest_name(name, &existing), existing })
    }
}

/// The candidate a typo of `name` most likely meant: the smallest edit distance,
/// at most a third of the name's length (and at least one edit allowed).
fn closest_name(name: &str, candidates: &[String]) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c.clone())
}

/// Records appended per transaction: a large put commits in steps, so that the
/// host's checkpoint writes (and other puts) wait at most one step for the lock.
pub const PUT_RECORDS_PER_TRANSACTION: usize = 1000;
const PAUSE_BETWEEN_TRANSACTIONS: Duration = Duration::from_millis(1);

/// Appends records to a stream, each to the shard of its partition key, and says
/// where each landed. Every record is checked first, so a bad one puts nothing;
/// then they are written in transactions of [`PUT_RECORDS_PER_TRANSACTION`]
/// (as with Kinesis' PutRecords, a put that is killed midway may have written a
/// prefix of its records).
pub fn put(conn: &mut Connection, stream: &str, records: &[PutRecord]) -> anyhow::Result<Vec<PutResult>> {
    let Some(description) = describe(conn, stream)? else { return Err(NoSuchStream::new(conn, stream)?.into()) };
    let limit = description.max_record_size_kib as usize * 1024;
    for (i, r) in records.iter().enumerate() {
        if r.partition_key.is_empty() || r.partition_key.chars().count() > MAX_PARTITION_KEY_CHARS {
            bail!("record {i}: the partition key must have 1 to {MAX_PARTITION_KEY_CHARS} characters");
        }
        let size = r.data.len() + r.partition_key.len();
        if size > limit {
            return Err(RecordTooLarge { index: i, size, limit_kib: description.max_record_size_kib }.into());
        }
    }
    let mut results = Vec::with_capacity(records.len());
    for (i, step) in records.chunks(PUT_RECORDS_PER_TRANSACTION).enumerate() {
        if i > 0 {
            // A moment between steps, for a writer waiting on the lock (it
            // looks every millisecond) to take its turn.
            std::thread::sleep(PAUSE_BETWEEN_TRANSACTIONS);
        }
        put_in_one_transaction(conn, stream, step, &mut results)?;
    }
    Ok(results)
}

fn put_in_one_transaction(
    conn: &mut Connection,
    stream: &str,
    records: &[PutRecord],
    results: &mut Vec<PutResult>,
) -> anyhow::Result<()> {
    // IMMEDIATE: take the write lock first, so two writers never pick the same number.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some(description) = describe(&tx, stream)? else { return Err(NoSuchStream::new(&tx, stream)?.into()) };
    let arrival = now_ms() as i64;
    {
        let mut next_seq = tx.prepare_cached(
            "INSERT INTO shard_sequences (stream, shard, last_seq) VALUES (?1, ?2, 1)
             ON CONFLICT (stream, shard) DO UPDATE SET last_seq = last_seq + 1
             RETURNING last_seq",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO records (stream, shard, seq, partition_key, data, arrival_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for r in records {
            let shard = shard_for_key(&r.partition_key, description.shard_count);
            let seq: i64 = next_seq.query_row(params![stream, shard], |row| row.get(0))?;
            insert.execute(params![stream, shard, seq, r.partition_key, r.data, arrival])?;
            results.push(PutResult { shard_id: shard_id(shard), sequence_number: seq.to_string() });
        }
    }
    tx.commit()?;
    Ok(())
}

/// Deletes the records older than each stream's retention; returns how many.
pub fn trim(conn: &Connection) -> anyhow::Result<usize> {
    Ok(conn.execute(
        "DELETE FROM records WHERE arrival_ms < ?1 - 3600000 * (
             SELECT retention_hours FROM streams WHERE streams.name = records.stream)",
        params![now_ms() as i64],
    )?)
}

/// A local stream as a mapping's source.
pub struct LocalSource {
    store: Arc<EmbeddedStore>,
    stream: String,
    info: SourceInfo,
    poll_interval: Duration,
}

/// Local streams never reshard: a look for new shards now and then is plenty.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(60);

impl LocalSource {
    pub fn new(store: Arc<EmbeddedStore>, stream: &str, poll_interval: Duration) -> LocalSource {
        LocalSource {
            store,
            stream: stream.to_owned(),
            info: SourceInfo {
                event_source: EventSource::Kinesis,
                arn: stream_arn(stream),
                region: LOCAL_REGION.to_owned(),
            },
            poll_interval,
        }
    }
}

#[async_trait]
impl StreamSource for LocalSource {
    async fn describe(&self) -> anyhow::Result<SourceInfo> {
        Ok(self.info.clone())
    }

    async fn list_shards(&self) -> anyhow::Result<Vec<Shard>> {
        let stream = self.stream.clone();
        let description = self
            .store
            .run(move |conn| describe(&conn, &stream)?.with_context(|| format!("no local stream named {stream:?}")))
            .await?;
        Ok((0..description.shard_count).map(|i| Shard::root(shard_id(i))).collect())
    }

    fn discovery_interval(&self) -> Duration {
        DISCOVERY_INTERVAL
    }

    async fn open(&self, shard: &str, from: Position) -> anyhow::Result<Box<dyn ShardReader>> {
        let index = shard_index(shard).with_context(|| format!("{shard:?} is not a shard id"))?;
        let stream = self.stream.clone();
        let (conn, after) = self
            .store
            .run(move |conn| {
                let after = sequence_before(&conn, &stream, index, &from)?;
                // The reader keeps this connection.
                Ok((conn, after))
            })
            .await?;
        Ok(Box::new(LocalShardReader {
            conn: Arc::new(Mutex::new(conn)),
            stream: self.stream.clone(),
            shard: index,
            shard_id: shard.to_owned(),
            after,
            poll_interval: self.poll_interval,
            written: self.store.writes().subscribe(&self.stream, index, self.poll_interval),
        }))
    }
}

/// The sequence number a reader of shard `shard` starting at `from` reads after
/// (0: from the first record).
pub fn sequence_before(conn: &Connection, stream: &str, shard: u32, from: &Position) -> anyhow::Result<i64> {
    Ok(match from {
        Position::AfterSequence(seq) => {
            seq.parse().with_context(|| format!("{seq:?} is not a local sequence number"))?
        }
        Position::AtSequence(seq) => {
            let seq: i64 = seq.parse().with_context(|| format!("{seq:?} is not a local sequence number"))?;
            seq.saturating_sub(1).max(0)
        }
        Position::TrimHorizon => 0,
        Position::Latest => last_sequence(conn, stream, shard)?,
        // A time still to come: every record from now on arrives after it.
        Position::AtTimestamp(ms) if *ms > now_ms() => last_sequence(conn, stream, shard)?,
        Position::AtTimestamp(ms) => conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM records WHERE stream = ?1 AND shard = ?2 AND arrival_ms < ?3",
            params![stream, shard, *ms as i64],
            |row| row.get(0),
        )?,
    })
}

/// Up to `max` records of a shard after sequence number `after`, in order.
pub fn read_after(
    conn: &Connection,
    stream: &str,
    shard: u32,
    shard_id: &str,
    after: i64,
    max: usize,
) -> anyhow::Result<Vec<KinesisRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, partition_key, data, arrival_ms FROM records
         WHERE stream = ?1 AND shard = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
    )?;
    let rows = stmt.query_map(params![stream, shard, after, max as i64], |row| {
        let seq: i64 = row.get(0)?;
        let sequence_number = seq.to_string();
        Ok(KinesisRecord {
            event_id: crate::record::kinesis_event_id(shard_id, &sequence_number),
            partition_key: row.get(1)?,
            sequence_number,
            data: row.get(2)?,
            approximate_arrival_timestamp_ms: row.get::<_, i64>(3)? as u64,
            encryption_type: None,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last sequence number a shard gave out (0 before its first record).
pub fn last_sequence(conn: &Connection, stream: &str, shard: u32) -> anyhow::Result<i64> {
    Ok(conn
        .query_row(
            "SELECT last_seq FROM shard_sequences WHERE stream = ?1 AND shard = ?2",
            params![stream, shard],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

struct LocalShardReader {
    conn: Arc<Mutex<Connection>>,
    stream: String,
    shard: u32,
    shard_id: String,
    after: i64,
    poll_interval: Duration,
    /// The shard's last sequence number, as writes announce it.
    written: tokio::sync::watch::Receiver<i64>,
}

/// How long an idle local reader waits for news of a write before it reads
/// anyway. News comes within a polling interval; this is only a safety net, and
/// a long one: every idle shard of a host looks at about the same moment, and
/// at 30 s that burst was a third of what 1,024 idle shards cost (BENCHMARKS.md).
const UNANNOUNCED_LOOK: Duration = Duration::from_secs(300);

#[async_trait]
impl ShardReader for LocalShardReader {
    async fn read(&mut self, max: usize) -> anyhow::Result<Records> {
        let conn = Arc::clone(&self.conn);
        let (stream, shard, after, shard_id) = (self.stream.clone(), self.shard, self.after, self.shard_id.clone());
        // SQLite is blocking I/O: keep it off the async workers.
        let records = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<KinesisRecord>> {
            let conn = conn.lock().map_err(|_| anyhow::anyhow!("reader connection poisoned"))?;
            read_after(&conn, &stream, shard, &shard_id, after, max)
        })
        .await??;
        if let Some(last) = records.last() {
            self.after = last.sequence_number.parse().unwrap_or(self.after);
        }
        Ok(Records::Kinesis(records))
    }

    /// Local shards are never closed.
    fn at_end(&self) -> bool {
        false
    }

    fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Waits for a write past the reader's position: no polling while idle.
    async fn idle(&mut self, deadline: Option<tokio::time::Instant>) {
        if *self.written.borrow_and_update() > self.after {
            return;
        }
        let quiet = tokio::time::sleep_until(deadline.unwrap_or_else(|| tokio::time::Instant::now() + UNANNOUNCED_LOOK));
        tokio::select! {
            changed = self.written.changed() => {
                if changed.is_err() {
                    // Nobody announces any more (the store is going): poll.
                    tokio::time::sleep(self.poll_interval).await;
                }
            }
            () = quiet => {}
        }
    }
}

/// Tells the shards' readers that `landed` records are there (a put made in
/// this process: the ingest endpoint, a function's `streams` calls).
pub fn announce(store: &EmbeddedStore, stream: &str, landed: &[PutResult]) {
    let mut last: std::collections::BTreeMap<u32, i64> = std::collections::BTreeMap::new();
    for record in landed {
        if let (Some(shard), Ok(seq)) = (shard_index(&record.shard_id), record.sequence_number.parse::<i64>()) {
            let entry = last.entry(shard).or_insert(seq);
            *entry = (*entry).max(seq);
        }
    }
    for (shard, seq) in last {
        store.writes().written(stream, shard, seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_key_space_as_kinesis_does() {
        // With one shard everything lands on it.
        assert_eq!(shard_for_key("anything", 1), 0);
        // MD5("1") = c4ca4238..., above 2^127: the upper half of two shards.
        assert_eq!(shard_for_key("1", 2), 1);
        // MD5("2") = c81e728d..., in the top quarter of four shards.
        assert_eq!(shard_for_key("2", 4), 3);
        // MD5("a") = 0cc175b9..., in the lowest sixteenth.
        assert_eq!(shard_for_key("a", 16), 0);
        // Keys spread over every shard.
        let mut seen = [0u32; 4];
        for i in 0..1000 {
            seen[shard_for_key(&format!("key-{i}"), 4) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 150), "{seen:?}");
    }

    /// An idle reader does not poll: it wakes when records land, announced by
    /// a put in this process or seen by the watcher when another process (a
    /// connection of its own here) commits them. Either comes long before the
    /// safety look (`UNANNOUNCED_LOOK`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_reader_wakes_when_records_land() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        create(&store.connect().expect("connect"), "s", 2, 24).expect("create");
        let source = LocalSource::new(Arc::clone(&store), "s", Duration::from_millis(20));
        let mut reader = source.open("shardId-000000000000", Position::TrimHorizon).await.expect("open");
        assert!(reader.read(10).await.expect("read").is_empty());
        let record = |key: &str| PutRecord { partition_key: key.into(), data: b"x".to_vec() };
        // "a" lands on shard 0 of 2 (MD5 0cc175b9...).
        assert_eq!(shard_for_key("a", 2), 0);

        // Another process: nothing announces it but its commit.
        let path = dir.path().to_owned();
        let other = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut conn = EmbeddedStore::open(&path).expect("open").connect().expect("connect");
            put(&mut conn, "s", &[PutRecord { partition_key: "a".into(), data: b"x".to_vec() }]).expect("put")
        });
        tokio::time::timeout(Duration::from_secs(10), reader.idle(None)).await.expect("woken by another process's commit");
        other.join().expect("putter");
        assert_eq!(reader.read(10).await.expect("read").len(), 1);

        // This process: the put announces its records.
        let landed = put(&mut store.connect().expect("connect"), "s", &[record("a")]).expect("put");
        announce(&store, "s", &landed);
        let started = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), reader.idle(None)).await.expect("woken by the announcement");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(reader.read(10).await.expect("read").len(), 1);

        // A write to the other shard does not count for this one: idle until the deadline.
        let landed = put(&mut store.connect().expect("connect"), "s", &[record("b")]).expect("put");
        assert_eq!(landed[0].shard_id, "shardId-000000000001");
        announce(&store, "s", &landed);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
        reader.idle(Some(deadline)).await;
        assert!(reader.read(10).await.expect("read").is_empty());
    }

    #[tokio::test]
    async fn put_then_read_in_order_from_each_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        let mut conn = store.connect().expect("connect");
        create(&conn, "s", 1, 24).expect("create");
        let batch: Vec<PutRecord> = (0..5)
            .map(|i| PutRecord { partition_key: format!("k{i}"), data: format!("d{i}").into_bytes() })
            .collect();
        let landed = put(&mut conn, "s", &batch).expect("put");
        assert_eq!(landed.iter().map(|r| r.sequence_number.as_str()).collect::<Vec<_>>(), ["1", "2", "3", "4", "5"]);

        let source = LocalSource::new(Arc::clone(&store), "s", Duration::from_millis(10));
        assert_eq!(source.list_shards().await.expect("shards"), [Shard::root("shardId-000000000000".into())]);
        let mut reader = source.open("shardId-000000000000", Position::TrimHorizon).await.expect("open");
        let Records::Kinesis(first) = reader.read(3).await.expect("read") else { panic!() };
        assert_eq!(first.iter().map(|r| r.data.clone()).collect::<Vec<_>>(), [b"d0".to_vec(), b"d1".to_vec(), b"d2".to_vec()]);
        assert_eq!(first[0].event_id, "shardId-000000000000:1");
        let Records::Kinesis(rest) = reader.read(10).await.expect("read") else { panic!() };
        assert_eq!(rest.len(), 2);
        assert!(reader.read(10).await.expect("read").is_empty());

        let mut latest = source.open("shardId-000000000000", Position::Latest).await.expect("open");
        assert!(latest.read(10).await.expect("read").is_empty());
        assert!(!latest.at_end(), "local shards stay open");
        let mut after = source.open("shardId-000000000000", Position::AfterSequence("3".into())).await.expect("open");
        assert_eq!(after.read(10).await.expect("read").len(), 2);
        let mut at = source.open("shardId-000000000000", Position::AtTimestamp(0)).await.expect("open");
        assert_eq!(at.read(10).await.expect("read").len(), 5);
        let mut future = source.open("shardId-000000000000", Position::AtTimestamp(now_ms() + 60_000)).await.expect("open");
        assert!(future.read(10).await.expect("read").is_empty());
        put(&mut conn, "s", &batch[..1]).expect("put");
        assert_eq!(latest.read(10).await.expect("read").len(), 1, "LATEST reads what comes after it opened");
    }

    #[test]
    fn trim_drops_records_past_retention_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let mut conn = store.connect().expect("connect");
        create(&conn, "short", 1, 1).expect("create");
        create(&conn, "long", 1, 48).expect("create");
        let two = [PutRecord { partition_key: "k".into(), data: b"a".to_vec() },
                   PutRecord { partition_key: "k".into(), data: b"b".to_vec() }];
        put(&mut conn, "short", &two).expect("put");
        put(&mut conn, "long", &two).expect("put");
        // Make the first record of each stream two hours old.
        conn.execute("UPDATE records SET arrival_ms = arrival_ms - 7200000 WHERE seq = 1", []).expect("age");
        assert_eq!(trim(&conn).expect("trim"), 1, "only the short stream's old record goes");
        let left: Vec<(String, i64)> = conn
            .prepare("SELECT stream, seq FROM records ORDER BY stream, seq").expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("query")
            .collect::<Result<_, _>>().expect("rows");
        assert_eq!(left, [("long".to_owned(), 1), ("long".to_owned(), 2), ("short".to_owned(), 2)]);
        // Sequence numbers keep increasing after a trim, even one that empties a shard.
        conn.execute("UPDATE records SET arrival_ms = 0 WHERE stream = 'short'", []).expect("age");
        assert_eq!(trim(&conn).expect("trim"), 1);
        let next = put(&mut conn, "short", &two[..1]).expect("put");
        assert_eq!(next[0].sequence_number, "3");
    }

    #[test]
    fn a_missing_stream_is_named_with_the_streams_there_and_the_closest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let conn = store.connect().expect("connect");
        for name in ["sales", "orders", "sales-eu"] {
            create(&conn, name, 1, 24).expect("create");
        }
        let typo = NoSuchStream::new(&conn, "salse").expect("error").to_string();
        assert_eq!(
            typo,
            "no local stream named \"salse\" (did you mean \"sales\"?); the local streams are orders, sales, sales-eu; \
             create it with `eddy stream create salse`"
        );
        let far = NoSuchStream::new(&conn, "inventory").expect("error");
        assert_eq!(far.closest, None, "nothing near enough to be a typo");
        assert_eq!(far.existing, ["orders", "sales", "sales-eu"]);
    }

    #[test]
    fn put_refuses_bad_records_and_unknown_streams() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let mut conn = store.connect().expect("connect");
        let err = put(&mut conn, "missing", &[PutRecord { partition_key: "k".into(), data: vec![] }]).unwrap_err();
        assert!(err.to_string().contains("eddy stream create missing"), "{err}");
        assert!(err.to_string().contains("there are no local streams"), "{err}");
        create(&conn, "s", 2, 24).expect("create");
        assert!(put(&mut conn, "s", &[PutRecord { partition_key: String::new(), data: vec![] }]).is_err());
        assert!(create(&conn, "t", 0, 24).is_err());
    }

    /// A record's data and partition key together fit the stream's maximum
    /// record size: 1 MiB by default, up to 10 MiB when the stream is made or
    /// updated for it.
    #[test]
    fn records_fit_their_streams_maximum_record_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let mut conn = store.connect().expect("connect");
        let record = |size: usize| PutRecord { partition_key: "k".into(), data: vec![0; size - 1] };
        create(&conn, "s", 1, 24).expect("create");
        put(&mut conn, "s", &[record(1 << 20)]).expect("1 MiB with its key fits");
        let over = put(&mut conn, "s", &[record((1 << 20) + 1)]).expect_err("one byte over");
        let over = over.downcast::<RecordTooLarge>().expect("a RecordTooLarge");
        assert_eq!((over.size, over.limit_kib), ((1 << 20) + 1, 1024));
        let big = create_with_max_record_size(&conn, "big", 1, 24, 10240).expect("create");
        assert_eq!(big.max_record_size_kib, 10240);
        put(&mut conn, "big", &[record(10 << 20)]).expect("10 MiB fits");
        assert!(put(&mut conn, "big", &[record((10 << 20) + 1)]).is_err());
        assert_eq!(set_max_record_size(&conn, "s", 2048).expect("update").max_record_size_kib, 2048);
        put(&mut conn, "s", &[record(2 << 20)]).expect("fits after the update");
        assert!(set_max_record_size(&conn, "s", 1023).is_err(), "below Kinesis' range");
        assert!(create_with_max_record_size(&conn, "huge", 1, 24, 10241).is_err(), "above Kinesis' range");
        assert!(set_max_record_size(&conn, "missing", 2048).is_err());
    }

    /// A large put commits in steps: another writer (the host's checkpoints)
    /// waits for one step at most, never for the whole put.
    #[test]
    fn a_large_put_commits_in_steps_that_others_see() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let mut conn = store.connect().expect("connect");
        create(&conn, "s", 2, 24).expect("create");
        let total = 40 * PUT_RECORDS_PER_TRANSACTION;
        let records: Vec<PutRecord> =
            (0..total).map(|i| PutRecord { partition_key: format!("k{i}"), data: vec![b'x'; 100] }).collect();
        let watcher = store.connect().expect("connect");
        let putter = std::thread::spawn(move || put(&mut conn, "s", &records).map(|r| r.len()));
        let mut partial_counts = 0;
        while !putter.is_finished() {
            let count: i64 = watcher.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0)).expect("count");
            if count > 0 && (count as usize) < total {
                partial_counts += 1;
            }
        }
        assert_eq!(putter.join().expect("thread").expect("put"), total);
        assert!(partial_counts > 0, "the put committed all at once: no other writer could interleave");
    }
}
