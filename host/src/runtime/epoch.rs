//! The epoch ticker: the clock that interrupts guests.
//!
//! Every store's epoch deadline is one tick away, so a guest that computes
//! without calling the host is stopped within a tick to check its timeout and
//! its CPU ration ([`super::invoke`]). The ticks matter only while a guest runs:
//! between batches the ticker parks its thread, so that an idle host does not
//! wake a hundred times a second. Each invocation holds a [`Ticking`] for as long
//! as guest code may run (instantiation included).

use std::sync::{Arc, OnceLock};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;

use anyhow::Context as _;
use wasmtime::Engine;

use super::EPOCH_TICK;

/// The thread that advances the engine's epoch while guests run.
pub struct EpochTicker {
    shared: Arc<Shared>,
}

struct Shared {
    /// Invocations holding a [`Ticking`].
    running: AtomicUsize,
    stop: AtomicBool,
    /// Ticks given so far (what the tests read).
    ticks: AtomicU64,
    /// The ticker's thread, to unpark (set once it is spawned).
    thread: OnceLock<Thread>,
}

/// Keeps the epoch ticking while it lives: held by an invocation while its
/// guest may run.
pub struct Ticking {
    shared: Arc<Shared>,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> anyhow::Result<EpochTicker> {
        let shared = Arc::new(Shared {
            running: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            thread: OnceLock::new(),
        });
        let of_thread = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("eddy-epoch".into())
            .spawn(move || {
                let shared = of_thread;
                while !shared.stop.load(Ordering::Acquire) {
                    if shared.running.load(Ordering::Acquire) == 0 {
                        // `ticking()` unparks after it counts itself, so a
                        // wake-up that comes before this park is not lost.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                    shared.ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
            .context("cannot start the epoch thread")?;
        let _ = shared.thread.set(handle.thread().clone());
        Ok(EpochTicker { shared })
    }

    fn unpark(&self) {
        if let Some(thread) = self.shared.thread.get() {
            thread.unpark();
        }
    }

    /// Ticks until the returned guard is dropped.
    pub fn ticking(&self) -> Ticking {
        if self.shared.running.fetch_add(1, Ordering::AcqRel) == 0 {
            self.unpark();
        }
        Ticking { shared: Arc::clone(&self.shared) }
    }

    /// Ticks given so far.
    #[cfg(test)]
    fn ticks(&self) -> u64 {
        self.shared.ticks.load(Ordering::Relaxed)
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        self.shared.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.unpark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn it_ticks_only_while_an_invocation_holds_it() {
        let ticker = EpochTicker::start(Engine::default()).expect("ticker");
        std::thread::sleep(EPOCH_TICK * 10);
        assert_eq!(ticker.ticks(), 0, "no guest ran, yet it ticked");

        let first = ticker.ticking();
        wait_until("three ticks", || ticker.ticks() >= 3);
        // Two at once, then one left: it goes on ticking.
        let second = ticker.ticking();
        drop(first);
        let seen = ticker.ticks();
        wait_until("ticks with one guard left", || ticker.ticks() >= seen + 3);
        drop(second);

        // At most the tick already under way comes after the last guard goes.
        std::thread::sleep(EPOCH_TICK * 2);
        let parked_at = ticker.ticks();
        std::thread::sleep(EPOCH_TICK * 10);
        assert_eq!(ticker.ticks(), parked_at, "it ticked with no guard held");

        // And it starts again.
        let _again = ticker.ticking();
        wait_until("ticks again", || ticker.ticks() > parked_at);
    }
}
