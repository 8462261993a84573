//! What a function's execution role may grant beyond logs and the clock:
//! putting records on streams ([`streams`]) and key-value state ([`kv`]).
//!
//! Every call is checked by the host against the role; a call the role does not
//! allow returns [`Error::AccessDenied`] with IAM's wording, and the function goes
//! on. Outbound HTTP, files and sockets are WASI's (wasi:http, wasi:filesystem,
//! wasi:sockets), under the same role.
//!
//! Outside the host (native unit tests) every call returns [`Error::Unavailable`].

pub use crate::bindings::eddy::handler::errors::Error;
pub use crate::bindings::eddy::handler::streams::{PutEntry, PutResult};

impl Error {
    /// The error's text, whatever its kind.
    pub fn message(&self) -> &str {
        match self {
            Error::AccessDenied(m) | Error::NotFound(m) | Error::Invalid(m) | Error::Unavailable(m) => m,
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn outside_the_host<T>() -> Result<T, Error> {
    Err(Error::Unavailable("capabilities exist only inside the Eddy host".into()))
}

/// Putting records on Kinesis streams (`stream` is a stream ARN) or on the
/// host's embedded local streams (`stream` is a name).
pub mod streams {
    use super::{Error, PutEntry, PutResult};

    /// `kinesis:PutRecord`.
    pub fn put_record(stream: &str, partition_key: &str, data: &[u8]) -> Result<PutResult, Error> {
        #[cfg(target_arch = "wasm32")]
        return crate::bindings::eddy::handler::streams::put_record(stream, partition_key, data);
        #[cfg(not(target_arch = "wasm32"))]
        return {
            let _ = (stream, partition_key, data);
            super::outside_the_host()
        };
    }

    /// `kinesis:PutRecords`: up to 500 records; each has its own result.
    pub fn put_records(stream: &str, entries: &[PutEntry]) -> Result<Vec<Result<PutResult, String>>, Error> {
        #[cfg(target_arch = "wasm32")]
        return crate::bindings::eddy::handler::streams::put_records(stream, entries);
        #[cfg(not(target_arch = "wasm32"))]
        return {
            let _ = (stream, entries);
            super::outside_the_host()
        };
    }
}

/// Key-value state in a DynamoDB table (`table` is a table ARN) or in a table of
/// the host's embedded store (`table` is a name).
pub mod kv {
    use super::Error;

    /// `dynamodb:GetItem`.
    pub fn get(table: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        #[cfg(target_arch = "wasm32")]
        return crate::bindings::eddy::handler::kv::get(table, key);
        #[cfg(not(target_arch = "wasm32"))]
        return {
            let _ = (table, key);
            super::outside_the_host()
        };
    }

    /// `dynamodb:PutItem`.
    pub fn set(table: &str, key: &str, value: &[u8]) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        return crate::bindings::eddy::handler::kv::set(table, key, value);
        #[cfg(not(target_arch = "wasm32"))]
        return {
            let _ = (table, key, value);
            super::outside_the_host()
        };
    }

    /// `dynamodb:DeleteItem`.
    pub fn delete(table: &str, key: &str) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        return crate::bindings::eddy::handler::kv::delete(table, key);
        #[cfg(not(target_arch = "wasm32"))]
        return {
            let _ = (table, key);
            super::outside_the_host()
        };
    }

    /// `dynamodb:PutItem` with a condition: writes only if the value is
    /// `expected` now (`None`: only if there is none). Returns whether it wrote.
    pub fn compare_and_set(table: &str, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool, Error> {
        #[cfg(target_arch = "wasm32")]
        return crate::bindings::eddy::handler::kv::compare_and_set(table, key, expected, value);
        #[cfg(not(target_arch = "wasm32"))]
        return {
            let _ = (table, key, expected, value);
            super::outside_the_host()
        };
    }
}
