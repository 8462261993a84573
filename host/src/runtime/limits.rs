//! Per-invocation limits: memory through a resource limiter, time through the
//! epoch deadline, log output and the response's size by counting. Each has an
//! error type of its own so that the invoker can tell a timeout or an
//! out-of-memory from any other trap.

use std::time::Duration;

/// The invocation ran past its timeout.
#[derive(Debug, thiserror::Error)]
#[error("the invocation timed out after {0:?}")]
pub struct TimedOut(pub Duration);

/// The guest asked for more memory than its limit.
#[derive(Debug, thiserror::Error)]
#[error("the function's memory limit of {limit_mb} MB was exceeded (it asked for {desired_mb} MB)")]
pub struct MemoryLimitExceeded {
    pub limit_mb: usize,
    pub desired_mb: usize,
}

/// The invocation wrote more log output than its limit.
#[derive(Debug, thiserror::Error)]
#[error("the function's log limit of {limit_bytes} bytes per invocation (LogLimitBytes) was exceeded")]
pub struct LogLimitExceeded {
    pub limit_bytes: usize,
}

/// Lambda's limit on a function's response (synchronous invocation): 6 MB.
pub const RESPONSE_LIMIT_BYTES: usize = 6 * 1024 * 1024;

/// Caps each linear memory of an instance at the function's memory limit, and
/// counts what its memories hold (a warm instance is replaced once that grew
/// too much).
pub struct MemoryLimiter {
    pub limit_bytes: usize,
    /// Bytes of linear memory the instance's memories were given so far.
    pub allocated_bytes: usize,
}

impl MemoryLimiter {
    pub fn new(limit_bytes: usize) -> MemoryLimiter {
        MemoryLimiter { limit_bytes, allocated_bytes: 0 }
    }
}

/// Table growth past this many elements is refused.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit_bytes {
            // An error (rather than `Ok(false)`) traps at once, with a message that
            // names the limit, instead of leaving the guest to abort in its allocator.
            return Err(MemoryLimitExceeded { limit_mb: self.limit_bytes >> 20, desired_mb: desired.div_ceil(1 << 20) }.into());
        }
        self.allocated_bytes += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
