//! Host-side bindings of the WIT contract (`wit/handler.wit`).
//!
//! The two handler worlds share their imports and types; the JSON world's
//! bindings reuse the typed world's so that one set of host functions serves both.

pub mod typed {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "typed-handler",
        exports: { default: async },
    });
}

pub mod json {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "json-handler",
        exports: { default: async },
        with: {
            "eddy:handler/types": super::typed::eddy::handler::types,
            "eddy:handler/log": super::typed::eddy::handler::log,
            "eddy:handler/invocation": super::typed::eddy::handler::invocation,
        },
    });
}

pub use typed::eddy::handler::{invocation, log, types};

/// The export a component of each world has, by its full name.
pub const TYPED_EXPORT: &str = "eddy:handler/typed@0.1.0";
pub const JSON_EXPORT: &str = "eddy:handler/json@0.1.0";
