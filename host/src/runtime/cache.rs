//! The compile cache: compiled components on disk, so a restart does not compile
//! again. A file is named by the SHA-256 of the component's bytes and by the
//! engine's compatibility hash, so a new wasmtime or other engine settings never
//! load an artifact compiled for another. A hit touches its file, and a store
//! prunes the least recently used files past the cache's size limit.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;

/// Feeds `Hash` values into SHA-256: a hash that is stable across processes,
/// unlike `DefaultHasher`'s.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The hex SHA-256 of a component's bytes.
pub fn content_digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The cache file for a component of this digest compiled by this engine.
pub fn artifact_path(dir: &Path, engine: &Engine, digest: &str) -> PathBuf {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let engine_hash = hex::encode(&hasher.0.finalize()[..8]);
    dir.join(format!("{digest}-{engine_hash}.cwasm"))
}

/// Writes an artifact atomically: to a temporary file, then renamed into place, so
/// a crash mid-write never leaves a truncated artifact under the real name. The
/// temporary name is unique, since two functions with the same component may
/// compile it at the same time.
pub fn store(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, artifact)?;
    std::fs::rename(&tmp, path)
}

/// Marks an artifact as just used, for [`prune`]'s order.
pub fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Deletes the least recently used artifacts until the directory holds at most
/// `limit` bytes of them (`keep` stays whatever its age). Returns how many
/// bytes were freed. An artifact in use stays readable: a loaded one is mapped,
/// and an unlinked file lives on until it is unmapped.
pub fn prune(dir: &Path, limit: u64, keep: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut artifacts: Vec<(SystemTime, u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm") && e.path() != keep)
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let kept = std::fs::metadata(keep).map_or(0, |m| m.len());
    let mut total: u64 = kept + artifacts.iter().map(|(_, len, _)| len).sum::<u64>();
    artifacts.sort();
    let mut freed = 0;
    for (_, len, path) in artifacts {
        if total <= limit {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
            freed += len;
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruning_deletes_the_least_recently_used_past_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        for (name, age) in [("old", 100), ("middle", 200), ("new", 300)] {
            let path = dir.path().join(format!("{name}.cwasm"));
            std::fs::write(&path, [0u8; 1000]).expect("write");
            std::fs::File::options().append(true).open(&path).expect("open").set_modified(at(age)).expect("mtime");
        }
        std::fs::write(dir.path().join("notes.txt"), [0u8; 5000]).expect("write");
        // "old" is used again: touched, it is now the most recent.
        touch(&dir.path().join("old.cwasm"));
        let just_written = dir.path().join("new.cwasm");
        assert_eq!(prune(dir.path(), 2000, &just_written), 1000);
        let left: std::collections::BTreeSet<String> = std::fs::read_dir(dir.path())
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["new.cwasm", "notes.txt", "old.cwasm"].map(String::from).into());
        assert_eq!(prune(dir.path(), 2000, &just_written), 0, "within the limit now");
    }
}
