//! The data of one invocation's store ([`HostState`]): its limits, deadline,
//! CPU ration and log budget, and the capabilities; and the runtime's own host
//! imports (`log`, `invocation`), which need nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi::{WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use super::limits::{LogLimitExceeded, MemoryLimiter};
use crate::capability::{Capabilities, HasCapabilities};
use crate::contract::{errors, invocation, log, types};

/// When an invocation times out: its timeout from the start, moved later by
/// every pause of rationing. Shared by the epoch callback, which pauses, and
/// the host-side timer, which stops a call blocked in the host.
#[derive(Clone)]
pub(super) struct Deadline {
    unpaused: Instant,
    paused_us: Arc<std::sync::atomic::AtomicU64>,
}

impl Deadline {
    pub(super) fn new(timeout: Duration) -> Deadline {
        Deadline { unpaused: Instant::now() + timeout, paused_us: Arc::default() }
    }

    pub(super) fn at(&self) -> Instant {
        self.unpaused + Duration::from_micros(self.paused_us.load(std::sync::atomic::Ordering::Relaxed))
    }

    pub(super) fn extend(&self, pause: Duration) {
        self.paused_us.fetch_add(pause.as_micros() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The data of one invocation's store.
pub struct HostState {
    pub(super) limiter: MemoryLimiter,
    pub(super) function: Arc<str>,
    pub(super) shard: Arc<str>,
    pub(super) request_id: String,
    pub(super) deadline: Deadline,
    pub(super) timeout: Duration,
    /// The function's CPU ration, and when the guest last started running.
    pub(super) ration: Arc<super::ration::Ration>,
    pub(super) rations: Arc<super::ration::CpuRations>,
    pub(super) running_since: Instant,
    /// Log bytes written so far, and the limit.
    pub(super) log_bytes: usize,
    pub(super) log_limit: usize,
    /// What the capabilities keep for this invocation (WASI, HTTP, the role).
    pub(super) capabilities: Capabilities,
}

impl HostState {
    /// Readies the state for an invocation (of a new or a warm instance): its
    /// request id, deadline and CPU ration, and a log budget of its own.
    pub(super) fn begin(&mut self, request_id: String, deadline: Deadline, ration: Arc<super::ration::Ration>) {
        self.request_id = request_id;
        self.deadline = deadline;
        self.ration = ration;
        self.running_since = Instant::now();
        self.log_bytes = 0;
    }

    /// Writes what a WASI guest printed during this invocation to the log, a
    /// line at a time, within what is left of the log limit.
    pub(super) fn flush_output(&mut self) {
        let Some(output) = self.capabilities.output().cloned() else { return };
        for (stream, pipe) in [("stdout", output.stdout), ("stderr", Some(output.stderr))] {
            let Some(pipe) = pipe else { continue };
            let drained = pipe.drain();
            let mut left_out = drained.dropped > 0;
            for line in String::from_utf8_lossy(&drained.bytes).lines().filter(|l| !l.is_empty()) {
                if self.log_bytes + line.len() > self.log_limit {
                    left_out = true;
                    break;
                }
                self.log_bytes += line.len();
                tracing::info!(target: "handler", function = %self.function, shard = %self.shard,
                    request_id = %self.request_id, stream, "{line}");
            }
            if left_out {
                tracing::warn!(target: "handler", function = %self.function, shard = %self.shard,
                    request_id = %self.request_id, stream, "output past the log limit left out");
            }
        }
    }
}

// WASI and wasi:http find their state in the capabilities.
impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.capabilities.wasi()
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.capabilities.http()
    }
}

impl HasCapabilities for HostState {
    fn capabilities(&mut self) -> &mut Capabilities {
        &mut self.capabilities
    }
}

/// Links the runtime's own imports: the types, `log` and `invocation`.
pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    errors::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    log::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    invocation::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

impl errors::Host for HostState {}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) -> wasmtime::Result<()> {
        // The limit counts what the handler wrote, so a flood is cut off after
        // a bounded amount of work for the host.
        self.log_bytes += message.len() + fields.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>();
        if self.log_bytes > self.log_limit {
            return Err(LogLimitExceeded { limit_bytes: self.log_limit }.into());
        }
        // As one JSON object, which the JSON log spreads into the line's fields.
        let fields = (!fields.is_empty()).then(|| {
            Value::Object(fields.into_iter().map(|(k, v)| (k, Value::String(v))).collect()).to_string()
        });
        macro_rules! emit {
            ($level:expr) => {
                match &fields {
                    None => tracing::event!(target: "handler", $level, function = %self.function, shard = %self.shard,
                        request_id = %self.request_id, "{message}"),
                    Some(fields) => tracing::event!(target: "handler", $level, function = %self.function, shard = %self.shard,
                        request_id = %self.request_id, handler_fields = %fields, "{message}"),
                }
            };
        }
        match level {
            log::Level::Trace => emit!(tracing::Level::TRACE),
            log::Level::Debug => emit!(tracing::Level::DEBUG),
            log::Level::Info => emit!(tracing::Level::INFO),
            log::Level::Warn => emit!(tracing::Level::WARN),
            log::Level::Error => emit!(tracing::Level::ERROR),
        }
        Ok(())
    }
}

impl invocation::Host for HostState {
    fn remaining_time_ms(&mut self) -> u64 {
        self.deadline.at().saturating_duration_since(Instant::now()).as_millis() as u64
    }
}
