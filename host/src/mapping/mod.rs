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
//! - [`window`]: TumblingWindowInSeconds, state carried across invocations;
//! - [`parallel`]: ParallelizationFactor, several batches of a shard at once;
//! - [`filter`], [`destination`]: FilterCriteria and DestinationConfig.

mod batcher;
mod delivery;
pub mod destination;
pub mod filter;
pub mod handler;
pub mod outcome;
mod parallel;
mod shard;
mod window;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::manifest::{Destination, Manifest};
use crate::source::StreamSource;
use crate::status::StatusBoard;
use crate::store::{CheckpointKey, CheckpointStore, SHARD_END};
pub use handler::{ConcurrencyLimited, Handler, WasmHandler};
use shard::{ShardExit, ShardLoop};

/// How long a mapping whose source failed (unreachable, no such stream) waits
/// before it tries again; a shard loop that hit an error waits as long before it
/// starts over from its checkpoint.
const RESTART_DELAY: Duration = Duration::from_secs(1);

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

/// Which of Lambda's permission sets reading a source takes.
pub fn source_kind(source: &crate::manifest::SourceRef) -> crate::role::SourceKind {
    use crate::manifest::SourceRef;
    use crate::role::SourceKind;
    match source {
        SourceRef::Kinesis { consumer: Some(_), .. } => SourceKind::KinesisFanOut,
        SourceRef::Kinesis { .. } | SourceRef::Local { .. } => SourceKind::Kinesis,
        SourceRef::Dynamodb { .. } => SourceKind::Dynamodb,
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
pub fn start(function: Arc<FunctionVersion>, source: Arc<dyn StreamSource>, mut context: MappingContext) -> MappingHandle {
    // A local stream lives in this host's data directory: no other host reads it.
    if matches!(function.manifest.event_source.source, crate::manifest::SourceRef::Local { .. }) {
        context.cluster = None;
    }
    if let Some(cluster) = &context.cluster {
        context.store = cluster.table.clone();
    }
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run_mapping(function, source, context, cancel.clone()));
    MappingHandle { cancel, task }
}

/// Retries `attempt` until it succeeds (clearing the function's error) or the
/// mapping stops (`None`), showing each failure in the function's status.
async fn retry_call<T, F: Future<Output = anyhow::Result<T>>>(
    function: &FunctionVersion,
    context: &MappingContext,
    cancel: &CancellationToken,
    what: &str,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    let mut failed = false;
    loop {
        match attempt().await {
            Ok(value) => {
                if failed {
                    context.status.clear_error(&function.name);
                }
                return Some(value);
            }
            Err(error) => {
                let message = format!("cannot {what}: {error:#}");
                tracing::error!(function = %function.name, "{message}; retrying");
                context.status.set_error(&function.name, crate::status::FunctionState::Running, message);
                failed = true;
                tokio::select! {
                    () = cancel.cancelled() => return None,
                    () = tokio::time::sleep(RESTART_DELAY) => {}
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

async fn run_mapping(function: Arc<FunctionVersion>, source: Arc<dyn StreamSource>, context: MappingContext, cancel: CancellationToken) {
    let Some(info) = retry_source_call(&function, &context, &cancel, "find the source", || source.describe()).await else {
        return;
    };
    // As Lambda's CreateEventSourceMapping: a role that cannot read the source
    // never reads a record of it.
    if let Err(denied) = function.grants.check_source(source_kind(&function.manifest.event_source.source), &info.arn) {
        let message = format!("the execution role cannot read the event source: {denied}");
        tracing::error!(function = %function.name, "{message}; the mapping is not started");
        context.status.set_failed(&function.name, message);
        return;
    }
    if let Some(Destination::Aws { target, .. }) = function.manifest.event_source.on_failure.as_ref().map(|o| &o.destination)
        && let Err(denied) = function.grants.check_destination(target)
    {
        let message = format!("the execution role cannot write to the on-failure destination: {denied}");
        tracing::error!(function = %function.name, "{message}; the mapping is not started");
        context.status.set_failed(&function.name, message);
        return;
    }
    // The store (in cluster mode, the lease table) may be briefly unreachable:
    // wait for it rather than fail the function.
    let Some(started_at_ms) = retry_call(&function, &context, &cancel, "read the mapping's start from the checkpoint store", || {
        shard::started_at(&function, &context)
    })
    .await
    else {
        return;
    };
    let shared = match shard::Shared::new(&function, info, started_at_ms).await {
        Ok(shared) => Arc::new(shared),
        Err(error) => {
            let message = format!("{error:#}");
            tracing::error!(function = %function.name, "cannot start the mapping: {message}");
            // The version is loaded, but its mapping does not run: failed (and
            // /readyz 503) until a new version of the files comes.
            context.status.set_failed(&function.name, format!("cannot start the mapping: {message}"));
            return;
        }
    };
    let source_id = function.manifest.event_source.source.id();
    let key = |shard: &str| CheckpointKey { function: function.name.to_string(), source: source_id.clone(), shard: shard.to_owned() };

    // In cluster mode this host runs only the shards whose leases it holds.
    let leases = context.cluster.as_ref().map(|cluster| {
        let mapping = crate::lease::table::mapping_id(&function.name, &source_id);
        context.status.set_clustered(&function.name, cluster.table.owner());
        let coordinator = Arc::new(crate::lease::Coordinator::new(
            Arc::clone(&cluster.table),
            mapping,
            Arc::clone(&function.name),
            cluster.failover,
            Arc::clone(&context.status),
        ));
        let stop = cancel.child_token();
        let task = tokio::spawn(Arc::clone(&coordinator).run(stop.clone()));
        (coordinator, stop, task)
    });
    let mut held = leases.as_ref().map(|(coordinator, _, _)| coordinator.held());

    // Shards known to be finished, and those whose loop runs (with its own stop).
    let mut finished: HashSet<String> = HashSet::new();
    let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut stops: HashMap<String, CancellationToken> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut shards = Vec::new();
    let mut list_now = true;
    while !cancel.is_cancelled() {
        if list_now {
            let Some(listed) =
                retry_source_call(&function, &context, &cancel, "list the source's shards", || source.list_shards()).await
            else {
                break;
            };
            shards = listed;
            if let Some((coordinator, _, _)) = &leases
                && let Err(error) = coordinator.create_leases(&shards).await
            {
                tracing::warn!(function = %function.name, "cannot create leases: {error:#}");
            }
            list_now = false;
        }
        let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        let holding = held.as_mut().map(|h| h.borrow_and_update().clone());
        // A shard whose lease was lost stops (its in-flight batch finishes; its
        // checkpoint is refused if another host has taken the lease).
        if let Some(holding) = &holding {
            for (shard, stop) in &stops {
                if !holding.contains(shard) {
                    stop.cancel();
                }
            }
        }
        // In cluster mode only the shards held here, and their parents, are
        // this host's business: the others' checkpoints are not read.
        let relevant: Option<HashSet<&str>> = holding.as_ref().map(|held| {
            shards
                .iter()
                .filter(|s| held.contains(&s.id))
                .flat_map(|s| std::iter::once(s.id.as_str()).chain(s.parents.iter().map(String::as_str)))
                .collect()
        });
        for shard in &shards {
            if stops.contains_key(&shard.id) || finished.contains(&shard.id) {
                continue;
            }
            if relevant.as_ref().is_some_and(|r| !r.contains(shard.id.as_str())) {
                continue;
            }
            match context.store.get(&key(&shard.id)).await {
                Ok(Some(checkpoint)) if checkpoint == SHARD_END => {
                    finished.insert(shard.id.clone());
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(function = %function.name, shard = %shard.id, "cannot read the checkpoint: {error:#}");
                    continue;
                }
            }
        }
        for shard in &shards {
            if stops.contains_key(&shard.id) || finished.contains(&shard.id) {
                continue;
            }
            if holding.as_ref().is_some_and(|h| !h.contains(&shard.id)) {
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
        // leases held, the next look for new shards, or the stop.
        tokio::select! {
            () = cancel.cancelled() => break,
            joined = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let Some(Ok((id, exit))) = joined else { continue };
                let Some(shard) = running.remove(&id) else { continue };
                stops.remove(&shard);
                match exit {
                    ShardExit::Ended => {
                        tracing::info!(function = %function.name, shard = %shard, "shard finished");
                        if let Some((coordinator, _, _)) = &leases {
                            coordinator.release(&shard).await;
                        }
                        finished.insert(shard);
                        list_now = true;
                    }
                    ShardExit::Lost => {
                        if let Some((coordinator, _, _)) = &leases {
                            coordinator.forget(&shard);
                        }
                    }
                    ShardExit::Stopped => {}
                }
            }
            Some(Ok(())) = async { match held.as_mut() { Some(h) => Some(h.changed().await), None => None } } => {}
            () = tokio::time::sleep(source.discovery_interval()) => list_now = true,
        }
    }
    while tasks.join_next().await.is_some() {}
    // Graceful handoff: every shard has checkpointed; others may take the leases now.
    if let Some((coordinator, stop, task)) = leases {
        stop.cancel();
        let _ = task.await;
        coordinator.release_all().await;
    }
}

#[cfg(test)]
mod tests;
