//! `eddy status`: the running host's functions and shards, read from its
//! admin port as the typed [`StatusReport`] (or, with no host running, the
//! checkpoints of the data directory).

use std::net::SocketAddr;

use super::DataDirArg;
use eddy::status::{FunctionState, FunctionStatus, ShardState, ShardStatus, StatusReport};
use eddy::store::embedded::EmbeddedStore;
use eddy::store::{CheckpointStore, now_ms};

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The running host's admin address (default: the one the host running on
    /// the data directory wrote there, else 127.0.0.1:8700).
    #[arg(long, env = "EDDY_ADMIN_ADDR")]
    pub admin: Option<SocketAddr>,
    /// Print the status JSON as the admin port serves it.
    #[arg(long)]
    pub json: bool,
    /// Where to read checkpoints from when the host is not running.
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<std::process::ExitCode> {
    let data_dir = &args.data_dir.data_dir;
    let admin = super::admin_address(args.admin, data_dir)?;
    let url = format!("http://{admin}/status");
    let fetched = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
        Ok(ureq::get(&url).call()?.body_mut().read_to_string()?)
    })
    .await?;
    let text = match fetched {
        Ok(text) => text,
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
        let report: serde_json::Value = serde_json::from_str(&text)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let report: StatusReport =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("the host at {admin} answered a status this eddy cannot read: {e}"))?;
    print_status(&report);
    Ok(std::process::ExitCode::SUCCESS)
}

fn print_status(report: &StatusReport) {
    let text = |v: Option<&str>| v.unwrap_or("-").to_owned();
    if report.functions.is_empty() {
        println!("no functions");
    }
    for f in &report.functions {
        println!(
            "{}  {}  {}  source {}  role {}",
            f.name,
            function_state(f),
            text(f.world.as_deref()),
            text(f.source.as_deref()),
            text(f.role.as_deref())
        );
        println!("  last processing result: {}", f.last_processing_result.as_str());
        if let Some(rewound) = &f.rewound {
            println!("  last rewind: to {} (eddy mapping rewind)", rewound.to);
        }
        if !f.access_denied.is_empty() {
            let counts: Vec<String> = f.access_denied.iter().map(|(action, n)| format!("{action} {n}")).collect();
            println!("  access denied: {}", counts.join(", "));
        }
        if let Some(error) = &f.error {
            println!("  error: {error}");
        }
        if let Some(cluster) = &f.cluster {
            let problem = cluster.error.as_deref().map(|e| format!("  lease table: {e}")).unwrap_or_default();
            println!("  cluster worker {}{problem}", cluster.worker);
        }
        for s in &f.shards {
            // Lambda's per-mapping metrics, per shard: polled, filtered out, invoked
            // (retries included), failed, dropped, and accepted by the destination.
            println!(
                "  {}{}{}  checkpoint {}  age {} ms\n    records {}  polled {}  filtered {}  invoked {}  failed {}  dropped {}  to destination {}  invocations {}{}{}",
                s.shard,
                if s.state == ShardState::Finished { " (finished)" } else { "" },
                s.owner.as_deref().map(|o| format!("  owner {o}")).unwrap_or_default(),
                s.checkpoint.as_ref().map_or_else(|| "-".to_owned(), |c| c.to_string()),
                s.iterator_age_ms,
                s.records_processed,
                s.polled_events,
                s.filtered_out_events,
                s.invoked_events,
                s.failed_invoke_events,
                s.records_discarded,
                s.destination_delivered_events,
                s.invocations,
                stuck_line(s),
                s.last_error.as_deref().map(|e| format!("\n    last error: {e}")).unwrap_or_default()
            );
        }
    }
}

/// The function's state; a running function with a shard stuck on a failing
/// batch, or on a destination that refuses, is not healthy, and says so.
fn function_state(f: &FunctionStatus) -> String {
    let count = |stuck: fn(&ShardState) -> bool| f.shards.iter().filter(|s| stuck(&s.state)).count();
    let retrying = count(|s| matches!(s, ShardState::Retrying { .. }));
    let refused = count(|s| matches!(s, ShardState::DestinationRefused { .. }));
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match f.state {
        FunctionState::Running if retrying + refused > 0 => {
            let mut stuck = Vec::new();
            if retrying > 0 {
                stuck.push(format!("{retrying} shard{} RETRYING", plural(retrying)));
            }
            if refused > 0 {
                stuck.push(format!("{refused} shard{} DESTINATION REFUSED", plural(refused)));
            }
            format!("running, {}", stuck.join(", "))
        }
        state => state.as_str().to_owned(),
    }
}

/// "RETRYING attempt 3 of 3, since 12 s" for a shard stuck on a failing batch;
/// "DESTINATION REFUSED 4 times, since 9 s" for one whose destination refuses.
fn stuck_line(shard: &ShardStatus) -> String {
    let seconds_since = |t: u64| now_ms().saturating_sub(t) / 1000;
    match shard.state {
        ShardState::DestinationRefused { attempts, refused_since_ms } => format!(
            "\n    DESTINATION REFUSED the failure record {attempts} times, since {} s (retrying)",
            seconds_since(refused_since_ms)
        ),
        ShardState::Retrying { next_attempt, max_attempts, retrying_since_ms } => {
            let limit = match max_attempts {
                Some(max) => format!(" of {max}"),
                None => " (no retry limit: MaximumRetryAttempts = -1)".to_owned(),
            };
            format!("\n    RETRYING attempt {next_attempt}{limit}, since {} s", seconds_since(retrying_since_ms))
        }
        ShardState::Ok | ShardState::Finished => String::new(),
    }
}
