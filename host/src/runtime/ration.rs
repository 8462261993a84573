//! CPU rationing between functions.
//!
//! Lambda gives each function its own CPU; here every function's guests share
//! the host's cores and its async workers, so a handler that computes without
//! end (or allocates, or builds huge responses, as fast as it can) would take
//! the workers from every other function, whose work is mostly many short
//! steps: read, invoke, checkpoint. So each function has a ration of guest CPU
//! time: a bucket that fills at [`RATION`] of a core and holds [`BURST`]. Every
//! epoch tick that lands in a guest charges its function the time it ran.
//! While the bucket is empty *and another function is busy*, the guest pauses
//! at each tick until its ration has refilled: it goes on, at its share, and
//! the others get the workers. A function alone on the host is never paused.
//!
//! A pause does not count against the invocation's timeout (its deadline moves
//! with it), so rationing slows a function down but never fails it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The share of one core each function's guests may use, together, while
/// other functions are busy.
pub const RATION: f64 = 0.15;
/// The guest time a function may use in one go before the ration applies.
pub const BURST: Duration = Duration::from_millis(50);
/// How recently another function must have started an invocation for the host
/// to count as busy.
const BUSY_WITHIN: Duration = Duration::from_millis(500);
/// The longest single pause.
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// Every function's ration.
pub struct CpuRations {
    functions: Mutex<HashMap<Arc<str>, Arc<Ration>>>,
    /// When the rations' clock started, for the invocation times below.
    epoch: Instant,
}

impl Default for CpuRations {
    fn default() -> Self {
        CpuRations { functions: Mutex::default(), epoch: Instant::now() }
    }
}

/// One function's ration.
pub struct Ration {
    /// When the function last started an invocation (µs since `CpuRations::epoch`).
    last_invoked_us: AtomicU64,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    /// Guest seconds the function may still use now; negative: in debt.
    tokens: f64,
    refilled: Instant,
}

impl CpuRations {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The function's ration, marked as starting an invocation now.
    pub fn start_invocation(&self, function: &Arc<str>) -> Arc<Ration> {
        let now = self.now_us();
        let ration = match self.functions.lock() {
            Ok(mut functions) => Arc::clone(functions.entry(Arc::clone(function)).or_insert_with(|| {
                Arc::new(Ration {
                    last_invoked_us: AtomicU64::new(now),
                    bucket: Mutex::new(Bucket { tokens: BURST.as_secs_f64(), refilled: Instant::now() }),
                })
            })),
            Err(_) => return Arc::new(Ration::unlimited()),
        };
        ration.last_invoked_us.store(now, Ordering::Relaxed);
        ration
    }

    /// Whether a function other than `ration`'s started an invocation lately.
    fn others_busy(&self, ration: &Arc<Ration>) -> bool {
        let since = self.now_us().saturating_sub(BUSY_WITHIN.as_micros() as u64);
        self.functions.lock().is_ok_and(|functions| {
            functions.values().any(|other| !Arc::ptr_eq(other, ration) && other.last_invoked_us.load(Ordering::Relaxed) >= since)
        })
    }

    /// Charges `ran` of guest time; returns how long the guest is to pause.
    pub fn charge(&self, ration: &Arc<Ration>, ran: Duration) -> Option<Duration> {
        let now = Instant::now();
        let tokens = {
            let Ok(mut bucket) = ration.bucket.lock() else { return None };
            let refill = now.duration_since(bucket.refilled).as_secs_f64() * RATION;
            bucket.refilled = now;
            bucket.tokens = (bucket.tokens + refill).min(BURST.as_secs_f64()) - ran.as_secs_f64();
            bucket.tokens
        };
        if tokens >= 0.0 {
            return None;
        }
        if !self.others_busy(ration) {
            // Alone: no debt builds up while nobody else needs the cores.
            if let Ok(mut bucket) = ration.bucket.lock() {
                bucket.tokens = bucket.tokens.max(0.0);
            }
            return None;
        }
        Some(Duration::from_secs_f64(-tokens / RATION).min(MAX_PAUSE))
    }
}

impl Ration {
    fn unlimited() -> Ration {
        Ration { last_invoked_us: AtomicU64::new(0), bucket: Mutex::new(Bucket { tokens: f64::MAX, refilled: Instant::now() }) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_alone_is_never_paused_and_one_beside_a_busy_other_is() {
        let rations = CpuRations::default();
        let hungry: Arc<str> = Arc::from("hungry");
        let ration = rations.start_invocation(&hungry);
        // Alone: a second of guest time costs nothing.
        for _ in 0..100 {
            assert_eq!(rations.charge(&ration, Duration::from_millis(10)), None);
        }
        // Another function starts an invocation: past its burst, the hungry one pauses.
        rations.start_invocation(&Arc::from("light"));
        let mut paused = Duration::ZERO;
        for _ in 0..20 {
            paused += rations.charge(&ration, Duration::from_millis(10)).unwrap_or_default();
        }
        // 200 ms of guest time, 50 of them free: the rest at RATION of a core.
        let expected = (0.2 - BURST.as_secs_f64()) / RATION;
        assert!(paused.as_secs_f64() > expected * 0.5, "paused {paused:?}, expected about {expected} s");
        // The light function, far within its ration, is not paused.
        let light = rations.start_invocation(&Arc::from("light"));
        assert_eq!(rations.charge(&light, Duration::from_millis(10)), None);
    }
}
