//! The watched folder: `functions/<name>.wasm` beside `functions/<name>.toml`,
//! and the execution roles in `functions/roles/<role>.json`.
//!
//! A scan every `poll_interval`, and at once when the kernel reports a change
//! ([`events`]), notices files that appear, change or go. A file is read once
//! it is complete: renamed into place or closed by its writer since it last
//! changed (the kernel says so), or else once it has settled: the same size and
//! modification time as at the previous scan, and untouched for `SETTLE_TIME`,
//! so a copy in progress is never loaded half-written. (Writing to a temporary
//! name and renaming it into place is always safe.) Each function has a supervisor task that loads
//! its versions and runs its mapping; the scan only tells it what changed, so a
//! slow load or a long invocation of one function never delays another. A
//! changed role file redeploys every function whose manifest names it, as a
//! changed manifest would.

mod events;
mod supervisor;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::mapping::MappingContext;
use crate::status::FunctionState;
use crate::store::embedded::EmbeddedStore;
pub use supervisor::FunctionFiles;
use supervisor::Supervisor;

/// How long a file must be left untouched before it is read.
const SETTLE_TIME: Duration = Duration::from_millis(300);

/// What the registry needs from the rest of the host.
#[derive(Clone)]
pub struct RegistryConfig {
    pub functions_dir: PathBuf,
    pub poll_interval: Duration,
    /// How often local streams are polled when they have nothing new.
    pub local_poll_interval: Duration,
    pub embedded: Arc<EmbeddedStore>,
    /// The runtime functions are loaded into.
    pub runtime: Arc<crate::runtime::Runtime>,
    /// What capability calls reach.
    pub services: Arc<crate::capability::Services>,
}

/// A file as the last scan saw it (through symlinks: a ConfigMap mounted by
/// Kubernetes is a symlink to a symlinked directory, swapped when it changes).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    kind: EntryKind,
    len: u64,
    modified: SystemTime,
}

/// What a name in the folder is, once symlinks are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    File,
    Directory,
    /// A symlink to nothing (yet).
    BrokenLink,
    /// A socket, a device, a FIFO.
    Other,
}

impl EntryKind {
    /// Why a function's file of this kind cannot be read; `None` for a file.
    fn problem(self) -> Option<&'static str> {
        match self {
            EntryKind::File => None,
            EntryKind::Directory => Some("is a directory, not a file"),
            EntryKind::BrokenLink => Some("is a symlink to a file that does not exist"),
            EntryKind::Other => Some("is not a regular file"),
        }
    }
}

struct Deployed {
    commands: mpsc::UnboundedSender<Option<FunctionFiles>>,
    supervisor: JoinHandle<()>,
    /// The files last read and handed to the supervisor: as the scan saw them
    /// (component, manifest, role), and by content digest.
    seen: (Seen, Seen, Option<Seen>),
    sent: (String, String, String),
    /// The role the manifest named.
    role: Option<String>,
}

/// Watches the functions folder until `cancel` fires, then stops every function.
pub async fn watch(config: RegistryConfig, context: MappingContext, cancel: CancellationToken) {
    let mut previous: HashMap<PathBuf, Seen> = HashMap::new();
    let roles_dir = config.functions_dir.join("roles");
    let mut deployed: BTreeMap<String, Deployed> = BTreeMap::new();
    // Supervisors told to stop that may still be finishing a batch, by name: a
    // function put back before its old supervisor is done waits for it, so two
    // mappings never read the same shards at once.
    let mut retiring: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut warned_missing_dir = false;
    let mut events = events::FolderEvents::watch(&[&config.functions_dir, &roles_dir]);
    // Files the kernel said were finished, as they were then.
    let mut complete: HashMap<PathBuf, Seen> = HashMap::new();
    loop {
        match scan(&config.functions_dir, "wasm", "toml") {
            Ok(mut current) => {
                warned_missing_dir = false;
                // Role files join the same map under their own paths.
                current.extend(scan(&roles_dir, "json", "json").unwrap_or_default());
                complete.retain(|path, _| current.contains_key(path));
                retiring.retain(|_, task| !task.is_finished());
                let folder = Scanned { previous: &previous, current: &current, complete: &complete };
                if reconcile(&config, &context, &folder, &mut deployed, &mut retiring) {
                    context.status.mark_scanned();
                }
                previous = current;
            }
            Err(error) if !warned_missing_dir => {
                tracing::warn!("cannot read the functions folder {}: {error}", config.functions_dir.display());
                warned_missing_dir = true;
            }
            Err(_) => {}
        }
        let news = tokio::select! {
            waited = crate::retry::pause(&cancel, config.poll_interval) => match waited {
                crate::retry::Waited::Cancelled => break,
                crate::retry::Waited::Elapsed => None,
            },
            news = events.next() => Some(news),
        };
        for news in news.into_iter().chain(std::iter::from_fn(|| events.try_next())) {
            if let events::FolderNews::Complete(path) = news
                && let Some(seen) = seen(&path)
            {
                tracing::debug!(path = %path.display(), "finished, the kernel says");
                complete.insert(path, seen);
            }
        }
    }
    // Shutting down: every supervisor stops its mapping after the batch in flight.
    for d in deployed.values() {
        let _ = d.commands.send(None);
    }
    for task in deployed.into_values().map(|d| d.supervisor).chain(retiring.into_values()) {
        let _ = task.await;
    }
}

/// The files of `dir` with either extension, as they are now.
pub(crate) fn scan(dir: &Path, ext_a: &str, ext_b: &str) -> std::io::Result<HashMap<PathBuf, Seen>> {
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
        let relevant = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e == ext_a || e == ext_b);
        if hidden || !relevant {
            continue;
        }
        let Some(seen) = seen(&path) else { continue };
        files.insert(path, seen);
    }
    Ok(files)
}

/// A file of the folder as it is now; `None` if it is gone.
fn seen(path: &Path) -> Option<Seen> {
    // `fs::metadata` follows symlinks (`symlink_metadata` does not).
    match std::fs::metadata(path) {
        Ok(meta) => {
            let kind = if meta.is_file() {
                EntryKind::File
            } else if meta.is_dir() {
                EntryKind::Directory
            } else {
                EntryKind::Other
            };
            Some(Seen { kind, len: meta.len(), modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH) })
        }
        Err(_) if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) => {
            Some(Seen { kind: EntryKind::BrokenLink, len: 0, modified: SystemTime::UNIX_EPOCH })
        }
        Err(_) => None,
    }
}

/// The folder as the last two scans saw it, and what the kernel said was finished.
struct Scanned<'a> {
    previous: &'a HashMap<PathBuf, Seen>,
    current: &'a HashMap<PathBuf, Seen>,
    complete: &'a HashMap<PathBuf, Seen>,
}

impl Scanned<'_> {
    /// Whether a file may be read: finished (renamed into place or closed by
    /// its writer) and unchanged since, or unchanged since the last scan and
    /// untouched for `SETTLE_TIME`.
    fn settled(&self, path: &PathBuf) -> bool {
        let Some(now) = self.current.get(path) else { return false };
        self.complete.get(path) == Some(now)
            || (self.previous.get(path) == Some(now) && now.modified.elapsed().is_ok_and(|age| age >= SETTLE_TIME))
    }
}

fn reconcile(
    config: &RegistryConfig,
    context: &MappingContext,
    folder: &Scanned<'_>,
    deployed: &mut BTreeMap<String, Deployed>,
    retiring: &mut HashMap<String, JoinHandle<()>>,
) -> bool {
    let current = folder.current;
    // Whether every complete pair of files was read (none still settling).
    let mut all_read = true;
    // Function names are the stems of the files present.
    let roles_dir = config.functions_dir.join("roles");
    let role_path = |role: &str| crate::role::policy_path(&roles_dir, role);
    let mut names: BTreeMap<String, (Option<&PathBuf>, Option<&PathBuf>)> = BTreeMap::new();
    for path in current.keys().filter(|p| p.parent() != Some(roles_dir.as_path())) {
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        let slot = names.entry(stem.to_owned()).or_default();
        match path.extension().and_then(|e| e.to_str()) {
            Some("wasm") => slot.0 = Some(path),
            _ => slot.1 = Some(path),
        }
    }

    // Names with no file left at all leave the status too.
    context.status.retain_functions(|name| names.contains_key(name));

    // Functions whose files are gone: stop them (their checkpoints stay).
    let gone: Vec<String> = deployed
        .keys()
        .filter(|name| !matches!(names.get(*name), Some((Some(_), Some(_)))))
        .cloned()
        .collect();
    for name in gone {
        if let Some(d) = deployed.remove(&name) {
            tracing::info!(function = %name, "function removed from the folder; stopping it");
            let _ = d.commands.send(None);
            retiring.insert(name.clone(), d.supervisor);
        }
        context.status.remove_function(&name);
    }

    let settled = |path: &PathBuf| folder.settled(path);

    let mut new_functions = Vec::new();
    for (name, files) in names {
        let (wasm, manifest) = match files {
            (Some(w), Some(m)) => (w, m),
            (Some(_), None) => {
                context.status.set_error(&name, FunctionState::Waiting, format!("waiting for {name}.toml beside {name}.wasm"));
                continue;
            }
            (None, Some(_)) => {
                context.status.set_error(&name, FunctionState::Waiting, format!("waiting for {name}.wasm beside {name}.toml"));
                continue;
            }
            (None, None) => continue,
        };
        if !crate::names::is_function_name(&name) {
            context.status.set_error(&name, FunctionState::Failed,
                "a function name is 1 to 64 of a-z, A-Z, 0-9, - and _".into());
            continue;
        }
        let (Some(wasm_seen), Some(manifest_seen)) = (current.get(wasm), current.get(manifest)) else { continue };
        let not_files: Vec<String> = [(wasm, wasm_seen), (manifest, manifest_seen)]
            .iter()
            .filter_map(|(path, seen)| Some(format!("{} {}", file_name(path), seen.kind.problem()?)))
            .collect();
        if !not_files.is_empty() {
            let message = not_files.join("; ");
            // Logged once, not at every scan.
            if context.status.error(&name).as_deref() != Some(message.as_str()) {
                tracing::error!(function = %name, "cannot load the function: {message}");
            }
            context.status.set_error(&name, FunctionState::Failed, message);
            continue;
        }
        let role_seen = |role: &Option<String>| role.as_deref().and_then(|r| current.get(&role_path(r))).cloned();
        if deployed.get(&name).is_some_and(|d| d.seen == (wasm_seen.clone(), manifest_seen.clone(), role_seen(&d.role))) {
            continue;
        }
        if !settled(wasm) || !settled(manifest) {
            all_read = false;
            continue;
        }
        let files = match FunctionFiles::read(wasm, manifest, &roles_dir) {
            Ok(files) => files,
            Err(error) => {
                tracing::warn!(function = %name, "cannot read the function's files: {error}");
                continue;
            }
        };
        let role = files.role.as_ref().map(|(role, _)| role.clone());
        if let Some(role) = &role
            && current.contains_key(&role_path(role))
            && !settled(&role_path(role))
        {
            continue;
        }
        let seen = (wasm_seen.clone(), manifest_seen.clone(), role_seen(&role));
        let digests = (files.wasm_digest.clone(), files.manifest_digest.clone(), files.role_digest.clone());
        match deployed.get_mut(&name) {
            Some(entry) => {
                entry.seen = seen;
                entry.role = role;
                // A touched file with the same content changes nothing.
                if entry.sent != digests {
                    entry.sent = digests;
                    let _ = entry.commands.send(Some(files));
                }
            }
            None => {
                context.status.set_error(&name, FunctionState::Loading, "loading".into());
                new_functions.push((name, files, seen, digests, role));
            }
        }
    }
    // Smallest first: their compiles are queued first, so small handlers start
    // at once rather than behind a large one (see the runtime's compile gate).
    new_functions.sort_by_key(|(_, files, ..)| files.wasm.len());
    for (name, files, seen, sent, role) in new_functions {
        let (commands, rx) = mpsc::unbounded_channel();
        let supervisor = Supervisor::new(Arc::from(name.as_str()), config.clone(), context.clone());
        let predecessor = retiring.remove(&name);
        let supervisor = tokio::spawn(supervisor.run(rx, predecessor));
        let _ = commands.send(Some(files));
        deployed.insert(name, Deployed { commands, supervisor, seen, sent, role });
    }
    all_read
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}


