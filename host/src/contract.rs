//! Host-side bindings of the WIT contract (`wit/handler.wit`).
//!
//! The two handler worlds share their imports and types; the JSON world's
//! bindings reuse the typed world's so that one set of host functions serves both.
//! Capability calls that reach a service are async; `log` may trap (when an
//! invocation passes its log limit).

pub mod typed {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "typed-handler",
        imports: {
            "eddy:handler/log.log": trappable,
            "eddy:handler/streams.put-record": async,
            "eddy:handler/streams.put-records": async,
            "eddy:handler/kv.get": async,
            "eddy:handler/kv.set": async,
            "eddy:handler/kv.delete": async,
            "eddy:handler/kv.compare-and-set": async,
        },
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
            "eddy:handler/errors": super::typed::eddy::handler::errors,
            "eddy:handler/streams": super::typed::eddy::handler::streams,
            "eddy:handler/kv": super::typed::eddy::handler::kv,
        },
    });
}

pub use typed::eddy::handler::{errors, invocation, kv, log, streams, types};

/// The export a component of each world has, by its full name.
pub const TYPED_EXPORT: &str = "eddy:handler/typed@0.1.0";
pub const JSON_EXPORT: &str = "eddy:handler/json@0.1.0";
pub const PACKED_EXPORT: &str = "eddy:handler/packed@0.1.0";
/// A WASI command's export, whatever its 0.2 version (`wasi:cli/run@0.2.x`).
pub const COMMAND_EXPORT: &str = "wasi:cli/run@0.2";
