//! `eddy run`: the host process. It opens the data directory, starts the runtime,
//! the folder watcher and the admin port, and on Ctrl-C or SIGTERM stops every
//! mapping after its in-flight batch.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, AdminState};
use crate::host_lock::{HostInfo, HostLock};
use crate::mapping::MappingContext;
use crate::registry::{self, RegistryConfig};
use crate::retry::{Backoff, Waited, pause};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::source::local;
use crate::status::StatusBoard;
use crate::store::CheckpointStore;
use crate::store::embedded::EmbeddedStore;

/// How often old records are trimmed from local streams.
const TRIM_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct HostConfig {
    pub functions_dir: PathBuf,
    pub data_dir: PathBuf,
    /// `None` runs without the admin port.
    pub admin_addr: Option<SocketAddr>,
    pub scan_interval: Duration,
    pub local_poll_interval: Duration,
    pub runtime: RuntimeConfig,
    /// Cluster mode; `None` keeps every checkpoint in the embedded store.
    pub cluster: Option<ClusterConfig>,
}

/// Where and how this host shares shards with other hosts.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub lease_table: String,
    pub failover: Duration,
    pub worker_id: String,
}

/// Runs the host until `shutdown` fires.
pub async fn run(config: HostConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.functions_dir)
        .with_context(|| format!("cannot create the functions folder {}", config.functions_dir.display()))?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
    // Before anything reads a checkpoint: a second host on the same data would
    // process every record a second time.
    // Cluster hosts may share a functions folder: the lease table shares the shards.
    let lock_functions = config.cluster.is_none().then_some(config.functions_dir.as_path());
    let mut lock = HostLock::acquire(&config.data_dir, lock_functions)?;
    let embedded = Arc::new(EmbeddedStore::open(&config.data_dir)?);
    let checkpoints: Arc<dyn CheckpointStore> = embedded.clone();
    let mut runtime_config = config.runtime.clone();
    runtime_config.cache_dir.get_or_insert_with(|| config.data_dir.join("compiled"));
    let runtime = Arc::new(Runtime::new(&runtime_config)?);
    let status = Arc::new(StatusBoard::default());
    let controls = Arc::new(crate::control_api::ControlStores::default());
    let _ = controls.embedded.set(checkpoints.clone());
    let admin = match config.admin_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on the admin address {addr}"))?;
            let state = AdminState {
                status: Arc::clone(&status),
                embedded: Arc::clone(&embedded),
                checkpoints: checkpoints.clone(),
                controls: Arc::clone(&controls),
            };
            let bound = listener.local_addr()?;
            tracing::info!("admin port listening on http://{bound}");
            Some((bound, tokio::spawn(admin::serve(listener, state, shutdown.clone()))))
        }
        None => None,
    };
    lock.publish(&HostInfo {
        pid: std::process::id(),
        admin: admin.as_ref().map(|(addr, _)| *addr),
        functions: config.functions_dir.canonicalize().unwrap_or_else(|_| config.functions_dir.clone()),
    })?;

    // Cluster mode: the lease table is needed before any mapping starts. A
    // table not reachable yet is waited for (the admin port answers meanwhile,
    // and /readyz says not ready), as a KCL worker waits at its start.
    let cluster = match &config.cluster {
        Some(cluster) => {
            let mut backoff = Backoff::restart();
            let table = loop {
                match crate::lease::LeaseTable::open(&cluster.lease_table, &cluster.worker_id).await {
                    Ok(table) => break table,
                    Err(error) => {
                        tracing::error!(table = %cluster.lease_table, "cannot use the lease table: {error:#}; retrying");
                        if backoff.wait(&shutdown).await == Waited::Cancelled {
                            return Ok(());
                        }
                    }
                }
            };
            tracing::info!(table = %cluster.lease_table, worker = %cluster.worker_id, failover = ?cluster.failover, "cluster mode");
            let table = Arc::new(table);
            let _ = controls.cluster.set(table.clone());
            Some(crate::lease::Cluster { table, failover: cluster.failover })
        }
        None => None,
    };

    // The history behind the status page's charts.
    let sample_status = Arc::clone(&status);
    let sample_cancel = shutdown.clone();
    let sampler = tokio::spawn(async move {
        loop {
            sample_status.take_sample();
            if pause(&sample_cancel, crate::status::HISTORY_INTERVAL).await == Waited::Cancelled {
                break;
            }
        }
    });

    let trim_store = Arc::clone(&embedded);
    let trim_cancel = shutdown.clone();
    let trimmer = tokio::spawn(async move {
        loop {
            let store = Arc::clone(&trim_store);
            match tokio::task::spawn_blocking(move || store.connect().and_then(|c| local::trim(&c))).await {
                Ok(Ok(n)) if n > 0 => tracing::info!("trimmed {n} records past their streams' retention"),
                Ok(Err(error)) => tracing::warn!("cannot trim local streams: {error:#}"),
                _ => {}
            }
            if pause(&trim_cancel, TRIM_INTERVAL).await == Waited::Cancelled {
                break;
            }
        }
    });

    tracing::info!(functions = %config.functions_dir.display(), data = %config.data_dir.display(), "eddy is running");
    registry::watch(
        RegistryConfig {
            functions_dir: config.functions_dir.clone(),
            poll_interval: config.scan_interval,
            local_poll_interval: config.local_poll_interval,
            embedded: Arc::clone(&embedded),
            runtime,
            services: Arc::new(crate::capability::Services::new(Some(Arc::clone(&embedded)))),
        },
        MappingContext { store: checkpoints, status, cluster },
        shutdown.clone(),
    )
    .await;
    let _ = trimmer.await;
    let _ = sampler.await;
    if let Some((_, admin)) = admin {
        let _ = admin.await;
    }
    drop(lock);
    tracing::info!("eddy stopped");
    Ok(())
}
