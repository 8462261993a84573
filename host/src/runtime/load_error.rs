//! Why a file could not be loaded as a handler: the errors of loading
//! ([`super::component`]) and of wrapping a core module ([`super::componentize`]).

use crate::contract::{JSON_EXPORT, PACKED_EXPORT, TYPED_EXPORT};

/// Why a file could not be loaded as a handler.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module without a `component-type` section, so it \
         says nothing of the world it implements, and it is not a WASI command either \
         (a `_start` export and wasi_snapshot_preview1 imports); build it with wit-bindgen \
         against wit/handler.wit, or make it a component yourself with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("the component is invalid: {0}")]
    Invalid(String),
    #[error("the core WebAssembly module is invalid: {0}")]
    InvalidModule(String),
    #[error(
        "the component exports {found}; a handler must export `{TYPED_EXPORT}` \
         (world typed-handler), `{PACKED_EXPORT}` (world packed-handler) or `{JSON_EXPORT}` \
         (world json-handler), as in wit/handler.wit, \
         or be a WASI command (`wasi:cli/run`)"
    )]
    WrongWorld { found: String },
    #[error(
        "the component's `{export}` export does not match the contract (wit/handler.wit): \
         {problem}; the contract says `{expected}`"
    )]
    WrongSignature { export: &'static str, problem: String, expected: &'static str },
    #[error("the component cannot be linked: {0}")]
    Link(String),
}
