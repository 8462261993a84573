//! The host's config file (`eddy run --config eddy.toml`): every option of
//! `eddy run`, under the flag's name. A flag or its environment variable wins
//! over the file, the file over the built-in default.
//!
//! ```toml
//! functions = "/srv/eddy/functions"
//! data-dir = "/var/lib/eddy"
//! admin = "0.0.0.0:8700"
//! scan-ms = 250
//! local-poll-ms = 100
//! max-instances = 128
//! memory-budget-mb = 16384
//! lease-table = "eddy-leases"   # cluster mode (DynamoDB)
//! failover-ms = 10000
//! log-format = "json"
//! log = "info,handler=debug"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file, as written; absent keys leave the option as flags and defaults say.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostFile {
    pub functions: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
    pub no_admin: Option<bool>,
    pub scan_ms: Option<u64>,
    pub local_poll_ms: Option<u64>,
    pub max_instances: Option<u32>,
    pub memory_budget_mb: Option<u64>,
    /// Cluster mode: the DynamoDB lease table.
    pub lease_table: Option<String>,
    pub failover_ms: Option<u64>,
    pub worker_id: Option<String>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// The log filter (as `EDDY_LOG`).
    pub log: Option<String>,
}

impl HostFile {
    /// Reads and validates a config file. Relative paths in it are taken
    /// relative to the file's folder, so the file means the same from anywhere.
    pub fn read(path: &Path) -> anyhow::Result<HostFile> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut file: HostFile = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Some(format) = &file.log_format
            && format != "text"
            && format != "json"
        {
            anyhow::bail!("{}: log-format is {format:?}; it is \"text\" or \"json\"", path.display());
        }
        if let Some(n) = file.max_instances
            && n == 0
        {
            anyhow::bail!("{}: max-instances must be at least 1", path.display());
        }
        if let Some(ms) = file.failover_ms
            && !(1000..=600_000).contains(&ms)
        {
            anyhow::bail!("{}: failover-ms is {ms}; it is 1000 to 600000", path.display());
        }
        if file.lease_table.as_deref() == Some("") {
            anyhow::bail!("{}: lease-table is empty", path.display());
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for dir in [&mut file.functions, &mut file.data_dir].into_iter().flatten() {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_option_and_resolves_paths_beside_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eddy.toml");
        std::fs::write(
            &path,
            "functions = \"fns\"\ndata-dir = \"/var/lib/eddy\"\nadmin = \"0.0.0.0:9000\"\nno-admin = false\n\
             scan-ms = 500\nlocal-poll-ms = 20\nmax-instances = 8\nlog-format = \"json\"\nlog = \"debug\"\n\
             lease-table = \"leases\"\nfailover-ms = 3000\nworker-id = \"w1\"\n",
        )
        .expect("write");
        let file = HostFile::read(&path).expect("valid");
        assert_eq!(file.functions, Some(dir.path().join("fns")));
        assert_eq!(file.data_dir, Some(PathBuf::from("/var/lib/eddy")));
        assert_eq!(file.admin, Some("0.0.0.0:9000".parse().expect("addr")));
        assert_eq!((file.scan_ms, file.local_poll_ms, file.max_instances), (Some(500), Some(20), Some(8)));
        assert_eq!((file.log_format.as_deref(), file.log.as_deref()), (Some("json"), Some("debug")));
        assert_eq!((file.lease_table.as_deref(), file.failover_ms, file.worker_id.as_deref()), (Some("leases"), Some(3000), Some("w1")));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("eddy.toml");
        for (text, says) in [
            ("functoins = \"x\"\n", "unknown field `functoins`"),
            ("admin = \"nowhere\"\n", "admin"),
            ("log-format = \"xml\"\n", "log-format"),
            ("max-instances = 0\n", "max-instances"),
            ("scan-ms = -1\n", "scan-ms"),
            ("failover-ms = 10\n", "failover-ms"),
            ("lease-table = \"\"\n", "lease-table"),
        ] {
            std::fs::write(&path, text).expect("write");
            let error = HostFile::read(&path).expect_err(text).to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
        assert!(HostFile::read(&dir.path().join("missing.toml")).expect_err("missing").to_string().contains("cannot read"));
    }
}
