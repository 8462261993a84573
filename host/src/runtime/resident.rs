//! An idle function lets go of its compiled code. Lambda reclaims the execution
//! environment of a function that has had no work for a while, and the next
//! invocation is a cold start; Eddy does the same with the part of a function
//! that weighs: its loaded component. A JavaScript or Python component holds
//! 2-5 MB once loaded (its engine's compiled code mapped in, wasmtime's
//! metadata), a Rust one a few hundred KB, so a host of many idle functions
//! would otherwise be sized by their code rather than by their work.
//!
//! A [`ResidentComponent`] is a function version's component that the
//! [`super::warm::Reaper`] lets go of once the function has waited
//! `MaxIdleSeconds` for a batch (the same idle time after which its warm
//! instances go), and that the next batch loads again: from the compile cache
//! (0.3 ms for a small Rust component, 1.5 ms for a JavaScript one), or,
//! if the cache lost it, from the function's file, provided the file still
//! holds this version (same digest). Otherwise the batch is not run and waits,
//! as a throttled one does: the file changed, so a new version is on its way
//! and takes the shard over.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{InvokeError, LoadedComponent, Runtime};

pub struct ResidentComponent {
    function: Arc<str>,
    digest: String,
    /// The function's file, to compile again from if the cache lost the entry.
    file: PathBuf,
    max_idle: Duration,
    state: Mutex<Residence>,
    /// One reload at a time: the batches of other shards wait for it.
    reload_gate: tokio::sync::Mutex<()>,
}

struct Residence {
    loaded: Option<Arc<LoadedComponent>>,
    /// Invocations running on it: it is never let go of under them.
    in_use: usize,
    idle_since: Instant,
}

impl ResidentComponent {
    /// `function`'s `component`, loaded from `file`, to be let go of after
    /// `max_idle` without an invocation.
    pub fn new(
        runtime: &Runtime,
        function: Arc<str>,
        component: LoadedComponent,
        file: PathBuf,
        max_idle: Duration,
    ) -> Arc<ResidentComponent> {
        let resident = Arc::new(ResidentComponent {
            function,
            digest: component.digest.clone(),
            file,
            max_idle,
            state: Mutex::new(Residence { loaded: Some(Arc::new(component)), in_use: 0, idle_since: Instant::now() }),
            reload_gate: tokio::sync::Mutex::new(()),
        });
        runtime.reaper.watch_resident(&resident);
        resident
    }

    /// The loaded component for one invocation, loaded again first if it was
    /// let go of; it stays while the returned guard lives.
    pub async fn acquire(self: &Arc<Self>, runtime: &Arc<Runtime>) -> Result<InUse, InvokeError> {
        loop {
            if let Some(component) = self.try_acquire() {
                return Ok(InUse { component, owner: Arc::clone(self) });
            }
            let _turn = self.reload_gate.lock().await;
            // Another batch may have loaded it while this one waited its turn.
            if self.state().loaded.is_some() {
                continue;
            }
            let started = Instant::now();
            let (runtime, digest, file) = (Arc::clone(runtime), self.digest.clone(), self.file.clone());
            let loaded = tokio::task::spawn_blocking(move || reload(&runtime, &digest, &file))
                .await
                .map_err(|e| InvokeError::NotLoaded(format!("the loader task failed: {e}")))??;
            tracing::info!(function = %self.function,
                "its code loaded again after idling, in {:.1} ms", started.elapsed().as_secs_f64() * 1e3);
            // Taken for this batch as it is put back, so the reaper cannot let
            // it go again before the batch runs.
            let component = Arc::new(loaded);
            let mut state = self.state();
            state.loaded = Some(Arc::clone(&component));
            state.in_use += 1;
            return Ok(InUse { component, owner: Arc::clone(self) });
        }
    }

    fn try_acquire(&self) -> Option<Arc<LoadedComponent>> {
        let mut state = self.state();
        let component = Arc::clone(state.loaded.as_ref()?);
        state.in_use += 1;
        Some(component)
    }

    /// The state; a panic elsewhere while it was held leaves it consistent
    /// (every update is one assignment), so a poisoned lock is used as is.
    fn state(&self) -> std::sync::MutexGuard<'_, Residence> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The reaper's look: lets the code go if nothing ran on it for `max_idle`.
    /// Returns whether it did.
    pub(super) fn release_if_idle(&self, now: Instant) -> bool {
        let released = {
            let mut state = self.state();
            if idle_long_enough(state.in_use, state.idle_since, now, self.max_idle) { state.loaded.take() } else { None }
        };
        // Dropped outside the lock: the last reference frees the code.
        let Some(released) = released else { return false };
        drop(released);
        tracing::info!(function = %self.function,
            "no batch for {} s: its compiled code is let go of until the next one", self.max_idle.as_secs());
        true
    }
}

/// Whether code with `in_use` invocations on it, idle since `idle_since`, has
/// waited `max_idle` at `now`.
fn idle_long_enough(in_use: usize, idle_since: Instant, now: Instant, max_idle: Duration) -> bool {
    in_use == 0 && now.saturating_duration_since(idle_since) >= max_idle
}

/// The component of `digest`, from the compile cache, else from `file` if it
/// still holds that component.
fn reload(runtime: &Runtime, digest: &str, file: &std::path::Path) -> Result<LoadedComponent, InvokeError> {
    if let Some(component) = runtime.load_cached(digest).map_err(|e| InvokeError::NotLoaded(e.to_string()))? {
        return Ok(component);
    }
    let bytes = std::fs::read(file)
        .map_err(|e| InvokeError::NotLoaded(format!("the compile cache lost it and {} cannot be read: {e}", file.display())))?;
    if super::content_digest(&bytes) != digest {
        return Err(InvokeError::NotLoaded(format!(
            "the compile cache lost it and {} holds another version now (it takes over shortly)",
            file.display()
        )));
    }
    runtime.load(&bytes).map_err(|e| InvokeError::NotLoaded(e.to_string()))
}

/// One invocation's hold on the loaded code.
pub struct InUse {
    component: Arc<LoadedComponent>,
    owner: Arc<ResidentComponent>,
}

impl std::ops::Deref for InUse {
    type Target = LoadedComponent;
    fn deref(&self) -> &LoadedComponent {
        &self.component
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        let mut state = self.owner.state();
        state.in_use = state.in_use.saturating_sub(1);
        state.idle_since = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_goes_only_when_nothing_runs_on_it_and_it_idled_long_enough() {
        let start = Instant::now();
        let idle = Duration::from_secs(300);
        assert!(!idle_long_enough(0, start, start + Duration::from_secs(299), idle));
        assert!(idle_long_enough(0, start, start + idle, idle));
        // An invocation running for longer than the idle time keeps it.
        assert!(!idle_long_enough(1, start, start + Duration::from_secs(3600), idle));
        // A clock that reads earlier than the last use is not idle time.
        assert!(!idle_long_enough(0, start + idle, start, idle));
    }
}
