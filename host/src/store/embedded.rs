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

use super::{
    Checkpoint, CheckpointKey, CheckpointStore, MappingControl, MappingKey, Rewind, RewindTarget, ShardProgress, StoreError, StoredCheckpoint,
    now_ms,
};

/// The format of the database, in SQLite's `user_version`. Version 0 kept every
/// piece of mapping state in one `checkpoints` table, under reserved shard
/// names: `(window)<shard>` for a window's state and `(latest-started-at)` for
/// the mapping's start. [`migrate`] moves such a file to version 1. Version 2
/// added each local stream's maximum record size (Kinesis' `MaxRecordSizeInKiB`,
/// 1024 for the streams made before). Version 3 added the operator's control of
/// each mapping (`mapping_controls`) and, per shard, the last rewind carried out.
const FORMAT: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS streams (
    name            TEXT PRIMARY KEY,
    shard_count     INTEGER NOT NULL,
    retention_hours INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    max_record_size_kib INTEGER NOT NULL DEFAULT 1024
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
-- Where each mapping is on each shard: `checkpoint` is a sequence number or
-- SHARD_END (NULL: none yet); `window_state` the open tumbling window's (NULL:
-- none open).
CREATE TABLE IF NOT EXISTS shard_progress (
    function     TEXT NOT NULL,
    source       TEXT NOT NULL,
    shard        TEXT NOT NULL,
    checkpoint   TEXT,
    window_state TEXT,
    updated_ms   INTEGER NOT NULL,
    rewound      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (function, source, shard)
);
-- `eddy mapping pause | rewind`: whether each mapping is paused, and the last
-- rewind asked for (its id and target; see store::control).
CREATE TABLE IF NOT EXISTS mapping_controls (
    function  TEXT NOT NULL,
    source    TEXT NOT NULL,
    paused    INTEGER NOT NULL DEFAULT 0,
    rewind_id INTEGER NOT NULL DEFAULT 0,
    rewind_to TEXT,
    PRIMARY KEY (function, source)
);
-- When each mapping first started (LATEST is pinned to it).
CREATE TABLE IF NOT EXISTS mapping_starts (
    function   TEXT NOT NULL,
    source     TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    PRIMARY KEY (function, source)
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
    /// Who waits for records to land on the local streams.
    writes: Arc<super::writes::WriteWatch>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) `eddy.db` in `data_dir`.
    pub fn open(data_dir: &Path) -> anyhow::Result<EmbeddedStore> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let path = data_dir.join("eddy.db");
        let mut conn = open_connection(&path)?;
        migrate(&mut conn).context("cannot bring the database up to date")?;
        let writes = Arc::new(super::writes::WriteWatch::new(path.clone()));
        Ok(EmbeddedStore { path, writer: Arc::new(Mutex::new(conn)), writes })
    }

    /// Who waits for records to land on the local streams (see [`super::writes`]).
    pub fn writes(&self) -> &Arc<super::writes::WriteWatch> {
        &self.writes
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

/// Creates the schema, or brings a file written by an earlier version to this
/// one's format, in one transaction (another process may open it meanwhile).
fn migrate(conn: &mut Connection) -> anyhow::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let format: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if format > FORMAT {
        anyhow::bail!("the database was written by a newer Eddy (format {format}; this one reads up to {FORMAT})");
    }
    tx.execute_batch(SCHEMA)?;
    let old_table: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints')",
        [],
        |row| row.get(0),
    )?;
    if format == 0 && old_table {
        tx.execute_batch(
            "INSERT INTO shard_progress (function, source, shard, checkpoint, window_state, updated_ms)
                 SELECT function, source, shard, sequence_number, NULL, updated_ms
                 FROM checkpoints WHERE shard NOT LIKE '(%';
             INSERT INTO shard_progress (function, source, shard, checkpoint, window_state, updated_ms)
                 SELECT function, source, substr(shard, 9), NULL, NULLIF(sequence_number, ''), updated_ms
                 FROM checkpoints WHERE shard LIKE '(window)%'
                 ON CONFLICT (function, source, shard) DO UPDATE SET window_state = excluded.window_state;
             -- A start that is not a number stays as it was written, to be
             -- reported as corrupt when read rather than guessed at.
             INSERT OR IGNORE INTO mapping_starts (function, source, started_ms)
                 SELECT function, source, sequence_number
                 FROM checkpoints WHERE shard = '(latest-started-at)';
             DROP TABLE checkpoints;",
        )?;
        tracing::info!("moved the checkpoints to the format of this version");
    }
    // A streams table made before version 2 lacks the column (one made just
    // now by SCHEMA has it).
    let has_max_record_size: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('streams') WHERE name = 'max_record_size_kib')",
        [],
        |row| row.get(0),
    )?;
    if !has_max_record_size {
        tx.execute_batch("ALTER TABLE streams ADD COLUMN max_record_size_kib INTEGER NOT NULL DEFAULT 1024;")?;
    }
    // Likewise version 3's column of shard_progress.
    let has_rewound: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('shard_progress') WHERE name = 'rewound')",
        [],
        |row| row.get(0),
    )?;
    if !has_rewound {
        tx.execute_batch("ALTER TABLE shard_progress ADD COLUMN rewound INTEGER NOT NULL DEFAULT 0;")?;
    }
    tx.pragma_update(None, "user_version", FORMAT)?;
    tx.commit()?;
    Ok(())
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
    async fn checkpoint(&self, key: &CheckpointKey) -> Result<Option<Checkpoint>, StoreError> {
        let sql = "SELECT checkpoint FROM shard_progress WHERE function = ?1 AND source = ?2 AND shard = ?3";
        Ok(self.shard_text(key, sql).await?.as_deref().map(Checkpoint::decode))
    }

    async fn window(&self, key: &CheckpointKey) -> Result<Option<String>, StoreError> {
        self.shard_text(key, "SELECT window_state FROM shard_progress WHERE function = ?1 AND source = ?2 AND shard = ?3").await
    }

    async fn commit(&self, key: &CheckpointKey, checkpoint: &Checkpoint, window: Option<&str>) -> Result<(), StoreError> {
        let (key, checkpoint, window) = (key.clone(), checkpoint.encode().into_owned(), window.map(str::to_owned));
        let sql = match window {
            Some(_) => {
                "INSERT INTO shard_progress (function, source, shard, checkpoint, window_state, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (function, source, shard) DO UPDATE SET
                     checkpoint = excluded.checkpoint, window_state = excluded.window_state, updated_ms = excluded.updated_ms"
            }
            None => {
                "INSERT INTO shard_progress (function, source, shard, checkpoint, window_state, updated_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (function, source, shard) DO UPDATE SET
                     checkpoint = excluded.checkpoint, updated_ms = excluded.updated_ms"
            }
        };
        self.with_writer(move |c| {
            c.prepare_cached(sql)?
                .execute(params![key.function, key.source, key.shard, checkpoint, window, now_ms() as i64])
                .map(drop)
        })
        .await?;
        Ok(())
    }

    async fn close_window(&self, key: &CheckpointKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.with_writer(move |c| {
            c.prepare_cached(
                "UPDATE shard_progress SET window_state = NULL, updated_ms = ?4
                 WHERE function = ?1 AND source = ?2 AND shard = ?3",
            )?
            .execute(params![key.function, key.source, key.shard, now_ms() as i64])
            .map(drop)
        })
        .await?;
        Ok(())
    }

    async fn mapping_start(&self, mapping: &MappingKey) -> Result<Option<u64>, StoreError> {
        let mapping = mapping.clone();
        let stored: Option<rusqlite::types::Value> = self
            .with_writer(move |c| {
                c.prepare_cached("SELECT started_ms FROM mapping_starts WHERE function = ?1 AND source = ?2")?
                    .query_row(params![mapping.function, mapping.source], |row| row.get(0))
                    .optional()
            })
            .await?;
        stored.map(start_ms).transpose()
    }

    async fn record_mapping_start(&self, mapping: &MappingKey, started_ms: u64) -> Result<u64, StoreError> {
        let mapping = mapping.clone();
        let stored: rusqlite::types::Value = self
            .with_writer(move |c| {
                c.prepare_cached("INSERT OR IGNORE INTO mapping_starts (function, source, started_ms) VALUES (?1, ?2, ?3)")?
                    .execute(params![mapping.function, mapping.source, started_ms as i64])?;
                c.prepare_cached("SELECT started_ms FROM mapping_starts WHERE function = ?1 AND source = ?2")?
                    .query_row(params![mapping.function, mapping.source], |row| row.get(0))
            })
            .await?;
        start_ms(stored)
    }

    async fn list(&self) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let listed = self
            .with_writer(|c| {
                let mut stmt = c.prepare(
                    "SELECT function, source, shard, checkpoint, updated_ms FROM shard_progress
                     WHERE checkpoint IS NOT NULL ORDER BY function, source, shard",
                )?;
                let rows = stmt.query_map([], |row| {
                    Ok(StoredCheckpoint {
                        key: CheckpointKey { function: row.get(0)?, source: row.get(1)?, shard: row.get(2)? },
                        checkpoint: Checkpoint::decode(&row.get::<_, String>(3)?),
                        updated_ms: row.get::<_, i64>(4)? as u64,
                    })
                })?;
                rows.collect()
            })
            .await?;
        Ok(listed)
    }

    async fn control(&self, mapping: &MappingKey) -> Result<MappingControl, StoreError> {
        let mapping = mapping.clone();
        let row: Option<(bool, i64, Option<String>)> = self
            .with_writer(move |c| {
                c.prepare_cached("SELECT paused, rewind_id, rewind_to FROM mapping_controls WHERE function = ?1 AND source = ?2")?
                    .query_row(params![mapping.function, mapping.source], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                    .optional()
            })
            .await?;
        let Some((paused, id, to)) = row else { return Ok(MappingControl::default()) };
        let rewind = match to {
            Some(text) => Some(Rewind {
                id: id as u64,
                to: RewindTarget::decode(&text).ok_or(StoreError::Corrupt { what: "rewind target", value: text })?,
            }),
            None => None,
        };
        Ok(MappingControl { paused, rewind })
    }

    async fn set_paused(&self, mapping: &MappingKey, paused: bool) -> Result<(), StoreError> {
        let mapping = mapping.clone();
        self.with_writer(move |c| {
            c.prepare_cached(
                "INSERT INTO mapping_controls (function, source, paused) VALUES (?1, ?2, ?3)
                 ON CONFLICT (function, source) DO UPDATE SET paused = excluded.paused",
            )?
            .execute(params![mapping.function, mapping.source, paused])
            .map(drop)
        })
        .await?;
        Ok(())
    }

    async fn request_rewind(&self, mapping: &MappingKey, to: &RewindTarget) -> Result<Rewind, StoreError> {
        let (mapping, text) = (mapping.clone(), to.encode());
        let id: i64 = self
            .with_writer(move |c| {
                let tx = c.unchecked_transaction()?;
                let last: i64 = tx
                    .prepare_cached("SELECT rewind_id FROM mapping_controls WHERE function = ?1 AND source = ?2")?
                    .query_row(params![mapping.function, mapping.source], |row| row.get(0))
                    .optional()?
                    .unwrap_or(0);
                let id = super::control::next_rewind_id(last.max(0) as u64, now_ms()) as i64;
                tx.prepare_cached(
                    "INSERT INTO mapping_controls (function, source, rewind_id, rewind_to) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (function, source) DO UPDATE SET rewind_id = excluded.rewind_id, rewind_to = excluded.rewind_to",
                )?
                .execute(params![mapping.function, mapping.source, id, text])?;
                tx.commit()?;
                Ok(id)
            })
            .await?;
        Ok(Rewind { id: id as u64, to: to.clone() })
    }

    async fn progress(&self, key: &CheckpointKey) -> Result<ShardProgress, StoreError> {
        let key = key.clone();
        let row: Option<(Option<String>, i64)> = self
            .with_writer(move |c| {
                c.prepare_cached("SELECT checkpoint, rewound FROM shard_progress WHERE function = ?1 AND source = ?2 AND shard = ?3")?
                    .query_row(params![key.function, key.source, key.shard], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .await?;
        Ok(row
            .map(|(checkpoint, rewound)| ShardProgress {
                checkpoint: checkpoint.as_deref().map(Checkpoint::decode),
                rewound: rewound.max(0) as u64,
            })
            .unwrap_or_default())
    }

    async fn apply_rewind(&self, key: &CheckpointKey, checkpoint: Option<&Checkpoint>, id: u64) -> Result<(), StoreError> {
        let (key, checkpoint) = (key.clone(), checkpoint.map(|c| c.encode().into_owned()));
        self.with_writer(move |c| {
            c.prepare_cached(
                "INSERT INTO shard_progress (function, source, shard, checkpoint, window_state, updated_ms, rewound)
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6)
                 ON CONFLICT (function, source, shard) DO UPDATE SET
                     checkpoint = coalesce(excluded.checkpoint, checkpoint), window_state = NULL,
                     updated_ms = excluded.updated_ms, rewound = excluded.rewound",
            )?
            .execute(params![key.function, key.source, key.shard, checkpoint, now_ms() as i64, id as i64])
            .map(drop)
        })
        .await?;
        Ok(())
    }
}

impl EmbeddedStore {
    /// One text column of a shard's row (`sql` selects it by the key); `None`
    /// when there is no row or the column is NULL.
    async fn shard_text(&self, key: &CheckpointKey, sql: &'static str) -> Result<Option<String>, StoreError> {
        let key = key.clone();
        let text: Option<Option<String>> = self
            .with_writer(move |c| {
                c.prepare_cached(sql)?.query_row(params![key.function, key.source, key.shard], |row| row.get(0)).optional()
            })
            .await?;
        Ok(text.flatten())
    }
}

/// A stored start time, which must be a whole number of milliseconds.
fn start_ms(stored: rusqlite::types::Value) -> Result<u64, StoreError> {
    use rusqlite::types::Value;
    match stored {
        Value::Integer(ms) if ms >= 0 => Ok(ms as u64),
        other => Err(StoreError::Corrupt { what: "start time of the mapping", value: format!("{other:?}") }),
    }
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
            assert_eq!(store.checkpoint(&key).await.expect("get"), None);
            store.commit(&key, &seq("5"), Some("{\"w\":1}")).await.expect("set");
            store.commit(&key, &seq("7"), None).await.expect("set");
        }
        let store = EmbeddedStore::open(dir.path()).expect("reopen");
        assert_eq!(store.checkpoint(&key).await.expect("get"), Some(seq("7")));
        // A commit without a window leaves the stored one alone; closing forgets it.
        assert_eq!(store.window(&key).await.expect("window").as_deref(), Some("{\"w\":1}"));
        store.close_window(&key).await.expect("close");
        assert_eq!(store.window(&key).await.expect("window"), None);
        assert_eq!(store.checkpoint(&key).await.expect("get"), Some(seq("7")));
        store.commit(&key, &Checkpoint::ShardEnd, None).await.expect("end");
        let all = store.list().await.expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].checkpoint, Checkpoint::ShardEnd);
    }

    fn seq(s: &str) -> Checkpoint {
        Checkpoint::Sequence(s.to_owned())
    }

    #[tokio::test]
    async fn the_first_recorded_mapping_start_stands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let mapping = MappingKey { function: "f".into(), source: "local:s".into() };
        assert_eq!(store.mapping_start(&mapping).await.expect("read"), None);
        assert_eq!(store.record_mapping_start(&mapping, 1000).await.expect("record"), 1000);
        assert_eq!(store.record_mapping_start(&mapping, 2000).await.expect("record"), 1000);
        assert_eq!(store.mapping_start(&mapping).await.expect("read"), Some(1000));
    }

    /// A data directory written by the previous format (every piece of mapping
    /// state in `checkpoints`, under reserved shard names) opens with its
    /// checkpoints, windows and start times where they were.
    #[tokio::test]
    async fn a_database_of_the_previous_format_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let old = Connection::open(dir.path().join("eddy.db")).expect("create");
            old.execute_batch(
                "CREATE TABLE checkpoints (
                     function TEXT NOT NULL, source TEXT NOT NULL, shard TEXT NOT NULL,
                     sequence_number TEXT NOT NULL, updated_ms INTEGER NOT NULL,
                     PRIMARY KEY (function, source, shard));
                 INSERT INTO checkpoints VALUES
                     ('f', 'local:s', 'shardId-000000000000', '41', 5),
                     ('f', 'local:s', '(window)shardId-000000000000', '{\"start_ms\":1}', 5),
                     ('f', 'local:s', 'shardId-000000000001', 'SHARD_END', 5),
                     ('f', 'local:s', '(window)shardId-000000000001', '', 5),
                     ('f', 'local:s', '(window)shardId-000000000002', '{\"start_ms\":2}', 5),
                     ('f', 'local:s', '(latest-started-at)', '1700000000000', 5),
                     ('g', 'local:s', '(latest-started-at)', 'not a number', 5);",
            )
            .expect("write the old format");
        }
        let store = EmbeddedStore::open(dir.path()).expect("open and migrate");
        let key = |shard: &str| CheckpointKey { function: "f".into(), source: "local:s".into(), shard: shard.into() };
        assert_eq!(store.checkpoint(&key("shardId-000000000000")).await.expect("read"), Some(seq("41")));
        assert_eq!(store.window(&key("shardId-000000000000")).await.expect("read").as_deref(), Some("{\"start_ms\":1}"));
        assert_eq!(store.checkpoint(&key("shardId-000000000001")).await.expect("read"), Some(Checkpoint::ShardEnd));
        assert_eq!(store.window(&key("shardId-000000000001")).await.expect("read"), None);
        // A window stored before its shard's first checkpoint.
        assert_eq!(store.checkpoint(&key("shardId-000000000002")).await.expect("read"), None);
        assert_eq!(store.window(&key("shardId-000000000002")).await.expect("read").as_deref(), Some("{\"start_ms\":2}"));
        let f = MappingKey { function: "f".into(), source: "local:s".into() };
        assert_eq!(store.mapping_start(&f).await.expect("read"), Some(1_700_000_000_000));
        let g = MappingKey { function: "g".into(), source: "local:s".into() };
        let corrupt = store.mapping_start(&g).await.expect_err("a corrupt start is an error, not now");
        assert!(matches!(corrupt, StoreError::Corrupt { .. }), "{corrupt}");
        let listed: Vec<String> = store.list().await.expect("list").iter().map(|c| c.key.shard.clone()).collect();
        assert_eq!(listed, ["shardId-000000000000", "shardId-000000000001"]);
        drop(store);
        // Opening again finds nothing left to move.
        let store = EmbeddedStore::open(dir.path()).expect("reopen");
        assert_eq!(store.checkpoint(&key("shardId-000000000000")).await.expect("read"), Some(seq("41")));
    }

    /// Local streams made by format 1 (no maximum record size) keep their
    /// records and get Kinesis' default of 1 MiB.
    #[tokio::test]
    async fn checkpoints_of_format_2_are_kept_and_can_be_rewound() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let old = Connection::open(dir.path().join("eddy.db")).expect("create");
            old.execute_batch(
                "CREATE TABLE shard_progress (function TEXT NOT NULL, source TEXT NOT NULL, shard TEXT NOT NULL,
                     checkpoint TEXT, window_state TEXT, updated_ms INTEGER NOT NULL, PRIMARY KEY (function, source, shard));
                 INSERT INTO shard_progress VALUES ('f', 'local:s', 'shard-0', '41', '{\"n\":1}', 5);
                 PRAGMA user_version = 2;",
            )
            .expect("write format 2");
        }
        let store = EmbeddedStore::open(dir.path()).expect("open and migrate");
        let key = CheckpointKey { function: "f".into(), source: "local:s".into(), shard: "shard-0".into() };
        let mapping = key.mapping();
        assert_eq!(store.progress(&key).await.expect("progress"), ShardProgress { checkpoint: Some(seq("41")), rewound: 0 });
        assert_eq!(store.control(&mapping).await.expect("control"), MappingControl::default());

        store.set_paused(&mapping, true).await.expect("pause");
        let first = store.request_rewind(&mapping, &RewindTarget::TrimHorizon).await.expect("rewind");
        let second = store.request_rewind(&mapping, &RewindTarget::AtTimestamp(7)).await.expect("rewind");
        assert!(second.id > first.id, "{second:?} after {first:?}");
        let control = store.control(&mapping).await.expect("control");
        assert!(control.paused);
        assert_eq!(control.rewind, Some(second.clone()));

        // Carried out: the checkpoint moves, the window is forgotten, the id kept.
        store.apply_rewind(&key, Some(&Checkpoint::AtTimestamp(7)), second.id).await.expect("apply");
        assert_eq!(
            store.progress(&key).await.expect("progress"),
            ShardProgress { checkpoint: Some(Checkpoint::AtTimestamp(7)), rewound: second.id }
        );
        assert_eq!(store.window(&key).await.expect("window"), None);
        // A rewind that leaves the shard where it is still marks it done.
        let other = CheckpointKey { shard: "shard-1".into(), ..key.clone() };
        store.apply_rewind(&other, None, second.id).await.expect("apply");
        assert_eq!(store.progress(&other).await.expect("progress"), ShardProgress { checkpoint: None, rewound: second.id });
        // Later checkpoints keep the rewind's id.
        store.commit(&key, &seq("50"), None).await.expect("commit");
        assert_eq!(store.progress(&key).await.expect("progress").rewound, second.id);
        store.set_paused(&mapping, false).await.expect("resume");
        assert!(!store.control(&mapping).await.expect("control").paused);
    }

    #[test]
    fn local_streams_of_format_1_get_the_default_maximum_record_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let old = Connection::open(dir.path().join("eddy.db")).expect("create");
            old.execute_batch(
                "CREATE TABLE streams (name TEXT PRIMARY KEY, shard_count INTEGER NOT NULL,
                     retention_hours INTEGER NOT NULL, created_ms INTEGER NOT NULL);
                 INSERT INTO streams VALUES ('s', 2, 24, 5);
                 PRAGMA user_version = 1;",
            )
            .expect("write format 1");
        }
        let store = EmbeddedStore::open(dir.path()).expect("open and migrate");
        let conn = store.connect().expect("connect");
        let s = crate::source::local::describe(&conn, "s").expect("describe").expect("the stream is still there");
        assert_eq!((s.shard_count, s.retention_hours, s.max_record_size_kib), (2, 24, 1024));
        let format: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).expect("format");
        assert_eq!(format, FORMAT);
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
            async move { store.commit(&key, &seq("9"), None).await }
        });
        writer.await.expect("task").expect("the write goes through once the lock is free");
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let longest = ticker.await.expect("ticker");
        release.join().expect("thread");
        assert!(longest < Duration::from_millis(700), "the async worker was blocked for {longest:?}");
        assert_eq!(store.checkpoint(&key).await.expect("get"), Some(seq("9")));
    }
}
