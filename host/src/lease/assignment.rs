//! Cluster mode's [`Assignment`]: the shards whose leases this host holds, as
//! its [`Coordinator`] takes, renews and loses them.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Cluster, Coordinator};
use crate::assignment::{Assignment, Held};
use crate::source::Shard;
use crate::status::StatusBoard;
use crate::store::MappingKey;

pub struct LeasedShards {
    coordinator: Arc<Coordinator>,
    held: watch::Receiver<BTreeSet<String>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    function: Arc<str>,
}

impl LeasedShards {
    /// Starts balancing the mapping's leases with the other hosts.
    pub fn start(cluster: &Cluster, mapping: &MappingKey, function: Arc<str>, status: Arc<StatusBoard>) -> LeasedShards {
        status.set_clustered(&function, cluster.table.owner());
        let coordinator = Arc::new(Coordinator::new(
            Arc::clone(&cluster.table),
            super::table::mapping_id(mapping),
            Arc::clone(&function),
            cluster.failover,
            status,
        ));
        let stop = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&coordinator).run(stop.clone()));
        LeasedShards { held: coordinator.held(), coordinator, stop, task, function }
    }
}

#[async_trait]
impl Assignment for LeasedShards {
    async fn listed(&mut self, shards: &[Shard]) {
        if let Err(error) = self.coordinator.create_leases(shards).await {
            tracing::warn!(function = %self.function, "cannot create leases: {error:#}");
        }
    }

    fn held(&mut self) -> Held {
        Held::Only(self.held.borrow_and_update().clone())
    }

    async fn changed(&mut self) {
        if self.held.changed().await.is_err() {
            // The coordinator is gone (the mapping is stopping): nothing changes now.
            std::future::pending::<()>().await;
        }
    }

    async fn finished(&mut self, shard: &str) {
        self.coordinator.release(shard).await;
    }

    fn lost(&mut self, shard: &str) {
        self.coordinator.forget(shard);
    }

    /// Graceful handoff: others may take the leases at once.
    async fn leave(self: Box<Self>) {
        self.stop.cancel();
        let _ = self.task.await;
        self.coordinator.release_all().await;
    }
}
