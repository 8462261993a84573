//! Eddy: a WebAssembly function host for stream triggers.
//!
//! Data flows one way: a [`source`] reads records from a stream shard, the
//! [`mapping`] loop batches them as Lambda's event source mapping does, the
//! [`runtime`] invokes the function's Wasm component, and the outcome moves the
//! checkpoint in the [`store`]. The [`registry`] watches the functions folder and
//! starts, swaps and stops mappings; [`admin`] serves health, status, metrics and
//! ingest over HTTP.
//! Each function runs under an execution [`role`], which every [`capability`]
//! call is checked against.

pub mod admin;
pub mod assignment;
pub mod capability;
pub mod check;
pub mod clock;
pub mod config;
pub mod contract;
pub mod control_api;
pub mod dynamodb_size;
pub mod event;
pub mod filter;
pub mod function;
pub mod host;
pub mod host_lock;
pub mod ingest;
pub mod kinesis_service;
pub mod kpl;
pub mod lease;
pub mod logging;
pub mod manifest;
pub mod mapping;
pub mod names;
pub mod project;
pub mod record;
pub mod redrive;
pub mod registry;
pub mod retry;
pub mod role;
pub mod runtime;
pub mod source;
pub mod status;
pub mod store;
pub mod test_driver;
pub mod verdict;
