//! The `eddy` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use eddy::host::{self, HostConfig};
use eddy::logging::LogFormat;
use eddy::record::{Batch, DynamodbEventName, DynamodbRecord, EventSource, KinesisRecord, Records};
use eddy::runtime::{HandlerResponse, InvokeRequest, Runtime, RuntimeConfig};
use eddy::source::local::{self, PutRecord};
use eddy::store::embedded::EmbeddedStore;
use eddy::store::{CheckpointStore, now_ms};

const DEFAULT_ADMIN: &str = "127.0.0.1:8700";

/// Eddy runs WebAssembly handlers on Kinesis-style streams, as Lambda's event
/// source mappings run functions.
#[derive(Parser)]
#[command(name = "eddy", version, propagate_version = true)]
struct Cli {
    /// Log lines as JSON objects instead of text.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "EDDY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host: watch the functions folder and run each function's mapping.
    #[command(after_help = "Examples:
  eddy run                                  # ./functions, data in ./.eddy, admin on 127.0.0.1:8700
  eddy run --functions /srv/eddy/functions --data-dir /var/lib/eddy --admin 0.0.0.0:8700
  eddy run --config deploy/eddy.toml --check   # validate, then exit
  eddy run --lease-table eddy-leases        # cluster mode: share shards with other hosts")]
    Run(RunArgs),
    /// Invoke a handler once with a Lambda-shaped event file and print its response.
    ///
    /// The exit status is 1 when the invocation fails (a function error).
    #[command(after_help = "Examples:
  eddy generate-event kinesis --data '{\"amount\": 4}' > event.json
  eddy invoke functions/orders.wasm --event event.json
  eddy invoke orders.wasm --event - --role roles/orders.json --env GREETING=hi < event.json")]
    Invoke(InvokeArgs),
    /// Print a sample Lambda event, to edit and pass to `eddy invoke`.
    #[command(subcommand)]
    GenerateEvent(GenerateEventCommand),
    /// Put records on a local stream.
    #[command(after_help = "Examples:
  eddy put sales -k alice -d '{\"amount\": 4}' -d '{\"amount\": 2}'
  eddy put sales --file examples/sample-records.jsonl
  printf '{\"PartitionKey\":\"k\",\"Text\":\"hi\"}\\n' | eddy put sales --file -")]
    Put(PutArgs),
    /// Create or list local streams.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Show the running host's functions, shards, checkpoints and last errors.
    #[command(after_help = "Examples:
  eddy status                      # the host running on ./.eddy, wherever its admin port is
  eddy status --admin 127.0.0.1:9000 --json")]
    Status(StatusArgs),
    /// Start a handler project: the handler, its manifest, its role and build.sh.
    #[command(after_help = "Examples:
  eddy new orders --lang rust
  eddy new orders --lang js --dir ~/handlers")]
    New(NewArgs),
    /// Build a handler project into the functions folder, with its manifest and role.
    #[command(after_help = "Examples:
  eddy build orders                # into ./functions, beside the project
  cd orders && eddy build          # the same
  eddy build orders --out /srv/eddy/functions")]
    Build(BuildArgs),
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  eddy completions bash > ~/.local/share/bash-completion/completions/eddy
  eddy completions zsh > \"${fpath[1]}/_eddy\"
  eddy completions fish > ~/.config/fish/completions/eddy.fish")]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(clap::Args)]
struct NewArgs {
    /// The function's name (also the project folder's).
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    lang: eddy::project::Language,
    /// Where to create the project folder.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

#[derive(clap::Args)]
struct BuildArgs {
    /// The project folder (its language is told by its files).
    #[arg(default_value = ".")]
    project: PathBuf,
    /// The functions folder to build into, the one `eddy run` watches (default:
    /// `functions` beside the project's folder, where `eddy new` made it).
    #[arg(long, env = "EDDY_FUNCTIONS")]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct DataDirArg {
    /// The data directory: the embedded database and the compile cache.
    #[arg(long, default_value = ".eddy", env = "EDDY_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(clap::Args)]
struct RunArgs {
    /// A config file (TOML) with any of these options under the flags' names
    /// (`functions`, `data-dir`, `admin`, ...); flags and environment win over it.
    #[arg(long, env = "EDDY_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the config, every function (manifest, component, role) and every
    /// role file, print what was found, and exit: 0 if all is well, 1 if not.
    #[arg(long)]
    check: bool,
    /// The watched folder of `<name>.wasm` + `<name>.toml` pairs.
    #[arg(long, default_value = "functions", env = "EDDY_FUNCTIONS")]
    functions: PathBuf,
    #[command(flatten)]
    data: DataDirArg,
    /// Address of the admin HTTP port (health, status, metrics, ingest).
    #[arg(long, default_value = DEFAULT_ADMIN, env = "EDDY_ADMIN_ADDR")]
    admin: SocketAddr,
    /// Run without the admin port.
    #[arg(long)]
    no_admin: bool,
    /// How often the functions folder is scanned, in milliseconds.
    #[arg(long, default_value_t = 250, env = "EDDY_SCAN_MS")]
    scan_ms: u64,
    /// How often an idle local stream shard is polled, in milliseconds.
    #[arg(long, default_value_t = 100, env = "EDDY_LOCAL_POLL_MS")]
    local_poll_ms: u64,
    /// Instances that may run at once (slots of the pooling allocator).
    #[arg(long, default_value_t = 128, env = "EDDY_MAX_INSTANCES")]
    max_instances: u32,
    /// The MB that the MemorySize of all invocations running at once may add up
    /// to; an invocation waits for room (default: three quarters of the
    /// machine's memory).
    #[arg(long, env = "EDDY_MEMORY_BUDGET_MB")]
    memory_budget_mb: Option<u64>,
    /// Cluster mode: share the shards of Kinesis and DynamoDB sources with other
    /// hosts through this DynamoDB lease table (created if absent), which also
    /// keeps their checkpoints. Without it, one host reads every shard.
    #[arg(long, env = "EDDY_LEASE_TABLE")]
    lease_table: Option<String>,
    /// Cluster mode: a lease not renewed for this long is taken by another host,
    /// in milliseconds; leases are renewed every third of it.
    #[arg(long, default_value_t = 10_000, env = "EDDY_FAILOVER_MS", value_parser = clap::value_parser!(u64).range(1000..=600_000))]
    failover_ms: u64,
    /// Cluster mode: this host's name in the lease table (default: the machine's
    /// name and a random part, new at each start).
    #[arg(long, env = "EDDY_WORKER_ID")]
    worker_id: Option<String>,
}

#[derive(clap::Args)]
struct InvokeArgs {
    /// The handler component (`.wasm`).
    module: PathBuf,
    /// The event file: Lambda's Kinesis or DynamoDB event JSON (`-` for stdin).
    #[arg(long, short)]
    event: PathBuf,
    /// The function name the handler sees in its context.
    #[arg(long)]
    function_name: Option<String>,
    /// Timeout in seconds (1-900).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=900))]
    timeout: u64,
    /// Memory limit in MB (128-10240).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(128..=10240))]
    memory: u32,
    /// An environment variable for the handler, NAME=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    environment: Vec<(String, String)>,
    /// The execution role's policy file (IAM JSON); without one, every
    /// capability call is denied.
    #[arg(long)]
    role: Option<PathBuf>,
    /// The data directory whose local streams and tables capability calls
    /// reach, and whose compile cache is used (none by default).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Compile the component again rather than use the compile cache (the data
    /// directory's, or else ~/.cache/eddy/compiled: see EDDY_CACHE_DIR).
    #[arg(long)]
    no_cache: bool,
    /// Bytes of log output the invocation may write.
    #[arg(long, default_value_t = eddy::manifest::DEFAULT_LOG_LIMIT_BYTES)]
    log_limit: usize,
}

#[derive(Subcommand)]
enum GenerateEventCommand {
    /// A Kinesis event: Lambda's `Records` with base64 data.
    #[command(after_help = "Examples:
  eddy generate-event kinesis
  eddy generate-event kinesis --data '{\"amount\": 4}' --data 'not json' --partition-key alice")]
    Kinesis {
        /// Data of a record, as text (repeatable; two samples by default).
        #[arg(long)]
        data: Vec<String>,
        /// Partition key of the records.
        #[arg(long, default_value = "1")]
        partition_key: String,
    },
    /// A DynamoDB Streams event: an INSERT, a MODIFY and a REMOVE of one item.
    #[command(after_help = "Example:
  eddy generate-event dynamodb > event.json")]
    Dynamodb,
}

#[derive(clap::Args)]
struct PutArgs {
    /// The local stream.
    stream: String,
    /// Partition key for the `--data` records.
    #[arg(long, short = 'k', default_value = "key")]
    partition_key: String,
    /// Data of a record, as text (repeatable).
    #[arg(long, short)]
    data: Vec<String>,
    /// A file of records, one JSON object a line (`-` for stdin):
    /// {"PartitionKey":"k","Text":"..."} or "Data" (base64) or "Json" (a value).
    #[arg(long, short)]
    file: Option<PathBuf>,
    #[command(flatten)]
    data_dir: DataDirArg,
}

#[derive(Subcommand)]
enum StreamCommand {
    /// Create a local stream (an existing one is left as it is).
    #[command(after_help = "Examples:
  eddy stream create sales
  eddy stream create clicks --shards 8 --retention-hours 168")]
    Create {
        /// The stream's name: 1 to 128 of a-z, A-Z, 0-9, _ . -
        name: String,
        /// Shards, each a share of the partition keys' hash space, as in Kinesis.
        #[arg(long, default_value_t = local::DEFAULT_SHARDS)]
        shards: u32,
        /// How long records are kept.
        #[arg(long, default_value_t = local::DEFAULT_RETENTION_HOURS)]
        retention_hours: u32,
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// List the local streams.
    #[command(after_help = "Example:
  eddy stream list --data-dir /var/lib/eddy")]
    List {
        #[command(flatten)]
        data_dir: DataDirArg,
    },
}

#[derive(clap::Args)]
struct StatusArgs {
    /// The running host's admin address (default: the one the host running on
    /// the data directory wrote there, else 127.0.0.1:8700).
    #[arg(long, env = "EDDY_ADMIN_ADDR")]
    admin: Option<SocketAddr>,
    /// Print the status JSON as the admin port serves it.
    #[arg(long)]
    json: bool,
    /// Where to read checkpoints from when the host is not running.
    #[command(flatten)]
    data_dir: DataDirArg,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

fn main() -> std::process::ExitCode {
    let (cli, log_filter) = match parse_cli() {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("eddy: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    init_logging(cli.log_format, matches!(cli.command, Command::Run(_)), log_filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("eddy: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("eddy: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line, with `eddy run`'s config file applied under it: an option
/// given as a flag or in its environment variable keeps that value; one left at
/// its default takes the file's. Also returns the file's log filter, if any.
fn parse_cli() -> anyhow::Result<(Cli, Option<String>)> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches)?;
    let (Command::Run(args), Some(run)) = (&mut cli.command, matches.subcommand_matches("run")) else {
        return Ok((cli, None));
    };
    let Some(path) = &args.config else { return Ok((cli, None)) };
    let file = eddy::config::HostFile::read(path)?;
    let defaulted = |id: &str| run.value_source(id).is_none_or(|s| s == ValueSource::DefaultValue);
    macro_rules! from_file {
        ($field:ident, $id:literal, $target:expr) => {
            if let Some(value) = file.$field.clone()
                && defaulted($id)
            {
                $target = value;
            }
        };
    }
    from_file!(functions, "functions", args.functions);
    from_file!(data_dir, "data_dir", args.data.data_dir);
    from_file!(admin, "admin", args.admin);
    from_file!(no_admin, "no_admin", args.no_admin);
    from_file!(scan_ms, "scan_ms", args.scan_ms);
    from_file!(local_poll_ms, "local_poll_ms", args.local_poll_ms);
    from_file!(max_instances, "max_instances", args.max_instances);
    from_file!(failover_ms, "failover_ms", args.failover_ms);
    if args.memory_budget_mb.is_none() {
        args.memory_budget_mb = file.memory_budget_mb;
    }
    if let Some(table) = file.lease_table.clone()
        && defaulted("lease_table")
    {
        args.lease_table = Some(table);
    }
    if let Some(id) = file.worker_id.clone()
        && defaulted("worker_id")
    {
        args.worker_id = Some(id);
    }
    if let Some(format) = &file.log_format
        && matches.value_source("log_format").is_none_or(|s| s == ValueSource::DefaultValue)
    {
        cli.log_format = if format == "json" { LogFormat::Json } else { LogFormat::Text };
    }
    Ok((cli, file.log))
}

fn init_logging(format: LogFormat, running_host: bool, file_filter: Option<String>) {
    // EDDY_LOG takes tracing's filter syntax, e.g. `debug` or `info,handler=debug`
    // (a bare level is Eddy's own lines': see eddy::logging); it wins over the
    // config file's `log`.
    let default = file_filter.unwrap_or_else(|| (if running_host { "info" } else { "warn,handler=info" }).to_owned());
    let filter = std::env::var("EDDY_LOG").ok().filter(|f| !f.trim().is_empty()).unwrap_or(default);
    eddy::logging::init(format, &filter);
}

async fn dispatch(command: Command) -> anyhow::Result<std::process::ExitCode> {
    match command {
        Command::Run(args) => run(args).await,
        Command::Invoke(args) => invoke(args).await,
        Command::GenerateEvent(command) => generate_event(command),
        Command::Put(args) => put(args),
        Command::Stream(command) => stream(command),
        Command::Status(args) => status(args).await,
        Command::New(args) => new_project(args),
        Command::Build(args) => build_project(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "eddy", &mut std::io::stdout());
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// `eddy new`.
fn new_project(args: NewArgs) -> anyhow::Result<std::process::ExitCode> {
    let sdk = eddy::project::sdk_dir()?;
    let dir = eddy::project::scaffold::new_project(&args.dir, &args.name, args.lang, &sdk)?;
    println!("created {} ({} handler, manifest {}.toml, role.json, build.sh)", dir.display(), args.lang.name(), args.name);
    let functions = eddy::project::build::default_out(&dir)?;
    println!("next: eddy build {}   # builds it into {}", dir.display(), functions.display());
    println!("then: eddy run --functions {}   # runs it; eddy put {}-input -d '{{\"amount\": 4}}' feeds it",
        functions.display(), args.name);
    Ok(std::process::ExitCode::SUCCESS)
}

/// `eddy build`.
fn build_project(args: BuildArgs) -> anyhow::Result<std::process::ExitCode> {
    let sdk = eddy::project::sdk_dir()?;
    let out = match args.out {
        Some(out) => out,
        None => eddy::project::build::default_out(&args.project)?,
    };
    let built = eddy::project::build::build(&args.project, &out, &sdk)?;
    println!("built {} ({})", built.component.display(), built.language.name());
    println!("manifest {}", built.manifest.display());
    if let Some(role) = &built.role {
        println!("role {}", role.display());
    }
    let watched = std::path::absolute(&out).unwrap_or(out);
    println!("a host picks it up from {}: eddy run --functions {}", watched.display(), watched.display());
    Ok(std::process::ExitCode::SUCCESS)
}

async fn run(args: RunArgs) -> anyhow::Result<std::process::ExitCode> {
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

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

async fn invoke(args: InvokeArgs) -> anyhow::Result<std::process::ExitCode> {
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
    let component = runtime.load(&bytes).with_context(|| format!("{}", args.module.display()))?;
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

fn generate_event(command: GenerateEventCommand) -> anyhow::Result<std::process::ExitCode> {
    let arrival = now_ms();
    let batch = match command {
        GenerateEventCommand::Kinesis { data, partition_key } => {
            let data = if data.is_empty() {
                vec!["Hello, this is a test.".to_owned(), "This is only a test.".to_owned()]
            } else {
                data
            };
            let shard = "shardId-000000000000";
            let records = data
                .into_iter()
                .enumerate()
                .map(|(i, text)| {
                    let sequence_number = format!("49590338271490256608559692{:030}", i + 1);
                    KinesisRecord {
                        event_id: format!("{shard}:{sequence_number}"),
                        partition_key: partition_key.clone(),
                        sequence_number,
                        data: text.into_bytes(),
                        approximate_arrival_timestamp_ms: arrival,
                        encryption_type: None,
                    }
                })
                .collect();
            Batch {
                event_source: EventSource::Kinesis,
                event_source_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/example-stream".into(),
                aws_region: "us-east-1".into(),
                invoke_identity_arn: "arn:aws:iam::123456789012:role/lambda-role".into(),
                shard_id: shard.into(),
                records: Records::Kinesis(records),
                window: None,
            }
        }
        GenerateEventCommand::Dynamodb => {
            let keys = r#"{"Id":{"N":"101"}}"#.to_owned();
            let new = r#"{"Message":{"S":"New item!"},"Id":{"N":"101"}}"#.to_owned();
            let changed = r#"{"Message":{"S":"This item has changed"},"Id":{"N":"101"}}"#.to_owned();
            let record = |i: u64, name, new_image: Option<String>, old_image: Option<String>| DynamodbRecord {
                event_id: uuid::Uuid::new_v4().simple().to_string(),
                event_name: name,
                sequence_number: format!("{}00000000000000000000{}", i, i),
                approximate_creation_date_time_ms: (arrival / 1000) * 1000,
                keys: keys.clone(),
                size_bytes: eddy::dynamodb_size::record_size(&keys, new_image.as_deref(), old_image.as_deref()),
                new_image,
                old_image,
                stream_view_type: "NEW_AND_OLD_IMAGES".into(),
                user_identity_principal: None,
            };
            Batch {
                event_source: EventSource::Dynamodb,
                event_source_arn:
                    "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTable/stream/2024-01-01T00:00:00.000".into(),
                aws_region: "us-east-1".into(),
                invoke_identity_arn: String::new(),
                shard_id: "shardId-00000001700000000000-00000000".into(),
                records: Records::Dynamodb(vec![
                    record(1, DynamodbEventName::Insert, Some(new.clone()), None),
                    record(2, DynamodbEventName::Modify, Some(changed.clone()), Some(new)),
                    record(3, DynamodbEventName::Remove, None, Some(changed)),
                ]),
                window: None,
            }
        }
    };
    println!("{}", eddy::event::encode_pretty(&batch));
    Ok(std::process::ExitCode::SUCCESS)
}

fn put(args: PutArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut records: Vec<PutRecord> = args
        .data
        .into_iter()
        .map(|text| PutRecord { partition_key: args.partition_key.clone(), data: text.into_bytes() })
        .collect();
    if let Some(file) = &args.file {
        let text = read_input(file)?;
        records.extend(eddy::ingest::parse_json_lines(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?);
    }
    if records.is_empty() {
        bail!("nothing to put: give --data TEXT or --file FILE");
    }
    let store = EmbeddedStore::open(&args.data_dir.data_dir)?;
    let mut conn = store.connect()?;
    let landed = local::put(&mut conn, &args.stream, &records)?;
    for r in &landed {
        println!("{} {}", r.shard_id, r.sequence_number);
    }
    eprintln!("put {} records on {}", landed.len(), args.stream);
    Ok(std::process::ExitCode::SUCCESS)
}

fn stream(command: StreamCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        StreamCommand::Create { name, shards, retention_hours, data_dir } => {
            let store = EmbeddedStore::open(&data_dir.data_dir)?;
            let d = local::create(&store.connect()?, &name, shards, retention_hours)?;
            if d.shard_count != shards {
                eprintln!("stream {name} already exists with {} shards", d.shard_count);
            }
            println!("{} {} shards, retention {} h, {}", d.name, d.shard_count, d.retention_hours, local::stream_arn(&d.name));
        }
        StreamCommand::List { data_dir } => {
            let store = EmbeddedStore::open(&data_dir.data_dir)?;
            for d in local::list(&store.connect()?)? {
                println!("{} {} shards, retention {} h, {}", d.name, d.shard_count, d.retention_hours, local::stream_arn(&d.name));
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

async fn status(args: StatusArgs) -> anyhow::Result<std::process::ExitCode> {
    let data_dir = &args.data_dir.data_dir;
    let admin = match args.admin {
        Some(admin) => admin,
        None => match eddy::host_lock::running_host(data_dir) {
            Some(eddy::host_lock::HostInfo { admin: Some(admin), .. }) => admin,
            Some(host) => bail!("the host running on {} (pid {}) has no admin port", data_dir.display(), host.pid),
            None => DEFAULT_ADMIN.parse()?,
        },
    };
    let url = format!("http://{admin}/status");
    let fetched = tokio::task::spawn_blocking(move || -> anyhow::Result<serde_json::Value> {
        Ok(ureq::get(&url).call()?.body_mut().read_json()?)
    })
    .await?;
    let report = match fetched {
        Ok(report) => report,
        Err(error) => {
            eprintln!("no host answers at {admin} ({error}); checkpoints in {}:", data_dir.display());
            let store = EmbeddedStore::open(&args.data_dir.data_dir)?;
            for c in store.list().await? {
                println!("{} {} {} checkpoint {}", c.key.function, c.key.source, c.key.shard, c.checkpoint);
            }
            return Ok(std::process::ExitCode::FAILURE);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    print_status(&report);
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_status(report: &serde_json::Value) {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| "-".to_owned());
    let functions = report["functions"].as_array().cloned().unwrap_or_default();
    if functions.is_empty() {
        println!("no functions");
    }
    for f in functions {
        let shards = f["shards"].as_array().cloned().unwrap_or_default();
        let count = |state: &str| shards.iter().filter(|s| s["state"] == state).count();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        // A running function with a shard stuck on a failing batch, or on a
        // destination that refuses, is not healthy.
        let state = match (text(&f["state"]).as_str(), count("retrying"), count("destination_refused")) {
            ("running", 0, 0) => "running".to_owned(),
            ("running", retrying, refused) => {
                let mut stuck = Vec::new();
                if retrying > 0 {
                    stuck.push(format!("{retrying} shard{} RETRYING", plural(retrying)));
                }
                if refused > 0 {
                    stuck.push(format!("{refused} shard{} DESTINATION REFUSED", plural(refused)));
                }
                format!("running, {}", stuck.join(", "))
            }
            (other, _, _) => other.to_owned(),
        };
        println!(
            "{}  {}  {}  source {}  role {}",
            text(&f["name"]),
            state,
            text(&f["world"]),
            text(&f["source"]),
            text(&f["role"])
        );
        println!("  last processing result: {}", text(&f["last_processing_result"]));
        if let Some(denied) = f["access_denied"].as_object().filter(|d| !d.is_empty()) {
            let counts: Vec<String> = denied.iter().map(|(action, n)| format!("{action} {n}")).collect();
            println!("  access denied: {}", counts.join(", "));
        }
        if let Some(error) = f["error"].as_str() {
            println!("  error: {error}");
        }
        if let Some(cluster) = f["cluster"].as_object() {
            let worker = cluster.get("worker").and_then(|w| w.as_str()).unwrap_or("-");
            let problem = cluster.get("error").and_then(|e| e.as_str()).map(|e| format!("  lease table: {e}")).unwrap_or_default();
            println!("  cluster worker {worker}{problem}");
        }
        for s in shards {
            // Lambda's per-mapping metrics, per shard: polled, filtered out, invoked
            // (retries included), failed, dropped, and accepted by the destination.
            println!(
                "  {}{}{}  checkpoint {}  age {} ms\n    records {}  polled {}  filtered {}  invoked {}  failed {}  dropped {}  to destination {}  invocations {}{}{}",
                text(&s["shard"]),
                if s["state"] == "finished" { " (finished)" } else { "" },
                s["owner"].as_str().map(|o| format!("  owner {o}")).unwrap_or_default(),
                text(&s["checkpoint"]),
                s["iterator_age_ms"],
                s["records_processed"],
                s["polled_events"],
                s["filtered_out_events"],
                s["invoked_events"],
                s["failed_invoke_events"],
                s["records_discarded"],
                s["destination_delivered_events"],
                s["invocations"],
                retrying_line(&s),
                s["last_error"].as_str().map(|e| format!("\n    last error: {e}")).unwrap_or_default()
            );
        }
    }
}

/// "RETRYING attempt 3 of 3, since 12 s" for a shard stuck on a failing batch;
/// "DESTINATION REFUSED 4 times, since 9 s" for one whose destination refuses.
fn retrying_line(shard: &serde_json::Value) -> String {
    if shard["state"] == "destination_refused" {
        let since = shard["refused_since_ms"].as_u64().map_or(0, |t| now_ms().saturating_sub(t) / 1000);
        return format!("\n    DESTINATION REFUSED the failure record {} times, since {since} s (retrying)", shard["attempts"]);
    }
    if shard["state"] != "retrying" {
        return String::new();
    }
    let limit = match shard["max_attempts"].as_u64() {
        Some(max) => format!(" of {max}"),
        None => " (no retry limit: MaximumRetryAttempts = -1)".to_owned(),
    };
    let since = shard["retrying_since_ms"].as_u64().map_or(0, |t| now_ms().saturating_sub(t) / 1000);
    format!("\n    RETRYING attempt {}{limit}, since {since} s", shard["next_attempt"])
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command a user can run shows examples in its help, and every
    /// argument says what it is.
    #[test]
    fn every_command_has_examples_and_every_argument_a_description() {
        Cli::command().debug_assert();
        fn walk(command: &clap::Command, path: &str) {
            let path = format!("{path} {}", command.get_name());
            let subcommands: Vec<&clap::Command> = command.get_subcommands().filter(|c| c.get_name() != "help").collect();
            if subcommands.is_empty() {
                let help = command.get_after_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(help.starts_with("Example"), "`{path}` has no examples in its help");
            }
            for argument in command.get_arguments() {
                let id = argument.get_id().as_str();
                if id != "help" && id != "version" {
                    assert!(argument.get_help().is_some(), "`{path}`'s argument {id} has no description");
                }
            }
            for sub in subcommands {
                walk(sub, &path);
            }
        }
        walk(&Cli::command(), "");
    }

    #[test]
    fn generate_event_dynamodb_refuses_the_kinesis_options() {
        use clap::Parser;
        assert!(Cli::try_parse_from(["eddy", "generate-event", "kinesis", "--data", "x"]).is_ok());
        let error = Cli::try_parse_from(["eddy", "generate-event", "dynamodb", "--data", "x"]).err().expect("refused");
        assert!(error.to_string().contains("unexpected argument '--data'"), "{error}");
    }
}
