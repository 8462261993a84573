//! What the host is doing, for `/status`, `/metrics` and `eddy status`: each
//! function's state and, per shard, its checkpoint, counters and last error.
//!
//! Shard loops update their own entry once per invocation (one uncontended lock);
//! readers take a snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A function's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FunctionState {
    /// One of its two files is missing, or still being written.
    Waiting,
    /// Its files have been read; the component is being compiled and checked.
    Loading,
    /// Loaded; its mapping runs.
    Running,
    /// Loaded, but the manifest says `Enabled = false`.
    Disabled,
    /// Loaded, and paused by `eddy mapping pause` until `eddy mapping resume`.
    Paused,
    /// It could not be loaded; `error` says why. A previous version may still run.
    Failed,
}

impl FunctionState {
    /// The state as `/status` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionState::Waiting => "waiting",
            FunctionState::Loading => "loading",
            FunctionState::Running => "running",
            FunctionState::Disabled => "disabled",
            FunctionState::Paused => "paused",
            FunctionState::Failed => "failed",
        }
    }
}

/// A function, as `/status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionStatus {
    pub name: String,
    pub state: FunctionState,
    /// The world of the running version.
    pub world: Option<Cow<'static, str>>,
    /// SHA-256 of the running version's component.
    pub digest: Option<String>,
    pub source: Option<String>,
    /// The mapping's UUID, as Lambda names a mapping (it is in the keys of the
    /// objects an S3 destination gets).
    pub uuid: Option<String>,
    /// The execution role's name.
    pub role: Option<String>,
    /// Capability calls the role denied, by action.
    pub access_denied: BTreeMap<String, u64>,
    /// The mapping's last call to its source (describe, list shards) succeeded.
    pub source_reachable: bool,
    /// Why the last load failed, or what the function waits for.
    pub error: Option<String>,
    /// Lambda's `LastProcessingResult`: that of the most recent invocation of
    /// any of its shards.
    pub last_processing_result: ProcessingResult,
    pub shards: Vec<ShardStatus>,
    /// In cluster mode: this host's part in sharing the mapping's shards.
    pub cluster: Option<ClusterStatus>,
    /// The last rewind (`eddy mapping rewind`) this host has carried out on the
    /// mapping's shards.
    #[serde(default)]
    pub rewound: Option<RewindDone>,
}

/// A rewind carried out, as `/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewindDone {
    pub id: u64,
    /// Where to, as the operator would read it.
    pub to: String,
}

/// A leased mapping, as this host sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This host's name in the lease table.
    pub worker: String,
    /// The lease table has been read at least once.
    pub synced: bool,
    /// Why the last look at the lease table failed.
    pub error: Option<String>,
}

/// One lease of a mapping, as read from the lease table.
#[derive(Debug, Clone)]
pub struct LeaseStatus {
    pub shard: String,
    pub owner: Option<String>,
    pub checkpoint: Option<crate::store::Checkpoint>,
}

impl FunctionStatus {
    /// A function known only by name and state: nothing loaded, no shards yet.
    pub fn new(name: &str, state: FunctionState) -> FunctionStatus {
        FunctionStatus {
            name: name.to_owned(),
            state,
            world: None,
            digest: None,
            source: None,
            uuid: None,
            role: None,
            access_denied: BTreeMap::new(),
            source_reachable: false,
            error: None,
            last_processing_result: ProcessingResult::NoRecordsProcessed,
            shards: Vec::new(),
            cluster: None,
            rewound: None,
        }
    }
}

/// Where a shard's processing stands (Lambda's LastProcessingResult, per shard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ShardState {
    /// Reading and invoking as records come.
    #[default]
    Ok,
    /// A batch failed and waits for its next attempt: the shard goes no further
    /// until the batch succeeds or its retries run out.
    Retrying {
        /// The attempt to come, counting the first (2: the first retry).
        next_attempt: u32,
        /// The attempts the batch may have in all (`None`: MaximumRetryAttempts
        /// = -1, retried until it succeeds or its records expire).
        max_attempts: Option<u32>,
        /// When the batch first failed (ms since the epoch).
        retrying_since_ms: u64,
    },
    /// A batch was discarded, and the on-failure destination refuses its record:
    /// the shard waits, retrying the destination, until it accepts.
    DestinationRefused {
        /// Sends refused so far.
        attempts: u32,
        /// When the destination first refused (ms since the epoch).
        refused_since_ms: u64,
    },
    /// Closed, and every record of it is done.
    Finished,
}

/// Lambda's `LastProcessingResult`: how the mapping's last invocation went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessingResult {
    /// Nothing has been invoked yet.
    #[default]
    #[serde(rename = "No records processed")]
    NoRecordsProcessed,
    /// The function returned (whatever its response said of the batch's records).
    #[serde(rename = "OK")]
    Ok,
    /// The function raised, trapped, ran out of memory or time.
    #[serde(rename = "PROBLEM: Function call failed")]
    FunctionCallFailed,
}

impl ProcessingResult {
    /// Lambda's words for it, as `/status` writes them.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessingResult::NoRecordsProcessed => "No records processed",
            ProcessingResult::Ok => "OK",
            ProcessingResult::FunctionCallFailed => "PROBLEM: Function call failed",
        }
    }
}

/// One shard of a mapping.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ShardStatus {
    pub shard: String,
    #[serde(flatten)]
    pub state: ShardState,
    /// In cluster mode: the host holding the shard's lease.
    pub owner: Option<String>,
    pub checkpoint: Option<crate::store::Checkpoint>,
    pub invocations: u64,
    pub failed_invocations: u64,
    pub records_processed: u64,
    /// Records discarded: retries spent or too old (Lambda's DroppedEventCount).
    pub records_discarded: u64,
    /// Records read from the shard (Lambda's PolledEventCount).
    pub polled_events: u64,
    /// Records the filters dropped (FilteredOutEventCount).
    pub filtered_out_events: u64,
    /// Records handed to the function, retries included (InvokedEventCount).
    pub invoked_events: u64,
    /// Records of invocations that failed, wholly or partly (FailedInvokeEventCount).
    pub failed_invoke_events: u64,
    /// Discarded records whose failure record the destination accepted
    /// (OnFailureDestinationDeliveredEventCount).
    pub destination_delivered_events: u64,
    /// How long invocations took.
    pub invocation_duration: DurationHistogram,
    /// Age of the newest record of the last batch, when it was invoked (Lambda's IteratorAge).
    pub iterator_age_ms: u64,
    pub last_error: Option<String>,
    /// How this shard's last invocation went, and when it ended (ms since the
    /// epoch; 0 before the first).
    pub last_processing_result: ProcessingResult,
    pub last_processing_result_ms: u64,
    /// Counts of function errors by kind (`timeout`, `trap`, ...).
    pub errors_by_kind: BTreeMap<Cow<'static, str>, u64>,
    /// Instances of the function started for this shard: one serves batch
    /// after batch until an error or a bound of `[ExecutionEnvironment]`
    /// retires it (Lambda's cold starts).
    #[serde(default)]
    pub instances_started: u64,
}

/// Upper bounds of the invocation-duration histogram's buckets, in seconds:
/// from a fast Wasm call to Lambda's 900 s limit.
pub const DURATION_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 900.0];

/// A Prometheus histogram of durations: a count per bucket of
/// [`DURATION_BUCKETS`] (not cumulative; the exposition sums them), the total
/// count and the sum in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DurationHistogram {
    #[serde(skip)]
    buckets: [u64; DURATION_BUCKETS.len()],
    pub count: u64,
    pub sum_seconds: f64,
}

impl DurationHistogram {
    pub fn observe(&mut self, duration: std::time::Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }

    /// `(le, cumulative count)` for each bucket, then `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        let mut running = 0;
        DURATION_BUCKETS
            .iter()
            .zip(self.buckets)
            .map(move |(bound, n)| {
                running += n;
                (bound.to_string(), running)
            })
            .chain(std::iter::once(("+Inf".to_owned(), self.count)))
    }
}

/// What `/status` serves, and `eddy status` reads back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    pub functions: Vec<FunctionStatus>,
    pub streams: Vec<crate::source::local::StreamDescription>,
    pub checkpoints: Vec<crate::store::StoredCheckpoint>,
}

/// The handle a shard loop updates.
pub type ShardHandle = Arc<Mutex<ShardStatus>>;

struct FunctionEntry {
    status: FunctionStatus,
    shards: Vec<ShardHandle>,
    /// In cluster mode, every lease of the mapping (most run on other hosts).
    leases: Vec<LeaseStatus>,
}

/// How many samples the history keeps (at [`HISTORY_INTERVAL`]: five minutes).
pub const HISTORY_SAMPLES: usize = 150;
/// How often the history takes a sample of every function's counters.
pub const HISTORY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// One function's counters at a moment, for the status page's charts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SampleValues {
    /// Totals since the host started; the page charts their rates.
    pub invocations: u64,
    pub failed_invocations: u64,
    pub records_processed: u64,
    /// The largest iterator age over the function's shards.
    pub iterator_age_ms: u64,
}

/// Every function's counters at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub at_ms: u64,
    pub functions: BTreeMap<String, SampleValues>,
}

/// Every function's status.
#[derive(Default)]
pub struct StatusBoard {
    functions: Mutex<BTreeMap<String, FunctionEntry>>,
    /// The last [`HISTORY_SAMPLES`] samples, oldest first.
    history: Mutex<std::collections::VecDeque<Sample>>,
    /// The functions folder has been read once: until then nothing is known.
    scanned: std::sync::atomic::AtomicBool,
}

impl StatusBoard {
    /// Sets a function's state, keeping its shards unless `clear_shards`.
    pub fn set_function(&self, status: FunctionStatus, clear_shards: bool) {
        if let Ok(mut functions) = self.functions.lock() {
            let entry = functions
                .entry(status.name.clone())
                .or_insert_with(|| FunctionEntry { status: status.clone(), shards: Vec::new(), leases: Vec::new() });
            // Counters outlive versions, as Prometheus expects of a counter.
            let denied = std::mem::take(&mut entry.status.access_denied);
            let cluster = entry.status.cluster.take();
            entry.status = status;
            entry.status.access_denied = denied;
            entry.status.cluster = entry.status.cluster.take().or(cluster);
            if clear_shards {
                entry.shards.clear();
                entry.leases.clear();
            }
        }
    }

    /// Records a load failure without forgetting the version that still runs.
    pub fn set_error(&self, name: &str, state: FunctionState, error: String) {
        if let Ok(mut functions) = self.functions.lock() {
            let entry = functions
                .entry(name.to_owned())
                .or_insert_with(|| FunctionEntry { status: FunctionStatus::new(name, state), shards: Vec::new(), leases: Vec::new() });
            if entry.status.digest.is_none() || state != FunctionState::Failed {
                entry.status.state = state;
            }
            entry.status.error = Some(error);
        }
    }

    /// Marks a loaded function as not running, with the reason.
    pub fn set_failed(&self, name: &str, error: String) {
        if let Ok(mut functions) = self.functions.lock()
            && let Some(entry) = functions.get_mut(name)
        {
            entry.status.state = FunctionState::Failed;
            entry.status.error = Some(error);
        }
    }

    /// Shows a running mapping as paused, or a paused one as running again.
    pub fn set_paused(&self, name: &str, paused: bool) {
        if let Ok(mut functions) = self.functions.lock()
            && let Some(entry) = functions.get_mut(name)
        {
            match (entry.status.state, paused) {
                (FunctionState::Running, true) => entry.status.state = FunctionState::Paused,
                (FunctionState::Paused, false) => entry.status.state = FunctionState::Running,
                _ => {}
            }
        }
    }

    /// Notes a rewind this host carried out on the mapping's shards.
    pub fn set_rewound(&self, name: &str, rewound: RewindDone) {
        if let Ok(mut functions) = self.functions.lock()
            && let Some(entry) = functions.get_mut(name)
        {
            entry.status.rewound = Some(rewound);
        }
    }

    /// A function's status, if it is known.
    pub fn function(&self, name: &str) -> Option<FunctionStatus> {
        self.snapshot().into_iter().find(|f| f.name == name)
    }

    /// A function's error, if it has one.
    pub fn error(&self, name: &str) -> Option<String> {
        self.functions.lock().ok()?.get(name)?.status.error.clone()
    }

    pub fn clear_error(&self, name: &str) {
        if let Ok(mut functions) = self.functions.lock()
            && let Some(entry) = functions.get_mut(name)
        {
            entry.status.error = None;
        }
    }

    /// Notes whether a function's mapping reached its source on its last try.
    pub fn set_source_reachable(&self, name: &str, reachable: bool) {
        if let Ok(mut functions) = self.functions.lock()
            && let Some(entry) = functions.get_mut(name)
        {
            entry.status.source_reachable = reachable;
        }
    }

    /// Takes a sample of every function's counters into the history.
    pub fn take_sample(&self) {
        let functions = self
            .snapshot()
            .into_iter()
            .map(|f| {
                let sum = |counter: fn(&ShardStatus) -> u64| f.shards.iter().map(counter).sum::<u64>();
                let values = SampleValues {
                    invocations: sum(|s| s.invocations),
                    failed_invocations: sum(|s| s.failed_invocations),
                    records_processed: sum(|s| s.records_processed),
                    iterator_age_ms: f.shards.iter().map(|s| s.iterator_age_ms).max().unwrap_or(0),
                };
                (f.name, values)
            })
            .collect();
        if let Ok(mut history) = self.history.lock() {
            if history.len() == HISTORY_SAMPLES {
                history.pop_front();
            }
            history.push_back(Sample { at_ms: crate::store::now_ms(), functions });
        }
    }

    /// The samples taken so far, oldest first.
    pub fn history(&self) -> Vec<Sample> {
        self.history.lock().map(|h| h.iter().cloned().collect()).unwrap_or_default()
    }

    /// The registry has read the functions folder once.
    pub fn mark_scanned(&self) {
        self.scanned.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the host is ready to serve (`/readyz`): the folder has been read,
    /// no function failed to load, and every running function's mapping has
    /// reached its source. `Err` lists what is not ready.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        let mut waiting = Vec::new();
        if !self.scanned.load(std::sync::atomic::Ordering::Relaxed) {
            waiting.push("the functions folder has not been read yet".to_owned());
        }
        for f in self.snapshot() {
            match f.state {
                FunctionState::Failed => {
                    waiting.push(format!("{}: failed: {}", f.name, f.error.as_deref().unwrap_or("no reason given")))
                }
                FunctionState::Loading => waiting.push(format!("{}: loading", f.name)),
                FunctionState::Running if !f.source_reachable => waiting.push(format!(
                    "{}: its source is not reached yet{}",
                    f.name,
                    f.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                )),
                FunctionState::Running => match &f.cluster {
                    Some(ClusterStatus { error: Some(error), .. }) => {
                        waiting.push(format!("{}: the lease table cannot be used ({error})", f.name))
                    }
                    Some(ClusterStatus { synced: false, .. }) => {
                        waiting.push(format!("{}: its leases are not taken yet", f.name))
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        if waiting.is_empty() { Ok(()) } else { Err(waiting) }
    }

    /// Counts a capability call that the function's role denied.
    pub fn count_denied(&self, function: &str, action: &str) {
        if let Ok(mut functions) = self.functions.lock()
            && let Some(entry) = functions.get_mut(function)
        {
            *entry.status.access_denied.entry(action.to_owned()).or_default() += 1;
        }
    }

    /// Forgets every function whose name `keep` rejects.
    pub fn retain_functions(&self, mut keep: impl FnMut(&str) -> bool) {
        if let Ok(mut functions) = self.functions.lock() {
            functions.retain(|name, _| keep(name));
        }
    }

    pub fn remove_function(&self, name: &str) {
        if let Ok(mut functions) = self.functions.lock() {
            functions.remove(name);
        }
    }

    /// Marks a function's mapping as leased by `worker` (cluster mode).
    pub fn set_clustered(&self, function: &str, worker: &str) {
        self.with_entry(function, |entry| {
            entry.status.cluster = Some(ClusterStatus { worker: worker.to_owned(), synced: false, error: None });
            entry.leases.clear();
        });
    }

    /// The mapping's leases as last read from the lease table.
    pub fn set_leases(&self, function: &str, leases: Vec<LeaseStatus>) {
        self.with_entry(function, |entry| {
            entry.leases = leases;
            if let Some(cluster) = &mut entry.status.cluster {
                cluster.synced = true;
            }
        });
    }

    /// Why the lease table could not be used, or `None` once it could.
    pub fn set_lease_error(&self, function: &str, error: Option<String>) {
        self.with_entry(function, |entry| {
            if let Some(cluster) = &mut entry.status.cluster {
                cluster.error = error;
            }
        });
    }

    fn with_entry(&self, function: &str, change: impl FnOnce(&mut FunctionEntry)) {
        if let Ok(mut functions) = self.functions.lock()
            && let Some(entry) = functions.get_mut(function)
        {
            change(entry);
        }
    }

    /// A new shard entry for a function's mapping.
    pub fn add_shard(&self, function: &str, shard: &str) -> ShardHandle {
        let handle = Arc::new(Mutex::new(ShardStatus { shard: shard.to_owned(), ..Default::default() }));
        if let Ok(mut functions) = self.functions.lock()
            && let Some(entry) = functions.get_mut(function)
        {
            entry.shards.retain(|s| s.lock().map(|s| s.shard != shard).unwrap_or(false));
            entry.shards.push(Arc::clone(&handle));
        }
        handle
    }

    /// A copy of every function's status.
    pub fn snapshot(&self) -> Vec<FunctionStatus> {
        let Ok(functions) = self.functions.lock() else { return Vec::new() };
        functions
            .values()
            .map(|entry| {
                let mut status = entry.status.clone();
                status.shards = entry.shards.iter().filter_map(|s| s.lock().ok().map(|s| s.clone())).collect();
                // In cluster mode every shard shows its owner; those run by other
                // hosts show what the lease table knows of them.
                for lease in &entry.leases {
                    match status.shards.iter_mut().find(|s| s.shard == lease.shard) {
                        Some(shard) => shard.owner = lease.owner.clone(),
                        None => status.shards.push(ShardStatus {
                            shard: lease.shard.clone(),
                            owner: lease.owner.clone(),
                            checkpoint: lease.checkpoint.clone(),
                            state: if lease.checkpoint.as_ref().is_some_and(crate::store::Checkpoint::is_shard_end) {
                                ShardState::Finished
                            } else {
                                ShardState::Ok
                            },
                            ..Default::default()
                        }),
                    }
                }
                status.shards.sort_by(|a, b| a.shard.cmp(&b.shard));
                status.last_processing_result = last_processing_result(&status.shards);
                status
            })
            .collect()
    }
}

/// The mapping's result: its most recent invocation's, over every shard.
fn last_processing_result(shards: &[ShardStatus]) -> ProcessingResult {
    shards
        .iter()
        .filter(|s| s.last_processing_result_ms > 0)
        .max_by_key(|s| s.last_processing_result_ms)
        .map_or(ProcessingResult::NoRecordsProcessed, |s| s.last_processing_result)
}

/// The status in Prometheus's text format: counters end in `_total`, times are
/// in seconds, durations are histograms.
pub fn prometheus(functions: &[FunctionStatus]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP eddy_build_info The running Eddy's version.\n# TYPE eddy_build_info gauge");
    let _ = writeln!(out, "eddy_build_info{{version=\"{}\",wasmtime=\"48\"}} 1", env!("CARGO_PKG_VERSION"));
    type Metric = (&'static str, &'static str, fn(&ShardStatus) -> f64);
    let metrics: [Metric; 12] = [
        ("eddy_invocations_total", "Invocations of the function, retries included.", |s| s.invocations as f64),
        ("eddy_failed_invocations_total", "Invocations that ended in a function error or a failed batch.", |s| s.failed_invocations as f64),
        ("eddy_records_processed_total", "Records the function finished with.", |s| s.records_processed as f64),
        ("eddy_polled_events_total", "Records read from the shard (Lambda's PolledEventCount).", |s| s.polled_events as f64),
        ("eddy_filtered_out_events_total", "Records dropped by FilterCriteria (FilteredOutEventCount).", |s| s.filtered_out_events as f64),
        ("eddy_invoked_events_total", "Records handed to the function, retries included (InvokedEventCount).", |s| s.invoked_events as f64),
        ("eddy_failed_invoke_events_total", "Records of failed invocations (FailedInvokeEventCount).", |s| s.failed_invoke_events as f64),
        ("eddy_dropped_events_total", "Records discarded after retries or for their age (DroppedEventCount).", |s| s.records_discarded as f64),
        ("eddy_instances_started_total", "Instances started (cold starts): a warm instance serves batch after batch.", |s| s.instances_started as f64),
        ("eddy_on_failure_destination_delivered_events_total", "Discarded records the on-failure destination accepted (OnFailureDestinationDeliveredEventCount).", |s| s.destination_delivered_events as f64),
        ("eddy_iterator_age_seconds", "Age of the newest record of the last batch when it was invoked (IteratorAge).", |s| s.iterator_age_ms as f64 / 1e3),
        ("eddy_retrying_attempt", "Retries of the batch in flight so far (0 when none).", |s| match s.state {
            ShardState::Retrying { next_attempt, .. } => f64::from(next_attempt - 1),
            _ => 0.0,
        }),
    ];
    for (name, help, value) in metrics {
        let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for f in functions {
            for s in &f.shards {
                let _ = writeln!(out, "{name}{{function=\"{}\",shard=\"{}\"}} {}", f.name, s.shard, value(s));
            }
        }
    }
    let name = "eddy_invocation_duration_seconds";
    let _ = writeln!(out, "# HELP {name} How long invocations took.\n# TYPE {name} histogram");
    for f in functions {
        for s in &f.shards {
            let labels = format!("function=\"{}\",shard=\"{}\"", f.name, s.shard);
            for (le, n) in s.invocation_duration.cumulative() {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
            }
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}\n{name}_count{{{labels}}} {}",
                s.invocation_duration.sum_seconds, s.invocation_duration.count);
        }
    }
    let _ = writeln!(out, "# HELP eddy_function_errors_total Function errors by kind.\n# TYPE eddy_function_errors_total counter");
    for f in functions {
        for s in &f.shards {
            for (kind, n) in &s.errors_by_kind {
                let _ = writeln!(out, "eddy_function_errors_total{{function=\"{}\",shard=\"{}\",kind=\"{kind}\"}} {n}", f.name, s.shard);
            }
        }
    }
    let _ = writeln!(out, "# HELP eddy_access_denied_total Capability calls the execution role denied, by action.\n# TYPE eddy_access_denied_total counter");
    for f in functions {
        for (action, n) in &f.access_denied {
            let _ = writeln!(out, "eddy_access_denied_total{{function=\"{}\",action=\"{action}\"}} {n}", f.name);
        }
    }
    let _ = writeln!(out, "# HELP eddy_function_up Whether the function is running (1) or not (0).\n# TYPE eddy_function_up gauge");
    for f in functions {
        let _ = writeln!(out, "eddy_function_up{{function=\"{}\"}} {}", f.name, u8::from(f.state == FunctionState::Running));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The words `eddy status` prints are the ones `/status` serves.
    #[test]
    fn state_words_are_the_served_ones() {
        use FunctionState::*;
        for state in [Waiting, Loading, Running, Disabled, Paused, Failed] {
            assert_eq!(serde_json::to_value(state).expect("json"), state.as_str());
        }
        for result in [ProcessingResult::NoRecordsProcessed, ProcessingResult::Ok, ProcessingResult::FunctionCallFailed] {
            assert_eq!(serde_json::to_value(result).expect("json"), result.as_str());
        }
    }

    /// `eddy status` reads back what `/status` serves, shard states included.
    #[test]
    fn a_status_report_reads_back() {
        let board = StatusBoard::default();
        board.set_function(FunctionStatus { world: Some("typed".into()), ..FunctionStatus::new("f", FunctionState::Running) }, true);
        let shard = board.add_shard("f", "shardId-0");
        if let Ok(mut s) = shard.lock() {
            s.state = ShardState::Retrying { next_attempt: 2, max_attempts: Some(3), retrying_since_ms: 5 };
            s.checkpoint = Some(crate::store::Checkpoint::Sequence("41".into()));
            s.errors_by_kind.insert("trap".into(), 2);
            s.invocation_duration.observe(Duration::from_millis(3));
        }
        let report = StatusReport { functions: board.snapshot(), streams: Vec::new(), checkpoints: Vec::new() };
        let text = serde_json::to_string(&report).expect("serve");
        let read: StatusReport = serde_json::from_str(&text).expect("read back");
        let shard = &read.functions[0].shards[0];
        assert_eq!(shard.state, ShardState::Retrying { next_attempt: 2, max_attempts: Some(3), retrying_since_ms: 5 });
        assert_eq!(shard.checkpoint, Some(crate::store::Checkpoint::Sequence("41".into())));
        assert_eq!(shard.errors_by_kind.get("trap"), Some(&2));
        assert_eq!(read.functions[0].world.as_deref(), Some("typed"));
    }

    #[test]
    fn metrics_are_in_seconds_with_a_duration_histogram_and_build_info() {
        let mut shard = ShardStatus { shard: "shard-0".into(), iterator_age_ms: 1500, invocations: 3, ..Default::default() };
        for ms in [2, 2, 700] {
            shard.invocation_duration.observe(Duration::from_millis(ms));
        }
        let mut function = FunctionStatus::new("orders", FunctionState::Running);
        function.shards.push(shard);
        let text = prometheus(&[function]);
        let labels = "function=\"orders\",shard=\"shard-0\"";
        for line in [
            format!("eddy_build_info{{version=\"{}\",wasmtime=\"48\"}} 1", env!("CARGO_PKG_VERSION")),
            "# TYPE eddy_invocation_duration_seconds histogram".to_owned(),
            format!("eddy_invocation_duration_seconds_bucket{{{labels},le=\"0.001\"}} 0"),
            format!("eddy_invocation_duration_seconds_bucket{{{labels},le=\"0.0025\"}} 2"),
            format!("eddy_invocation_duration_seconds_bucket{{{labels},le=\"0.5\"}} 2"),
            format!("eddy_invocation_duration_seconds_bucket{{{labels},le=\"1\"}} 3"),
            format!("eddy_invocation_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 3"),
            format!("eddy_invocation_duration_seconds_count{{{labels}}} 3"),
            format!("eddy_iterator_age_seconds{{{labels}}} 1.5"),
            format!("eddy_invocations_total{{{labels}}} 3"),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("milliseconds"), "{text}");
    }
}
