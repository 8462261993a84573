//! Warm instances: Lambda keeps a function's execution environment between
//! invocations, and handlers are written for it (a client, a cache or a
//! compiled pattern at module scope is made once). Eddy does the same per
//! shard, or per lane with ParallelizationFactor: the shard's loop owns an
//! [`InstanceSlot`], and an instance that finished a batch well waits there
//! for the next one.
//!
//! An instance is kept only while nothing can be wrong with it:
//! - it is discarded after any error: a trap, a timeout, out-of-memory, a
//!   handler's error or a response over the limits (its memory may be half
//!   updated, its stack unwound mid-call);
//! - it is replaced after `MaxInvocations`, or once its memory has grown more
//!   than `MaxMemoryGrowthMB` past what it held after its first invocation
//!   (wasm memory never shrinks, so a slow leak is bounded here);
//! - at most half the host's instance slots are held by idle warm instances,
//!   so that warm ones never throttle invocations that need a fresh one;
//! - a slot belongs to one version of a function: a new version starts fresh;
//! - an instance that waited `MaxIdleSeconds` for a batch is dropped, giving
//!   its memory back ([`Reaper`]).
//!
//! `Reuse = false` in the manifest gives every batch a fresh instance, for
//! handlers where nothing may pass from one batch to the next; a WASI command
//! (a program with a `main`) always runs fresh.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::Store;

use super::host_state::HostState;
use crate::contract::{json, typed};
use crate::manifest::ExecutionEnvironment;

/// A shard's (or lane's) place for its warm instance, owned by its loop; the
/// instance goes when the loop ends, or when it has waited `MaxIdleSeconds`
/// for a batch ([`Reaper`]).
pub struct InstanceSlot {
    policy: ExecutionEnvironment,
    shelf: Arc<Shelf>,
    /// Whether the reaper knows this slot (from its first kept instance on).
    known: AtomicBool,
    /// Instances started for this slot: 1 while one serves every batch.
    started: AtomicU64,
}

/// Where a warm instance waits, shared with the reaper.
struct Shelf {
    max_idle: Duration,
    parked: Mutex<Option<Parked>>,
}

struct Parked {
    instance: Instance,
    since: Instant,
}

impl InstanceSlot {
    pub fn new(policy: ExecutionEnvironment) -> InstanceSlot {
        let shelf = Arc::new(Shelf { max_idle: policy.max_idle, parked: Mutex::new(None) });
        InstanceSlot { policy, shelf, known: AtomicBool::new(false), started: AtomicU64::new(0) }
    }

    /// How many instances this slot's invocations have started.
    pub fn instances_started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// The warm instance of `component`, if there is one (an instance of an
    /// other version is dropped).
    pub(super) fn take(&self, component: u64) -> Option<Instance> {
        let warm = self.shelf.parked.lock().ok()?.take()?.instance;
        (warm.component == component).then_some(warm)
    }

    pub(super) fn started_one(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps an instance that finished an invocation well, if the rules allow.
    pub(super) fn keep(&self, mut instance: Instance, warm_slots: &Arc<Semaphore>, reaper: &Reaper) {
        instance.invocations += 1;
        let memory = instance.store.data().limiter.allocated_bytes;
        let baseline = *instance.memory_after_first.get_or_insert(memory);
        let verdict = keep_verdict(&self.policy, instance.invocations, memory.saturating_sub(baseline));
        if let Some(reason) = verdict {
            tracing::debug!(function = %instance.store.data().function, shard = %instance.store.data().shard,
                invocations = instance.invocations, "a fresh instance for the next batch: {reason}");
            return;
        }
        if instance.slot_permit.is_none() {
            match Arc::clone(warm_slots).try_acquire_owned() {
                Ok(permit) => instance.slot_permit = Some(permit),
                Err(_) => {
                    tracing::debug!(function = %instance.store.data().function,
                        "half the instance slots already hold warm instances; this one is not kept");
                    return;
                }
            }
        }
        if !self.known.swap(true, Ordering::Relaxed) {
            reaper.watch(&self.shelf);
        }
        if let Ok(mut parked) = self.shelf.parked.lock() {
            *parked = Some(Parked { instance, since: Instant::now() });
        }
    }
}

/// Drops warm instances that waited longer than their `MaxIdleSeconds` for a
/// batch, so that an idle function gives its instance's memory back, as
/// Lambda reclaims an idle execution environment.
/// It also lets go of the compiled code of functions idle as long
/// ([`super::resident`]).
#[derive(Default)]
pub(super) struct Reaper {
    shelves: Mutex<Vec<Weak<Shelf>>>,
    residents: Mutex<Vec<Weak<super::resident::ResidentComponent>>>,
}

/// How often the reaper looks.
pub(super) const REAPER_INTERVAL: Duration = Duration::from_secs(1);

impl Reaper {
    fn watch(&self, shelf: &Arc<Shelf>) {
        if let Ok(mut shelves) = self.shelves.lock() {
            shelves.push(Arc::downgrade(shelf));
        }
    }

    pub(super) fn watch_resident(&self, resident: &Arc<super::resident::ResidentComponent>) {
        if let Ok(mut residents) = self.residents.lock() {
            residents.push(Arc::downgrade(resident));
        }
    }

    /// One look: drops what idled too long, forgets slots and components that
    /// are gone.
    pub(super) fn reap(&self) {
        if let Ok(mut shelves) = self.shelves.lock() {
            shelves.retain(|shelf| {
                let Some(shelf) = shelf.upgrade() else { return false };
                let expired = match shelf.parked.lock() {
                    Ok(mut parked) if parked.as_ref().is_some_and(|p| p.since.elapsed() >= shelf.max_idle) => parked.take(),
                    _ => None,
                };
                drop(expired);
                true
            });
        }
        let now = Instant::now();
        let mut released = false;
        if let Ok(mut residents) = self.residents.lock() {
            residents.retain(|resident| {
                let Some(resident) = resident.upgrade() else { return false };
                released |= resident.release_if_idle(now);
                true
            });
        }
        // The code's metadata was on the heap: hand it back to the kernel.
        if released {
            super::trim_free_memory();
        }
    }
}

/// Why an instance that served `invocations` and grew by `growth_bytes` since
/// its first is not kept; `None`: it is.
pub(super) fn keep_verdict(policy: &ExecutionEnvironment, invocations: u32, growth_bytes: usize) -> Option<&'static str> {
    if !policy.reuse {
        Some("Reuse is off")
    } else if invocations >= policy.max_invocations {
        Some("it served MaxInvocations")
    } else if growth_bytes > policy.max_memory_growth_bytes {
        Some("its memory grew past MaxMemoryGrowthMB")
    } else {
        None
    }
}

/// An instantiated handler and its store.
pub(super) struct Instance {
    pub(super) store: Store<HostState>,
    /// `None` until instantiated in the store.
    pub(super) exports: Option<Exports>,
    /// Which loaded component this is an instance of.
    pub(super) component: u64,
    pub(super) invocations: u32,
    /// Bytes of memory it held after its first invocation.
    memory_after_first: Option<usize>,
    /// One of the host's warm places, held while it is kept.
    slot_permit: Option<OwnedSemaphorePermit>,
}

impl Instance {
    pub(super) fn new(store: Store<HostState>, component: u64) -> Instance {
        Instance { store, exports: None, component, invocations: 0, memory_after_first: None, slot_permit: None }
    }
}

/// A handler world's exports, bound to an instance.
pub(super) enum Exports {
    Typed(typed::TypedHandler),
    /// With the buffer its batches are packed into, reused batch after batch.
    Packed(super::packed::PackedHandler, Vec<u8>),
    Json(json::JsonHandler),
}

/// How many idle warm instances a host of `max_instances` slots keeps: half,
/// rounded down, so that at least one slot is always left for an invocation
/// that needs a fresh instance (a host of one slot keeps none warm).
pub(super) fn warm_places(max_instances: u32) -> usize {
    (max_instances / 2) as usize
}

pub(super) fn warm_slots(max_instances: u32) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(warm_places(max_instances)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_instances_always_leave_a_slot_for_a_fresh_one() {
        assert_eq!(warm_places(1), 0, "one slot: nothing kept warm, or it would throttle every other function");
        assert_eq!(warm_places(2), 1);
        assert_eq!(warm_places(3), 1);
        assert_eq!(warm_places(128), 64);
    }

    #[test]
    fn an_instance_is_kept_until_a_bound_is_reached() {
        let policy = ExecutionEnvironment { max_invocations: 3, max_memory_growth_bytes: 1 << 20, ..ExecutionEnvironment::default() };
        assert_eq!(keep_verdict(&policy, 1, 0), None);
        assert_eq!(keep_verdict(&policy, 2, 1 << 20), None, "growth up to the bound is allowed");
        assert!(keep_verdict(&policy, 3, 0).is_some_and(|r| r.contains("MaxInvocations")));
        assert!(keep_verdict(&policy, 1, (1 << 20) + 1).is_some_and(|r| r.contains("MaxMemoryGrowthMB")));
        let fresh = ExecutionEnvironment { reuse: false, ..policy };
        assert!(keep_verdict(&fresh, 1, 0).is_some_and(|r| r.contains("Reuse")));
    }
}
