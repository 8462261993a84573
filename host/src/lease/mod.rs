//! Cluster mode: several hosts share the shards of each mapping through a lease
//! table in DynamoDB, the way the Kinesis Client Library does. No consensus of
//! our own: every change of ownership is one conditional write.
//!
//! - [`assignment`]: the mapping loop's view: which shards this host holds;
//! - [`table`]: the table, its items and the conditional writes; it is also the
//!   checkpoint store of leased mappings (a checkpoint lives in its lease);
//! - [`coordinator`]: renewing, taking, stealing and releasing for one mapping;
//! - [`balance`]: the rules deciding what to take or steal.

pub mod assignment;
pub mod balance;
pub mod coordinator;
pub mod table;

use std::sync::Arc;
use std::time::Duration;

pub use assignment::LeasedShards;
pub use coordinator::Coordinator;
pub use table::{LeaseKey, LeaseTable};

/// The default failover time: a lease not renewed for this long is taken.
pub const DEFAULT_FAILOVER: Duration = Duration::from_secs(10);

/// What the host's mappings need to share their shards with other hosts.
#[derive(Clone)]
pub struct Cluster {
    pub table: Arc<LeaseTable>,
    pub failover: Duration,
}

/// A name for this host in `leaseOwner`: the machine's name and a random part,
/// so that a restarted process is a new owner (as KCL workers are).
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "eddy".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &random[..8])
}
