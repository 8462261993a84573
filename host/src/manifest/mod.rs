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
//! Role = "reader"             # roles/reader.json; none: read the source, nothing else
//! ReservedConcurrentExecutions = 10      # optional: invocations at once, all shards
//! LogLimitBytes = 262144      # log output per invocation, 1024-10485760
//!
//! [ExecutionEnvironment]      # optional: how long an instance lives (below: the defaults)
//! Reuse = true                # keep a shard's instance warm between batches; false: fresh per batch
//! MaxInvocations = 10000      # then a fresh instance, 1-1000000
//! MaxMemoryGrowthMB = 64      # or once its memory grew this much past its first invocation, 1-10240
//! MaxIdleSeconds = 300        # dropped after waiting this long for a batch, 1-3600
//!
//! [Environment.Variables]
//! GREETING = "hello"
//!
//! [EventSource]
//! Type = "Kinesis"            # or "DynamoDB", or "Local" (Eddy's embedded stream)
//! Stream = "orders"           # a name or an ARN; DynamoDB: Table = "T" or Stream = <stream ARN>
//! CreateStream = true         # Local only: create the stream if it is missing (default: an error)
//! EndpointUrl = "http://127.0.0.1:4567"   # optional: LocalStack, an emulator
//! ConsumerName = "eddy-orders"            # optional: Kinesis enhanced fan-out
//! BatchSize = 100
//! MaximumBatchingWindowInSeconds = 0
//! StartingPosition = "TRIM_HORIZON"
//! ParallelizationFactor = 1
//! BisectBatchOnFunctionError = false
//! MaximumRetryAttempts = -1
//! MaximumRecordAgeInSeconds = -1
//! FunctionResponseTypes = ["ReportBatchItemFailures"]
//! TumblingWindowInSeconds = 0
//!
//! [EventSource.FilterCriteria]
//! Filters = [{ Pattern = '{"data":{"type":["sale"]}}' }]
//!
//! [EventSource.DestinationConfig.OnFailure]
//! Destination = "failures/"   # a directory, a .jsonl file, or an SQS, SNS, S3 or Kinesis ARN
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::names;
pub use crate::names::StreamName;

pub mod destination;

pub use destination::AwsTarget;

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
    /// The execution role, as the manifest names it (a name or an IAM role ARN).
    pub role: Option<String>,
    /// Invocations of the function that may run at once, over all its shards.
    pub reserved_concurrency: Option<u32>,
    /// Bytes of log output an invocation may write.
    pub log_limit_bytes: usize,
    /// Whether and how long an instance serves more than one batch.
    pub execution_environment: ExecutionEnvironment,
    pub event_source: EventSourceConfig,
}

/// `[ExecutionEnvironment]`: Lambda keeps a function's execution environment
/// between invocations, and handlers rely on it (clients, caches, compiled
/// patterns at module scope). Eddy keeps an instance per shard (per lane with
/// ParallelizationFactor) the same way, within these bounds; any error, trap,
/// timeout or out-of-memory discards it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutionEnvironment {
    /// `false`: a fresh instance for every invocation, so that nothing a batch
    /// left in memory is seen by the next.
    pub reuse: bool,
    /// Invocations an instance serves before a fresh one replaces it.
    pub max_invocations: u32,
    /// Bytes its memory may grow past what it had after its first invocation
    /// before a fresh one replaces it (wasm memory never shrinks).
    pub max_memory_growth_bytes: usize,
    /// How long a warm instance may wait for a batch before it is dropped and
    /// its memory given back.
    pub max_idle: Duration,
}

pub const DEFAULT_MAX_IDLE_SECONDS: u64 = 300;
pub const DEFAULT_MAX_INVOCATIONS: u32 = 10_000;
pub const DEFAULT_MAX_MEMORY_GROWTH_MB: u32 = 64;

impl Default for ExecutionEnvironment {
    fn default() -> Self {
        ExecutionEnvironment {
            reuse: true,
            max_invocations: DEFAULT_MAX_INVOCATIONS,
            max_memory_growth_bytes: (DEFAULT_MAX_MEMORY_GROWTH_MB as usize) << 20,
            max_idle: Duration::from_secs(DEFAULT_MAX_IDLE_SECONDS),
        }
    }
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
    /// Concurrent batches per shard (1-10); order is kept per partition key.
    pub parallelization_factor: usize,
    pub bisect_batch_on_function_error: bool,
    /// `None` keeps records however old they are.
    pub maximum_record_age: Option<Duration>,
    pub on_failure: Option<OnFailure>,
    /// FilterCriteria's patterns, validated.
    pub filter_patterns: Vec<String>,
    /// `None`: no tumbling windows.
    pub tumbling_window: Option<Duration>,
    /// How often a caught-up shard is polled; `None` takes the source's default.
    pub polling_interval: Option<Duration>,
    /// Split KPL aggregates into their user records before filtering and
    /// batching (`crate::kpl`); Kinesis and local streams only.
    pub deaggregate_records: bool,
}

/// The stream a mapping reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceRef {
    /// A stream of the embedded store; `create`: make it (with the default shard
    /// count) if it is missing, rather than refuse to start.
    Local { stream: StreamName, create: bool },
    /// A Kinesis data stream, by name or ARN; read by enhanced fan-out through
    /// `consumer` when one is named.
    Kinesis { stream: KinesisStream, endpoint: AwsEndpoint, consumer: Option<StreamName> },
    /// A DynamoDB table's stream.
    Dynamodb { stream: DynamodbStream, endpoint: AwsEndpoint },
}

/// A Kinesis data stream, as the manifest names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KinesisStream {
    Name(StreamName),
    Arn(String),
}

impl std::fmt::Display for KinesisStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KinesisStream::Name(name) => f.write_str(name),
            KinesisStream::Arn(arn) => f.write_str(arn),
        }
    }
}

/// Which DynamoDB stream a mapping reads: a table's latest, or one by its ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DynamodbStream {
    Table(String),
    StreamArn(String),
}

/// Where an AWS source is served, when not by AWS itself at the default chain's region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AwsEndpoint {
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
}

impl SourceRef {
    /// A stable name for the source, used as part of checkpoint keys.
    pub fn id(&self) -> String {
        match self {
            SourceRef::Local { stream, .. } => format!("local:{stream}"),
            SourceRef::Kinesis { stream, .. } => format!("kinesis:{stream}"),
            SourceRef::Dynamodb { stream: DynamodbStream::Table(table), .. } => format!("dynamodb:{table}"),
            SourceRef::Dynamodb { stream: DynamodbStream::StreamArn(arn), .. } => format!("dynamodb:{arn}"),
        }
    }
}

/// `DestinationConfig.OnFailure`: where the record of a discarded batch goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnFailure {
    pub destination: Destination,
    /// Add the batch's original event as `payload`, as Lambda's S3 destination does.
    pub include_payload: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// One JSON file per failure in this directory.
    Directory(PathBuf),
    /// One line per failure appended to this file.
    JsonLines(PathBuf),
    /// An SQS queue, SNS topic, S3 bucket or Kinesis stream, by its ARN.
    Aws { target: AwsTarget, endpoint: AwsEndpoint },
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
pub const DEFAULT_LOG_LIMIT_BYTES: usize = 256 * 1024;
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
    #[serde(rename = "Role")]
    role: Option<String>,
    #[serde(rename = "ReservedConcurrentExecutions")]
    reserved_concurrent_executions: Option<i64>,
    #[serde(rename = "LogLimitBytes")]
    log_limit_bytes: Option<i64>,
    #[serde(rename = "ExecutionEnvironment")]
    execution_environment: Option<RawExecutionEnvironment>,
    #[serde(rename = "EventSource")]
    event_source: RawEventSource,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecutionEnvironment {
    #[serde(rename = "Reuse")]
    reuse: Option<bool>,
    #[serde(rename = "MaxInvocations")]
    max_invocations: Option<i64>,
    #[serde(rename = "MaxMemoryGrowthMB")]
    max_memory_growth_mb: Option<i64>,
    #[serde(rename = "MaxIdleSeconds")]
    max_idle_seconds: Option<i64>,
}

impl RawExecutionEnvironment {
    fn validate(self) -> Result<ExecutionEnvironment, ManifestError> {
        let default = ExecutionEnvironment::default();
        let max_invocations = match self.max_invocations {
            Some(n) => in_range("ExecutionEnvironment.MaxInvocations", n, 1, 1_000_000, "1 to 1000000")? as u32,
            None => default.max_invocations,
        };
        let max_memory_growth_bytes = match self.max_memory_growth_mb {
            Some(mb) => (in_range("ExecutionEnvironment.MaxMemoryGrowthMB", mb, 1, 10_240, "1 to 10240 MB")? as usize) << 20,
            None => default.max_memory_growth_bytes,
        };
        let max_idle = match self.max_idle_seconds {
            Some(s) => Duration::from_secs(in_range("ExecutionEnvironment.MaxIdleSeconds", s, 1, 3600, "1 to 3600 seconds")? as u64),
            None => default.max_idle,
        };
        Ok(ExecutionEnvironment { reuse: self.reuse.unwrap_or(default.reuse), max_invocations, max_memory_growth_bytes, max_idle })
    }
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
    stream: Option<String>,
    table: Option<String>,
    endpoint_url: Option<String>,
    region: Option<String>,
    consumer_name: Option<String>,
    create_stream: Option<bool>,
    batch_size: Option<i64>,
    maximum_batching_window_in_seconds: Option<i64>,
    starting_position: Option<String>,
    starting_position_timestamp: Option<f64>,
    function_response_types: Option<Vec<String>>,
    maximum_retry_attempts: Option<i64>,
    enabled: Option<bool>,
    parallelization_factor: Option<i64>,
    bisect_batch_on_function_error: Option<bool>,
    maximum_record_age_in_seconds: Option<i64>,
    tumbling_window_in_seconds: Option<i64>,
    polling_interval_in_milliseconds: Option<i64>,
    deaggregate_records: Option<bool>,
    filter_criteria: Option<RawFilterCriteria>,
    destination_config: Option<RawDestinationConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawFilterCriteria {
    #[serde(default)]
    filters: Vec<RawFilter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawFilter {
    pattern: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawDestinationConfig {
    on_failure: Option<RawOnFailure>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawOnFailure {
    destination: String,
    include_payload: Option<bool>,
    endpoint_url: Option<String>,
    region: Option<String>,
}

/// serde's type names in TOML's words: "expected i64" is "expected an integer".
fn plain_type_names(message: &str) -> String {
    let mut message = message.to_owned();
    for (rust, plain) in [
        ("i64", "an integer"),
        ("u64", "a non-negative integer"),
        ("i32", "an integer"),
        ("u32", "a non-negative integer"),
        ("u16", "a non-negative integer"),
        ("f64", "a number"),
        ("a boolean", "true or false"),
    ] {
        message = message.replace(&format!("expected {rust}"), &format!("expected {plain}"));
    }
    message
}

fn in_range(key: &'static str, value: i64, min: i64, max: i64, range: &'static str) -> Result<i64, ManifestError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ManifestError::OutOfRange { key, value: value.to_string(), range })
    }
}

impl Manifest {
    /// The `Role` a manifest's text names, read without validating the rest
    /// (the registry watches that role's file).
    pub fn role_reference(text: &str) -> Option<String> {
        let table: toml::Table = toml::from_str(text).ok()?;
        table.get("Role")?.as_str().map(str::to_owned)
    }

    /// Parses and validates a manifest's text.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Syntax(plain_type_names(&e.to_string())))?;
        let timeout = in_range("Timeout", raw.timeout.unwrap_or(DEFAULT_TIMEOUT_SECONDS as i64), 1, 900, "1 to 900 seconds")?;
        let memory = in_range("MemorySize", raw.memory_size.unwrap_or(DEFAULT_MEMORY_MB as i64), 128, 10_240, "128 to 10240 MB")?;
        let environment = validate_environment(raw.environment.map(|e| e.variables).unwrap_or_default())?;
        let reserved_concurrency = match raw.reserved_concurrent_executions {
            Some(n) => Some(in_range("ReservedConcurrentExecutions", n, 1, 1000, "1 to 1000")? as u32),
            None => None,
        };
        let log_limit = in_range(
            "LogLimitBytes",
            raw.log_limit_bytes.unwrap_or(DEFAULT_LOG_LIMIT_BYTES as i64),
            1024,
            10 << 20,
            "1024 to 10485760 bytes",
        )?;
        if let Some(role) = &raw.role {
            if !names::is_role_name(names::role_name(role)) {
                return Err(invalid("Role", format!(
                    "{role:?} is not a role name (1 to 64 of letters, digits and +=,.@_-) or an IAM role ARN"
                )));
            }
        }
        Ok(Manifest {
            timeout: Duration::from_secs(timeout as u64),
            memory_mb: memory as u32,
            environment,
            role: raw.role,
            reserved_concurrency,
            log_limit_bytes: log_limit as usize,
            execution_environment: match raw.execution_environment {
                Some(raw) => raw.validate()?,
                None => ExecutionEnvironment::default(),
            },
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

fn invalid(key: &'static str, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid { key, message: message.into() }
}

fn validate_source(raw: &RawEventSource) -> Result<SourceRef, ManifestError> {
    let endpoint = AwsEndpoint { endpoint_url: raw.endpoint_url.clone(), region: raw.region.clone() };
    let aws_only = |key: &'static str| invalid(key, "is only for Type = \"Kinesis\" or \"DynamoDB\"");
    match raw.r#type.as_str() {
        "Local" => {
            if raw.consumer_name.is_some() {
                return Err(invalid("EventSource.ConsumerName", "is only for Type = \"Kinesis\""));
            }
            if raw.endpoint_url.is_some() {
                return Err(aws_only("EventSource.EndpointUrl"));
            }
            if raw.region.is_some() {
                return Err(aws_only("EventSource.Region"));
            }
            if raw.table.is_some() {
                return Err(invalid("EventSource.Table", "is only for Type = \"DynamoDB\""));
            }
            let text = raw.stream.clone().unwrap_or_default();
            let Some(stream) = StreamName::parse(&text) else {
                return Err(invalid(
                    "EventSource.Stream",
                    format!("{text:?} is not a valid stream name: 1 to 128 of a-z, A-Z, 0-9, _ . -"),
                ));
            };
            Ok(SourceRef::Local { stream, create: raw.create_stream.unwrap_or(false) })
        }
        _ if raw.create_stream.is_some() => Err(invalid("EventSource.CreateStream", "is only for Type = \"Local\"")),
        "Kinesis" => {
            if raw.table.is_some() {
                return Err(invalid("EventSource.Table", "is only for Type = \"DynamoDB\"; Kinesis takes Stream"));
            }
            let text = raw.stream.clone().unwrap_or_default();
            let stream = match StreamName::parse(&text) {
                Some(name) => KinesisStream::Name(name),
                None if text.starts_with("arn:") && text.contains(":kinesis:") && text.contains(":stream/") => KinesisStream::Arn(text),
                None => {
                    return Err(invalid(
                        "EventSource.Stream",
                        format!("{text:?} is neither a stream name (1 to 128 of a-z, A-Z, 0-9, _ . -) nor a Kinesis stream ARN"),
                    ));
                }
            };
            let consumer = match &raw.consumer_name {
                Some(name) => Some(StreamName::parse(name).ok_or_else(|| {
                    invalid("EventSource.ConsumerName", format!("{name:?} is not a valid consumer name: 1 to 128 of a-z, A-Z, 0-9, _ . -"))
                })?),
                None => None,
            };
            Ok(SourceRef::Kinesis { stream, endpoint, consumer })
        }
        "DynamoDB" if raw.consumer_name.is_some() => Err(invalid("EventSource.ConsumerName", "is only for Type = \"Kinesis\"")),
        "DynamoDB" => match (&raw.table, &raw.stream) {
            (Some(table), None) if !table.is_empty() && table.len() <= 255 => {
                Ok(SourceRef::Dynamodb { stream: DynamodbStream::Table(table.clone()), endpoint })
            }
            (None, Some(arn)) if arn.starts_with("arn:") && arn.contains(":dynamodb:") && arn.contains("/stream/") => {
                Ok(SourceRef::Dynamodb { stream: DynamodbStream::StreamArn(arn.clone()), endpoint })
            }
            (None, Some(other)) => Err(invalid(
                "EventSource.Stream",
                format!("{other:?} is not a DynamoDB stream ARN (arn:aws:dynamodb:REGION:ACCOUNT:table/T/stream/LABEL); to name a table, use Table"),
            )),
            _ => Err(invalid("EventSource.Table", "DynamoDB takes either Table (a table name, 1 to 255 characters) or Stream (a stream ARN)")),
        },
        other => Err(invalid(
            "EventSource.Type",
            format!("{other:?} is not a source type this host knows; expected \"Kinesis\", \"DynamoDB\" or \"Local\""),
        )),
    }
}

fn validate_on_failure(raw: RawOnFailure, source: &SourceRef) -> Result<OnFailure, ManifestError> {
    const KEY: &str = "EventSource.DestinationConfig.OnFailure.Destination";
    let target = raw.destination.trim();
    let destination = if target.starts_with("arn:") {
        let target = AwsTarget::parse(target).map_err(|reason| invalid(KEY, reason))?;
        // The destination is reached like the source unless it says otherwise; its
        // region is the one its ARN names.
        let source_endpoint = match source {
            SourceRef::Kinesis { endpoint, .. } | SourceRef::Dynamodb { endpoint, .. } => endpoint.clone(),
            SourceRef::Local { .. } => AwsEndpoint::default(),
        };
        let region = raw.region.or_else(|| target.region().map(str::to_owned)).or(source_endpoint.region);
        Destination::Aws { target, endpoint: AwsEndpoint { endpoint_url: raw.endpoint_url.or(source_endpoint.endpoint_url), region } }
    } else if target.is_empty() {
        return Err(invalid(KEY, "is empty"));
    } else if raw.endpoint_url.is_some() || raw.region.is_some() {
        return Err(invalid(
            "EventSource.DestinationConfig.OnFailure.EndpointUrl",
            "is only for an AWS destination (an SQS queue, SNS topic, S3 bucket or Kinesis stream ARN)",
        ));
    } else if target.ends_with(".jsonl") {
        Destination::JsonLines(PathBuf::from(target))
    } else {
        Destination::Directory(PathBuf::from(target))
    };
    Ok(OnFailure { destination, include_payload: raw.include_payload.unwrap_or(false) })
}

fn validate_event_source(raw: RawEventSource) -> Result<EventSourceConfig, ManifestError> {
    let source = validate_source(&raw)?;
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
    if matches!(source, SourceRef::Dynamodb { .. }) && matches!(starting_position, StartingPosition::AtTimestamp(_)) {
        return Err(invalid(
            "EventSource.StartingPosition",
            "AT_TIMESTAMP is not supported by DynamoDB Streams; use TRIM_HORIZON or LATEST",
        ));
    }
    let parallelization = in_range("EventSource.ParallelizationFactor", raw.parallelization_factor.unwrap_or(1), 1, 10, "1 to 10")?;
    let record_age = raw.maximum_record_age_in_seconds.unwrap_or(-1);
    if record_age != -1 && !(60..=604_800).contains(&record_age) {
        return Err(ManifestError::OutOfRange {
            key: "EventSource.MaximumRecordAgeInSeconds",
            value: record_age.to_string(),
            range: "-1 (no limit) or 60 to 604800 seconds",
        });
    }
    let tumbling = in_range("EventSource.TumblingWindowInSeconds", raw.tumbling_window_in_seconds.unwrap_or(0), 0, 900, "0 to 900 seconds")?;
    if parallelization > 1 && tumbling > 0 {
        return Err(invalid(
            "EventSource.ParallelizationFactor",
            "must be 1 with TumblingWindowInSeconds: a window's state belongs to one shard and is handed on in order",
        ));
    }
    let polling = raw
        .polling_interval_in_milliseconds
        .map(|ms| in_range("EventSource.PollingIntervalInMilliseconds", ms, 10, 60_000, "10 to 60000 milliseconds"))
        .transpose()?;
    let deaggregate_records = raw.deaggregate_records.unwrap_or(false);
    if deaggregate_records && matches!(source, SourceRef::Dynamodb { .. }) {
        return Err(invalid(
            "EventSource.DeaggregateRecords",
            "applies to Kinesis and local streams: DynamoDB Streams records are never KPL aggregates",
        ));
    }
    let filter_patterns: Vec<String> = raw.filter_criteria.map(|c| c.filters.into_iter().map(|f| f.pattern).collect()).unwrap_or_default();
    crate::filter::RecordFilter::new(&filter_patterns)
        .map_err(|e| invalid("EventSource.FilterCriteria", e.to_string()))?;
    let on_failure = raw
        .destination_config
        .and_then(|d| d.on_failure)
        .map(|o| validate_on_failure(o, &source))
        .transpose()?;
    Ok(EventSourceConfig {
        source,
        batch_size: batch_size as usize,
        batching_window: Duration::from_secs(window as u64),
        starting_position,
        report_batch_item_failures,
        maximum_retry_attempts: u32::try_from(retries).ok(),
        enabled: raw.enabled.unwrap_or(true),
        parallelization_factor: parallelization as usize,
        bisect_batch_on_function_error: raw.bisect_batch_on_function_error.unwrap_or(false),
        maximum_record_age: u64::try_from(record_age).ok().map(Duration::from_secs),
        on_failure,
        filter_patterns,
        tumbling_window: (tumbling > 0).then(|| Duration::from_secs(tumbling as u64)),
        polling_interval: polling.map(|ms| Duration::from_millis(ms as u64)),
        deaggregate_records,
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
        assert_eq!((m.role, m.reserved_concurrency, m.log_limit_bytes), (None, None, DEFAULT_LOG_LIMIT_BYTES));
    }

    #[test]
    fn a_mistyped_value_is_named_in_tomls_words() {
        let err = Manifest::parse(&format!("{MINIMAL}BatchSize = \"ten\"\n")).unwrap_err().to_string();
        assert!(err.contains("expected an integer"), "{err}");
        assert!(!err.contains("i64"), "{err}");
        let err = Manifest::parse(&format!("{MINIMAL}Enabled = \"yes\"\n")).unwrap_err().to_string();
        assert!(err.contains("expected true or false"), "{err}");
    }

    #[test]
    fn role_and_limits() {
        let m = Manifest::parse(&format!(
            "Role = \"arn:aws:iam::123456789012:role/service-role/reader\"\nReservedConcurrentExecutions = 2\n\
             LogLimitBytes = 2048\n{MINIMAL}"
        ))
        .expect("valid");
        assert_eq!(m.role.as_deref(), Some("arn:aws:iam::123456789012:role/service-role/reader"));
        assert_eq!((m.reserved_concurrency, m.log_limit_bytes), (Some(2), 2048));
        for (line, expected) in [
            ("Role = \"no spaces allowed\"", "Role"),
            ("Role = \"\"", "Role"),
            ("ReservedConcurrentExecutions = 0", "1 to 1000"),
            ("LogLimitBytes = 10", "1024 to 10485760"),
        ] {
            let err = Manifest::parse(&format!("{line}\n{MINIMAL}")).unwrap_err().to_string();
            assert!(err.contains(expected), "{line}: {err}");
        }
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

    #[test]
    fn aws_sources_by_name_arn_or_table() {
        let m = Manifest::parse("[EventSource]\nType = \"Kinesis\"\nStream = \"orders\"\nEndpointUrl = \"http://127.0.0.1:4567\"\n").expect("valid");
        assert_eq!(
            m.event_source.source,
            SourceRef::Kinesis {
                stream: KinesisStream::Name(StreamName::parse("orders").expect("a name")),
                endpoint: AwsEndpoint { endpoint_url: Some("http://127.0.0.1:4567".into()), region: None },
                consumer: None,
            }
        );
        let arn = "arn:aws:kinesis:us-east-1:123456789012:stream/orders";
        let m = Manifest::parse(&format!("[EventSource]\nType = \"Kinesis\"\nStream = \"{arn}\"\n")).expect("valid");
        assert_eq!(m.event_source.source.id(), format!("kinesis:{arn}"));
        let m = Manifest::parse("[EventSource]\nType = \"DynamoDB\"\nTable = \"T\"\nRegion = \"eu-west-1\"\n").expect("valid");
        assert!(matches!(m.event_source.source, SourceRef::Dynamodb { stream: DynamodbStream::Table(ref t), .. } if t == "T"));
        for (text, key) in [
            ("Type = \"Kinesis\"\nStream = \"bad name!\"", "EventSource.Stream"),
            ("Type = \"Kinesis\"\nStream = \"s\"\nTable = \"t\"", "EventSource.Table"),
            ("Type = \"DynamoDB\"\nStream = \"orders\"", "EventSource.Stream"),
            ("Type = \"DynamoDB\"", "EventSource.Table"),
            ("Type = \"DynamoDB\"\nTable = \"t\"\nStartingPosition = \"AT_TIMESTAMP\"\nStartingPositionTimestamp = 1", "AT_TIMESTAMP"),
            ("Type = \"Local\"\nStream = \"s\"\nEndpointUrl = \"http://x\"", "EventSource.EndpointUrl"),
        ] {
            let err = Manifest::parse(&format!("[EventSource]\n{text}\n")).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn mapping_parameters_take_lambdas_ranges() {
        let m = Manifest::parse(&format!(
            "{MINIMAL}ParallelizationFactor = 10\nBisectBatchOnFunctionError = true\nMaximumRecordAgeInSeconds = 60\n\
             TumblingWindowInSeconds = 0\nPollingIntervalInMilliseconds = 500\n"
        ))
        .expect("valid");
        let e = &m.event_source;
        assert_eq!(e.parallelization_factor, 10);
        assert!(e.bisect_batch_on_function_error);
        assert_eq!(e.maximum_record_age, Some(Duration::from_secs(60)));
        assert_eq!(e.tumbling_window, None);
        assert_eq!(e.polling_interval, Some(Duration::from_millis(500)));
        assert_eq!(Manifest::parse(MINIMAL).expect("valid").event_source.maximum_record_age, None);
        for (line, key, range) in [
            ("ParallelizationFactor = 0", "EventSource.ParallelizationFactor", "1 to 10"),
            ("ParallelizationFactor = 11", "EventSource.ParallelizationFactor", "1 to 10"),
            ("MaximumRecordAgeInSeconds = 59", "EventSource.MaximumRecordAgeInSeconds", "60 to 604800"),
            ("MaximumRecordAgeInSeconds = 604801", "EventSource.MaximumRecordAgeInSeconds", "-1 (no limit)"),
            ("TumblingWindowInSeconds = 901", "EventSource.TumblingWindowInSeconds", "0 to 900"),
            ("PollingIntervalInMilliseconds = 1", "EventSource.PollingIntervalInMilliseconds", "10 to 60000"),
        ] {
            let err = Manifest::parse(&format!("{MINIMAL}{line}\n")).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(range), "{line}: {err}");
        }
        let err = Manifest::parse(&format!("{MINIMAL}ParallelizationFactor = 2\nTumblingWindowInSeconds = 60\n")).unwrap_err().to_string();
        assert!(err.contains("TumblingWindowInSeconds"), "{err}");
    }

    #[test]
    fn filters_and_destinations_are_checked_when_the_manifest_loads() {
        let m = Manifest::parse(&format!(
            "{MINIMAL}[EventSource.FilterCriteria]\nFilters = [{{ Pattern = '{{\"data\":{{\"t\":[\"x\"]}}}}' }}]\n\
             [EventSource.DestinationConfig.OnFailure]\nDestination = \"failed.jsonl\"\nIncludePayload = true\n"
        ))
        .expect("valid");
        assert_eq!(m.event_source.filter_patterns.len(), 1);
        assert_eq!(
            m.event_source.on_failure,
            Some(OnFailure { destination: Destination::JsonLines("failed.jsonl".into()), include_payload: true })
        );
        let err = Manifest::parse(&format!("{MINIMAL}[EventSource.FilterCriteria]\nFilters = [{{ Pattern = '{{\"t\":\"x\"}}' }}]\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("EventSource.FilterCriteria") && err.contains("filter 0"), "{err}");
        let on_failure = |destination: &str| {
            Manifest::parse(&format!("{MINIMAL}[EventSource.DestinationConfig.OnFailure]\nDestination = \"{destination}\"\n"))
                .map(|m| m.event_source.on_failure.map(|o| o.destination))
        };
        let Ok(Some(Destination::Aws { target, endpoint })) = on_failure("arn:aws:sqs:eu-west-1:123456789012:q") else {
            panic!("an SQS queue ARN is a destination");
        };
        assert!(matches!(target, AwsTarget::SqsQueue { .. }));
        assert_eq!(endpoint.region.as_deref(), Some("eu-west-1"), "the ARN's region");
        let err = on_failure("arn:aws:lambda:us-east-1:1:function:f").unwrap_err().to_string();
        assert!(err.contains("Destination") && err.contains("SQS queues, SNS topics, S3 buckets and Kinesis streams"), "{err}");
        let err = Manifest::parse(&format!("{MINIMAL}[EventSource.DestinationConfig.OnFailure]\nDestinaton = \"x\"\n")).unwrap_err().to_string();
        assert!(err.contains("Destinaton"), "{err}");
    }

    #[test]
    fn deaggregation_is_off_unless_asked_for_and_refused_on_dynamodb() {
        assert!(!Manifest::parse(MINIMAL).expect("valid").event_source.deaggregate_records);
        let on = Manifest::parse(&format!("{MINIMAL}DeaggregateRecords = true\n")).expect("valid");
        assert!(on.event_source.deaggregate_records);
        let err = Manifest::parse("[EventSource]\nType = \"DynamoDB\"\nTable = \"t\"\nDeaggregateRecords = true\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("EventSource.DeaggregateRecords") && err.contains("DynamoDB"), "{err}");
    }
}
