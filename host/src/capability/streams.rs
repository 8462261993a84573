//! `eddy:handler/streams`: putting records on a Kinesis stream or on one of the
//! host's embedded local streams, as `kinesis:PutRecord`/`kinesis:PutRecords`.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use super::{CapabilityState, Target};
use crate::role::actions;
use crate::contract::errors::Error as GuestError;
use crate::contract::streams::{self, PutEntry, PutResult};
use crate::source::local;

/// Kinesis's limit on records per PutRecords call.
const MAX_PUT_RECORDS: usize = 500;

/// Links `eddy:handler/streams` to the invocation's [`CapabilityState`].
pub fn add_to_linker<T: super::HasCapabilities>(linker: &mut wasmtime::component::Linker<T>) -> wasmtime::Result<()> {
    streams::add_to_linker::<T, wasmtime::component::HasSelf<CapabilityState>>(linker, super::calls::<T>)
}

impl streams::Host for CapabilityState {
    async fn put_record(&mut self, stream: String, partition_key: String, data: Vec<u8>) -> Result<PutResult, GuestError> {
        let caps = &*self;
        let target = Target::parse(&stream, "kinesis", "stream")?;
        caps.check(actions::KINESIS_PUT_RECORD, target.arn())?;
        let mut results = put(caps, &target, vec![PutEntry { partition_key, data }], false).await?;
        results.pop().unwrap_or_else(|| Err("no result".into())).map_err(GuestError::Unavailable)
    }

    async fn put_records(
        &mut self,
        stream: String,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<Result<PutResult, String>>, GuestError> {
        let caps = &*self;
        let target = Target::parse(&stream, "kinesis", "stream")?;
        caps.check(actions::KINESIS_PUT_RECORDS, target.arn())?;
        if entries.is_empty() || entries.len() > MAX_PUT_RECORDS {
            return Err(GuestError::Invalid(format!("PutRecords takes 1 to {MAX_PUT_RECORDS} records, not {}", entries.len())));
        }
        put(caps, &target, entries, true).await
    }
}

async fn put(
    caps: &CapabilityState,
    target: &Target,
    entries: Vec<PutEntry>,
    batch: bool,
) -> Result<Vec<Result<PutResult, String>>, GuestError> {
    match target {
        Target::Local { name, .. } => {
            let stream = name.clone();
            let name = name.clone();
            let landed = caps.services.with_embedded(move |conn| {
                if local::describe(conn, &name).map_err(|e| GuestError::Unavailable(format!("{e:#}")))?.is_none() {
                    return Err(GuestError::NotFound(format!("no local stream named {name:?}")));
                }
                let records: Vec<local::PutRecord> =
                    entries.into_iter().map(|e| local::PutRecord { partition_key: e.partition_key, data: e.data }).collect();
                local::put(conn, &name, &records).map_err(|e| GuestError::Invalid(format!("{e:#}")))
            })
            .await?;
            caps.services.announce(&stream, &landed);
            Ok(landed.into_iter().map(|r| Ok(PutResult { shard_id: r.shard_id, sequence_number: r.sequence_number })).collect())
        }
        Target::Aws { arn, region, .. } => {
            let client = caps.services.kinesis(region).await;
            if !batch {
                let Some(entry) = entries.into_iter().next() else { return Ok(Vec::new()) };
                let output = client
                    .put_record()
                    .stream_arn(arn)
                    .partition_key(entry.partition_key)
                    .data(Blob::new(entry.data))
                    .send()
                    .await
                    .map_err(|e| aws_error(&e, "kinesis", arn))?;
                return Ok(vec![Ok(PutResult {
                    shard_id: output.shard_id().to_owned(),
                    sequence_number: output.sequence_number().to_owned(),
                })]);
            }
            let request_entries = entries
                .into_iter()
                .map(|e| PutRecordsRequestEntry::builder().partition_key(e.partition_key).data(Blob::new(e.data)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| GuestError::Invalid(e.to_string()))?;
            let output = client
                .put_records()
                .stream_arn(arn)
                .set_records(Some(request_entries))
                .send()
                .await
                .map_err(|e| aws_error(&e, "kinesis", arn))?;
            Ok(output
                .records()
                .iter()
                .map(|r| match (r.shard_id(), r.sequence_number()) {
                    (Some(shard), Some(seq)) => Ok(PutResult { shard_id: shard.to_owned(), sequence_number: seq.to_owned() }),
                    _ => Err(format!(
                        "{}: {}",
                        r.error_code().unwrap_or("error"),
                        r.error_message().unwrap_or("the record was not put")
                    )),
                })
                .collect())
        }
    }
}

/// An AWS SDK error as the guest's error: missing resources and bad arguments
/// apart from everything that may pass with time.
pub(super) fn aws_error<E, R>(error: &aws_smithy_runtime_api::client::result::SdkError<E, R>, service: &str, arn: &str) -> GuestError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
    let message = crate::source::describe_call_failure(error);
    match error.code() {
        Some("ResourceNotFoundException") => GuestError::NotFound(format!("{service}: {arn}: {message}")),
        Some("ValidationException" | "InvalidArgumentException" | "SerializationException") => {
            GuestError::Invalid(format!("{service}: {message}"))
        }
        _ => GuestError::Unavailable(format!("{service}: {message}")),
    }
}
