//! The `eddy` subcommands, one module each: its arguments and what it does.
//! `main.rs` parses the command line and hands each to its module.

pub mod build;
pub mod generate_event;
pub mod invoke;
pub mod mapping;
pub mod new;
pub mod put;
pub mod redrive;
pub mod test;
pub mod run;
pub mod status;
pub mod stream;
pub mod watch;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// The admin port of `eddy run`, and where `eddy status` looks for it, unless
/// told otherwise.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8700";

#[derive(clap::Args)]
pub struct DataDirArg {
    /// The data directory: the embedded database and the compile cache.
    #[arg(long, default_value = ".eddy", env = "EDDY_DATA_DIR")]
    pub data_dir: PathBuf,
}

pub fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

pub fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("cannot read stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// The running host's admin address: the one given, else the one the host
/// running on `data_dir` wrote there, else [`DEFAULT_ADMIN`].
pub fn admin_address(given: Option<std::net::SocketAddr>, data_dir: &Path) -> anyhow::Result<std::net::SocketAddr> {
    Ok(match given {
        Some(admin) => admin,
        None => match eddy::host_lock::running_host(data_dir) {
            Some(eddy::host_lock::HostInfo { admin: Some(admin), .. }) => admin,
            Some(host) => anyhow::bail!("the host running on {} (pid {}) has no admin port", data_dir.display(), host.pid),
            None => DEFAULT_ADMIN.parse()?,
        },
    })
}
