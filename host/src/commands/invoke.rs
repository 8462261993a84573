//! `eddy invoke`: one invocation of a component with an event file, judged as
//! a mapping would judge it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{parse_env, read_input};
use eddy::runtime::{HandlerResponse, InvokeRequest, Runtime, RuntimeConfig};

#[derive(clap::Args)]
pub struct InvokeArgs {
    /// The handler component (`.wasm`).
    pub module: PathBuf,
    /// The event file: Lambda's Kinesis or DynamoDB event JSON (`-` for stdin).
    #[arg(long, short)]
    pub event: PathBuf,
    /// The function name the handler sees in its context.
    #[arg(long)]
    pub function_name: Option<String>,
    /// Timeout in seconds (1-900).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub timeout: u64,
    /// Memory limit in MB (128-10240).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(128..=10240))]
    pub memory: u32,
    /// An environment variable for the handler, NAME=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub environment: Vec<(String, String)>,
    /// The execution role's policy file (IAM JSON); without one, every
    /// capability call is denied.
    #[arg(long)]
    pub role: Option<PathBuf>,
    /// The data directory whose local streams and tables capability calls
    /// reach, and whose compile cache is used (none by default).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Compile the component again rather than use the compile cache (the data
    /// directory's, or else ~/.cache/eddy/compiled: see EDDY_CACHE_DIR).
    #[arg(long)]
    pub no_cache: bool,
    /// Bytes of log output the invocation may write.
    #[arg(long, default_value_t = eddy::manifest::DEFAULT_LOG_LIMIT_BYTES)]
    pub log_limit: usize,
}

pub async fn run(args: InvokeArgs) -> anyhow::Result<std::process::ExitCode> {
    let event = read_input(&args.event)?;
    let bytes = std::fs::read(&args.module).with_context(|| format!("cannot read {}", args.module.display()))?;
    // A large (JavaScript, Python) component compiles once: in the data
    // directory's cache, as under `eddy run`, or else in the user's cache.
    let cache_dir = match (&args.data_dir, args.no_cache) {
        (_, true) => None,
        (Some(dir), false) => Some(dir.join("compiled")),
        (None, false) => eddy::runtime::user_cache_dir(),
    };
    let runtime = Runtime::new(&RuntimeConfig { max_instances: 4, cache_dir: cache_dir.clone(), ..RuntimeConfig::default() })?;
    let first_compile = !runtime.is_cached(&eddy::runtime::content_digest(&bytes));
    if first_compile {
        let cached = cache_dir.map(|d| format!("; cached in {} for the next calls", d.display())).unwrap_or_default();
        eprintln!("compiling {} ({:.1} MB){cached}...", args.module.display(), bytes.len() as f64 / 1e6);
    }
    let started = std::time::Instant::now();
    let component = eddy::function::load_component(&runtime, &args.module.display().to_string(), &bytes)?;
    if first_compile {
        eprintln!("compiled in {:.1} s", started.elapsed().as_secs_f64());
    }
    let name = args.function_name.unwrap_or_else(|| {
        args.module.file_stem().and_then(|s| s.to_str()).unwrap_or("function").to_owned()
    });
    let function: Arc<str> = Arc::from(name.as_str());
    let shard: Arc<str> = Arc::from("invoke");
    let environment: Arc<[(String, String)]> = args.environment.into();
    let role = match &args.role {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            let policy = eddy::role::policy::Policy::parse(&text).with_context(|| format!("{}", path.display()))?;
            let reference = path.file_stem().and_then(|s| s.to_str()).unwrap_or("invoke");
            eddy::role::Role::from_policy(reference, policy)
        }
        None => eddy::role::Role::from_policy(&name, eddy::role::policy::Policy::default()),
    };
    let grants = Arc::new(eddy::role::Grants::new(Arc::clone(&function), Arc::new(role), None));
    let embedded = match &args.data_dir {
        Some(dir) => Some(Arc::new(eddy::store::embedded::EmbeddedStore::open(dir)?)),
        None => None,
    };
    let services = Arc::new(eddy::capability::Services::new(embedded));
    let result = runtime
        .invoke_event(
            &component,
            &event,
            InvokeRequest {
                function: &function,
                shard: &shard,
                request_id: uuid::Uuid::new_v4().to_string(),
                timeout: Duration::from_secs(args.timeout),
                memory_mb: args.memory,
                environment: &environment,
                log_limit_bytes: args.log_limit,
                grants: &grants,
                services: &services,
                // One invocation: nothing to keep warm.
                instance_slot: None,
            },
        )
        .await
        .with_context(|| format!("{}", args.event.display()))?;
    // What the handler answered, as Lambda's runtimes print it, on stdout; the
    // host's judgement of it, as a mapping would judge it, on stderr and in the
    // exit code.
    let records = eddy::verdict::event_records(&event);
    let judgement = eddy::verdict::judge(&result, &records);
    match &result {
        Ok(HandlerResponse::Json(text)) => println!("{text}"),
        Ok(HandlerResponse::Typed(response)) => {
            let failures: Vec<_> = response
                .batch_item_failures
                .iter()
                .map(|id| serde_json::json!({ "itemIdentifier": id }))
                .collect();
            println!("{}", serde_json::json!({ "batchItemFailures": failures }));
        }
        Err(error) => println!("{}", eddy::verdict::error_response(error)),
    }
    eprintln!("{}", judgement.describe(&records));
    Ok(judgement.exit_code())
}
