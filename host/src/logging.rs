//! The host's log: text or JSON lines on standard error, filtered by `EDDY_LOG`.
//!
//! Two things differ from tracing-subscriber's defaults:
//! - a bare level in the filter (`EDDY_LOG=debug`) is Eddy's level: it applies to
//!   the host's own lines, the handlers' and the audit's, while the libraries
//!   underneath (wasmtime, cranelift, the AWS SDK, hyper) stay at `warn`; name
//!   them to see theirs (`EDDY_LOG=debug,wasmtime=debug`);
//! - in JSON, the fields a handler gives a log line (`log::write(level, msg,
//!   fields)`) are fields of the line's `fields` object, beside `message`,
//!   `function`, `shard` and `request_id`, rather than one string.

use std::fmt;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The targets that are Eddy's own: the library's modules, the binary's, the
/// handlers' lines and the audit of denied calls.
const EDDY_TARGETS: [&str; 3] = ["eddy", "handler", "audit"];

/// The field a handler's own fields travel in, as a JSON object's text; the
/// JSON format spreads it into the line's fields.
pub const HANDLER_FIELDS: &str = "handler_fields";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Turns `EDDY_LOG`'s syntax into tracing's: a directive without a target
/// becomes that level for each of Eddy's targets, on top of `warn` for the rest;
/// directives that name a target are kept, and win over the expansion.
pub fn expand_filter(spec: &str) -> String {
    let directives: Vec<&str> = spec.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    let named = |target: &str| directives.iter().any(|d| d.split(['=', '[']).next() == Some(target));
    let mut out = vec!["warn".to_owned()];
    for directive in &directives {
        if is_bare_level(directive) {
            out.extend(EDDY_TARGETS.iter().filter(|t| !named(t)).map(|t| format!("{t}={directive}")));
        } else {
            out.push((*directive).to_owned());
        }
    }
    out.join(",")
}

fn is_bare_level(directive: &str) -> bool {
    ["trace", "debug", "info", "warn", "error", "off"].iter().any(|l| directive.eq_ignore_ascii_case(l))
}

/// Installs the log for this process: `filter` in `EDDY_LOG`'s syntax.
pub fn init(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(expand_filter(filter)).unwrap_or_else(|error| {
        eprintln!("eddy: the log filter {filter:?} is not valid ({error}); logging at info");
        tracing_subscriber::EnvFilter::new(expand_filter("info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.event_format(JsonLines).init(),
    }
}

/// One JSON object a line: `timestamp`, `level`, `target`, and `fields`
/// (`message` and the event's fields, a handler's own among them).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _context: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Map::new();
        event.record(&mut JsonFields(&mut fields));
        spread_handler_fields(&mut fields);
        let line = serde_json::json!({
            "timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "level": meta.level().as_str(),
            "fields": fields,
            "target": meta.target(),
        });
        writeln!(writer, "{line}")
    }
}

/// Moves a handler's fields out of their one string into the line's fields;
/// the host's own (`message`, `function`, ...) keep their values.
fn spread_handler_fields(fields: &mut Map<String, Value>) {
    let Some(Value::String(text)) = fields.remove(HANDLER_FIELDS) else { return };
    match serde_json::from_str::<Map<String, Value>>(&text) {
        Ok(own) => {
            for (key, value) in own {
                fields.entry(key).or_insert(value);
            }
        }
        Err(_) => {
            fields.insert(HANDLER_FIELDS.to_owned(), Value::String(text));
        }
    }
}

struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_level_is_eddys_and_named_targets_are_kept() {
        assert_eq!(expand_filter("debug"), "warn,eddy=debug,handler=debug,audit=debug");
        assert_eq!(expand_filter("info,handler=debug"), "warn,eddy=info,audit=info,handler=debug");
        assert_eq!(expand_filter("debug,wasmtime=debug"), "warn,eddy=debug,handler=debug,audit=debug,wasmtime=debug");
        assert_eq!(expand_filter("warn,handler=info"), "warn,eddy=warn,audit=warn,handler=info");
        assert_eq!(expand_filter(" INFO "), "warn,eddy=INFO,handler=INFO,audit=INFO");
    }

    #[test]
    fn a_handlers_fields_become_fields_of_the_line() {
        let mut fields = Map::new();
        fields.insert("message".into(), "sold".into());
        fields.insert("function".into(), "totals".into());
        fields.insert(HANDLER_FIELDS.into(), r#"{"order":"17","function":"spoofed"}"#.into());
        spread_handler_fields(&mut fields);
        assert_eq!(Value::Object(fields), serde_json::json!({"message": "sold", "function": "totals", "order": "17"}));
    }
}
