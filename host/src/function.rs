//! A function's parts read from its files, the same way wherever they are
//! read: the host's supervisor, `eddy run --check` and `eddy invoke` accept
//! and refuse the same manifests, roles and components, with the same words.

use std::path::Path;

use crate::manifest::Manifest;
use crate::role::Role;
use crate::runtime::{LoadedComponent, Runtime};

/// `NAME.toml`, parsed and validated.
pub fn parse_manifest(name: &str, text: &str) -> anyhow::Result<Manifest> {
    Manifest::parse(text).map_err(|e| anyhow::anyhow!("{name}.toml: {e}"))
}

/// The execution role the manifest names, from its policy file's text
/// (`None`: the file is missing), warning of granted directories that do not
/// exist.
pub fn resolve_role(name: &str, manifest: &Manifest, policy: Option<&str>, roles_dir: &Path) -> anyhow::Result<Role> {
    let role = crate::role::for_manifest(name, manifest.role.as_deref(), policy, roles_dir)?;
    for grant in role.file_grants() {
        if !Path::new(&grant.dir).is_dir() {
            tracing::warn!(function = %name, role = %role.name, "the role grants the directory {}, which does not exist", grant.dir);
        }
    }
    Ok(role)
}

/// The component, compiled (or taken from the compile cache) and checked
/// against the contract. `label` names it in errors (`NAME.wasm`, a path).
/// It blocks while it compiles.
pub fn load_component(runtime: &Runtime, label: &str, bytes: &[u8]) -> anyhow::Result<LoadedComponent> {
    runtime.load(bytes).map_err(|e| anyhow::anyhow!("{label}: {e}"))
}
