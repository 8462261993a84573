//! Skipping records already processed, as Powertools' idempotency utility does
//! for Lambda: each key (a record's `eventID`, or a field of it) is marked done
//! in a key-value table once its work succeeded, and a batch delivered again
//! (after a function error, a crash, a timeout or a host restart: Eddy, like
//! Lambda, delivers at least once) skips the keys marked done.
//!
//! ```ignore
//! let processed = Idempotency::new("processed-orders", &context).ttl(Duration::from_secs(24 * 3600));
//! Ok(process_kinesis(&batch, |record| {
//!     processed.once(&record.event_id, || charge(record))?;   // charged once, however often delivered
//!     Ok::<_, IdempotencyError<ChargeError>>(())
//! }))
//! ```
//!
//! The table is a key-value table ([`crate::capability::kv`]): a name in the
//! host's embedded store, or a DynamoDB table ARN. The role needs
//! `dynamodb:GetItem` and `dynamodb:PutItem` on it.
//!
//! What it does not do: a crash after the work and before its mark (a window
//! of one key-value write) repeats that one key's work. Work whose effect must
//! happen exactly once, whatever happens, must itself be idempotent or be
//! written in the same transaction as the mark.

use std::time::Duration;

use crate::capability::{Error, kv};

/// How long a mark lasts unless told: an hour, as Powertools' default. Longer
/// than the stream's retention is never needed.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Where the marks are kept: a key-value table, or (in native unit tests) any
/// map the test provides.
pub trait MarkStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error>;
}

/// A table of the `kv` capability.
pub struct KvTable(pub String);

impl MarkStore for KvTable {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        kv::get(&self.0, key)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        kv::set(&self.0, key, value)
    }
}

/// Why [`Idempotency::once`] failed: the work's own error, or the table's.
#[derive(Debug)]
pub enum IdempotencyError<E> {
    Work(E),
    Store(Error),
}

impl<E: std::fmt::Display> std::fmt::Display for IdempotencyError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdempotencyError::Work(error) => error.fmt(f),
            IdempotencyError::Store(error) => write!(f, "the idempotency table failed: {}", error.message()),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for IdempotencyError<E> {}

/// Marks keys done in a table, and skips work for keys marked done.
pub struct Idempotency<S = KvTable> {
    store: S,
    ttl: Duration,
    now_ms: u64,
}

impl Idempotency<KvTable> {
    /// Marks in the key-value table `table`. The time (for expiry) is the
    /// invocation's, from `context`: Rust handlers have no clock of their own.
    pub fn new(table: &str, context: &crate::Context) -> Idempotency<KvTable> {
        let now_ms = context.deadline_ms.saturating_sub(crate::remaining_time_ms());
        Idempotency::with_store(KvTable(table.to_owned()), now_ms)
    }
}

impl<S: MarkStore> Idempotency<S> {
    /// Marks in `store`, at `now_ms` (milliseconds since the Unix epoch).
    pub fn with_store(store: S, now_ms: u64) -> Idempotency<S> {
        Idempotency { store, ttl: DEFAULT_TTL, now_ms }
    }

    /// How long a mark is kept: a key delivered again after that is processed again.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Whether `key` is marked done (and the mark has not expired).
    pub fn is_done(&self, key: &str) -> Result<bool, Error> {
        Ok(self.store.get(key)?.as_deref().and_then(expiry_of).is_some_and(|expires| expires > self.now_ms))
    }

    /// Runs `work` unless `key` is marked done, and marks it done if `work`
    /// succeeds. `Ok(Some(value))`: it ran now; `Ok(None)`: it was done before,
    /// and did not run. A failed `work` leaves no mark, so it runs again when
    /// the record is delivered again.
    pub fn once<T, E>(&self, key: &str, work: impl FnOnce() -> Result<T, E>) -> Result<Option<T>, IdempotencyError<E>> {
        if self.is_done(key).map_err(IdempotencyError::Store)? {
            return Ok(None);
        }
        let value = work().map_err(IdempotencyError::Work)?;
        let expires = self.now_ms.saturating_add(self.ttl.as_millis() as u64);
        self.store.set(key, &mark(expires)).map_err(IdempotencyError::Store)?;
        Ok(Some(value))
    }
}

/// The stored mark: `done <expiry in ms since the epoch>`, readable in the table.
fn mark(expires_ms: u64) -> Vec<u8> {
    format!("done {expires_ms}").into_bytes()
}

fn expiry_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.strip_prefix("done ")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;

    #[derive(Default)]
    struct Map(RefCell<HashMap<String, Vec<u8>>>);

    impl MarkStore for &Map {
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
            Ok(self.0.borrow().get(key).cloned())
        }
        fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
            self.0.borrow_mut().insert(key.to_owned(), value.to_vec());
            Ok(())
        }
    }

    #[test]
    fn work_runs_once_per_key_until_its_mark_expires() {
        let map = Map::default();
        let runs = RefCell::new(0);
        let work = || {
            *runs.borrow_mut() += 1;
            Ok::<_, String>(*runs.borrow())
        };
        let first = Idempotency::with_store(&map, 1_000).ttl(Duration::from_secs(10));
        assert_eq!(first.once("shard-0:1", work).expect("runs"), Some(1));
        // Delivered again, in a later invocation: skipped.
        let again = Idempotency::with_store(&map, 5_000).ttl(Duration::from_secs(10));
        assert_eq!(again.once("shard-0:1", work).expect("skipped"), None);
        assert_eq!(again.once("shard-0:2", work).expect("another key runs"), Some(2));
        // After the mark's time, it runs again.
        let later = Idempotency::with_store(&map, 11_001);
        assert_eq!(later.once("shard-0:1", work).expect("runs"), Some(3));
    }

    #[test]
    fn failed_work_leaves_no_mark_and_a_mark_from_elsewhere_is_not_taken_for_one() {
        let map = Map::default();
        let idempotency = Idempotency::with_store(&map, 1_000);
        let failed = idempotency.once("k", || Err::<(), _>("card declined"));
        assert!(matches!(failed, Err(IdempotencyError::Work("card declined"))));
        assert!(!idempotency.is_done("k").expect("read"));
        map.0.borrow_mut().insert("other".into(), b"something else".to_vec());
        assert_eq!(idempotency.once("other", || Ok::<_, String>(7)).expect("runs"), Some(7));
    }
}
