//! The Wasm runtime: one wasmtime engine for the host, components loaded and
//! pre-linked once per function version, and an instance per shard kept warm
//! between its invocations ([`warm`]).
//!
//! Serving practice from wasmtime and Spin: the pooling instance allocator with
//! copy-on-write memory images makes instantiation a matter of microseconds,
//! `InstancePre` does the linking once, and epoch interruption bounds each call in
//! time at a cost far below fuel's.

mod cache;
mod compile_gate;
mod epoch;
mod host_state;
pub mod ration;
pub mod memory_budget;
pub mod component;
mod componentize;
pub mod invoke;
mod limits;
pub mod packed;
mod load_error;
pub mod resident;
mod warm;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy};

pub use cache::content_digest;
pub use component::{LoadError, LoadedComponent, World};
pub use invoke::{HandlerResponse, InvokeError, InvokeRequest};
pub use resident::ResidentComponent;
pub use warm::InstanceSlot;
use host_state::HostState;

/// How often the epoch ticks: the granularity of timeouts, and how often a busy
/// guest yields its thread to other tasks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of the engine, fixed for the life of the host.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instances that can be alive at once (the pooling allocator's slots).
    pub max_instances: u32,
    /// The largest memory any function may be given, in MB (a pool slot's size).
    pub max_memory_mb: u64,
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// The compile cache's size; past it the least recently used entries go.
    pub cache_limit_bytes: u64,
    /// The MB that the `MemorySize` of the invocations running at once may add
    /// up to; `None`: three quarters of the machine's memory.
    pub memory_budget_mb: Option<u64>,
    /// Name guest functions for Linux `perf`, in `/tmp/perf-PID.map`, so that a
    /// profile shows where a handler's time goes inside its component (README,
    /// "Profiling a handler"). Set by `EDDY_PERF_MAP=1`.
    pub perf_map: bool,
}

/// The compile cache's default size limit.
pub const DEFAULT_CACHE_LIMIT_BYTES: u64 = 2 << 30;

/// The per-user compile cache of commands that have no data directory
/// (`eddy invoke`): `$EDDY_CACHE_DIR`, else `$XDG_CACHE_HOME/eddy/compiled`, else
/// `~/.cache/eddy/compiled`; `None` when there is no home to put it in.
pub fn user_cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("EDDY_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("eddy/compiled")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/eddy/compiled")))
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_instances: 128,
            max_memory_mb: 4096,
            cache_dir: None,
            cache_limit_bytes: DEFAULT_CACHE_LIMIT_BYTES,
            memory_budget_mb: None,
            perf_map: std::env::var_os("EDDY_PERF_MAP").is_some_and(|v| v == "1"),
        }
    }
}

/// The engine, the linker with the host's imports, and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    cache_limit_bytes: u64,
    /// Cached components are read into memory instead of mapped from their file:
    /// `perf` reads a perf map only for code outside any file.
    perf_map: bool,
    compile_gate: compile_gate::CompileGate,
    /// Guest CPU rationed between functions while several are busy.
    rations: Arc<ration::CpuRations>,
    /// What the running invocations' `MemorySize` may add up to.
    memory: memory_budget::MemoryBudget,
    /// Places for idle warm instances: half the instance slots.
    warm_slots: Arc<tokio::sync::Semaphore>,
    /// Drops warm instances idle too long.
    reaper: Arc<warm::Reaper>,
    /// Advances the epoch while guests run.
    ticker: epoch::EpochTicker,
    /// Stops the reaper's thread.
    reaper_stop: Arc<AtomicBool>,
}

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> anyhow::Result<Runtime> {
        let engine = match Engine::new(&engine_config(config, true)) {
            Ok(engine) => engine,
            Err(error) => {
                // The pool reserves address space up front; where that is refused
                // (a low `ulimit -v`), fall back to allocating on demand.
                tracing::warn!("pooling allocator unavailable ({error:#}); allocating instances on demand");
                Engine::new(&engine_config(config, false)).map_err(|e| anyhow::anyhow!("cannot start wasmtime: {e:#}"))?
            }
        };
        let mut linker = Linker::new(&engine);
        // The runtime's own imports (logging, the invocation's clock), then
        // every capability, each reaching its state through a projection.
        host_state::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("cannot link the host's handler imports: {e:#}"))?;
        crate::capability::add_to_linker(&mut linker)?;

        let ticker = epoch::EpochTicker::start(engine.clone())?;
        let reaper_stop = Arc::new(AtomicBool::new(false));
        let reaper = Arc::new(warm::Reaper::default());
        let (reaper_of_thread, stop) = (Arc::clone(&reaper), Arc::clone(&reaper_stop));
        std::thread::Builder::new()
            .name("eddy-reaper".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(warm::REAPER_INTERVAL);
                    reaper_of_thread.reap();
                }
            })
            .context("cannot start the warm instances' reaper")?;

        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the compile cache {}", dir.display()))?;
        }
        Ok(Runtime {
            engine,
            linker,
            cache_dir: config.cache_dir.clone(),
            cache_limit_bytes: config.cache_limit_bytes,
            perf_map: config.perf_map,
            compile_gate: compile_gate::CompileGate::default(),
            rations: Arc::default(),
            memory: memory_budget::MemoryBudget::new(
                config.memory_budget_mb.unwrap_or_else(memory_budget::MemoryBudget::default_total_mb),
            ),
            warm_slots: warm::warm_slots(config.max_instances),
            reaper,
            ticker,
            reaper_stop,
        })
    }
}

impl Runtime {
    /// The host's memory budget in MB, which no function's `MemorySize` may pass.
    pub fn memory_budget_mb(&self) -> u64 {
        self.memory.total_mb()
    }
}

/// Gives the memory the allocator holds free back to the kernel, on the
/// blocking pool. Loading a function reads its component (JavaScript and
/// Python ones are 12-20 MB) and a compile allocates far more; glibc keeps what
/// they freed in its arenas, so a host that loaded many functions would stay
/// hundreds of MB larger than it needs (`cargo bench --bench density`). Calls
/// while one is pending are folded into it.
pub fn give_back_free_memory() {
    static PENDING: AtomicBool = AtomicBool::new(false);
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::task::spawn_blocking(|| {
        PENDING.store(false, Ordering::Release);
        trim_free_memory();
    });
}

/// Gives the allocator's free memory back to the kernel now (blocking).
fn trim_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.reaper_stop.store(true, Ordering::Relaxed);
    }
}

fn engine_config(config: &RuntimeConfig, pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.memory_init_cow(true);
    if config.perf_map {
        c.profiler(ProfilingStrategy::PerfMap);
    }
    if pooling {
        let slots = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(slots);
        // A component may hold several core instances (an adapter, a runtime).
        pool.total_core_instances(slots * 4);
        pool.total_memories(slots * 2);
        pool.total_tables(slots * 4);
        pool.total_stacks(slots);
        pool.max_memory_size((config.max_memory_mb as usize) << 20);
        pool.max_core_instance_size(4 << 20);
        pool.max_component_instance_size(4 << 20);
        pool.max_tables_per_component(64);
        pool.max_memories_per_component(8);
        pool.table_elements(1 << 20);
        // Return freed slots' pages to the kernel in batches: one madvise (and one
        // round of TLB shootdowns across cores) per batch rather than per instance.
        pool.decommit_batch_size(16);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}
