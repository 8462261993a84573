//! `eddy run`: the host, until a signal stops it; `eddy run --check`: what it
//! would load, validated.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{DEFAULT_ADMIN, DataDirArg};
use eddy::host::{self, HostConfig};
use eddy::runtime::{Runtime, RuntimeConfig};

#[derive(clap::Args)]
pub struct RunArgs {
    /// A config file (TOML) with any of these options under the flags' names
    /// (`functions`, `data-dir`, `admin`, ...); flags and environment win over it.
    #[arg(long, env = "EDDY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Validate the config, every function (manifest, component, role) and every
    /// role file, print what was found, and exit: 0 if all is well, 1 if not.
    #[arg(long)]
    pub check: bool,
    /// The watched folder of `<name>.wasm` + `<name>.toml` pairs.
    #[arg(long, default_value = "functions", env = "EDDY_FUNCTIONS")]
    pub functions: PathBuf,
    #[command(flatten)]
    pub data: DataDirArg,
    /// Address of the admin HTTP port (health, status, metrics, ingest).
    #[arg(long, default_value = DEFAULT_ADMIN, env = "EDDY_ADMIN_ADDR")]
    pub admin: SocketAddr,
    /// Run without the admin port.
    #[arg(long)]
    pub no_admin: bool,
    /// How often the functions folder is scanned, in milliseconds.
    #[arg(long, default_value_t = 250, env = "EDDY_SCAN_MS")]
    pub scan_ms: u64,
    /// How often an idle local stream shard is polled, in milliseconds.
    #[arg(long, default_value_t = 100, env = "EDDY_LOCAL_POLL_MS")]
    pub local_poll_ms: u64,
    /// Instances that may run at once (slots of the pooling allocator).
    #[arg(long, default_value_t = 128, env = "EDDY_MAX_INSTANCES")]
    pub max_instances: u32,
    /// The MB that the MemorySize of all invocations running at once may add up
    /// to; an invocation waits for room (default: three quarters of the
    /// machine's memory).
    #[arg(long, env = "EDDY_MEMORY_BUDGET_MB")]
    pub memory_budget_mb: Option<u64>,
    /// Cluster mode: share the shards of Kinesis and DynamoDB sources with other
    /// hosts through this DynamoDB lease table (created if absent), which also
    /// keeps their checkpoints. Without it, one host reads every shard.
    #[arg(long, env = "EDDY_LEASE_TABLE")]
    pub lease_table: Option<String>,
    /// Cluster mode: a lease not renewed for this long is taken by another host,
    /// in milliseconds; leases are renewed every third of it.
    #[arg(long, default_value_t = 10_000, env = "EDDY_FAILOVER_MS", value_parser = clap::value_parser!(u64).range(1000..=600_000))]
    pub failover_ms: u64,
    /// Cluster mode: this host's name in the lease table (default: the machine's
    /// name and a random part, new at each start).
    #[arg(long, env = "EDDY_WORKER_ID")]
    pub worker_id: Option<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.check {
        return check(&args);
    }
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: finishing in-flight batches");
        on_signal.cancel();
    });
    host::run(
        HostConfig {
            functions_dir: args.functions,
            data_dir: args.data.data_dir,
            admin_addr: (!args.no_admin).then_some(args.admin),
            scan_interval: Duration::from_millis(args.scan_ms.max(10)),
            local_poll_interval: Duration::from_millis(args.local_poll_ms.max(1)),
            runtime: RuntimeConfig {
                max_instances: args.max_instances,
                memory_budget_mb: args.memory_budget_mb,
                ..RuntimeConfig::default()
            },
            cluster: args.lease_table.map(|table| host::ClusterConfig {
                lease_table: table,
                failover: Duration::from_millis(args.failover_ms),
                worker_id: args.worker_id.unwrap_or_else(eddy::lease::default_worker_id),
            }),
        },
        shutdown,
    )
    .await?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// `eddy run --check`.
fn check(args: &RunArgs) -> anyhow::Result<std::process::ExitCode> {
    println!("config: functions {}, data {}, admin {}", args.functions.display(), args.data.data_dir.display(),
        if args.no_admin { "off".to_owned() } else { args.admin.to_string() });
    if let Some(table) = &args.lease_table {
        println!("cluster: lease table {table}, failover {} ms{}", args.failover_ms,
            args.worker_id.as_deref().map(|w| format!(", worker {w}")).unwrap_or_default());
    }
    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 4,
        cache_dir: Some(args.data.data_dir.join("compiled")),
        ..RuntimeConfig::default()
    })?;
    let findings = eddy::check::check_functions(&args.functions, &runtime)?;
    let mut problems = 0;
    for finding in &findings {
        match &finding.problem {
            None => println!("ok    {}: {}", finding.subject, finding.summary),
            Some(problem) => {
                problems += 1;
                println!("FAIL  {}: {problem}", finding.subject);
            }
        }
    }
    println!("{} checked, {problems} with problems", findings.len());
    Ok(if problems == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
