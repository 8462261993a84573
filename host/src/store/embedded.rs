//! The embedded store: one SQLite database file in the data directory, holding
//! the checkpoints, the local streams and the functions' key-value tables.
//!
//! SQLite rather than redb because more than one process uses the file at once:
//! `eddy put` appends records while `eddy run` reads them, and `eddy status` reads
//! checkpoints. In WAL mode SQLite lets readers and one writer work side by side
//! across processes, where redb opens a database in one process only. Record
//! ranges per shard are also a natural indexed query.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
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
pub struct EmbeddedStore {
    path: PathBuf,
    /// Checkpoint writes share one connection; readers open their own.
    writer: Mutex<Connection>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) `eddy.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<EmbeddedStore> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let path = data_dir.join("eddy.db");
        let conn = open_connection(&path)?;
        conn.execute_batch(SCHEMA).context("cannot create the database schema")?;
        Ok(EmbeddedStore { path, writer: Mutex::new(conn) })
    }

    /// A new connection to the same database, for a task that reads on its own.
    pub fn connect(&self) -> anyhow::Result<Connection> {
        open_connection(&self.path)
    }

    fn with_writer<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> anyhow::Result<T> {
        let conn = self.writer.lock().map_err(|_| anyhow::anyhow!("store connection poisoned"))?;
        Ok(f(&conn)?)
    }
}

fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("cannot open database {}", path.display()))?;
    // Another process (`eddy put`) may hold the write lock for a moment.
    conn.busy_timeout(Duration::from_secs(10))?;
    // WAL: readers never block the writer; NORMAL sync is durable across a process
    // crash (it is the machine losing power that may lose the last commits).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

#[async_trait]
impl CheckpointStore for EmbeddedStore {
    async fn get(&self, key: &CheckpointKey) -> anyhow::Result<Option<String>> {
        self.with_writer(|c| {
            c.query_row(
                "SELECT sequence_number FROM checkpoints WHERE function = ?1 AND source = ?2 AND shard = ?3",
                params![key.function, key.source, key.shard],
                |row| row.get(0),
            )
            .optional()
        })
    }

    async fn set(&self, key: &CheckpointKey, sequence_number: &str) -> anyhow::Result<()> {
        self.with_writer(|c| upsert(c, key, sequence_number))
    }

    async fn set_many(&self, entries: &[(&CheckpointKey, &str)]) -> anyhow::Result<()> {
        self.with_writer(|c| {
            let tx = c.unchecked_transaction()?;
            for (key, value) in entries {
                upsert(&tx, key, value)?;
            }
            tx.commit()
        })
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
}
