//! The time the mappings go by: the wall clock, or, under `eddy test`, a
//! simulated one.
//!
//! Everything in a mapping that depends on time reads it in one of two ways:
//! tokio's timers (`tokio::time::sleep`, `Instant`: batching windows, back-offs,
//! polling), and [`now_ms`] (record arrival, record age, tumbling windows, the
//! deadline a handler is given). The test driver runs the mapping on a tokio
//! runtime whose clock is paused, which jumps to the next timer whenever nothing
//! is ready to run, and calls [`simulate`], after which [`now_ms`] follows that
//! clock too. So a test's hour of retries and windows passes in the time its
//! invocations take.

use std::sync::OnceLock;

/// The simulated clock's start: milliseconds since the epoch, and tokio's
/// instant at that moment.
static SIMULATED: OnceLock<(u64, tokio::time::Instant)> = OnceLock::new();

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    match SIMULATED.get() {
        Some((start_ms, start)) => start_ms + tokio::time::Instant::now().saturating_duration_since(*start).as_millis() as u64,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    }
}

/// From now on, [`now_ms`] reads `start_ms` plus the time tokio's clock has
/// moved since this call: call it inside the paused runtime, once per process.
/// False if the clock was simulated already.
pub fn simulate(start_ms: u64) -> bool {
    SIMULATED.set((start_ms, tokio::time::Instant::now())).is_ok()
}

/// Whether [`simulate`] was called.
pub fn is_simulated() -> bool {
    SIMULATED.get().is_some()
}
