//! `eddy put`: records onto a local stream.

use std::path::PathBuf;

use anyhow::bail;

use super::{DataDirArg, read_input};
use eddy::source::local::{self, PutRecord};
use eddy::store::embedded::EmbeddedStore;

#[derive(clap::Args)]
pub struct PutArgs {
    /// The local stream.
    pub stream: String,
    /// Partition key for the `--data` records.
    #[arg(long, short = 'k', default_value = "key")]
    pub partition_key: String,
    /// Data of a record, as text (repeatable).
    #[arg(long, short)]
    pub data: Vec<String>,
    /// A file of records, one JSON object a line (`-` for stdin):
    /// {"PartitionKey":"k","Text":"..."} or "Data" (base64) or "Json" (a value).
    #[arg(long, short)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

pub fn run(args: PutArgs) -> anyhow::Result<std::process::ExitCode> {
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
