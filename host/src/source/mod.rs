//! Stream sources: where a mapping's records come from.
//!
//! A source describes itself, lists its shards (with their parents, so that a
//! mapping can finish a parent before it starts the children) and opens a reader
//! on one; a reader hands out records in shard order, moving forward only. The
//! mapping loop keeps the records it has read but not finished with, so a reader
//! never needs to seek back.
//!
//! Three sources: the embedded local stream, Kinesis, and DynamoDB Streams. Each
//! turns its records into the WIT contract's record types, which are what the
//! mapping loop and the handler see.

pub mod deaggregating;
pub mod dynamodb;
pub mod kinesis;
mod kinesis_api;
pub mod kinesis_fanout;
pub mod local;

use std::time::Duration;

use async_trait::async_trait;

use crate::record::{EventSource, Records};

/// What every record of a source shares; it goes into each batch.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub event_source: EventSource,
    /// `eventSourceARN`.
    pub arn: String,
    /// `awsRegion`.
    pub region: String,
}

impl SourceInfo {
    /// An AWS source's info: the region is the ARN's, else the client's.
    pub fn from_arn(event_source: EventSource, arn: String, configured_region: Option<String>) -> SourceInfo {
        let region = arn_region(&arn).map(str::to_owned).or(configured_region).unwrap_or_default();
        SourceInfo { event_source, arn, region }
    }
}

/// A shard and the shards it was split or merged from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    pub parents: Vec<String>,
}

impl Shard {
    pub fn root(id: String) -> Shard {
        Shard { id, parents: Vec::new() }
    }
}

/// Where a reader starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Position {
    /// After the record with this sequence number (a checkpoint).
    AfterSequence(String),
    /// At the record with this sequence number (a rewind to it).
    AtSequence(String),
    /// At the oldest record the shard still holds.
    TrimHorizon,
    /// After the newest record at the time the reader opens.
    Latest,
    /// At the first record that arrived at or after this time (ms since the epoch).
    AtTimestamp(u64),
}

#[async_trait]
pub trait StreamSource: Send + Sync {
    /// Finds the stream (resolving a name to its ARN); called before anything else
    /// and retried while it fails, so a source that is down delays a mapping.
    async fn describe(&self) -> anyhow::Result<SourceInfo>;
    /// Every shard the source still holds, open or closed.
    async fn list_shards(&self) -> anyhow::Result<Vec<Shard>>;
    /// Opens a reader on one shard.
    async fn open(&self, shard: &str, from: Position) -> anyhow::Result<Box<dyn ShardReader>>;
    /// Whether `Position::AtTimestamp` works (DynamoDB Streams has no such iterator).
    fn supports_timestamps(&self) -> bool {
        true
    }
    /// How often to look for new shards while no shard has ended.
    fn discovery_interval(&self) -> Duration {
        Duration::from_secs(10)
    }
}

#[async_trait]
pub trait ShardReader: Send {
    /// Up to `max` records after the reader's position; empty when the shard has
    /// nothing more for now, or has ended (see [`ShardReader::at_end`]).
    async fn read(&mut self, max: usize) -> anyhow::Result<Records>;
    /// True once the shard is closed and every record of it has been read.
    fn at_end(&self) -> bool;
    /// How long to wait before reading again after a read came back empty: the
    /// polling interval, or a back-off after a throttle or a network error.
    fn poll_interval(&self) -> Duration;
    /// Waits, after a read came back empty, until records may have come, or
    /// `deadline` if that is sooner. By default that is a polling interval; a
    /// reader told of writes (the local stream) waits for them instead.
    async fn idle(&mut self, deadline: Option<tokio::time::Instant>) {
        let next_poll = tokio::time::Instant::now() + self.poll_interval();
        tokio::time::sleep_until(deadline.map_or(next_poll, |d| d.min(next_poll))).await;
    }
}

/// Records a reader fetched and has not handed out yet, and whether its shard has
/// ended: the AWS readers fetch many records a call and hand them out as batches
/// ask for them.
#[derive(Debug)]
pub struct Fetched<T> {
    pub records: std::collections::VecDeque<T>,
    /// The shard is closed and its last record has been fetched.
    pub ended: bool,
}

impl<T> Default for Fetched<T> {
    fn default() -> Self {
        Fetched { records: std::collections::VecDeque::new(), ended: false }
    }
}

impl<T> Fetched<T> {
    /// Nothing is waiting and the shard goes on: a read must fetch first.
    pub fn is_exhausted(&self) -> bool {
        self.records.is_empty() && !self.ended
    }

    /// Up to `max` records, oldest first.
    pub fn take(&mut self, max: usize) -> Vec<T> {
        let count = max.min(self.records.len());
        self.records.drain(..count).collect()
    }

    /// The shard has ended and every record of it was handed out.
    pub fn at_end(&self) -> bool {
        self.ended && self.records.is_empty()
    }
}

/// `arn:aws:<service>:<region>:...`: the region part of an ARN.
pub fn arn_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.next()? == "arn").then_some(())?;
    parts.nth(2).filter(|r| !r.is_empty())
}

/// The AWS SDK configuration of a source: credentials and region from the
/// default chain (environment, profile, instance role), overridden by the
/// manifest's `Region` and `EndpointUrl` when it gives them. `AWS_ENDPOINT_URL`
/// in the host's environment also works, as in every AWS SDK.
pub async fn aws_config(endpoint_url: Option<&str>, region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(call_timeouts());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_owned()));
    }
    loader.load().await
}

/// How long an AWS call may wait to connect, and for the first byte of its
/// response. Without a read timeout a service (or an emulator) that accepts a
/// request and never answers holds the call, and with it a shard or a mapping's
/// start, for ever, while its status still looks healthy; with it the call
/// fails, is retried by the SDK, and the failure shows. (The first byte of a
/// SubscribeToShard response comes at once; its events may take minutes.)
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(3_100);
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn call_timeouts() -> aws_smithy_types::timeout::TimeoutConfig {
    aws_smithy_types::timeout::TimeoutConfig::builder().connect_timeout(CONNECT_TIMEOUT).read_timeout(READ_TIMEOUT).build()
}

/// The HTTPS client every AWS client of the host shares (one connection pool):
/// rustls with ring's crypto.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    static CLIENT: std::sync::OnceLock<aws_smithy_runtime_api::client::http::SharedHttpClient> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https())
        .clone()
}

/// How a failed AWS call should be handled by a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// Throttled, or the service could not be reached or failed on its side:
    /// back off and try the same call again.
    Transient,
    /// The shard iterator expired: get a new one from the reader's position.
    ExpiredIterator,
    /// The position is past the shard's retention: the records there are gone.
    Trimmed,
    /// Anything else (no such stream, access denied, a bad request).
    Fatal,
}

/// Sorts an AWS SDK error into a [`CallFailure`].
pub fn classify_call_failure<E>(
    error: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
) -> CallFailure
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => CallFailure::Transient,
        SdkError::ServiceError(service) => match service.err().code() {
            Some("ExpiredIteratorException") => CallFailure::ExpiredIterator,
            Some("TrimmedDataAccessException") => CallFailure::Trimmed,
            Some(
                "ProvisionedThroughputExceededException"
                | "LimitExceededException"
                | "ThrottlingException"
                | "KMSThrottlingException"
                | "InternalFailure"
                | "InternalServerError"
                | "ServiceUnavailable",
            ) => CallFailure::Transient,
            _ if service.raw().status().is_server_error() => CallFailure::Transient,
            _ => CallFailure::Fatal,
        },
        _ => CallFailure::Fatal,
    }
}

/// An AWS SDK error with its code and message, for logs and status.
pub fn describe_call_failure<E, R>(error: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> String
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            format!("{}: {}", err.code().unwrap_or("error"), err.message().unwrap_or("no message"))
        }
        other => format!("{}", aws_smithy_types::error::display::DisplayErrorContext(other)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn region_of_an_arn() {
        assert_eq!(super::arn_region("arn:aws:kinesis:us-east-2:123456789012:stream/s"), Some("us-east-2"));
        assert_eq!(super::arn_region("arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/x"), Some("ddblocal"));
        assert_eq!(super::arn_region("orders"), None);
        assert_eq!(super::arn_region("arn:aws:kinesis::1:stream/s"), None);
    }
}
