//! Core modules that carry a component's type are made components on load.
//!
//! wit-bindgen (and every toolchain built on it) writes the world a module
//! implements into a `component-type` custom section, which `wasm-tools component
//! new` reads to wrap the module into a component. The host does the same, so a
//! user can drop the `.wasm` their compiler wrote. A module that imports WASI
//! preview1 (the `wasm32-wasip1` targets) gets preview1's reactor adapter, the
//! one that matches the host's wasmtime.
//!
//! A WASI command (a preview1 module exporting `_start`, as `GOOS=wasip1` Go,
//! `wasm32-wasip1` Rust or C `main` programs are) needs no section: it gets
//! preview1's command adapter and runs as a command handler, the event JSON on
//! stdin and the response on stdout. Any other core module has no world to be
//! wrapped into, and is refused.

use wasmparser::{Parser, Payload};
use wit_component::ComponentEncoder;

use super::load_error::LoadError;

const PREVIEW1: &str = "wasi_snapshot_preview1";

/// Wraps a core module into a component, or says why it cannot.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, LoadError> {
    let mut has_component_type = false;
    let mut imports_preview1 = false;
    let mut exports_start = false;
    for payload in Parser::new(0).parse_all(core) {
        match payload.map_err(|e| LoadError::InvalidModule(e.to_string()))? {
            Payload::CustomSection(section) if section.name().starts_with("component-type") => {
                has_component_type = true;
            }
            Payload::ImportSection(imports) => {
                for import in imports.into_imports() {
                    let import = import.map_err(|e| LoadError::InvalidModule(e.to_string()))?;
                    imports_preview1 |= import.module == PREVIEW1;
                }
            }
            Payload::ExportSection(exports) => {
                for export in exports {
                    exports_start |= export.map_err(|e| LoadError::InvalidModule(e.to_string()))?.name == "_start";
                }
            }
            _ => {}
        }
    }
    let command = !has_component_type && exports_start && imports_preview1;
    if !has_component_type && !command {
        return Err(LoadError::CoreModule);
    }
    let failed = |e: anyhow::Error| LoadError::InvalidModule(format!("cannot make a component of the core module: {e:#}"));
    let mut encoder = ComponentEncoder::default();
    encoder.validate(true).module(core).map_err(failed)?;
    if imports_preview1 {
        let adapter = if command {
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER
        } else {
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER
        };
        encoder.adapter(PREVIEW1, adapter).map_err(failed)?;
    }
    encoder.encode().map_err(failed)
}
