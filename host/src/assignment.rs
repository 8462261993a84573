//! Which shards of a mapping this host runs. The mapping loop asks one
//! [`Assignment`] and carries out what it says; it never asks which mode the
//! host is in.
//!
//! - [`EveryShard`]: one host, or a local stream (which lives in this host's
//!   data directory): every shard is this host's.
//! - `lease::LeasedShards`: cluster mode, where hosts share the shards through
//!   a lease table as the Kinesis Client Library does.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::source::Shard;

/// The shards this host holds at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    Every,
    Only(BTreeSet<String>),
}

impl Held {
    pub fn contains(&self, shard: &str) -> bool {
        match self {
            Held::Every => true,
            Held::Only(held) => held.contains(shard),
        }
    }
}

#[async_trait]
pub trait Assignment: Send {
    /// The shards the source lists now (a cluster makes leases for new ones).
    async fn listed(&mut self, shards: &[Shard]);
    /// The shards this host holds now.
    fn held(&mut self) -> Held;
    /// Resolves when what this host holds may have changed.
    async fn changed(&mut self);
    /// The shard is finished: let it go.
    async fn finished(&mut self, shard: &str);
    /// The shard's loop found that another host holds it now.
    fn lost(&mut self, shard: &str);
    /// The mapping stopped and every shard has checkpointed: hand over.
    async fn leave(self: Box<Self>);
}

/// Every shard is this host's: nothing to share, nothing ever changes hands.
pub struct EveryShard;

#[async_trait]
impl Assignment for EveryShard {
    async fn listed(&mut self, _: &[Shard]) {}

    fn held(&mut self) -> Held {
        Held::Every
    }

    async fn changed(&mut self) {
        std::future::pending().await
    }

    async fn finished(&mut self, _: &str) {}

    fn lost(&mut self, _: &str) {}

    async fn leave(self: Box<Self>) {}
}
