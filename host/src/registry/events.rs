//! News from the kernel about the watched folder (inotify, through `notify`),
//! so that a file is picked up the moment it is complete instead of after two
//! scans and the settle time:
//! - a file renamed into place is complete (the careful way to deploy);
//! - a file whose writer closed it is complete (`cp`, an editor's save).
//!
//! Any other change (a write still going on, a ConfigMap's symlink swap) only
//! wakes the scan, whose settle rule decides as before. Where the kernel gives
//! no news (a network filesystem, inotify's limits reached) the scan's polling
//! does all the work, as it did before this existed.

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// What a folder event says.
pub(super) enum FolderNews {
    /// This file was just finished: closed by its writer or renamed into place.
    Complete(PathBuf),
    /// Something else changed: scan now.
    Changed,
}

/// The folder's watcher; events arrive on [`FolderEvents::next`] until it is dropped.
pub(super) struct FolderEvents {
    _watcher: Option<notify::RecommendedWatcher>,
    news: mpsc::UnboundedReceiver<FolderNews>,
}

impl FolderEvents {
    /// Watches `dirs` (each that exists; not their subfolders). A folder that
    /// cannot be watched is left to the scan.
    pub(super) fn watch(dirs: &[&Path]) -> FolderEvents {
        let (tx, news) = mpsc::unbounded_channel();
        // Events name files by the folder's absolute path; the scan by the
        // folder as configured (perhaps relative). News speaks the scan's terms.
        let folders: Vec<(PathBuf, PathBuf)> =
            dirs.iter().filter_map(|d| Some((std::fs::canonicalize(d).ok()?, d.to_path_buf()))).collect();
        let handler = move |event: notify::Result<Event>| {
            let Ok(event) = event else { return };
            for item in what_it_says(&event) {
                let item = match item {
                    FolderNews::Complete(path) => match as_configured(&folders, &path) {
                        Some(path) => FolderNews::Complete(path),
                        None => FolderNews::Changed,
                    },
                    other => other,
                };
                let _ = tx.send(item);
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(mut watcher) => {
                for dir in dirs.iter().filter(|d| d.is_dir()) {
                    if let Err(error) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                        tracing::debug!("cannot watch {} for changes ({error}); scanning it only", dir.display());
                    }
                }
                Some(watcher)
            }
            Err(error) => {
                tracing::debug!("no file events ({error}); the functions folder is scanned only");
                None
            }
        };
        FolderEvents { _watcher: watcher, news }
    }

    /// The next piece of news; never returns when there is no watcher.
    pub(super) async fn next(&mut self) -> FolderNews {
        match self.news.recv().await {
            Some(news) => news,
            None => std::future::pending().await,
        }
    }

    /// News that came meanwhile, without waiting.
    pub(super) fn try_next(&mut self) -> Option<FolderNews> {
        self.news.try_recv().ok()
    }
}

/// `path` (in a watched folder, absolute) as the scan names it.
fn as_configured(folders: &[(PathBuf, PathBuf)], path: &Path) -> Option<PathBuf> {
    let (parent, name) = (std::fs::canonicalize(path.parent()?).ok()?, path.file_name()?);
    folders.iter().find(|(absolute, _)| *absolute == parent).map(|(_, configured)| configured.join(name))
}

/// What one kernel event says about the folder's files.
fn what_it_says(event: &Event) -> Vec<FolderNews> {
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => event.paths.iter().cloned().map(FolderNews::Complete).collect(),
        // A rename within the folder names both paths; the second is where it
        // landed. (Any news wakes the scan, which sees the first one gone.)
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event.paths.last().cloned().map(FolderNews::Complete).into_iter().collect(),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => event.paths.iter().cloned().map(FolderNews::Complete).collect(),
        EventKind::Access(_) => Vec::new(),
        _ => vec![FolderNews::Changed],
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn completed(events: &mut FolderEvents, path: &Path) -> bool {
        let wait = async {
            loop {
                if let FolderNews::Complete(done) = events.next().await
                    && done == path
                {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), wait).await.is_ok()
    }

    #[tokio::test]
    async fn a_rename_into_place_and_a_closed_write_say_the_file_is_complete() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The folder as the host is told it: news names files the same way.
        let folder = dir.path().join("functions/../functions");
        std::fs::create_dir_all(&folder).expect("folder");
        let mut events = FolderEvents::watch(&[folder.as_path()]);
        let renamed = folder.join("f.wasm");
        std::fs::write(folder.join("f.partial~"), b"bytes").expect("write");
        std::fs::rename(folder.join("f.partial~"), &renamed).expect("rename");
        assert!(completed(&mut events, &renamed).await, "the rename");
        let copied = folder.join("g.wasm");
        std::fs::write(&copied, b"bytes").expect("write");
        assert!(completed(&mut events, &copied).await, "the closed write");
    }
}
