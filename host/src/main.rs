//! The `eddy` command line: the commands and their help, parsed here and run
//! by their modules in [`commands`].

mod commands;

use clap::{Parser, Subcommand};

use commands::build::BuildArgs;
use commands::generate_event::GenerateEventCommand;
use commands::invoke::InvokeArgs;
use commands::mapping::MappingCommand;
use commands::new::NewArgs;
use commands::put::PutArgs;
use commands::redrive::RedriveArgs;
use commands::test::TestArgs;
use commands::run::RunArgs;
use commands::status::StatusArgs;
use commands::watch::WatchArgs;
use commands::stream::StreamCommand;
use eddy::logging::LogFormat;

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
    /// Invoke a function again with the batches it gave up on, read back from
    /// its on-failure destination; the records come from the source again
    /// (or from the failure record's payload).
    ///
    /// The exit status is 1 when any batch failed again or is no longer held.
    #[command(after_help = "Examples:
  eddy redrive orders                                   # from orders.toml's own OnFailure destination
  eddy redrive orders --from failures/                  # a directory of failure records
  eddy redrive orders --from arn:aws:sqs:us-east-1:123456789012:orders-dlq
  eddy redrive orders --dry-run                         # fetch and report, invoke nothing")]
    Redrive(RedriveArgs),
    /// Run a function through its real mapping over a scenario of records, on
    /// a simulated clock, and print each invocation, checkpoint and failure
    /// record: batching, filters, retries, bisection, discards and windows,
    /// without a host and without waiting.
    ///
    /// The exit status is 1 unless every record ends behind its checkpoint.
    #[command(after_help = "Examples:
  eddy test orders --records scenario.jsonl
  eddy test orders --records scenario.jsonl --shards 4 --json
  # scenario.jsonl: {\"PartitionKey\":\"a\",\"Text\":\"hi\"} and {...,\"At\":90} (seconds after the start)")]
    Test(TestArgs),
    /// Pause, resume or rewind a running function's mapping, without a restart.
    #[command(subcommand)]
    Mapping(MappingCommand),
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
    /// Build a handler project, then again whenever its sources change; a
    /// running host swaps each good build in live, keeping the checkpoints.
    #[command(after_help = "Examples:
  eddy watch orders                # builds into ./functions, beside the project
  cd orders && eddy watch          # the same
  eddy watch orders --out /srv/eddy/functions --admin 127.0.0.1:9000")]
    Watch(WatchArgs),
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

fn main() -> std::process::ExitCode {
    let (cli, log_filter) = match parse_cli() {
        Ok(parsed) => parsed,
        Err(error) => {
            eprintln!("eddy: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // `eddy test` prints the mapping's doings as its timeline: only the
    // handler's own lines and warnings from outside the mapping go to the log.
    let log_filter = log_filter.or_else(|| matches!(cli.command, Command::Test(_)).then(|| "warn,eddy::mapping=off,handler=info".to_owned()));
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
        Command::Run(args) => commands::run::run(args).await,
        Command::Invoke(args) => commands::invoke::run(args).await,
        Command::GenerateEvent(command) => commands::generate_event::run(command),
        Command::Put(args) => commands::put::run(args),
        Command::Stream(command) => commands::stream::run(command),
        Command::Status(args) => commands::status::run(args).await,
        Command::Mapping(command) => commands::mapping::run(command).await,
        Command::Redrive(args) => commands::redrive::run(args).await,
        // It runs its own runtime, on a thread of its own (its clock is simulated).
        Command::Test(args) => tokio::task::block_in_place(|| commands::test::run(args)),
        Command::New(args) => commands::new::run(args),
        Command::Build(args) => commands::build::run(args),
        Command::Watch(args) => tokio::task::block_in_place(|| commands::watch::run(args)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "eddy", &mut std::io::stdout());
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
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
