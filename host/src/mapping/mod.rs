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

use crate::manifest::Manifest;
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

/// Retries `attempt` until it succeeds (clearing the function's error) or the
/// mapping stops (`None`), showing each failure in the function's status.
async fn retry_source_call<T, F: Future<Output = anyhow::Result<T>>>(
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
                context.status.set_source_reachable(&function.name, true);
                return Some(value);
            }
            Err(error) => {
                context.status.set_source_reachable(&function.name, false);
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
    let shared = match shard::Shared::new(&function, info, &context).await {
        Ok(shared) => Arc::new(shared),
        Err(error) => {
            let message = format!("{error:#}");
            tracing::error!(function = %function.name, "cannot start the mapping: {message}");
            context.status.set_error(&function.name, crate::status::FunctionState::Failed, message);
            return;
        }
    };
    let source_id = function.manifest.event_source.source.id();
    let key = |shard: &str| CheckpointKey { function: function.name.to_string(), source: source_id.clone(), shard: shard.to_owned() };

    // Shards known to be finished, and those whose loop runs.
    let mut finished: HashSet<String> = HashSet::new();
    let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut started: HashSet<String> = HashSet::new();
    let mut tasks = JoinSet::new();
    loop {
        let Some(shards) = retry_source_call(&function, &context, &cancel, "list the source's shards", || source.list_shards()).await
        else {
            break;
        };
        let listed: HashSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        for shard in &shards {
            if started.contains(&shard.id) || finished.contains(&shard.id) {
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
            if started.contains(&shard.id) || finished.contains(&shard.id) {
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
            let shard_loop = ShardLoop {
                key: key(&shard.id),
                shard: Arc::from(shard.id.as_str()),
                has_parents,
                function: Arc::clone(&function),
                source: Arc::clone(&source),
                shared: Arc::clone(&shared),
                context: context.clone(),
                status,
                cancel: cancel.child_token(),
            };
            let handle = tasks.spawn(shard_loop.run());
            running.insert(handle.id(), shard.id.clone());
            started.insert(shard.id.clone());
        }
        // Wait for a shard to end (its children may start now), the next look
        // for new shards, or the stop.
        tokio::select! {
            () = cancel.cancelled() => break,
            joined = tasks.join_next_with_id(), if !tasks.is_empty() => {
                if let Some(Ok((id, ShardExit::Ended))) = joined
                    && let Some(shard) = running.remove(&id)
                {
                    tracing::info!(function = %function.name, shard = %shard, "shard finished");
                    finished.insert(shard);
                }
            }
            () = tokio::time::sleep(source.discovery_interval()) => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
