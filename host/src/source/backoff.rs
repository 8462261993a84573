//! Back-off with jitter for a reader that was throttled or could not reach its
//! service: it waits, then tries again from the same place, so nothing is skipped.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(200);
const MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The wait after one more failure: doubling from 200 ms up to 5 s, each a
    /// random time between half and all of it, so that many readers throttled
    /// together do not come back together.
    pub fn next_wait(&mut self) -> Duration {
        let full = FIRST.saturating_mul(1 << self.failures.min(8)).min(MAX);
        self.failures = self.failures.saturating_add(1);
        full.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Whether the last call failed.
    pub fn failing(&self) -> bool {
        self.failures > 0
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter() {
        let mut backoff = Backoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next_wait()).collect();
        assert!(waits[0] >= FIRST / 2 && waits[0] <= FIRST, "{waits:?}");
        assert!(waits[3] >= FIRST * 4 && waits[3] <= FIRST * 8, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= MAX), "{waits:?}");
        assert!(backoff.failing());
        backoff.reset();
        assert!(backoff.next_wait() <= FIRST);
    }
}
