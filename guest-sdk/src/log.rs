//! Logging through the host. The host tags each line with the function, the shard
//! and the request id; a handler adds its message and, if it likes, fields.
//!
//! ```ignore
//! eddy_guest::info!("processed {} records", n);
//! eddy_guest::log::write(Level::Warn, "slow record", &[("partition_key", key)]);
//! ```

pub use crate::bindings::eddy::handler::log::Level;

/// Writes one line at `level` with key-value `fields`.
pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    emit(level, message, &fields);
}

#[doc(hidden)]
pub fn __write_fmt(level: Level, args: std::fmt::Arguments<'_>) {
    match args.as_str() {
        Some(message) => emit(level, message, &[]),
        None => emit(level, &args.to_string(), &[]),
    }
}

#[cfg(target_arch = "wasm32")]
fn emit(level: Level, message: &str, fields: &[(String, String)]) {
    crate::bindings::eddy::handler::log::log(level, message, fields);
}

/// Compiled natively (a handler's unit tests, the host's benchmark), there is no
/// host to log to: lines go to standard error, unless [`set_native_output`]
/// turned them off.
#[cfg(not(target_arch = "wasm32"))]
fn emit(level: Level, message: &str, fields: &[(String, String)]) {
    if NATIVE_OUTPUT.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("[{level:?}] {message} {fields:?}");
    }
}

#[cfg(not(target_arch = "wasm32"))]
static NATIVE_OUTPUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Compiled natively, whether log lines go to standard error (they do by
/// default). The host's benchmark turns them off, as the host's own log would
/// drop them when no subscriber listens.
#[cfg(not(target_arch = "wasm32"))]
pub fn set_native_output(enabled: bool) {
    NATIVE_OUTPUT.store(enabled, std::sync::atomic::Ordering::Relaxed);
}

/// Logs at trace level, with `format!` arguments.
#[macro_export]
macro_rules! trace { ($($arg:tt)*) => { $crate::log::__write_fmt($crate::log::Level::Trace, format_args!($($arg)*)) }; }
/// Logs at debug level, with `format!` arguments.
#[macro_export]
macro_rules! debug { ($($arg:tt)*) => { $crate::log::__write_fmt($crate::log::Level::Debug, format_args!($($arg)*)) }; }
/// Logs at info level, with `format!` arguments.
#[macro_export]
macro_rules! info { ($($arg:tt)*) => { $crate::log::__write_fmt($crate::log::Level::Info, format_args!($($arg)*)) }; }
/// Logs at warn level, with `format!` arguments.
#[macro_export]
macro_rules! warn { ($($arg:tt)*) => { $crate::log::__write_fmt($crate::log::Level::Warn, format_args!($($arg)*)) }; }
/// Logs at error level, with `format!` arguments.
#[macro_export]
macro_rules! error { ($($arg:tt)*) => { $crate::log::__write_fmt($crate::log::Level::Error, format_args!($($arg)*)) }; }
