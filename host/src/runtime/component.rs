//! Loading a function's component: check what the file is, compile it (or take
//! it from the compile cache), find which handler world it exports, and link it
//! once into an `InstancePre` that every invocation instantiates from.

use wasmtime::component::types::{self, ComponentItem};
use wasmtime::component::{Component, InstancePre};

use crate::contract::{COMMAND_EXPORT, JSON_EXPORT, PACKED_EXPORT, TYPED_EXPORT, json, typed};
use super::packed::PackedHandlePath;
use super::host_state::HostState;
use super::{Runtime, cache};

/// Which handler world a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `eddy:handler/typed-handler`: typed records in, sequence numbers out.
    TypedHandler,
    /// `eddy:handler/packed-handler`: the typed world with Kinesis records packed
    /// into one byte list (the Rust SDK's; [`super::packed`]).
    PackedHandler,
    /// `eddy:handler/json-handler`: Lambda's event JSON in, Lambda's response out.
    JsonHandler,
    /// `wasi:cli/command`: a program run once per batch, Lambda's event JSON on
    /// stdin, Lambda's response JSON on stdout.
    Command,
}

impl World {
    pub fn name(self) -> &'static str {
        match self {
            World::TypedHandler => "eddy:handler/typed-handler@0.1.0",
            World::PackedHandler => "eddy:handler/packed-handler@0.1.0",
            World::JsonHandler => "eddy:handler/json-handler@0.1.0",
            World::Command => "wasi:cli/command",
        }
    }
}

pub use super::load_error::LoadError;

/// The contract's signatures of the exported functions, as wit/handler.wit
/// writes them (a unit test keeps them equal to the file).
const TYPED_HANDLE: &str = "handle: func(batch: batch, context: context) -> result<batch-response, string>";
const PACKED_HANDLE: &str = "handle: func(batch: packed-batch, context: context) -> result<batch-response, string>";
const JSON_HANDLE: &str = "handle: func(event: string, context: context) -> result<string, string>";
const COMMAND_RUN: &str = "run: func() -> result";

/// A component ready to be instantiated: compiled, checked and linked.
pub struct LoadedComponent {
    pub world: World,
    /// SHA-256 of the component's bytes.
    pub digest: String,
    /// Whether the component imports WASI (for the operator's information: the
    /// WASI context is built on first use either way).
    pub imports_wasi: bool,
    /// Whether this load compiled the component (false: the cache had it).
    pub compiled: bool,
    /// Unique to this load: a warm instance serves only the load it came from.
    pub(super) id: u64,
    pub(super) pre: HandlerPre,
}

/// The ids of loads ([`LoadedComponent::id`]).
static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(super) enum HandlerPre {
    Typed(typed::TypedHandlerPre<HostState>),
    Packed(InstancePre<HostState>, PackedHandlePath),
    Json(json::JsonHandlerPre<HostState>),
    Command(wasmtime_wasi::p2::bindings::CommandPre<HostState>),
}

impl Runtime {
    /// Loads a component from its bytes. This compiles, so it blocks for as long as
    /// that takes (milliseconds to seconds); call it off the async workers.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedComponent, LoadError> {
        let kind = check_header(bytes)?;
        // The cache is keyed by the file as the user gave it: wrapping a core
        // module is deterministic, and skipped when the cache has the result.
        let digest = cache::content_digest(bytes);
        let (component, compiled) = self.compile_or_fetch(bytes, kind, &digest)?;
        self.prepare(component, digest, compiled)
    }

    /// Loads the component of `digest` (a [`LoadedComponent::digest`]) again
    /// from the compile cache, without its bytes: how a function whose compiled
    /// code was let go while it idled comes back ([`super::resident`]).
    /// `Ok(None)`: the cache does not have it (any more).
    pub fn load_cached(&self, digest: &str) -> Result<Option<LoadedComponent>, LoadError> {
        let Some(dir) = &self.cache_dir else { return Ok(None) };
        match self.fetch(&cache::artifact_path(dir, &self.engine, digest)) {
            Some(component) => self.prepare(component, digest.to_owned(), false).map(Some),
            None => Ok(None),
        }
    }

    /// A compiled component checked against the contract and pre-linked.
    fn prepare(&self, component: Component, digest: String, compiled: bool) -> Result<LoadedComponent, LoadError> {
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(name, _)| name.to_owned()).collect();
        let imports_wasi = ty.imports(&self.engine).any(|(name, _)| name.starts_with("wasi:"));
        let world = if exports.iter().any(|e| e == TYPED_EXPORT) {
            World::TypedHandler
        } else if exports.iter().any(|e| e == PACKED_EXPORT) {
            World::PackedHandler
        } else if exports.iter().any(|e| e == JSON_EXPORT) {
            World::JsonHandler
        } else if exports.iter().any(|e| e.starts_with(COMMAND_EXPORT)) {
            World::Command
        } else {
            let found = if exports.is_empty() {
                "nothing".to_owned()
            } else {
                exports.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ")
            };
            return Err(LoadError::WrongWorld { found });
        };
        check_signature(&self.engine, &ty, world)?;
        for (name, item) in ty.imports(&self.engine) {
            if matches!(item.ty, ComponentItem::ComponentInstance(_)) && !self.provides(name) {
                return Err(LoadError::Link(format!(
                    "it imports `{name}`, which this host does not provide \
                     (it provides the eddy:handler interfaces of wit/handler.wit, WASI 0.2 and wasi:http)"
                )));
            }
        }

        let pre: InstancePre<HostState> =
            self.linker.instantiate_pre(&component).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = match world {
            World::TypedHandler => HandlerPre::Typed(
                typed::TypedHandlerPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?,
            ),
            World::PackedHandler => {
                let handle = PackedHandlePath::find(&component).ok_or_else(|| LoadError::WrongSignature {
                    export: PACKED_EXPORT,
                    problem: "it has no `handle` function".to_owned(),
                    expected: PACKED_HANDLE,
                })?;
                HandlerPre::Packed(pre, handle)
            }
            World::JsonHandler => HandlerPre::Json(
                json::JsonHandlerPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?,
            ),
            World::Command => HandlerPre::Command(
                wasmtime_wasi::p2::bindings::CommandPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?,
            ),
        };
        let id = LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(LoadedComponent { world, digest, imports_wasi, compiled, id, pre })
    }

    /// Whether loading the component of this digest ([`content_digest`]) would
    /// take it from the compile cache rather than compile it (a first compile
    /// of a large component takes seconds).
    pub fn is_cached(&self, digest: &str) -> bool {
        self.cache_dir.as_ref().is_some_and(|dir| cache::artifact_path(dir, &self.engine, digest).exists())
    }

    fn provides(&self, import: &str) -> bool {
        import.starts_with("wasi:") || import.starts_with("eddy:handler/")
    }

    fn compile_or_fetch(&self, bytes: &[u8], kind: WasmKind, digest: &str) -> Result<(Component, bool), LoadError> {
        let Some(dir) = &self.cache_dir else {
            return Ok((self.compile(bytes, kind)?, true));
        };
        let artifact = cache::artifact_path(dir, &self.engine, digest);
        if let Some(component) = self.fetch(&artifact) {
            return Ok((component, false));
        }
        // In its turn; the same component may have been compiled meanwhile (the
        // same file dropped under several names at once): then it is in the cache.
        let _turn = self.compile_gate.wait_turn(bytes.len());
        if let Some(component) = self.fetch(&artifact) {
            return Ok((component, false));
        }
        let component = compile(&self.engine, bytes, kind)?;
        match component.serialize() {
            Ok(serialized) => {
                match cache::store(&artifact, &serialized) {
                    Ok(()) => {
                        let freed = cache::prune(dir, self.cache_limit_bytes, &artifact);
                        if freed > 0 {
                            tracing::info!("compile cache {}: removed {} MB of the least recently used entries",
                                dir.display(), freed >> 20);
                        }
                    }
                    Err(error) => tracing::warn!("cannot write compile cache entry {}: {error}", artifact.display()),
                }
            }
            Err(error) => tracing::warn!("cannot serialize compiled component: {error:#}"),
        }
        Ok((component, true))
    }
}

impl Runtime {
    /// The compiled component in the cache at `artifact`, if it is there and usable.
    fn fetch(&self, artifact: &std::path::Path) -> Option<Component> {
        if !artifact.exists() {
            return None;
        }
        // SAFETY: the cache directory holds only artifacts this host wrote with
        // `Component::serialize`, under a name that includes the engine's
        // compatibility hash; wasmtime checks the header again on load.
        let loaded = if self.perf_map {
            std::fs::read(artifact)
                .map_err(wasmtime::Error::from)
                .and_then(|bytes| unsafe { Component::deserialize(&self.engine, bytes) })
        } else {
            unsafe { Component::deserialize_file(&self.engine, artifact) }
        };
        match loaded {
            Ok(component) => {
                cache::touch(artifact);
                Some(component)
            }
            Err(error) => {
                tracing::warn!("compile cache entry {} is unusable ({error:#}); compiling again", artifact.display());
                None
            }
        }
    }

    /// Compiles a component (wrapping a core module first), in its turn at the
    /// compile gate.
    fn compile(&self, bytes: &[u8], kind: WasmKind) -> Result<Component, LoadError> {
        let _turn = self.compile_gate.wait_turn(bytes.len());
        compile(&self.engine, bytes, kind)
    }
}

fn compile(engine: &wasmtime::Engine, bytes: &[u8], kind: WasmKind) -> Result<Component, LoadError> {
    let wrapped;
    let bytes = match kind {
        WasmKind::Component => bytes,
        WasmKind::CoreModule => {
            wrapped = super::componentize::componentize(bytes)?;
            &wrapped
        }
    };
    Component::new(engine, bytes).map_err(|e| match kind {
        WasmKind::Component => LoadError::Invalid(format!("{e:#}")),
        WasmKind::CoreModule => LoadError::InvalidModule(format!("{e:#}")),
    })
}

/// Checks the exported function's types as instantiation would, so that a
/// mistyped export fails here, at load, while the version before it keeps
/// running, and not at every invocation.
fn check_signature(engine: &wasmtime::Engine, ty: &types::Component, world: World) -> Result<(), LoadError> {
    use crate::record::{Batch, BatchResponse, Context};
    use super::packed::PackedBatch;
    let (export, function, expected) = match world {
        World::TypedHandler => (TYPED_EXPORT, "handle", TYPED_HANDLE),
        World::PackedHandler => (PACKED_EXPORT, "handle", PACKED_HANDLE),
        World::JsonHandler => (JSON_EXPORT, "handle", JSON_HANDLE),
        World::Command => (COMMAND_EXPORT, "run", COMMAND_RUN),
    };
    let wrong = |problem: String| LoadError::WrongSignature { export, problem, expected };
    let instance = ty
        .exports(engine)
        .find(|(name, _)| name.starts_with(export))
        .and_then(|(_, item)| match item.ty {
            ComponentItem::ComponentInstance(instance) => Some(instance),
            _ => None,
        })
        .ok_or_else(|| wrong("it is not an exported instance".to_owned()))?;
    let func = match instance.get_export(engine, function).map(|e| e.ty) {
        Some(ComponentItem::ComponentFunc(func)) => func,
        Some(_) => return Err(wrong(format!("its `{function}` is not a function"))),
        None => return Err(wrong(format!("it has no `{function}` function"))),
    };
    let types = ty.instance_type();
    let checked = match world {
        World::TypedHandler => func.typecheck::<(Batch, Context), (Result<BatchResponse, String>,)>(&types),
        World::PackedHandler => func.typecheck::<(PackedBatch<'static>, Context), (Result<BatchResponse, String>,)>(&types),
        World::JsonHandler => func.typecheck::<(String, Context), (Result<String, String>,)>(&types),
        World::Command => func.typecheck::<(), (Result<(), ()>,)>(&types),
    };
    checked.map_err(|error| wrong(format!("its `{function}` is `{}` ({error:#})", signature(function, &func))))
}

/// A function type in WIT's words, as far as an error message needs.
fn signature(name: &str, func: &types::ComponentFunc) -> String {
    let params: Vec<String> = func.params().map(|(name, ty)| format!("{name}: {}", type_name(&ty))).collect();
    let results: Vec<String> = func.results().map(|ty| type_name(&ty)).collect();
    let results = if results.is_empty() { String::new() } else { format!(" -> {}", results.join(", ")) };
    format!("{name}: func({}){results}", params.join(", "))
}

fn type_name(ty: &types::Type) -> String {
    use types::Type;
    match ty {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(list) => format!("list<{}>", type_name(&list.ty())),
        Type::Option(option) => format!("option<{}>", type_name(&option.ty())),
        Type::Result(result) => match (result.ok(), result.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", type_name(&ok)),
            (None, Some(err)) => format!("result<_, {}>", type_name(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", type_name(&ok), type_name(&err)),
        },
        Type::Tuple(tuple) => format!("tuple<{}>", tuple.types().map(|t| type_name(&t)).collect::<Vec<_>>().join(", ")),
        Type::Record(record) => {
            format!("record {{ {} }}", record.fields().map(|f| f.name).collect::<Vec<_>>().join(", "))
        }
        Type::Variant(_) => "variant".into(),
        Type::Enum(_) => "enum".into(),
        Type::Flags(_) => "flags".into(),
        Type::Own(_) | Type::Borrow(_) => "resource".into(),
        _ => "an async type".into(),
    }
}

#[derive(Clone, Copy)]
enum WasmKind {
    Component,
    CoreModule,
}

/// A wasm file's preamble is `\0asm` then a version and a layer: layer 1 is a
/// component, layer 0 a core module.
fn check_header(bytes: &[u8]) -> Result<WasmKind, LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    Ok(if bytes[6..8] == [0, 0] { WasmKind::CoreModule } else { WasmKind::Component })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signatures_in_errors_are_the_contracts() {
        let wit: String = include_str!("../../../wit/handler.wit").split_whitespace().collect::<Vec<_>>().join(" ");
        for signature in [super::TYPED_HANDLE, super::PACKED_HANDLE, super::JSON_HANDLE] {
            assert!(wit.contains(signature), "wit/handler.wit has no `{signature}`");
        }
    }
}
