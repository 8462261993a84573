//! The host's memory budget: the `MemorySize` of every invocation running at
//! once must fit in it. Each function's memory is capped at its `MemorySize`
//! (the resource limiter), but many invocations together could still ask for
//! more than the machine has; so an invocation first reserves its `MemorySize`
//! from the budget, waiting while the others' reservations leave too little,
//! and returns it when it ends. A function whose `MemorySize` is over the whole
//! budget is refused when it loads.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Reservations in MB.
pub struct MemoryBudget {
    total_mb: u32,
    available: Semaphore,
}

impl MemoryBudget {
    pub fn new(total_mb: u64) -> MemoryBudget {
        let total_mb = total_mb.clamp(1, u64::from(u32::MAX >> 3)) as u32;
        MemoryBudget { total_mb, available: Semaphore::new(total_mb as usize) }
    }

    /// Three quarters of the machine's memory (`MemTotal` in /proc/meminfo), or
    /// 4 GB where that cannot be read.
    pub fn default_total_mb() -> u64 {
        let from_meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024 * 3 / 4)
        });
        from_meminfo.filter(|mb| *mb > 0).unwrap_or(4096)
    }

    pub fn total_mb(&self) -> u64 {
        u64::from(self.total_mb)
    }

    /// Reserves `mb` (at most the whole budget) until the permit is dropped.
    pub async fn reserve(&self, mb: u32) -> Option<SemaphorePermit<'_>> {
        self.available.acquire_many(mb.clamp(1, self.total_mb)).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_until_the_budget_has_room() {
        let budget = MemoryBudget::new(1024);
        let first = budget.reserve(512).await.expect("room");
        let second = budget.reserve(512).await.expect("room");
        // A third 512 MB invocation waits for one of them to end.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), budget.reserve(512)).await;
        assert!(waiting.is_err(), "the budget is spent");
        drop(first);
        let third = tokio::time::timeout(std::time::Duration::from_millis(500), budget.reserve(512)).await;
        assert!(third.is_ok_and(|p| p.is_some()), "room again once one ended");
        drop(second);
        // More than the whole budget is held to the whole budget, which is free now.
        let all = tokio::time::timeout(std::time::Duration::from_millis(500), budget.reserve(4096)).await;
        assert!(all.is_ok_and(|p| p.is_some()));
    }
}
