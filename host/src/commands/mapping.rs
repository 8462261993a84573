//! `eddy mapping pause | resume | rewind`: the operator's say over a running
//! mapping, sent to the host's admin port ([`eddy::control_api`]). Each takes
//! effect without a restart and is kept in the mapping's store, so it outlives
//! the host and, in cluster mode, reaches every host.

use std::net::SocketAddr;

use super::DataDirArg;
use eddy::control_api::ControlResponse;

#[derive(clap::Subcommand)]
pub enum MappingCommand {
    /// Stop invoking a function: each shard finishes its batch in flight and
    /// checkpoints it; nothing more is read until `eddy mapping resume`.
    #[command(after_help = "Examples:
  eddy mapping pause orders
  eddy mapping pause orders --admin 10.0.0.5:8700   # a cluster: any host will do")]
    Pause(Target),
    /// Go on invoking a paused function, from its checkpoints.
    #[command(after_help = "Examples:
  eddy mapping resume orders")]
    Resume(Target),
    /// Move a function's checkpoints and go on from there, without a restart.
    ///
    /// The shards stop after their batches in flight, their checkpoints move
    /// (open tumbling windows are forgotten), and reading starts again from the
    /// new place. A paused mapping stays paused, at the new place.
    #[command(after_help = "Examples:
  eddy mapping rewind orders --to TRIM_HORIZON            # every record the stream still holds
  eddy mapping rewind orders --to LATEST                  # skip what is there now (a poison record, a backlog)
  eddy mapping rewind orders --to 2026-12-07T09:30:00Z    # what arrived from then on (Kinesis, local streams)
  eddy mapping rewind orders --to shardId-000000000001:49590338271490256608559692538361571095921575989136588898")]
    Rewind {
        #[command(flatten)]
        target: Target,
        /// Where to: TRIM_HORIZON, LATEST, a time (RFC 3339, or seconds since
        /// the epoch), or SHARD:SEQUENCE_NUMBER (that shard only, from that
        /// record on).
        #[arg(long)]
        to: String,
    },
}

#[derive(clap::Args)]
pub struct Target {
    /// The function, by its name in the functions folder.
    pub function: String,
    /// The running host's admin address (default: the one the host running on
    /// the data directory wrote there, else 127.0.0.1:8700).
    #[arg(long, env = "EDDY_ADMIN_ADDR")]
    pub admin: Option<SocketAddr>,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

pub async fn run(command: MappingCommand) -> anyhow::Result<std::process::ExitCode> {
    let (target, action, body) = match &command {
        MappingCommand::Pause(target) => (target, "pause", None),
        MappingCommand::Resume(target) => (target, "resume", None),
        MappingCommand::Rewind { target, to } => (
            target,
            "rewind",
            Some(serde_json::json!({ "to": to }).to_string()),
        ),
    };
    let admin = super::admin_address(target.admin, &target.data_dir.data_dir)?;
    let url = format!("http://{admin}/mappings/{}/{action}", target.function);
    let answer = tokio::task::spawn_blocking(move || -> anyhow::Result<(u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = match body {
            Some(body) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body)?,
            None => agent.post(&url).send_empty()?,
        };
        Ok((
            response.status().as_u16(),
            response.body_mut().read_to_string()?,
        ))
    })
    .await?;
    let (code, text) = answer.map_err(|error| {
        anyhow::anyhow!("no host answers at {admin} ({error}); is `eddy run` running?")
    })?;
    if code != 200 {
        anyhow::bail!("{}", text.trim_end());
    }
    let done: ControlResponse = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!("the host at {admin} answered what this eddy cannot read: {e}")
    })?;
    let what = match (action, &done.rewound_to) {
        ("rewind", Some(to)) => format!("rewound to {to}"),
        ("pause", _) => "paused".to_owned(),
        _ => "resumed".to_owned(),
    };
    println!(
        "{} ({}): {what}; now {}",
        done.function, done.source, done.state
    );
    if !done.acted {
        println!(
            "  (this host's mapping has not acted on it yet: it does not run here now, or is slow to stop; it will when it runs)"
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
