//! One function's supervisor: it loads each version the folder scan hands it and
//! swaps it in. A version that fails to load is reported and changes nothing: the
//! version that was running keeps running. A good version replaces the old one
//! after the old mapping's in-flight batches complete; the new mapping resumes
//! from the same checkpoints.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::RegistryConfig;
use crate::manifest::{Manifest, SourceRef};
use crate::mapping::{self, ConcurrencyLimited, FunctionVersion, MappingContext, MappingHandle, WasmHandler};
use crate::role::Grants;
use crate::runtime::ResidentComponent;
use crate::source::StreamSource;
use crate::source::dynamodb::DynamodbSource;
use crate::source::kinesis::KinesisSource;
use crate::source::local::{self, LocalSource};

/// Lambda's polling rates: Kinesis once a second per shard, DynamoDB Streams
/// four times a second.
const KINESIS_POLL_INTERVAL: Duration = Duration::from_secs(1);
const DYNAMODB_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often a function whose local stream is missing looks for it again.
const MISSING_STREAM_RETRY: Duration = Duration::from_secs(1);
use crate::status::{FunctionState, FunctionStatus};

/// A function's files, read whole: its component, its manifest, and the policy
/// of the role the manifest names.
pub struct FunctionFiles {
    /// Where the component was read from.
    pub wasm_path: PathBuf,
    pub wasm: Arc<[u8]>,
    pub manifest: String,
    pub wasm_digest: String,
    pub manifest_digest: String,
    /// The role's name and its policy file (`None`: the file is missing).
    pub role: Option<(String, Option<String>)>,
    pub role_digest: String,
    /// When the component or the manifest last changed.
    pub changed: std::time::SystemTime,
}

impl FunctionFiles {
    pub fn read(wasm: &Path, manifest: &Path, roles_dir: &Path) -> std::io::Result<FunctionFiles> {
        let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
        let changed = modified(wasm).max(modified(manifest));
        let wasm_path = wasm.to_path_buf();
        let wasm = std::fs::read(wasm)?;
        let manifest_bytes = std::fs::read(manifest)?;
        let manifest = String::from_utf8_lossy(&manifest_bytes).into_owned();
        let role = Manifest::role_reference(&manifest).map(|reference| {
            let name = crate::role::role_name(&reference).to_owned();
            let policy = std::fs::read_to_string(crate::role::policy_path(roles_dir, &name)).ok();
            (name, policy)
        });
        let role_digest = match &role {
            Some((name, Some(policy))) => hex::encode(Sha256::digest(format!("{name}\n{policy}"))),
            Some((name, None)) => format!("{name} (missing)"),
            None => String::new(),
        };
        Ok(FunctionFiles {
            wasm_path,
            wasm_digest: crate::runtime::content_digest(&wasm),
            manifest_digest: hex::encode(Sha256::digest(&manifest_bytes)),
            manifest,
            wasm: wasm.into(),
            role,
            role_digest,
            changed,
        })
    }

    /// How much longer the files must stay untouched before an error in them is
    /// reported: `None` once they have been still for [`STILL_CHANGING`].
    fn still_changing(&self) -> Option<Duration> {
        let age = self.changed.elapsed().unwrap_or(Duration::ZERO);
        STILL_CHANGING.checked_sub(age).filter(|wait| !wait.is_zero())
    }
}

/// Files that fail to load while they changed this recently may be a copy that
/// stalled midway: the error is held back until they have been still this long
/// (or a newer version comes). Renaming a file into place is always safe.
const STILL_CHANGING: Duration = Duration::from_secs(2);

pub struct Supervisor {
    name: Arc<str>,
    config: RegistryConfig,
    context: MappingContext,
    running: Option<MappingHandle>,
}

impl Supervisor {
    pub fn new(name: Arc<str>, config: RegistryConfig, context: MappingContext) -> Supervisor {
        Supervisor { name, config, context, running: None }
    }

    /// Deploys each version sent, until `None` (removal or shutdown) or the sender
    /// goes away; then stops the mapping. A `predecessor` (the supervisor of the
    /// same name before a removal) is awaited first.
    pub async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Option<FunctionFiles>>,
        predecessor: Option<tokio::task::JoinHandle<()>>,
    ) {
        if let Some(predecessor) = predecessor {
            let _ = predecessor.await;
        }
        while let Some(Some(mut files)) = commands.recv().await {
            // A function waiting for its stream fails the same way every look:
            // the log says so once.
            let mut logged: Option<String> = None;
            loop {
                // Several changes queued while a swap ran: only the newest matters.
                loop {
                    match commands.try_recv() {
                        Ok(Some(newer)) => files = newer,
                        Ok(None) => return self.stop().await,
                        Err(_) => break,
                    }
                }
                let Err(error) = self.deploy(&files).await else { break };
                let missing_stream = error.downcast_ref::<local::NoSuchStream>().is_some();
                if !missing_stream && let Some(wait) = files.still_changing() {
                    tracing::debug!(function = %self.name, "the files changed {} ms ago and do not load yet ({error:#}); waiting for the rest",
                        STILL_CHANGING.saturating_sub(wait).as_millis());
                    tokio::select! {
                        next = commands.recv() => match next {
                            Some(Some(newer)) => {
                                files = newer;
                                continue;
                            }
                            _ => return self.stop().await,
                        },
                        // Still, and still broken: report it below.
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                let message = format!("{error:#}");
                if logged.as_ref() != Some(&message) {
                    tracing::error!(function = %self.name, "cannot load the function: {message}");
                    logged = Some(message.clone());
                }
                self.context.status.set_error(&self.name, FunctionState::Failed, message);
                if !missing_stream {
                    break;
                }
                // Its local stream may yet be created: look again now and then,
                // unless a new version (or the stop) comes first.
                tokio::select! {
                    next = commands.recv() => match next {
                        Some(Some(newer)) => files = newer,
                        _ => return self.stop().await,
                    },
                    () = tokio::time::sleep(MISSING_STREAM_RETRY) => {}
                }
            }
            // The component's bytes and the load's working memory are free now.
            drop(files);
            crate::runtime::give_back_free_memory();
        }
        self.stop().await;
    }

    async fn stop(&mut self) {
        if let Some(mapping) = self.running.take() {
            mapping.stop().await;
        }
    }

    async fn deploy(&mut self, files: &FunctionFiles) -> anyhow::Result<()> {
        let name = &self.name;
        let manifest = crate::function::parse_manifest(name, &files.manifest)?;
        let budget = self.config.runtime.memory_budget_mb();
        if u64::from(manifest.memory_mb) > budget {
            anyhow::bail!(
                "{name}.toml: MemorySize = {} MB is more than the host's memory budget of {budget} MB \
                 (--memory-budget-mb), so it could never run",
                manifest.memory_mb
            );
        }
        let roles_dir = self.config.functions_dir.join("roles");
        let policy = files.role.as_ref().and_then(|(_, policy)| policy.as_deref());
        let role = Arc::new(crate::function::resolve_role(name, &manifest, policy, &roles_dir)?);
        // The source first: a function waiting for its local stream looks again
        // without compiling again.
        let source = self.source(&manifest.event_source.source, manifest.event_source.polling_interval).await?;
        let runtime = Arc::clone(&self.config.runtime);
        let wasm = Arc::clone(&files.wasm);
        // The files' digest is the component's content digest: no second hashing.
        let first_compile = !runtime.is_cached(&files.wasm_digest);
        if first_compile {
            tracing::info!(function = %name, bytes = wasm.len(),
                "compiling {name}.wasm ({:.1} MB); a first compile takes up to seconds per MB, later loads use the cache",
                wasm.len() as f64 / 1e6);
        }
        let started = std::time::Instant::now();
        let label = format!("{name}.wasm");
        let component = tokio::task::spawn_blocking(move || crate::function::load_component(&runtime, &label, &wasm))
            .await
            .context("the loader task failed")??;
        if first_compile {
            tracing::info!(function = %name, "compiled {name}.wasm in {:.1} s", started.elapsed().as_secs_f64());
        }
        tracing::info!(function = %name, world = component.world.name(), digest = %&component.digest[..12],
            compiled = component.compiled, wasi = component.imports_wasi, source = %manifest.event_source.source.id(), "loaded");

        let state = if manifest.event_source.enabled { FunctionState::Running } else { FunctionState::Disabled };
        let status = FunctionStatus {
            world: Some(component.world.name().into()),
            digest: Some(component.digest.clone()),
            source: Some(manifest.event_source.source.id()),
            uuid: Some(crate::mapping::destination::sink::mapping_uuid(name, &manifest.event_source.source.id())),
            role: Some(role.name.clone()),
            ..FunctionStatus::new(name, state)
        };
        let enabled = manifest.event_source.enabled;
        // Its compiled code goes while it idles, as its warm instances do.
        let max_idle = manifest.execution_environment.max_idle;
        let resident = ResidentComponent::new(&self.config.runtime, Arc::clone(name), component, files.wasm_path.clone(), max_idle);
        let wasm = Arc::new(WasmHandler::resident(Arc::clone(&self.config.runtime), resident));
        let handler = ConcurrencyLimited::wrap(wasm, manifest.reserved_concurrency);
        let version = Arc::new(FunctionVersion {
            identity_arn: role.arn.clone(),
            grants: Arc::new(Grants::new(Arc::clone(name), role, Some(Arc::clone(&self.context.status)))),
            services: Arc::clone(&self.config.services),
            environment: manifest.environment.clone().into(),
            name: Arc::clone(name),
            manifest,
            handler,
        });

        // The swap: the old mapping finishes its in-flight batches and checkpoints
        // them, then the new one starts from those checkpoints.
        self.stop().await;
        self.context.status.set_function(status, true);
        if enabled {
            self.running = Some(mapping::start(version, source, self.context.clone()));
        }
        Ok(())
    }

    async fn source(&self, source: &SourceRef, polling: Option<Duration>) -> anyhow::Result<Arc<dyn StreamSource>> {
        match source {
            SourceRef::Kinesis { stream, endpoint, consumer } => {
                let config = crate::source::aws_config(endpoint.endpoint_url.as_deref(), endpoint.region.as_deref()).await;
                Ok(Arc::new(KinesisSource::new(
                    &config,
                    stream.clone(),
                    polling.unwrap_or(KINESIS_POLL_INTERVAL),
                    consumer.as_ref().map(|c| c.to_string()),
                )))
            }
            SourceRef::Dynamodb { stream, endpoint } => {
                let config = crate::source::aws_config(endpoint.endpoint_url.as_deref(), endpoint.region.as_deref()).await;
                Ok(Arc::new(DynamodbSource::new(&config, stream.clone(), polling.unwrap_or(DYNAMODB_POLL_INTERVAL))))
            }
            SourceRef::Local { stream, create } => {
                let (name, stream_name, create) = (self.name.to_string(), stream.clone(), *create);
                self.config
                    .embedded
                    .run(move |conn| {
                        if local::describe(&conn, &stream_name)?.is_none() {
                            // A typo must not quietly become a new, empty stream.
                            if !create {
                                return Err(local::NoSuchStream::new(&conn, &stream_name)?.into());
                            }
                            let d = local::create(&conn, &stream_name, local::DEFAULT_SHARDS, local::DEFAULT_RETENTION_HOURS)?;
                            tracing::info!(stream = %stream_name, shards = d.shard_count,
                                "created local stream {stream_name} for function {name} (CreateStream = true)");
                        }
                        Ok(())
                    })
                    .await?;
                Ok(Arc::new(LocalSource::new(
                    Arc::clone(&self.config.embedded),
                    stream,
                    polling.unwrap_or(self.config.local_poll_interval),
                )))
            }
        }
    }
}
