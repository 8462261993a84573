//! One host per data directory and per functions folder. Two `eddy run` on the
//! same checkpoints or the same functions would both process every record, so
//! the second refuses to start, naming the first.
//!
//! In cluster mode hosts may share one functions folder (the lease table shares
//! the shards out), so only the data directory is locked there.
//!
//! The data directory holds `host.lock`: locked (`flock`) for the life of the
//! host, and holding the host's pid and admin address as JSON, so that the
//! refusal can name the first host and `eddy status` can find a host on a port
//! other than the default. The functions folder (which may be read-only) is
//! locked as a directory; its holder is named from `/proc/locks` where there is one.
//! The kernel drops both locks when the process ends, however it ends.

use std::fs::{File, TryLockError};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file in the data directory that the running host locks and describes itself in.
pub const LOCK_FILE: &str = "host.lock";

/// What a running host writes about itself into its data directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostInfo {
    pub pid: u32,
    /// `None` when it runs without the admin port.
    pub admin: Option<SocketAddr>,
    pub functions: PathBuf,
}

/// Why a host cannot have its data directory or functions folder.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the data directory {dir} is in use by another eddy run ({holder}); stop it, or give this one its own --data-dir")]
    DataDirInUse { dir: PathBuf, holder: String },
    #[error("the functions folder {dir} is watched by another eddy run ({holder}); stop it, or give this one its own --functions")]
    FunctionsInUse { dir: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The locks of a running host; dropping it lets them go.
#[derive(Debug)]
pub struct HostLock {
    path: PathBuf,
    data: File,
    _functions: Option<File>,
}

impl HostLock {
    /// Takes the data directory's lock, then the functions folder's if one is given.
    pub fn acquire(data_dir: &Path, functions_dir: Option<&Path>) -> Result<HostLock, LockError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| LockError::Io { path: path.clone(), source };
        let data = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match try_lock_patiently(&data) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_info(data_dir).map_or_else(|| "its pid is unknown".to_owned(), |h| describe(&h));
                return Err(LockError::DataDirInUse { dir: data_dir.to_path_buf(), holder });
            }
            Err(TryLockError::Error(error)) => return Err(io(error)),
        }
        let functions = functions_dir.map(lock_functions).transpose()?;
        Ok(HostLock { path, data, _functions: functions })
    }

    /// Writes what other commands learn of this host into the lock file.
    pub fn publish(&mut self, info: &HostInfo) -> Result<(), LockError> {
        let text = serde_json::to_string(info).unwrap_or_default();
        let io = |source| LockError::Io { path: self.path.clone(), source };
        self.data.set_len(0).map_err(io)?;
        std::io::Seek::rewind(&mut self.data).map_err(io)?;
        self.data.write_all(text.as_bytes()).map_err(io)
    }
}

/// Takes `file`'s exclusive lock, waiting a moment for a reader's shared lock
/// ([`running_host`] holds one for an instant) but not for another host's.
fn try_lock_patiently(file: &File) -> Result<(), TryLockError> {
    for _ in 0..10 {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) => std::thread::sleep(std::time::Duration::from_millis(20)),
            done => return done,
        }
    }
    file.try_lock()
}

/// Locks the functions folder itself (it may be read-only: no file is written).
fn lock_functions(dir: &Path) -> Result<File, LockError> {
    let io = |source| LockError::Io { path: dir.to_path_buf(), source };
    let folder = File::open(dir).map_err(io)?;
    match folder.try_lock() {
        Ok(()) => Ok(folder),
        Err(TryLockError::WouldBlock) => {
            let holder = lock_holder(&folder).map_or_else(|| "its pid is unknown".to_owned(), |pid| format!("pid {pid}"));
            Err(LockError::FunctionsInUse { dir: dir.to_path_buf(), holder })
        }
        Err(TryLockError::Error(source)) => Err(io(source)),
    }
}

/// What the host running on `data_dir` wrote about itself, if a host runs there.
/// A lock file left by a host that has ended is not locked, and is ignored.
pub fn running_host(data_dir: &Path) -> Option<HostInfo> {
    let file = File::open(data_dir.join(LOCK_FILE)).ok()?;
    match file.try_lock_shared() {
        Err(TryLockError::WouldBlock) => read_info(data_dir),
        _ => None,
    }
}

fn read_info(data_dir: &Path) -> Option<HostInfo> {
    let text = std::fs::read_to_string(data_dir.join(LOCK_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

fn describe(info: &HostInfo) -> String {
    match info.admin {
        Some(admin) => format!("pid {}, admin http://{admin}, functions {}", info.pid, info.functions.display()),
        None => format!("pid {}, no admin port, functions {}", info.pid, info.functions.display()),
    }
}

/// The pid holding a `flock` on `file`, from Linux's `/proc/locks`.
fn lock_holder(file: &File) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().ok()?;
        let inode = meta.ino();
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        // "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF"
        locks.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (pid, device_inode) = (fields.get(4)?, fields.get(5)?);
            let line_inode: u64 = device_inode.rsplit(':').next()?.parse().ok()?;
            (fields.get(1) == Some(&"FLOCK") && line_inode == inode).then(|| pid.parse().ok()).flatten()
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_host_is_refused_with_the_first_named_and_admitted_after_it_ends() {
        let data = tempfile::tempdir().expect("tempdir");
        let functions = tempfile::tempdir().expect("tempdir");
        let info = HostInfo { pid: 4242, admin: Some("127.0.0.1:18123".parse().expect("addr")), functions: functions.path().to_path_buf() };
        assert!(running_host(data.path()).is_none());
        let mut first = HostLock::acquire(data.path(), Some(functions.path())).expect("the first host");
        first.publish(&info).expect("published");
        assert_eq!(running_host(data.path()).and_then(|h| h.admin), info.admin);

        let refused = HostLock::acquire(data.path(), Some(functions.path())).expect_err("the data directory is taken").to_string();
        assert!(refused.contains("in use by another eddy run (pid 4242, admin http://127.0.0.1:18123"), "{refused}");

        let other_data = tempfile::tempdir().expect("tempdir");
        let refused = HostLock::acquire(other_data.path(), Some(functions.path())).expect_err("the functions folder is taken").to_string();
        assert!(refused.contains("is watched by another eddy run"), "{refused}");
        #[cfg(target_os = "linux")]
        assert!(refused.contains(&format!("pid {}", std::process::id())), "{refused}");

        HostLock::acquire(other_data.path(), None).expect("cluster hosts may share a functions folder");

        drop(first);
        assert!(running_host(data.path()).is_none(), "a lock file nobody holds names no host");
        HostLock::acquire(data.path(), Some(functions.path())).expect("free again once the first host is gone");
    }
}
