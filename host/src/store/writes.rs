//! Telling the readers of a local stream's shards that records landed, so that
//! an idle reader waits instead of polling the database.
//!
//! Two ways news comes:
//! - a put made in this process (the ingest endpoint, a function's
//!   `streams.put-record`) announces its records at once ([`WriteWatch::written`]);
//! - a put made by another process (`eddy put`) is seen by one watcher thread
//!   per database, which looks at SQLite's `data_version` (it changes whenever
//!   another connection commits) every polling interval and, when it changed,
//!   reads each shard's last sequence number.
//!
//! So an idle shard costs a parked task, whatever the number of shards: one
//! cheap look per interval serves them all.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;

/// The last sequence number given out, per stream and shard, for whoever waits.
pub struct WriteWatch {
    path: PathBuf,
    shards: Mutex<HashMap<(String, u32), watch::Sender<i64>>>,
    /// How often the watcher looks for other processes' commits: the shortest
    /// polling interval a reader asked for.
    look_every_us: AtomicU64,
    watcher_started: AtomicBool,
}

impl WriteWatch {
    pub fn new(path: PathBuf) -> WriteWatch {
        WriteWatch {
            path,
            shards: Mutex::new(HashMap::new()),
            look_every_us: AtomicU64::new(u64::MAX),
            watcher_started: AtomicBool::new(false),
        }
    }

    /// The shard's last sequence number, as it changes. `poll_interval`: how
    /// soon a write by another process must be noticed.
    pub fn subscribe(self: &Arc<Self>, stream: &str, shard: u32, poll_interval: Duration) -> watch::Receiver<i64> {
        self.look_every_us.fetch_min(poll_interval.as_micros().max(1) as u64, Ordering::Relaxed);
        if !self.watcher_started.swap(true, Ordering::AcqRel) {
            self.start_watcher();
        }
        let mut shards = self.shards.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        shards.entry((stream.to_owned(), shard)).or_insert_with(|| watch::Sender::new(0)).subscribe()
    }

    /// Records up to `last_seq` landed on the shard.
    pub fn written(&self, stream: &str, shard: u32, last_seq: i64) {
        let shards = self.shards.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = shards.get(&(stream.to_owned(), shard)) {
            sender.send_if_modified(|seen| {
                let newer = last_seq > *seen;
                if newer {
                    *seen = last_seq;
                }
                newer
            });
        }
    }

    /// The thread that notices other processes' writes; it ends with the store.
    fn start_watcher(self: &Arc<Self>) {
        let watch: Weak<WriteWatch> = Arc::downgrade(self);
        let path = self.path.clone();
        let started = std::thread::Builder::new().name("eddy-local-writes".into()).spawn(move || {
            let Ok(conn) = rusqlite::Connection::open(&path) else { return };
            let mut seen_version: Option<i64> = None;
            loop {
                let Some(watch) = watch.upgrade() else { return };
                let look_every = Duration::from_micros(watch.look_every_us.load(Ordering::Relaxed).min(1_000_000));
                let version: Option<i64> = conn.query_row("PRAGMA data_version", [], |row| row.get(0)).ok();
                if version.is_some() && version != seen_version {
                    seen_version = version;
                    watch.announce_all(&conn);
                }
                drop(watch);
                std::thread::sleep(look_every);
            }
        });
        if let Err(error) = started {
            tracing::warn!("cannot watch the local streams for writes ({error}); readers poll");
        }
    }

    /// Reads every shard's last sequence number and tells its readers.
    fn announce_all(&self, conn: &rusqlite::Connection) {
        let Ok(mut stmt) = conn.prepare_cached("SELECT stream, shard, last_seq FROM shard_sequences") else { return };
        let Ok(rows) = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, u32>(1)?, row.get::<_, i64>(2)?)))
        else {
            return;
        };
        for (stream, shard, last_seq) in rows.flatten() {
            self.written(&stream, shard, last_seq);
        }
    }
}
