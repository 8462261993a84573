//! The one way Eddy waits and tries again, and the one way it sleeps while it
//! can be stopped.
//!
//! Every retry backs off exponentially with jitter ([`Backoff`]): a failing
//! batch, a reader that was throttled or could not reach its service, a
//! destination that refused a failure record, a mapping whose store or source
//! is unreachable. What is retried is tried again from the same place, so
//! nothing is skipped. Every wait ([`pause`], [`Backoff::wait`]) ends early
//! when its cancellation token fires, and says so.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Waits that double from `first` up to `max`, each a random time between half
/// and all of it, so that many callers failing together do not come back
/// together.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max, failures: 0 }
    }

    /// Retrying an invocation (a failed batch, a window's final invocation) or
    /// an on-failure destination: from 100 ms up to 10 s, as Lambda backs off.
    pub const fn invocation() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// A shard reader that was throttled or could not reach its service.
    pub const fn reader() -> Backoff {
        Backoff::new(Duration::from_millis(200), Duration::from_secs(5))
    }

    /// Starting over: a mapping whose source or store is unreachable, a shard
    /// loop that hit an error, the lease table at start-up.
    pub const fn restart() -> Backoff {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(5))
    }

    /// The wait after one more failure.
    pub fn next_wait(&mut self) -> Duration {
        let full = self.first.saturating_mul(1 << self.failures.min(16)).min(self.max);
        self.failures = self.failures.saturating_add(1);
        full.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Waits [`Backoff::next_wait`], unless `cancel` fires first.
    pub async fn wait(&mut self, cancel: &CancellationToken) -> Waited {
        pause(cancel, self.next_wait()).await
    }

    /// Whether the last call failed.
    pub fn failing(&self) -> bool {
        self.failures > 0
    }

    /// The call succeeded: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// How a cancellable wait ended.
#[must_use = "a cancelled wait means the caller is to stop"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    Elapsed,
    Cancelled,
}

/// Sleeps for `wait`, unless `cancel` fires first.
pub async fn pause(cancel: &CancellationToken, wait: Duration) -> Waited {
    until_cancelled(cancel, tokio::time::sleep(wait)).await
}

/// Waits for `wait` to finish, unless `cancel` fires first.
pub async fn until_cancelled(cancel: &CancellationToken, wait: impl std::future::Future<Output = ()>) -> Waited {
    tokio::select! {
        () = cancel.cancelled() => Waited::Cancelled,
        () = wait => Waited::Elapsed,
    }
}

/// Sleeps until `deadline`, unless `cancel` fires first.
pub async fn pause_until(cancel: &CancellationToken, deadline: tokio::time::Instant) -> Waited {
    until_cancelled(cancel, tokio::time::sleep_until(deadline)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter() {
        let first = Duration::from_millis(200);
        let max = Duration::from_secs(5);
        let mut backoff = Backoff::new(first, max);
        let waits: Vec<Duration> = (0..40).map(|_| backoff.next_wait()).collect();
        assert!(waits[0] >= first / 2 && waits[0] <= first, "{waits:?}");
        assert!(waits[3] >= first * 4 && waits[3] <= first * 8, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= max), "{waits:?}");
        assert!(waits[39] >= max / 2, "{waits:?}");
        // Not all the same: jittered.
        assert!(waits[20..].windows(2).any(|w| w[0] != w[1]), "{waits:?}");
        assert!(backoff.failing());
        backoff.reset();
        assert!(backoff.next_wait() <= first);
    }

    #[tokio::test]
    async fn a_wait_ends_when_it_is_cancelled() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let started = std::time::Instant::now();
        assert_eq!(pause(&cancel, Duration::from_secs(60)).await, Waited::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(pause(&CancellationToken::new(), Duration::from_millis(1)).await, Waited::Elapsed);
    }
}
