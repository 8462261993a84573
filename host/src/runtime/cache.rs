//! The compile cache: compiled components on disk, so a restart does not compile
//! again. A file is named by the SHA-256 of the component's bytes and by the
//! engine's compatibility hash, so a new wasmtime or other engine settings never
//! load an artifact compiled for another.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

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
