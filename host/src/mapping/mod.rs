//! The event source mapping: for each shard of a function's source, one loop
//! that reads, filters, batches, invokes and checkpoints, in shard order.
//!
//! This module runs a mapping: it finds the shards and starts a loop per shard,
//! holding back a child shard (after a split or a merge, or DynamoDB's roll-over)
//! until all its parents are finished, so that records of one key are handled in
//! order across a reshard. It looks again for new shards whenever a shard ends,
//! and every `discovery_interval`.
//!
//! - [`shard`]: the loop of one shard, top to bottom;
//! - [`batcher`]: gathering a batch (BatchSize, window, 6 MB, filters);
//! - [`delivery`]: invoking with a batch until it is done: retries, bisection,
//!   record age, partial failures and the on-failure destination;
//! - [`outcome`]: what a response means, by Lambda's rules;
//! - [`decision`]: what follows from it: checkpoint, retry, split or give up;
//! - [`window`]: TumblingWindowInSeconds, state carried across invocations;
//! - [`parallel`]: ParallelizationFactor, several batches of a shard at once;
//! - [`destination`]: DestinationConfig's on-failure records and where they go
//!   (FilterCriteria is [`crate::filter`]).

mod batcher;
mod decision;
mod delivery;
pub mod destination;
pub mod handler;
pub mod outcome;
mod parallel;
mod shard;
mod shared;
mod window;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::manifest::Manifest;
use crate::source::StreamSource;
use crate::status::StatusBoard;
use crate::assignment::{Assignment, EveryShard};
use crate::retry::{Backoff, Waited};
use crate::store::{Checkpoint, CheckpointKey, CheckpointStore, MappingKey, StoreError};
pub use handler::{ConcurrencyLimited, Handler, WasmHandler};
use shard::{ShardExit, ShardLoop};

/// One loaded version of a function: its manifest and its handler.
pub struct FunctionVersion {
    pub name: Arc<str>,
    pub manifest: Manifest,
    pub handler: Arc<dyn Handler>,
    pub environment: Arc<[(String, String)]>,
    /// `invokeIdentityArn` in the events: the function's execution role.
    pub identity_arn: String,
    /// The role every capability call of the function is checked against.
    pub grants: Arc<crate::role::Grants>,
    pub services: Arc<crate::capability::Services>,
}

impl FunctionVersion {
    /// The function's ARN as Lambda would write it, for on-failure records.
    pub fn arn(&self, region: &str) -> String {
        let account = self.identity_arn.split(':').nth(4).filter(|a| !a.is_empty()).unwrap_or("000000000000");
        format!("arn:aws:lambda:{region}:{account}:function:{}", self.name)
    }
}

/// What every shard loop of a mapping shares.
#[derive(Clone)]
pub struct MappingContext {
    pub store: Arc<dyn CheckpointStore>,
    pub status: Arc<StatusBoard>,
    /// Cluster mode: mappings of AWS sources share their shards through leases
    /// (and keep their checkpoints in them).
    pub cluster: Option<crate::lease::Cluster>,
}

/// A running mapping; dropping it does not stop it, [`MappingHandle::stop`] does.
pub struct MappingHandle {
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl MappingHandle {
    /// Stops the mapping: each shard finishes the invocation in flight (and
    /// checkpoints it if it succeeded), then its loop ends.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

/// Starts the mapping of `function` on `source`. Finding the source is retried
/// until it succeeds or the mapping is stopped, so a source that is briefly
/// unreachable delays the mapping rather than failing it.
pub fn start(function: Arc<FunctionVersion>, source: Arc<dyn StreamSource>, context: MappingContext) -> MappingHandle {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_mapping(function, source, context, cancel.clone()));
    MappingHandle { cancel, task }
}

/// Who runs which shards of the mapping, and where its checkpoints live: with a
/// cluster, the lease table decides both; alone (or reading a local stream, which
/// lives in this host's data directory), this host runs every shard.
fn assignment(function: &FunctionVersion, context: &mut MappingContext) -> Box<dyn Assignment> {
    let local = matches!(function.manifest.event_source.source, crate::manifest::SourceRef::Local { .. });
    match &context.cluster {
        Some(cluster) if !local => {
            context.store = cluster.table.clone();
            let mapping = MappingKey { function: function.name.to_string(), source: function.manifest.event_source.source.id() };
            Box::new(crate::lease::LeasedShards::start(cluster, &mapping, Arc::clone(&function.name), Arc::clone(&context.status)))
        }
        _ => Box::new(EveryShard),
    }
}

/// Retries `attempt` until it succeeds (clearing the function's error) or the
/// mapping stops (`None`), showing each failure in the function's status. The
/// stop does not wait for an attempt in flight: these are the mapping's first
/// calls (finding the source, listing shards, reading or recording the start),
/// none leaves anything half done, and a service that never answers must not
/// hold the stop for ever.
async fn retry_call<T, F: Future<Output = anyhow::Result<T>>>(
    function: &FunctionVersion,
    context: &MappingContext,
    cancel: &CancellationToken,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    let mut backoff = Backoff::restart();
    loop {
        let outcome = tokio::select! {
            outcome = attempt() => outcome,
            () = cancel.cancelled() => return None,
        };
        match outcome {
            Ok(value) => {
                if backoff.failing() {
                    context.status.clear_error(&function.name);
                }
                return Some(value);
            }
            Err(error) => {
                let message = format!("cannot {what}: {error:#}");
                tracing::error!(function = %function.name, "{message}; retrying");
                context.status.set_error(&function.name, crate::status::FunctionState::Running, message);
                if backoff.wait(cancel).await == Waited::Cancelled {
                    return None;
                }
            }
        }
    }
}

/// [`retry_call`] for a call to the source, whose outcome also says whether the
/// source is reached (for `/readyz`).
async fn retry_source_call<T, F: Future<Output = anyhow::Result<T>>>(
    function: &FunctionVersion,
    context: &MappingContext,
    cancel: &CancellationToken,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    retry_call(function, context, cancel, what, || {
        let call = attempt();
        async move {
            let result = call.await;
            context.status.set_source_reachable(&function.name, result.is_ok());
            result
        }
    })
    .await
}

async fn run_mapping(function: Arc<FunctionVersion>, source: Arc<dyn StreamSource>, mut context: MappingContext, cancel: CancellationToken) {
    let Some(info) = retry_source_call(&function, &context, &cancel, "find the source", || source.describe()).await else {
        return;
    };
    // As Lambda's CreateEventSourceMapping: a role that cannot read the source
    // never reads a record of it, nor can one that cannot write the destination.
    if let Err(denied) = function.grants.check_mapping(&function.manifest.event_source, &info.arn) {
        tracing::error!(function = %function.name, "{denied}; the mapping is not started");
        context.status.set_failed(&function.name, denied.to_string());
        return;
    }
    let mut assignment = assignment(&function, &mut context);
    // The store (in cluster mode, the lease table) may be briefly unreachable:
    // wait for it rather than fail the function. What waiting cannot mend (a
    // stored start that cannot be read: guessing would skip or repeat records,
    // a filter or destination that cannot be set up) fails the mapping.
    let started_at = retry_call(&function, &context, &cancel, "read the mapping's start from the checkpoint store", || async {
        match shared::started_at(&function, &context).await {
            Err(StoreError::Unavailable(error)) => Err(error),
            other => Ok(other),
        }
    })
    .await;
    let Some(started_at) = started_at else { return assignment.leave().await };
    let shared = match started_at.map_err(anyhow::Error::from) {
        Ok(started_at_ms) => shared::Shared::new(&function, info, started_at_ms).await,
        Err(error) => Err(error),
    };
    let shared = match shared {
        Ok(shared) => Arc::new(shared),
        Err(error) => {
            let message = format!("cannot start the mapping: {error:#}");
            tracing::error!(function = %function.name, "{message}");
            // The version is loaded, but its mapping does not run: failed (and
            // /readyz 503) until a new version of the files comes.
            context.status.set_failed(&function.name, message);
            return assignment.leave().await;
        }
    };
    let source_id = function.manifest.event_source.source.id();
    let key = |shard: &str| CheckpointKey { function: function.name.to_string(), source: source_id.clone(), shard: shard.to_owned() };
    let mapping_key = MappingKey { function: function.name.to_string(), source: source_id.clone() };
    // The operator's pause and rewinds (`eddy mapping`), read now and every
    // CONTROL_POLL: in cluster mode they may come through another host.
    let Some(mut control) = retry_call(&function, &context, &cancel, "read the mapping's pause and rewind", || async {
        context.store.control(&mapping_key).await.map_err(anyhow::Error::from)
    })
    .await
    else {
        return assignment.leave().await;
    };
    let rewinds = Rewinds { function: &function, context: &context, supports_timestamps: source.supports_timestamps() };
    // The rewind this run has acted on; shards it has not reached yet are
    // rewound when they are next looked at ([`Rewinds::settle`]).
    let mut acted_on = control.rewind_id();
    let mut control_changes = watch_control(
        Arc::clone(&context.store),
        mapping_key.clone(),
        control.clone(),
        Arc::clone(&function.name),
        cancel.child_token(),
    );
    let mut control_watched = true;

    // Shards known to be finished, and those whose loop runs (with its own stop).
    let mut finished: HashSet<String> = HashSet::new();
    let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut stops: HashMap<String, CancellationToken> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut shards = Vec::new();
    let mut list_now = true;
    // A deadline, not a sleep made anew each time round: the loop wakes for
    // many other reasons, and each must not put the next look off.
    let mut next_listing = tokio::time::Instant::now();
    while !cancel.is_cancelled() {
        if list_now {
            next_listing = tokio::time::Instant::now() + source.discovery_interval();
            let Some(listed) =
                retry_source_call(&function, &context, &cancel, "list the source's shards", || source.list_shards()).await
            else {
                break;
            };
            shards = listed;
            assignment.listed(&shards).await;
            list_now = false;
        }
        // A new rewind: every shard loop stops (each finishing and checkpointing
        // its batch in flight, which the rewind then overrides), and each shard
        // this host may write is rewound before anything starts again.
        if control.rewind_id() != acted_on {
            for (shard, exit) in stop_all(&mut tasks, &mut running, &mut stops).await {
                if exit == ShardExit::Lost {
                    assignment.lost(&shard);
                }
            }
            finished.clear();
            for shard in &shards {
                let _ = rewinds.settle(&key(&shard.id), &control).await;
            }
            acted_on = control.rewind_id();
            if let Some(rewind) = &control.rewind {
                context.status.set_rewound(&function.name, crate::status::RewindDone { id: rewind.id, to: rewind.to.to_string() });
            }
        }
        if control.paused && !stops.is_empty() {
            tracing::info!(function = %function.name, "pausing the mapping: its shards stop after their batches in flight");
            for (shard, exit) in stop_all(&mut tasks, &mut running, &mut stops).await {
                match exit {
                    ShardExit::Ended => {
                        assignment.finished(&shard).await;
                        finished.insert(shard);
                    }
                    ShardExit::Lost => assignment.lost(&shard),
                    ShardExit::Stopped => {}
                }
            }
        }
        context.status.set_paused(&function.name, control.paused);
        let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        let held = assignment.held();
        // A shard no longer held here stops (its in-flight batch finishes; its
        // checkpoint is refused if another host has taken the lease).
        for (shard, stop) in &stops {
            if !held.contains(shard) {
                stop.cancel();
            }
        }
        // Only the shards held here, and their parents, are this host's
        // business: the others' checkpoints are not read.
        let relevant: HashSet<&str> = shards
            .iter()
            .filter(|s| held.contains(&s.id))
            .flat_map(|s| std::iter::once(s.id.as_str()).chain(s.parents.iter().map(String::as_str)))
            .collect();
        for shard in &shards {
            if stops.contains_key(&shard.id) || finished.contains(&shard.id) || !relevant.contains(shard.id.as_str()) {
                continue;
            }
            match rewinds.settle(&key(&shard.id), &control).await {
                Ok(Some(Checkpoint::ShardEnd)) => {
                    finished.insert(shard.id.clone());
                }
                Ok(_) => {}
                // Another host holds it, and rewinds it.
                Err(StoreError::LeaseLost { .. }) => {}
                Err(error) => {
                    tracing::error!(function = %function.name, shard = %shard.id, "cannot read the checkpoint: {error:#}");
                }
            }
        }
        for shard in &shards {
            if control.paused || stops.contains_key(&shard.id) || finished.contains(&shard.id) || !held.contains(&shard.id) {
                continue;
            }
            // A parent the source no longer lists is past retention: nothing of it
            // is left to wait for.
            let waiting_for: Vec<&String> =
                shard.parents.iter().filter(|p| listed.contains(p.as_str()) && !finished.contains(*p)).collect();
            if !waiting_for.is_empty() {
                tracing::debug!(function = %function.name, shard = %shard.id, ?waiting_for, "waiting for parent shards");
                continue;
            }
            let has_parents = shard.parents.iter().any(|p| finished.contains(p));
            let status = context.status.add_shard(&function.name, &shard.id);
            let stop = cancel.child_token();
            let shard_loop = ShardLoop {
                key: key(&shard.id),
                shard: Arc::from(shard.id.as_str()),
                has_parents,
                function: Arc::clone(&function),
                source: Arc::clone(&source),
                shared: Arc::clone(&shared),
                context: context.clone(),
                status,
                cancel: stop.clone(),
            };
            let handle = tasks.spawn(shard_loop.run());
            running.insert(handle.id(), shard.id.clone());
            stops.insert(shard.id.clone(), stop);
        }
        // Wait for a shard to end (its children may start now), a change in the
        // shards held, the next look for new shards, or the stop.
        tokio::select! {
            () = cancel.cancelled() => break,
            joined = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let Some(Ok((id, exit))) = joined else { continue };
                let Some(shard) = running.remove(&id) else { continue };
                stops.remove(&shard);
                match exit {
                    ShardExit::Ended => {
                        tracing::info!(function = %function.name, shard = %shard, "shard finished");
                        assignment.finished(&shard).await;
                        finished.insert(shard);
                        list_now = true;
                    }
                    ShardExit::Lost => assignment.lost(&shard),
                    ShardExit::Stopped => {}
                }
            }
            () = assignment.changed() => {}
            () = tokio::time::sleep_until(next_listing) => list_now = true,
            changed = control_changes.changed(), if control_watched => match changed {
                Ok(()) => {
                    let now = control_changes.borrow_and_update().clone();
                    if now.paused != control.paused {
                        tracing::info!(function = %function.name, paused = now.paused, "the mapping is {}",
                            if now.paused { "paused" } else { "resumed" });
                    }
                    control = now;
                }
                // The watch ended with the mapping.
                Err(_) => control_watched = false,
            },
        }
    }
    while tasks.join_next().await.is_some() {}
    // Every shard has checkpointed: others may take over now.
    assignment.leave().await;
}

/// How often a mapping looks for a pause, a resume or a rewind.
const CONTROL_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads the mapping's control every [`CONTROL_POLL`] in a task of its own, and
/// tells of each change: a store that is slow or down (a lease table out of
/// reach) never holds up the mapping's loop, which must go on stopping shards
/// whose leases it lost.
fn watch_control(
    store: Arc<dyn CheckpointStore>,
    key: MappingKey,
    first: crate::store::MappingControl,
    function: Arc<str>,
    cancel: CancellationToken,
) -> tokio::sync::watch::Receiver<crate::store::MappingControl> {
    let (changes, receiver) = tokio::sync::watch::channel(first);
    tokio::spawn(async move {
        loop {
            if crate::retry::pause(&cancel, CONTROL_POLL).await == Waited::Cancelled {
                return;
            }
            let read = tokio::select! {
                read = store.control(&key) => read,
                () = cancel.cancelled() => return,
            };
            match read {
                Ok(now) => {
                    changes.send_if_modified(|seen| {
                        let changed = *seen != now;
                        *seen = now;
                        changed
                    });
                }
                Err(error) => tracing::warn!(function = %function, "cannot read the mapping's pause and rewind: {error:#}"),
            }
        }
    });
    receiver
}

/// Stops every shard loop of the mapping and waits for them: each finishes
/// and checkpoints its batch in flight. Returns how each loop ended.
async fn stop_all(
    tasks: &mut JoinSet<ShardExit>,
    running: &mut HashMap<tokio::task::Id, String>,
    stops: &mut HashMap<String, CancellationToken>,
) -> Vec<(String, ShardExit)> {
    for stop in stops.values() {
        stop.cancel();
    }
    let mut exits = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        if let Ok((id, exit)) = joined
            && let Some(shard) = running.remove(&id)
        {
            exits.push((shard, exit));
        }
    }
    running.clear();
    stops.clear();
    exits
}

/// Carries out rewinds on the shards of one mapping.
struct Rewinds<'a> {
    function: &'a FunctionVersion,
    context: &'a MappingContext,
    supports_timestamps: bool,
}

impl Rewinds<'_> {
    /// The shard's checkpoint, after carrying out the last rewind on it if it
    /// has not had it yet. The shard's loop must not be running.
    async fn settle(&self, key: &CheckpointKey, control: &crate::store::MappingControl) -> Result<Option<Checkpoint>, StoreError> {
        let progress = self.context.store.progress(key).await?;
        let Some(rewind) = control.rewind.as_ref().filter(|r| r.id > progress.rewound) else {
            return Ok(progress.checkpoint);
        };
        let checkpoint = rewind.to.checkpoint_for(&key.shard, self.supports_timestamps);
        match self.context.store.apply_rewind(key, checkpoint.as_ref(), rewind.id).await {
            Ok(()) => {
                if let Some(checkpoint) = &checkpoint {
                    tracing::info!(function = %self.function.name, shard = %key.shard, from = ?progress.checkpoint.as_ref().map(Checkpoint::encode),
                        to = %checkpoint, "rewound the shard to {}", rewind.to);
                }
                Ok(checkpoint.or(progress.checkpoint))
            }
            Err(error) => {
                if !matches!(error, StoreError::LeaseLost { .. }) {
                    tracing::error!(function = %self.function.name, shard = %key.shard, "cannot rewind the shard: {error:#}");
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests;
