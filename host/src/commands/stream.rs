//! `eddy stream`: create and list local streams.

use clap::Subcommand;

use super::DataDirArg;
use eddy::source::local;
use eddy::store::embedded::EmbeddedStore;

#[derive(Subcommand)]
pub enum StreamCommand {
    /// Create a local stream (an existing one is left as it is).
    #[command(after_help = "Examples:
  eddy stream create sales
  eddy stream create clicks --shards 8 --retention-hours 168
  eddy stream create scans --max-record-size-kib 10240")]
    Create {
        /// The stream's name: 1 to 128 of a-z, A-Z, 0-9, _ . -
        name: String,
        /// Shards, each a share of the partition keys' hash space, as in Kinesis.
        #[arg(long, default_value_t = local::DEFAULT_SHARDS)]
        shards: u32,
        /// How long records are kept.
        #[arg(long, default_value_t = local::DEFAULT_RETENTION_HOURS)]
        retention_hours: u32,
        /// The largest record (data and partition key) the stream takes, in KiB:
        /// 1024 (Kinesis' default) to 10240.
        #[arg(long, default_value_t = local::DEFAULT_MAX_RECORD_SIZE_KIB)]
        max_record_size_kib: u32,
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

pub fn run(command: StreamCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        StreamCommand::Create { name, shards, retention_hours, max_record_size_kib, data_dir } => {
            let store = EmbeddedStore::open(&data_dir.data_dir)?;
            let d = local::create_with_max_record_size(&store.connect()?, &name, shards, retention_hours, max_record_size_kib)?;
            if d.shard_count != shards || d.max_record_size_kib != max_record_size_kib {
                eprintln!("stream {name} already exists, as it was:");
            }
            println!("{}", describe(&d));
        }
        StreamCommand::List { data_dir } => {
            let store = EmbeddedStore::open(&data_dir.data_dir)?;
            for d in local::list(&store.connect()?)? {
                println!("{}", describe(&d));
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn describe(d: &local::StreamDescription) -> String {
    format!(
        "{} {} shards, retention {} h, records up to {} KiB, {}",
        d.name,
        d.shard_count,
        d.retention_hours,
        d.max_record_size_kib,
        local::stream_arn(&d.name)
    )
}
