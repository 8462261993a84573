//! A function's manifest: `functions/<name>.toml`.
//!
//! Keys use the names of Lambda's function configuration and event source mapping
//! (as a SAM template writes them), so a Lambda user can carry values over. Unknown
//! keys and out-of-range values are refused when the manifest loads, with the key
//! and its valid range in the message.
//!
//! ```toml
//! Timeout = 3                 # seconds, 1-900
//! MemorySize = 128            # MB, 128-10240
//!
//! [Environment.Variables]
//! GREETING = "hello"
//!
//! [EventSource]
//! Type = "Local"              # Eddy's embedded local stream
//! Stream = "orders"
//! BatchSize = 100
//! MaximumBatchingWindowInSeconds = 0
//! StartingPosition = "TRIM_HORIZON"
//! FunctionResponseTypes = ["ReportBatchItemFailures"]
//! MaximumRetryAttempts = -1
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{0}")]
    Syntax(String),
    #[error("{key} = {value} is out of range: {range}")]
    OutOfRange { key: &'static str, value: String, range: &'static str },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub timeout: Duration,
    pub memory_mb: u32,
    pub environment: Vec<(String, String)>,
    pub event_source: EventSourceConfig,
}

/// The event source mapping of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSourceConfig {
    pub source: SourceRef,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub starting_position: StartingPosition,
    pub report_batch_item_failures: bool,
    /// `None` retries until the batch succeeds or its records expire.
    pub maximum_retry_attempts: Option<u32>,
    pub enabled: bool,
}

/// The stream a mapping reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceRef {
    /// A stream of the embedded store.
    Local { stream: String },
}

impl SourceRef {
    /// A stable name for the source, used as part of checkpoint keys.
    pub fn id(&self) -> String {
        match self {
            SourceRef::Local { stream } => format!("local:{stream}"),
        }
    }
}

/// Where a mapping without a checkpoint starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
    /// Milliseconds since the Unix epoch.
    AtTimestamp(u64),
}

pub const DEFAULT_TIMEOUT_SECONDS: u64 = 3;
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Lambda's cap on the total size of a function's environment variables.
pub const ENVIRONMENT_LIMIT_BYTES: usize = 4096;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(rename = "Timeout")]
    timeout: Option<i64>,
    #[serde(rename = "MemorySize")]
    memory_size: Option<i64>,
    #[serde(rename = "Environment")]
    environment: Option<RawEnvironment>,
    #[serde(rename = "EventSource")]
    event_source: RawEventSource,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    #[serde(rename = "Variables", default)]
    variables: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawEventSource {
    r#type: String,
    stream: String,
    batch_size: Option<i64>,
    maximum_batching_window_in_seconds: Option<i64>,
    starting_position: Option<String>,
    starting_position_timestamp: Option<f64>,
    function_response_types: Option<Vec<String>>,
    maximum_retry_attempts: Option<i64>,
    enabled: Option<bool>,
}

fn in_range(key: &'static str, value: i64, min: i64, max: i64, range: &'static str) -> Result<i64, ManifestError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ManifestError::OutOfRange { key, value: value.to_string(), range })
    }
}

impl Manifest {
    /// Parses and validates a manifest's text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        let timeout = in_range("Timeout", raw.timeout.unwrap_or(DEFAULT_TIMEOUT_SECONDS as i64), 1, 900, "1 to 900 seconds")?;
        let memory = in_range("MemorySize", raw.memory_size.unwrap_or(DEFAULT_MEMORY_MB as i64), 128, 10_240, "128 to 10240 MB")?;
        let environment = validate_environment(raw.environment.map(|e| e.variables).unwrap_or_default())?;
        Ok(Manifest {
            timeout: Duration::from_secs(timeout as u64),
            memory_mb: memory as u32,
            environment,
            event_source: validate_event_source(raw.event_source)?,
        })
    }
}

fn validate_environment(variables: BTreeMap<String, String>) -> Result<Vec<(String, String)>, ManifestError> {
    let mut total = 0;
    for (name, value) in &variables {
        let mut chars = name.chars();
        let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !well_formed {
            return Err(ManifestError::Invalid {
                key: "Environment.Variables",
                message: format!("{name:?} is not a valid name: a letter, then letters, digits and underscores"),
            });
        }
        total += name.len() + value.len();
    }
    if total > ENVIRONMENT_LIMIT_BYTES {
        return Err(ManifestError::OutOfRange {
            key: "Environment.Variables",
            value: format!("{total} bytes"),
            range: "at most 4096 bytes of names and values in all",
        });
    }
    Ok(variables.into_iter().collect())
}

fn validate_event_source(raw: RawEventSource) -> Result<EventSourceConfig, ManifestError> {
    let source = match raw.r#type.as_str() {
        "Local" => {
            if raw.stream.is_empty() || raw.stream.len() > 128
                || !raw.stream.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(ManifestError::Invalid {
                    key: "EventSource.Stream",
                    message: format!("{:?} is not a valid stream name: 1 to 128 of a-z, A-Z, 0-9, _ . -", raw.stream),
                });
            }
            SourceRef::Local { stream: raw.stream }
        }
        other => {
            return Err(ManifestError::Invalid {
                key: "EventSource.Type",
                message: format!("{other:?} is not a source type this host knows; expected \"Local\""),
            })
        }
    };
    let batch_size = in_range("EventSource.BatchSize", raw.batch_size.unwrap_or(100), 1, 10_000, "1 to 10000")?;
    let window = in_range(
        "EventSource.MaximumBatchingWindowInSeconds",
        raw.maximum_batching_window_in_seconds.unwrap_or(0),
        0,
        300,
        "0 to 300 seconds",
    )?;
    let starting_position = match (raw.starting_position.as_deref().unwrap_or("TRIM_HORIZON"), raw.starting_position_timestamp) {
        ("TRIM_HORIZON", None) => StartingPosition::TrimHorizon,
        ("LATEST", None) => StartingPosition::Latest,
        ("AT_TIMESTAMP", Some(seconds)) if seconds.is_finite() && seconds >= 0.0 => {
            StartingPosition::AtTimestamp((seconds * 1000.0) as u64)
        }
        ("AT_TIMESTAMP", _) => {
            return Err(ManifestError::Invalid {
                key: "EventSource.StartingPositionTimestamp",
                message: "AT_TIMESTAMP needs StartingPositionTimestamp, in seconds since the Unix epoch".into(),
            })
        }
        ("TRIM_HORIZON" | "LATEST", Some(_)) => {
            return Err(ManifestError::Invalid {
                key: "EventSource.StartingPositionTimestamp",
                message: "is only allowed with StartingPosition = \"AT_TIMESTAMP\"".into(),
            })
        }
        (other, _) => {
            return Err(ManifestError::Invalid {
                key: "EventSource.StartingPosition",
                message: format!("{other:?} is not one of TRIM_HORIZON, LATEST, AT_TIMESTAMP"),
            })
        }
    };
    let mut report_batch_item_failures = false;
    for kind in raw.function_response_types.unwrap_or_default() {
        match kind.as_str() {
            "ReportBatchItemFailures" => report_batch_item_failures = true,
            other => {
                return Err(ManifestError::Invalid {
                    key: "EventSource.FunctionResponseTypes",
                    message: format!("{other:?} is not a response type; the only one is \"ReportBatchItemFailures\""),
                })
            }
        }
    }
    let retries = in_range(
        "EventSource.MaximumRetryAttempts",
        raw.maximum_retry_attempts.unwrap_or(-1),
        -1,
        10_000,
        "-1 (retry until the records expire) to 10000",
    )?;
    Ok(EventSourceConfig {
        source,
        batch_size: batch_size as usize,
        batching_window: Duration::from_secs(window as u64),
        starting_position,
        report_batch_item_failures,
        maximum_retry_attempts: u32::try_from(retries).ok(),
        enabled: raw.enabled.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[EventSource]\nType = \"Local\"\nStream = \"orders\"\n";

    #[test]
    fn minimal_manifest_takes_lambdas_defaults() {
        let m = Manifest::parse(MINIMAL).expect("valid");
        assert_eq!(m.timeout, Duration::from_secs(3));
        assert_eq!(m.memory_mb, 128);
        assert_eq!(m.event_source.batch_size, 100);
        assert_eq!(m.event_source.batching_window, Duration::ZERO);
        assert_eq!(m.event_source.starting_position, StartingPosition::TrimHorizon);
        assert!(!m.event_source.report_batch_item_failures);
        assert_eq!(m.event_source.maximum_retry_attempts, None);
        assert!(m.event_source.enabled);
    }

    #[test]
    fn full_manifest() {
        let m = Manifest::parse(
            "Timeout = 30\nMemorySize = 256\n[Environment.Variables]\nMODE = \"strict\"\n\
             [EventSource]\nType = \"Local\"\nStream = \"orders\"\nBatchSize = 10\n\
             MaximumBatchingWindowInSeconds = 2\nStartingPosition = \"AT_TIMESTAMP\"\n\
             StartingPositionTimestamp = 1700000000.5\nFunctionResponseTypes = [\"ReportBatchItemFailures\"]\n\
             MaximumRetryAttempts = 2\nEnabled = false\n",
        )
        .expect("valid");
        assert_eq!(m.timeout, Duration::from_secs(30));
        assert_eq!(m.environment, vec![("MODE".to_owned(), "strict".to_owned())]);
        assert_eq!(m.event_source.starting_position, StartingPosition::AtTimestamp(1_700_000_000_500));
        assert!(m.event_source.report_batch_item_failures);
        assert_eq!(m.event_source.maximum_retry_attempts, Some(2));
        assert!(!m.event_source.enabled);
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = Manifest::parse(&format!("{MINIMAL}BatchSise = 5\n")).unwrap_err();
        assert!(err.to_string().contains("BatchSise"), "{err}");
        let err = Manifest::parse(&format!("Tiemout = 5\n{MINIMAL}")).unwrap_err();
        assert!(err.to_string().contains("Tiemout"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_key_and_range() {
        for (line, key, range) in [
            ("BatchSize = 0", "EventSource.BatchSize", "1 to 10000"),
            ("BatchSize = 10001", "EventSource.BatchSize", "1 to 10000"),
            ("MaximumBatchingWindowInSeconds = 301", "EventSource.MaximumBatchingWindowInSeconds", "0 to 300"),
            ("MaximumRetryAttempts = -2", "EventSource.MaximumRetryAttempts", "-1"),
        ] {
            let err = Manifest::parse(&format!("{MINIMAL}{line}\n")).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(range), "{line}: {err}");
        }
        let err = Manifest::parse(&format!("Timeout = 901\n{MINIMAL}")).unwrap_err().to_string();
        assert!(err.contains("Timeout") && err.contains("1 to 900"), "{err}");
        let err = Manifest::parse(&format!("MemorySize = 64\n{MINIMAL}")).unwrap_err().to_string();
        assert!(err.contains("MemorySize") && err.contains("128 to 10240"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        let err = Manifest::parse(&format!("{MINIMAL}StartingPosition = \"EARLIEST\"\n")).unwrap_err().to_string();
        assert!(err.contains("TRIM_HORIZON, LATEST, AT_TIMESTAMP"), "{err}");
        let err = Manifest::parse(&format!("{MINIMAL}StartingPosition = \"AT_TIMESTAMP\"\n")).unwrap_err().to_string();
        assert!(err.contains("StartingPositionTimestamp"), "{err}");
        let err = Manifest::parse("[EventSource]\nType = \"Kafka\"\nStream = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("EventSource.Type"), "{err}");
        let big = "x".repeat(5000);
        let err = Manifest::parse(&format!("[Environment.Variables]\nBIG = \"{big}\"\n{MINIMAL}")).unwrap_err().to_string();
        assert!(err.contains("4096"), "{err}");
        let err = Manifest::parse(&format!("[Environment.Variables]\n\"1X\" = \"v\"\n{MINIMAL}")).unwrap_err().to_string();
        assert!(err.contains("not a valid name"), "{err}");
        assert!(Manifest::parse("Timeout = 3\n").is_err(), "EventSource is required");
    }
}
