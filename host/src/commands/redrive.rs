//! `eddy redrive`: the batches a function gave up on, read back from its
//! on-failure destination and invoked again ([`eddy::redrive`]).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use eddy::manifest::Destination;
use eddy::redrive::{Described, FailureRecord};
use eddy::runtime::{InvokeRequest, Runtime, RuntimeConfig};
use eddy::verdict::Verdict;

#[derive(clap::Args)]
pub struct RedriveArgs {
    /// The function, by its name in the functions folder.
    pub function: String,
    /// Where to read the failure records: a directory, a .jsonl file, or an SQS
    /// queue, S3 bucket or Kinesis stream ARN (default: the function's own
    /// on-failure destination, from its manifest).
    #[arg(long)]
    pub from: Option<String>,
    /// The functions folder holding FUNCTION.wasm, FUNCTION.toml and roles/.
    #[arg(long, default_value = "functions", env = "EDDY_FUNCTIONS")]
    pub functions: PathBuf,
    /// Only say what would be redriven: fetch the records, invoke nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub data_dir: super::DataDirArg,
}

pub async fn run(args: RedriveArgs) -> anyhow::Result<std::process::ExitCode> {
    let name = &args.function;
    // Read as the host reads a function: component, manifest and role policy.
    let roles_dir = args.functions.join("roles");
    let (wasm, toml) = (args.functions.join(format!("{name}.wasm")), args.functions.join(format!("{name}.toml")));
    let files = eddy::registry::FunctionFiles::read(&wasm, &toml, &roles_dir)
        .with_context(|| format!("cannot read {} and {}", wasm.display(), toml.display()))?;
    let manifest = eddy::function::parse_manifest(name, &files.manifest)?;
    let destination = match &args.from {
        Some(from) => destination_from(from, &manifest)?,
        None => manifest.event_source.on_failure.as_ref().map(|o| o.destination.clone()).with_context(|| {
            format!("{name}.toml has no on-failure destination: say where the failure records are with --from")
        })?,
    };
    let failures = eddy::redrive::read(&destination).await?;
    if failures.is_empty() {
        println!("no failure records to redrive");
        return Ok(std::process::ExitCode::SUCCESS);
    }

    let policy = files.role.as_ref().and_then(|(_, policy)| policy.as_deref());
    let role = Arc::new(eddy::function::resolve_role(name, &manifest, policy, &roles_dir)?);
    let embedded = Arc::new(eddy::store::embedded::EmbeddedStore::open(&args.data_dir.data_dir)?);
    let endpoint = match &manifest.event_source.source {
        eddy::manifest::SourceRef::Kinesis { endpoint, .. } | eddy::manifest::SourceRef::Dynamodb { endpoint, .. } => Some(endpoint),
        eddy::manifest::SourceRef::Local { .. } => None,
    };
    let config = match endpoint {
        Some(e) => Some(eddy::source::aws_config(e.endpoint_url.as_deref(), e.region.as_deref()).await),
        None => None,
    };
    let source = eddy::redrive::source_reader(&manifest.event_source.source, config.as_ref(), Some(Arc::clone(&embedded)))?;
    let info = source.describe().await.context("cannot reach the function's source")?;
    let filter = match manifest.event_source.filter_patterns.as_slice() {
        [] => None,
        patterns => Some(eddy::filter::RecordFilter::new(patterns)?),
    };

    let runtime = Runtime::new(&RuntimeConfig {
        max_instances: 4,
        cache_dir: Some(args.data_dir.data_dir.join("compiled")),
        ..RuntimeConfig::default()
    })?;
    let component = eddy::function::load_component(&runtime, &format!("{name}.wasm"), &files.wasm)?;
    let function: Arc<str> = Arc::from(name.as_str());
    let grants = Arc::new(eddy::role::Grants::new(Arc::clone(&function), Arc::clone(&role), None));
    let services = Arc::new(eddy::capability::Services::new(Some(embedded)));
    let environment: Arc<[(String, String)]> = manifest.environment.clone().into();

    let (mut succeeded, mut failed, mut missing) = (0, 0, 0);
    for FailureRecord { value, origin } in &failures {
        let described = match Described::parse(value) {
            Ok(described) => described,
            Err(reason) => {
                println!("{origin}: skipped: {reason}");
                eddy::redrive::put_back(origin, &destination).await?;
                failed += 1;
                continue;
            }
        };
        let what = format!("{} {}..{} ({} records, {})", described.shard, described.start, described.end, described.size, described.condition);
        if described.stream_arn != info.arn {
            println!("{what}: skipped: it is from {}, and {name} reads {}", described.stream_arn, info.arn);
            eddy::redrive::put_back(origin, &destination).await?;
            failed += 1;
            continue;
        }
        // The batch's event, from the record itself, else from the source.
        let event = match &described.payload {
            Some(payload) => payload.to_string(),
            None => match eddy::redrive::fetch(source.as_ref(), &described, manifest.event_source.deaggregate_records.then_some(name.as_str())).await? {
                Ok(mut records) => {
                    if let Some(filter) = &filter {
                        filter.retain(&mut records, &info.region, &info.arn);
                    }
                    eddy::event::encode(&eddy::record::Batch {
                        event_source: info.event_source,
                        event_source_arn: info.arn.clone(),
                        aws_region: info.region.clone(),
                        invoke_identity_arn: role.arn.clone(),
                        shard_id: described.shard.clone(),
                        records,
                        window: None,
                    })
                }
                Err(gone) => {
                    println!("{what}: not redriven: {gone}");
                    eddy::redrive::put_back(origin, &destination).await?;
                    missing += 1;
                    continue;
                }
            },
        };
        let records = eddy::verdict::event_records(&event);
        if args.dry_run {
            println!("{what}: would be redriven ({} records fetched)", records.len());
            eddy::redrive::put_back(origin, &destination).await?;
            continue;
        }
        let shard: Arc<str> = Arc::from(described.shard.as_str());
        let result = runtime
            .invoke_event(
                &component,
                &event,
                InvokeRequest {
                    function: &function,
                    shard: &shard,
                    request_id: uuid::Uuid::new_v4().to_string(),
                    timeout: manifest.timeout,
                    memory_mb: manifest.memory_mb,
                    environment: &environment,
                    log_limit_bytes: manifest.log_limit_bytes,
                    grants: &grants,
                    services: &services,
                    instance_slot: None,
                },
            )
            .await
            .with_context(|| format!("{what}: the event"))?;
        match eddy::verdict::judge(&result, &records) {
            Verdict::Succeeds => {
                let removed = eddy::redrive::remove(origin, &destination).await?;
                println!("{what}: succeeded; the failure record is {removed}");
                succeeded += 1;
            }
            verdict => {
                println!("{what}: failed again: {}", verdict.describe(&records).trim_start_matches("eddy: "));
                eddy::redrive::put_back(origin, &destination).await?;
                failed += 1;
            }
        }
    }
    println!("redriven: {succeeded} succeeded, {failed} failed, {missing} no longer held by the source");
    Ok(if failed + missing == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
}

/// `--from` read as the manifest reads a destination.
fn destination_from(from: &str, manifest: &eddy::manifest::Manifest) -> anyhow::Result<Destination> {
    if from.starts_with("arn:") {
        let target = eddy::manifest::AwsTarget::parse(from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
        // Reached as the function's own destination or source is.
        let endpoint = match (&manifest.event_source.on_failure, &manifest.event_source.source) {
            (Some(o), _) if matches!(o.destination, Destination::Aws { .. }) => match &o.destination {
                Destination::Aws { endpoint, .. } => endpoint.clone(),
                _ => Default::default(),
            },
            (_, eddy::manifest::SourceRef::Kinesis { endpoint, .. } | eddy::manifest::SourceRef::Dynamodb { endpoint, .. }) => endpoint.clone(),
            _ => Default::default(),
        };
        return Ok(Destination::Aws { target, endpoint });
    }
    Ok(if from.ends_with(".jsonl") { Destination::JsonLines(from.into()) } else { Destination::Directory(from.into()) })
}
