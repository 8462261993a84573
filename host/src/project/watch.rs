//! `eddy watch`: which changes in a project folder call for a new build, and
//! waiting for them. The build itself is [`super::build`], which writes the
//! component under a temporary name and renames it into place only when it
//! succeeds: a failed build leaves the running version where it is, and a good
//! one is swapped in by the host's watched folder, which keeps the checkpoints.

use std::path::{Component, Path};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};

/// How long a project must be quiet after a change before it is built: an
/// editor's save, or a `git checkout`, is several writes.
pub const SETTLE: Duration = Duration::from_millis(300);

/// Folders a build writes, or tools keep, inside a project: changes there are
/// not the developer's.
const NOT_SOURCE_DIRS: &[&str] = &["target", "node_modules", ".git", "__pycache__", ".venv", "dist", "build"];

/// Whether a change to `path` (inside `project`) is a change to the project's
/// sources: not a build's output, not an editor's swap or backup file.
pub fn is_source_change(project: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(project) else { return false };
    let mut parts = relative.components().peekable();
    while let Some(part) = parts.next() {
        let Component::Normal(name) = part else { continue };
        let name = name.to_string_lossy();
        let is_file = parts.peek().is_none();
        if !is_file && NOT_SOURCE_DIRS.contains(&name.as_ref()) {
            return false;
        }
        if is_file
            && (name.starts_with('.')
                || name.starts_with('#')
                || name.ends_with('~')
                || name.ends_with(".swp")
                || name.ends_with(".swx")
                || name.ends_with(".tmp")
                || name.ends_with(".wasm")
                || name == "4913")
        {
            // Vim's probe file is named 4913.
            return false;
        }
    }
    true
}

/// Watches a project folder for changes to its sources.
pub struct ProjectWatch {
    project: std::path::PathBuf,
    events: mpsc::Receiver<notify::Result<notify::Event>>,
    _watcher: notify::RecommendedWatcher,
}

impl ProjectWatch {
    pub fn start(project: &Path) -> anyhow::Result<ProjectWatch> {
        let project = project.canonicalize().map_err(|e| anyhow::anyhow!("cannot watch {}: {e}", project.display()))?;
        let (sender, events) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = sender.send(event);
        })?;
        watcher.watch(&project, RecursiveMode::Recursive)?;
        Ok(ProjectWatch { project, events, _watcher: watcher })
    }

    /// Blocks until the sources change and then stay quiet for [`SETTLE`];
    /// returns the files that changed. `None` if the watch broke.
    pub fn next_change(&self) -> Option<Vec<std::path::PathBuf>> {
        let mut changed: Vec<std::path::PathBuf> = Vec::new();
        let mut quiet_from: Option<Instant> = None;
        loop {
            let event = match quiet_from {
                None => self.events.recv().ok()?,
                Some(since) => match self.events.recv_timeout(SETTLE.saturating_sub(since.elapsed())) {
                    Ok(event) => event,
                    Err(mpsc::RecvTimeoutError::Timeout) => return Some(changed),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                },
            };
            let Ok(event) = event else { continue };
            if matches!(event.kind, EventKind::Access(_)) {
                continue;
            }
            let mut relevant = false;
            for path in event.paths {
                if is_source_change(&self.project, &path) {
                    relevant = true;
                    if !changed.contains(&path) {
                        changed.push(path);
                    }
                }
            }
            if relevant {
                quiet_from = Some(Instant::now());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_from_build_outputs_and_editor_files() {
        let p = Path::new("/home/me/orders");
        for source in ["handler.c", "src/lib.rs", "Cargo.toml", "orders.toml", "role.json", "lib/util/x.py", "index.mjs"] {
            assert!(is_source_change(p, &p.join(source)), "{source} is a source");
        }
        for other in [
            "target/wasm32-unknown-unknown/release/orders.wasm",
            "node_modules/x/index.js",
            ".git/index",
            "__pycache__/handler.cpython-311.pyc",
            ".handler.c.swp",
            "handler.c~",
            "#handler.c#",
            "4913",
            "orders.wasm",
            "src/.lib.rs.tmp",
        ] {
            assert!(!is_source_change(p, &p.join(other)), "{other} is not a source");
        }
        assert!(!is_source_change(p, Path::new("/elsewhere/handler.c")), "outside the project");
    }
}
