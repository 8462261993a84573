//! One host's side of one mapping's leases: renew what it holds every third of
//! the failover time, take its share of what nobody holds, steal one lease at a
//! time when the spread is unfair, and tell the mapping which shards it holds.
//!
//! A lease is expired when its counter has not moved for the failover time, as
//! this host measures it from when it first saw that counter value. The holder
//! stops working on a lease it could not renew for two thirds of the failover
//! time, a third before anyone else may take it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::balance::{self, SeenLease};
use super::table::{LeaseItem, LeaseKey, LeaseTable};
use crate::status::{LeaseStatus, StatusBoard};

/// A heartbeat unchanged for this many failover times belongs to a host that
/// is gone for good, and is removed.
const DEAD_WORKER_FAILOVERS: u32 = 10;

/// Reads of the table per balancing, when takes of free leases lose races.
const BALANCE_ROUNDS: usize = 3;

/// How long a scan's writes may take before they count as failed.
fn call_timeout(failover: Duration) -> Duration {
    failover / 6
}

struct Held {
    counter: i64,
    renewed_at: Instant,
}

/// A lease or heartbeat as last seen, and since when it has looked that way.
struct Seen {
    owner: Option<String>,
    counter: i64,
    since: Instant,
}

#[derive(Default)]
struct State {
    /// By shard.
    held: HashMap<String, Held>,
    seen: HashMap<LeaseKey, Seen>,
    beats: i64,
}

pub struct Coordinator {
    table: Arc<LeaseTable>,
    mapping: String,
    function: Arc<str>,
    failover: Duration,
    state: Mutex<State>,
    held_tx: watch::Sender<BTreeSet<String>>,
    status: Arc<StatusBoard>,
}

impl Coordinator {
    pub fn new(table: Arc<LeaseTable>, mapping: String, function: Arc<str>, failover: Duration, status: Arc<StatusBoard>) -> Coordinator {
        Coordinator {
            table,
            mapping,
            function,
            failover,
            state: Mutex::new(State::default()),
            held_tx: watch::Sender::new(BTreeSet::new()),
            status,
        }
    }

    fn renew_interval(&self) -> Duration {
        self.failover / 3
    }

    /// The shards this host holds, updated as leases are taken and lost.
    pub fn held(&self) -> watch::Receiver<BTreeSet<String>> {
        self.held_tx.subscribe()
    }

    /// Adds the leases of shards the source lists that have none yet: those
    /// the last read of the table did not show (before the first read, all of
    /// them; the write is conditional either way).
    pub async fn create_leases(&self, shards: &[crate::source::Shard]) -> anyhow::Result<()> {
        let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        let unseen: Vec<&crate::source::Shard> = match self.state.lock() {
            Ok(state) => shards.iter().filter(|s| !state.seen.contains_key(&LeaseKey::Shard(s.id.clone()))).collect(),
            Err(_) => shards.iter().collect(),
        };
        for shard in unseen {
            // Parents past retention are left out: there is nothing of them to wait for.
            let parents: Vec<String> = shard.parents.iter().filter(|p| listed.contains(p.as_str())).cloned().collect();
            if self.table.create_lease(&self.mapping, &shard.id, &parents).await? {
                tracing::debug!(function = %self.function, shard = %shard.id, "created a lease");
            }
        }
        Ok(())
    }

    /// Renews, takes and steals until `cancel`; it announces the host first and
    /// waits a third of the failover time so that hosts starting together see
    /// each other before they take their shares.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        self.beat().await;
        if crate::retry::pause(&cancel, self.renew_interval()).await == crate::retry::Waited::Cancelled {
            return;
        }
        loop {
            self.tick().await;
            let next_tick = Instant::now() + self.renew_interval();
            let wake = self.earliest_expiry().map_or(next_tick, |e| e.min(next_tick));
            if crate::retry::pause_until(&cancel, wake).await == crate::retry::Waited::Cancelled {
                return;
            }
        }
    }

    async fn tick(&self) {
        // The wake-up may be a held lease's deadline: let it go before anything
        // else, then again for those whose renewal fails now.
        self.drop_unrenewed();
        self.publish();
        self.renew().await;
        self.drop_unrenewed();
        self.publish();
        self.beat().await;
        match tokio::time::timeout(self.renew_interval(), self.balance()).await {
            Ok(Ok(())) => self.status.set_lease_error(&self.function, None),
            Ok(Err(error)) => self.report(format!("{error:#}")),
            Err(_) => self.report("the lease table did not answer in time".to_owned()),
        }
        self.publish();
    }

    fn report(&self, error: String) {
        tracing::warn!(function = %self.function, "cannot balance leases: {error}");
        self.status.set_lease_error(&self.function, Some(error));
    }

    /// When the first held lease that is not renewed meanwhile must be let go.
    fn earliest_expiry(&self) -> Option<Instant> {
        let state = self.state.lock().ok()?;
        state.held.values().map(|h| h.renewed_at + self.hold_limit()).min()
    }

    /// How long a lease is worked on without a renewal: two thirds of the
    /// failover time, leaving a third before another host may take it.
    fn hold_limit(&self) -> Duration {
        self.failover * 2 / 3
    }

    async fn renew(&self) {
        let held: Vec<(String, i64)> = match self.state.lock() {
            Ok(state) => state.held.iter().map(|(shard, h)| (shard.clone(), h.counter)).collect(),
            Err(_) => return,
        };
        let timeout = call_timeout(self.failover);
        let renewals = held.into_iter().map(|(shard, counter)| async move {
            let result = tokio::time::timeout(timeout, self.table.renew(&self.mapping, &shard, counter)).await;
            (shard, counter, result)
        });
        for (shard, counter, result) in futures_util::future::join_all(renewals).await {
            let Ok(mut state) = self.state.lock() else { return };
            match result {
                Ok(Ok(true)) => {
                    if let Some(held) = state.held.get_mut(&shard) {
                        held.counter = counter + 1;
                        held.renewed_at = Instant::now();
                    }
                }
                Ok(Ok(false)) => {
                    tracing::info!(function = %self.function, shard = %shard, "lease lost to another host");
                    state.held.remove(&shard);
                }
                Ok(Err(error)) => tracing::warn!(function = %self.function, shard = %shard, "cannot renew the lease: {error:#}"),
                Err(_) => tracing::warn!(function = %self.function, shard = %shard, "cannot renew the lease: no answer in time"),
            }
        }
    }

    /// Lets go of leases this host could not renew for too long: their shards
    /// stop before another host may take them.
    fn drop_unrenewed(&self) {
        let Ok(mut state) = self.state.lock() else { return };
        let limit = self.hold_limit();
        state.held.retain(|shard, held| {
            let keep = held.renewed_at.elapsed() < limit;
            if !keep {
                tracing::warn!(function = %self.function, shard = %shard, "lease not renewed in time: stopping the shard");
            }
            keep
        });
    }

    async fn beat(&self) {
        let counter = match self.state.lock() {
            Ok(mut state) => {
                state.beats += 1;
                state.beats
            }
            Err(_) => return,
        };
        match tokio::time::timeout(call_timeout(self.failover), self.table.beat(&self.mapping, counter)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(function = %self.function, "cannot write the heartbeat: {error:#}"),
            Err(_) => tracing::warn!(function = %self.function, "cannot write the heartbeat: no answer in time"),
        }
    }

    /// Reads the mapping's leases, then takes or steals what the balancing
    /// rules say. When another host took a free lease first, it reads again at
    /// once (a few times at most), so that hosts starting together settle in
    /// one renewal period rather than several.
    async fn balance(&self) -> anyhow::Result<()> {
        for _ in 0..BALANCE_ROUNDS {
            if !self.balance_once().await? {
                break;
            }
        }
        Ok(())
    }

    /// One read and the takes it leads to; true if a take of a free lease lost
    /// a race to another host.
    async fn balance_once(&self) -> anyhow::Result<bool> {
        let items = self.table.items(&self.mapping).await?;
        let me = self.table.owner();
        let (leases, workers, counters, dead) = {
            let Ok(mut state) = self.state.lock() else { return Ok(false) };
            let now = Instant::now();
            for item in &items {
                let changed = state.seen.get(&item.key).is_none_or(|s| s.counter != item.counter || s.owner != item.owner);
                if changed {
                    state.seen.insert(item.key.clone(), Seen { owner: item.owner.clone(), counter: item.counter, since: now });
                }
            }
            let present: HashSet<&LeaseKey> = items.iter().map(|i| &i.key).collect();
            state.seen.retain(|key, _| present.contains(key));
            // Leases someone else holds now were stolen between renewals.
            let lost: Vec<String> = items
                .iter()
                .filter_map(|i| i.shard().filter(|shard| state.held.contains_key(*shard) && i.owner.as_deref() != Some(me)))
                .map(str::to_owned)
                .collect();
            for shard in lost {
                tracing::info!(function = %self.function, shard = %shard, "lease taken by another host");
                state.held.remove(&shard);
            }
            let alive = |key: &LeaseKey| state.seen.get(key).is_some_and(|s| s.since.elapsed() < self.failover);
            let is_worker = |i: &&LeaseItem| matches!(i.key, LeaseKey::Worker(_));
            let workers: BTreeSet<String> =
                items.iter().filter(is_worker).filter(|i| alive(&i.key)).filter_map(|i| i.owner.clone()).collect();
            let finished: HashSet<&str> = items.iter().filter(|i| i.is_finished()).filter_map(LeaseItem::shard).collect();
            let leases: Vec<SeenLease> = items
                .iter()
                .filter_map(|i| Some((i, i.shard()?)))
                .filter(|(i, shard)| !finished.contains(shard) && i.parents.iter().all(|p| finished.contains(p.as_str())))
                .map(|(i, shard)| SeenLease { shard: shard.to_owned(), live_owner: self.live_owner(&state, i, shard, &alive) })
                .collect();
            let counters: HashMap<String, i64> =
                items.iter().filter_map(|i| Some((i.shard()?.to_owned(), i.counter))).collect();
            let dead: Vec<(LeaseKey, i64)> = items
                .iter()
                .filter(is_worker)
                .filter(|i| state.seen.get(&i.key).is_some_and(|s| s.since.elapsed() > self.failover * DEAD_WORKER_FAILOVERS))
                .map(|i| (i.key.clone(), i.counter))
                .collect();
            (leases, workers, counters, dead)
        };
        self.show(&items);
        // Heartbeats of hosts killed long ago would pile up, one per start.
        for (key, counter) in dead {
            if self.table.remove_dead_worker(&self.mapping, &key, counter).await?
                && let LeaseKey::Worker(worker) = &key
            {
                tracing::info!(function = %self.function, worker = %worker, "removed the heartbeat of a host gone for good");
            }
        }

        let plan = balance::plan(me, &leases, &workers, |candidates| fastrand::shuffle(candidates));
        let mut lost_race = false;
        for shard in plan.take.iter().chain(plan.steal.iter()) {
            let Some(&counter) = counters.get(shard) else { continue };
            let stolen = plan.steal.as_ref() == Some(shard);
            if self.table.take(&self.mapping, shard, counter).await? {
                tracing::info!(function = %self.function, shard = %shard, stolen, "lease taken");
                if let Ok(mut state) = self.state.lock() {
                    state.held.insert(shard.clone(), Held { counter: counter + 1, renewed_at: Instant::now() });
                }
            } else if !stolen {
                lost_race = true;
            }
        }
        Ok(lost_race)
    }

    /// Who holds a lease for the balancing rules: nobody if it is expired, or
    /// if the table names this host but this coordinator does not hold it (a
    /// previous run of the mapping on this host, which is free to take back).
    fn live_owner(&self, state: &State, item: &LeaseItem, shard: &str, alive: &impl Fn(&LeaseKey) -> bool) -> Option<String> {
        let owner = item.owner.as_ref()?;
        if owner == self.table.owner() {
            return state.held.contains_key(shard).then(|| owner.clone());
        }
        alive(&item.key).then(|| owner.clone())
    }

    /// The mapping's leases in the function's status: who holds each shard.
    fn show(&self, items: &[LeaseItem]) {
        let leases = items
            .iter()
            .filter_map(|i| Some(LeaseStatus { shard: i.shard()?.to_owned(), owner: i.owner.clone(), checkpoint: i.checkpoint.clone() }))
            .collect();
        self.status.set_leases(&self.function, leases);
    }

    fn publish(&self) {
        let held: BTreeSet<String> = match self.state.lock() {
            Ok(state) => state.held.keys().cloned().collect(),
            Err(_) => return,
        };
        self.held_tx.send_if_modified(|current| {
            let changed = *current != held;
            *current = held;
            changed
        });
    }

    /// Forgets a lease the shard loop found taken by another host.
    pub fn forget(&self, shard: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.held.remove(shard);
        }
        self.publish();
    }

    /// Lets one lease go (its shard is finished, or the host is leaving).
    pub async fn release(&self, shard: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.held.remove(shard);
        }
        self.publish();
        if let Err(error) = self.table.release(&self.mapping, shard).await {
            tracing::warn!(function = %self.function, shard = %shard, "cannot release the lease: {error:#}");
        }
    }

    /// Graceful handoff: releases every lease (after the shard loops have
    /// checkpointed) and the heartbeat, so other hosts take them at once.
    pub async fn release_all(&self) {
        let held: Vec<String> = match self.state.lock() {
            Ok(state) => state.held.keys().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let releases = held.iter().map(|shard| self.release(shard));
        futures_util::future::join_all(releases).await;
        if let Err(error) = self.table.retire(&self.mapping).await {
            tracing::warn!(function = %self.function, "cannot remove the heartbeat: {error:#}");
        }
        if !held.is_empty() {
            tracing::info!(function = %self.function, leases = held.len(), "leases released");
        }
    }
}
