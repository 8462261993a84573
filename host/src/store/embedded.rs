//! The embedded store: one SQLite database file in the data directory, holding
//! the checkpoints, the local streams and the functions' key-value tables.
//!
//! SQLite rather than redb because more than one process uses the file at once:
//! `eddy put` appends records while `eddy run` reads them, and `eddy status` reads
//! checkpoints. In WAL mode SQLite lets readers and one writer work side by side
//! across processes, where redb opens a database in one process only. Record
//! ranges per shard are also a natural indexed query.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Checkpoint, CheckpointKey, CheckpointStore, now_ms};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
    name            TEXT PRIMARY KEY,
    shard_count     INTEGER NOT NULL,
    retention_hours INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    stream        TEXT NOT NULL,
    shard         INTEGER NOT NULL,
    seq           INTEGER NOT NULL,
    partition_key TEXT NOT NULL,
    data          BLOB NOT NULL,
    arrival_ms    INTEGER NOT NULL,
    PRIMARY KEY (stream, shard, seq)
) WITHOUT ROWID;
-- The last sequence number given out per shard: kept apart from the records so
-- that numbers keep increasing after retention has trimmed a shard empty.
CREATE TABLE IF NOT EXISTS shard_sequences (
    stream   TEXT NOT NULL,
    shard    INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (stream, shard)
) WITHOUT ROWID;
-- Key-value state of functions (the `eddy:handler/kv` interface), by table.
CREATE TABLE IF NOT EXISTS kv (
    tbl   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    function        TEXT NOT NULL,
    source          TEXT NOT NULL,
    shard           TEXT NOT NULL,
    sequence_number TEXT NOT NULL,
    updated_ms      INTEGER NOT NULL,
    PRIMARY KEY (function, source, shard)
);
";

/// The database file of a data directory.
///
/// Every SQLite call blocks, and may wait up to the busy timeout for another
/// process's write lock (`eddy put`), so the async methods here run them on
/// tokio's blocking pool: a busy database slows the shards that wait on it, never
/// the async workers that every other function and the admin port run on.
pub struct EmbeddedStore {
    path: PathBuf,
    /// Checkpoint reads and writes share one connection; other work opens its own.
    writer: Arc<Mutex<Connection>>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) `eddy.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<EmbeddedStore> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let path = data_dir.join("eddy.db");
        let conn = open_connection(&path)?;
        conn.execute_batch(SCHEMA).context("cannot create the database schema")?;
        Ok(EmbeddedStore { path, writer: Arc::new(Mutex::new(conn)) })
    }

    /// A new connection to the same database, for a thread that may block (the
    /// command line, a blocking task). Async code uses [`EmbeddedStore::run`].
    pub fn connect(&self) -> anyhow::Result<Connection> {
        open_connection(&self.path)
    }

    /// Runs `work` on the blocking pool, with a connection of its own (which it
    /// may keep).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || work(open_connection(&path)?))
            .await
            .map_err(|e| anyhow::anyhow!("store task failed: {e}"))?
    }

    /// Runs `work` on the blocking pool, with the checkpoints' shared connection.
    async fn with_writer<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let conn = writer.lock().map_err(|_| anyhow::anyhow!("store connection poisoned"))?;
            Ok(work(&conn)?)
        })
        .await
        .map_err(|e| anyhow::anyhow!("store task failed: {e}"))?
    }
}

fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("cannot open database {}", path.display()))?;
    // Another process (`eddy put`) may hold the write lock for a moment: look
    // again every millisecond. (SQLite's own busy timeout backs off to 100 ms
    // sleeps, and a writer that sleeps that long between looks starves beside
    // a put that takes the lock again within microseconds of freeing it.)
    conn.busy_handler(Some(wait_for_lock))?;
    // WAL: readers never block the writer; NORMAL sync is durable across a process
    // crash (it is the machine losing power that may lose the last commits).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// How long a connection waits for another's write lock before it gives up
/// with `database is locked`.
const LOCK_PATIENCE: Duration = Duration::from_secs(10);

/// SQLite's busy handler: called with the number of times it was called for
/// this lock so far; true to try again.
fn wait_for_lock(attempts: i32) -> bool {
    const LOOK_EVERY: Duration = Duration::from_millis(1);
    if u128::from(attempts.unsigned_abs()) * LOOK_EVERY.as_millis() >= LOCK_PATIENCE.as_millis() {
        return false;
    }
    std::thread::sleep(LOOK_EVERY);
    true
}

#[async_trait]
impl CheckpointStore for EmbeddedStore {
    async fn get(&self, key: &CheckpointKey) -> anyhow::Result<Option<String>> {
        let key = key.clone();
        self.with_writer(move |c| {
            c.query_row(
                "SELECT sequence_number FROM checkpoints WHERE function = ?1 AND source = ?2 AND shard = ?3",
                params![key.function, key.source, key.shard],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn set(&self, key: &CheckpointKey, sequence_number: &str) -> anyhow::Result<()> {
        let (key, sequence_number) = (key.clone(), sequence_number.to_owned());
        self.with_writer(move |c| upsert(c, &key, &sequence_number)).await
    }

    async fn set_many(&self, entries: &[(&CheckpointKey, &str)]) -> anyhow::Result<()> {
        let entries: Vec<(CheckpointKey, String)> = entries.iter().map(|(k, v)| ((*k).clone(), (*v).to_owned())).collect();
        self.with_writer(move |c| {
            let tx = c.unchecked_transaction()?;
            for (key, value) in &entries {
                upsert(&tx, key, value)?;
            }
            tx.commit()
        })
        .await
    }

    async fn list(&self) -> anyhow::Result<Vec<Checkpoint>> {
        self.with_writer(|c| {
            let mut stmt = c.prepare(
                "SELECT function, source, shard, sequence_number, updated_ms FROM checkpoints
                 WHERE shard NOT LIKE '(%' ORDER BY function, source, shard",
            )?;
            let rows = stmt.query_map([], |row| {
                Ok(Checkpoint {
                    key: CheckpointKey { function: row.get(0)?, source: row.get(1)?, shard: row.get(2)? },
                    sequence_number: row.get(3)?,
                    updated_ms: row.get::<_, i64>(4)? as u64,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

fn upsert(c: &Connection, key: &CheckpointKey, value: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO checkpoints (function, source, shard, sequence_number, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (function, source, shard)
         DO UPDATE SET sequence_number = excluded.sequence_number, updated_ms = excluded.updated_ms",
    )?
    .execute(params![key.function, key.source, key.shard, value, now_ms() as i64])
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checkpoints_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = CheckpointKey { function: "f".into(), source: "local:s".into(), shard: "shardId-000000000000".into() };
        {
            let store = EmbeddedStore::open(dir.path()).expect("open");
            assert_eq!(store.get(&key).await.expect("get"), None);
            store.set(&key, "5").await.expect("set");
            store.set(&key, "7").await.expect("set");
        }
        let store = EmbeddedStore::open(dir.path()).expect("reopen");
        assert_eq!(store.get(&key).await.expect("get").as_deref(), Some("7"));
        let all = store.list().await.expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].sequence_number, "7");
    }

    /// Checkpoint writes wait for the database's write lock (another process's
    /// `eddy put` may hold it); they must wait on the blocking pool, never on an
    /// async worker that every other task needs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_locked_database_never_stalls_the_async_workers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
        let key = CheckpointKey { function: "f".into(), source: "local:s".into(), shard: "shardId-000000000000".into() };
        let other = store.connect().expect("connect");
        other.execute_batch("BEGIN IMMEDIATE").expect("take the write lock");
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            other.execute_batch("COMMIT").expect("release the write lock");
        });
        // A task ticks every 10 ms; its longest gap is how long the only
        // worker was taken away from it.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = tokio::spawn({
            let done = Arc::clone(&done);
            async move {
                let (mut longest, mut last) = (Duration::ZERO, std::time::Instant::now());
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    longest = longest.max(last.elapsed());
                    last = std::time::Instant::now();
                }
                longest
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let writer = tokio::spawn({
            let store = Arc::clone(&store);
            let key = key.clone();
            async move { store.set(&key, "9").await }
        });
        writer.await.expect("task").expect("the write goes through once the lock is free");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let longest = ticker.await.expect("ticker");
        release.join().expect("thread");
        assert!(longest < Duration::from_millis(700), "the async worker was blocked for {longest:?}");
        assert_eq!(store.get(&key).await.expect("get").as_deref(), Some("9"));
    }
}
