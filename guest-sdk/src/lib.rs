//! Write Eddy stream handlers in Rust.
//!
//! A handler is a type that implements [`TypedHandler`] (records lowered straight
//! into the guest: Kinesis `data` arrives as raw bytes) or [`JsonHandler`] (Lambda's
//! `{"Records":[...]}` event as JSON text), exported with one macro:
//!
//! ```ignore
//! use eddy_guest::prelude::*;
//!
//! struct Upper;
//!
//! impl TypedHandler for Upper {
//!     fn handle(batch: Batch, _context: Context) -> Result<BatchResponse, String> {
//!         Ok(process_kinesis(&batch, |record| {
//!             let text = record.data_as_str()?;
//!             info!("got {}", text.to_uppercase());
//!             Ok::<_, std::str::Utf8Error>(())
//!         }))
//!     }
//! }
//!
//! eddy_guest::export_typed_handler!(Upper);
//! ```
//!
//! What a handler may reach beyond its batch (putting records, key-value state)
//! is in [`capability`], and only as far as the function's execution role allows.
//!
//! Build for `wasm32-unknown-unknown` and turn the module into a component with
//! `wasm-tools component new` (see the repository's `examples/build.sh`).

pub mod batch;
pub mod capability;
pub mod dynamodb;
pub mod idempotency;
pub mod json;
pub mod log;
mod panic;
#[doc(hidden)]
pub mod packed;
pub mod record;

/// Generated bindings for the imports every handler has, and the shared types.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "eddy:handler/imports",
        generate_all,
    });
}

/// Generated bindings for the packed world's export: the typed world's handler
/// with a batch's Kinesis records packed into one byte list ([`packed`]).
#[doc(hidden)]
pub mod packed_world {
    wit_bindgen::generate!({
        path: "../wit",
        world: "eddy:handler/packed-handler",
        with: {
            "eddy:handler/types@0.1.0": crate::bindings::eddy::handler::types,
            "eddy:handler/log@0.1.0": crate::bindings::eddy::handler::log,
            "eddy:handler/invocation@0.1.0": crate::bindings::eddy::handler::invocation,
            "eddy:handler/errors@0.1.0": crate::bindings::eddy::handler::errors,
            "eddy:handler/streams@0.1.0": crate::bindings::eddy::handler::streams,
            "eddy:handler/kv@0.1.0": crate::bindings::eddy::handler::kv,
        },
        default_bindings_module: "eddy_guest::packed_world",
        pub_export_macro: true,
        export_macro_name: "__export_packed",
    });
}

/// Generated bindings for the JSON world's export.
#[doc(hidden)]
pub mod json_world {
    wit_bindgen::generate!({
        path: "../wit",
        world: "eddy:handler/json-handler",
        with: {
            "eddy:handler/types@0.1.0": crate::bindings::eddy::handler::types,
            "eddy:handler/log@0.1.0": crate::bindings::eddy::handler::log,
            "eddy:handler/invocation@0.1.0": crate::bindings::eddy::handler::invocation,
            "eddy:handler/errors@0.1.0": crate::bindings::eddy::handler::errors,
            "eddy:handler/streams@0.1.0": crate::bindings::eddy::handler::streams,
            "eddy:handler/kv@0.1.0": crate::bindings::eddy::handler::kv,
        },
        default_bindings_module: "eddy_guest::json_world",
        pub_export_macro: true,
        export_macro_name: "__export_json",
    });
}

pub use bindings::eddy::handler::types::{
    Batch, BatchResponse, Context, DynamodbEventName, DynamodbRecord, EventSource, KinesisRecord,
    Records, TumblingWindow,
};
pub use batch::{process_dynamodb, process_kinesis};
pub use record::{DynamodbRecordExt, KinesisRecordExt};

impl Records {
    /// How many records the batch holds.
    pub fn len(&self) -> usize {
        match self {
            Records::Kinesis(r) => r.len(),
            Records::Dynamodb(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first and last sequence numbers of the batch, if it has records.
    pub fn sequence_range(&self) -> Option<(&str, &str)> {
        let (first, last) = match self {
            Records::Kinesis(r) => (r.first()?.sequence_number.as_str(), r.last()?.sequence_number.as_str()),
            Records::Dynamodb(r) => (r.first()?.sequence_number.as_str(), r.last()?.sequence_number.as_str()),
        };
        Some((first, last))
    }
}

/// Milliseconds left before this invocation times out.
pub fn remaining_time_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return bindings::eddy::handler::invocation::remaining_time_ms();
    #[cfg(not(target_arch = "wasm32"))]
    return u64::MAX;
}

/// A handler of the typed world: it receives one batch of records.
pub trait TypedHandler {
    /// Handles one batch. `Ok` with failures listed asks the host to retry from the
    /// lowest failed sequence number on (with `ReportBatchItemFailures` on);
    /// `Err` fails the whole batch.
    fn handle(batch: Batch, context: Context) -> Result<BatchResponse, String>;
}

/// A handler of the JSON world: it receives Lambda's event as JSON text.
pub trait JsonHandler {
    /// Handles one event (`{"Records":[...]}`) and returns Lambda's response JSON;
    /// [`json::response`] builds one. `Err` fails the whole batch.
    fn handle(event: &str, context: Context) -> Result<String, String>;
}

impl<T: TypedHandler> packed_world::exports::eddy::handler::packed::Guest for T {
    fn handle(
        batch: packed_world::exports::eddy::handler::packed::PackedBatch,
        context: Context,
    ) -> Result<BatchResponse, String> {
        use packed_world::exports::eddy::handler::packed::PackedRecords;
        panic::install_hook();
        let records = match batch.records {
            PackedRecords::Kinesis(bytes) => Records::Kinesis(packed::unpack_kinesis(&bytes).map_err(|e| e.to_string())?),
            PackedRecords::Dynamodb(records) => Records::Dynamodb(records),
        };
        let batch = Batch {
            event_source: batch.event_source,
            event_source_arn: batch.event_source_arn,
            aws_region: batch.aws_region,
            invoke_identity_arn: batch.invoke_identity_arn,
            shard_id: batch.shard_id,
            records,
            window: batch.window,
        };
        T::handle(batch, context)
    }
}

impl<T: JsonHandler> json_world::exports::eddy::handler::json::Guest for T {
    fn handle(event: String, context: Context) -> Result<String, String> {
        panic::install_hook();
        T::handle(&event, context)
    }
}

// The export macros emit the component's exports only when compiling for wasm32:
// compiled natively (a handler's unit tests, the host's benchmark), a handler is
// a plain Rust type, and export names such as `eddy:handler/typed@0.1.0#handle`
// are not symbols a native linker accepts.

/// Exports a [`TypedHandler`] as the component's handler (in the packed world,
/// which delivers the typed world's records at less cost: wit/handler.wit).
#[macro_export]
macro_rules! export_typed_handler {
    ($handler:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::packed_world::__export_packed!($handler with_types_in $crate::packed_world);
    };
}

/// Exports a [`JsonHandler`] as the component's handler.
#[macro_export]
macro_rules! export_json_handler {
    ($handler:ident) => {
        #[cfg(target_arch = "wasm32")]
        $crate::json_world::__export_json!($handler with_types_in $crate::json_world);
    };
}

/// Everything a handler usually needs, in one `use`.
pub mod prelude {
    pub use crate::batch::{process_dynamodb, process_kinesis};
    pub use crate::record::{DynamodbRecordExt, KinesisRecordExt};
    pub use crate::{
        Batch, BatchResponse, Context, DynamodbRecord, JsonHandler, KinesisRecord, Records,
        TumblingWindow, TypedHandler,
    };
    pub use crate::{debug, error, info, trace, warn};
}
