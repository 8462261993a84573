//! The packed world (`eddy:handler/packed` in wit/handler.wit): a batch whose
//! Kinesis records travel into the guest as one byte list.
//!
//! Lowering the typed world's `list<kinesis-record>` makes one call into the
//! guest's allocator per string and byte list, four a record; those calls were
//! most of a warm invocation of a large batch. Packed, a batch costs one
//! allocation and one copy into the guest, and the guest SDK unpacks it there.
//! The types below borrow the host's batch, so nothing is cloned to lower it.

use wasmtime::component::{ComponentExportIndex, ComponentType, Func, Instance, Lower, TypedFunc};
use wasmtime::{AsContextMut, Store};

use super::host_state::HostState;
use crate::contract::PACKED_EXPORT;
use crate::record::{Batch, BatchResponse, Context, DynamodbRecord, EventSource, KinesisRecord, Records, TumblingWindow};

/// The length written for a field a record does not have (`encryption-type`).
pub const ABSENT: u32 = u32::MAX;

/// The most room a warm instance's packing buffer keeps between batches.
const KEPT_BUFFER_BYTES: usize = 1 << 20;

/// Bytes before a record's fields: its arrival time and five field lengths.
const RECORD_HEADER_BYTES: usize = 8 + 5 * 4;

/// Writes `records` into `out` (cleared first) in the packed layout.
pub fn pack_kinesis(records: &[KinesisRecord], out: &mut Vec<u8>) {
    out.clear();
    let fields: usize = records
        .iter()
        .map(|r| {
            r.event_id.len()
                + r.partition_key.len()
                + r.sequence_number.len()
                + r.data.len()
                + r.encryption_type.as_ref().map_or(0, |e| e.len())
        })
        .sum();
    out.reserve(4 + records.len() * RECORD_HEADER_BYTES + fields);
    out.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for r in records {
        out.extend_from_slice(&r.approximate_arrival_timestamp_ms.to_le_bytes());
        // Lengths fit a u32: a record is at most 10 MiB, its fields far less.
        for len in [r.event_id.len(), r.partition_key.len(), r.sequence_number.len(), r.data.len()] {
            out.extend_from_slice(&(len as u32).to_le_bytes());
        }
        let encryption = r.encryption_type.as_ref().map_or(ABSENT, |e| e.len() as u32);
        out.extend_from_slice(&encryption.to_le_bytes());
        out.extend_from_slice(r.event_id.as_bytes());
        out.extend_from_slice(r.partition_key.as_bytes());
        out.extend_from_slice(r.sequence_number.as_bytes());
        out.extend_from_slice(&r.data);
        if let Some(e) = &r.encryption_type {
            out.extend_from_slice(e.as_bytes());
        }
    }
}

/// `packed-records`, borrowing the host's records (Kinesis ones packed).
#[derive(ComponentType, Lower)]
#[component(variant)]
pub enum PackedRecords<'a> {
    #[component(name = "kinesis")]
    Kinesis(&'a [u8]),
    #[component(name = "dynamodb")]
    Dynamodb(&'a [DynamodbRecord]),
}

/// `packed-batch`, borrowing the host's batch.
#[derive(ComponentType, Lower)]
#[component(record)]
pub struct PackedBatch<'a> {
    #[component(name = "event-source")]
    event_source: EventSource,
    #[component(name = "event-source-arn")]
    event_source_arn: &'a str,
    #[component(name = "aws-region")]
    aws_region: &'a str,
    #[component(name = "invoke-identity-arn")]
    invoke_identity_arn: &'a str,
    #[component(name = "shard-id")]
    shard_id: &'a str,
    records: PackedRecords<'a>,
    window: Option<&'a TumblingWindow>,
}

impl<'a> PackedBatch<'a> {
    /// The packed form of `batch`; `buffer` holds the packed Kinesis records.
    pub fn new(batch: &'a Batch, buffer: &'a mut Vec<u8>) -> PackedBatch<'a> {
        let records = match &batch.records {
            Records::Kinesis(records) => {
                pack_kinesis(records, buffer);
                PackedRecords::Kinesis(buffer)
            }
            Records::Dynamodb(records) => PackedRecords::Dynamodb(records),
        };
        PackedBatch {
            event_source: batch.event_source,
            event_source_arn: &batch.event_source_arn,
            aws_region: &batch.aws_region,
            invoke_identity_arn: &batch.invoke_identity_arn,
            shard_id: &batch.shard_id,
            records,
            window: batch.window.as_ref(),
        }
    }
}

/// The signature of a packed handler's `handle` (the lifetimes do not take
/// part in a type check).
type Signature = (PackedBatch<'static>, &'static Context);
type Response = (Result<BatchResponse, String>,);

/// Where a packed handler's `handle` is, found once per loaded component.
#[derive(Clone, Copy)]
pub struct PackedHandlePath(ComponentExportIndex);

impl PackedHandlePath {
    pub fn find(component: &wasmtime::component::Component) -> Option<PackedHandlePath> {
        let (_, interface) = component.get_export(None, PACKED_EXPORT)?;
        let (_, handle) = component.get_export(Some(&interface), "handle")?;
        Some(PackedHandlePath(handle))
    }

    /// The `handle` function of `instance`, its type checked once here.
    pub fn bind(self, store: &mut Store<HostState>, instance: &Instance) -> wasmtime::Result<PackedHandler> {
        let func = instance
            .get_func(store.as_context_mut(), self.0)
            .ok_or_else(|| wasmtime::Error::msg("the component has no packed `handle` function"))?;
        func.typed::<Signature, Response>(&*store)?;
        Ok(PackedHandler { func })
    }
}

/// A packed handler's `handle`, bound to an instance.
pub struct PackedHandler {
    /// Of the type [`PackedHandlePath::bind`] checked.
    func: Func,
}

impl PackedHandler {
    /// Calls `handle` with `batch`, packing its Kinesis records into `buffer`.
    pub async fn call_handle(
        &self,
        store: &mut Store<HostState>,
        batch: &Batch,
        buffer: &mut Vec<u8>,
        context: &Context,
    ) -> wasmtime::Result<Result<BatchResponse, String>> {
        // SAFETY: `bind` checked the function against `Signature`, which differs
        // from this one only in lifetimes (checking per call would walk the
        // whole type again at every invocation).
        let handle = unsafe { TypedFunc::<(PackedBatch<'_>, &Context), Response>::new_unchecked(self.func) };
        let called = handle.call_async(&mut *store, (PackedBatch::new(batch, buffer), context)).await;
        // A warm instance keeps its buffer for the next batch, but not the room
        // an unusually large one took (a 10 MiB record).
        if buffer.capacity() > KEPT_BUFFER_BYTES {
            *buffer = Vec::new();
        }
        let (response,) = called?;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u32, encryption: Option<&str>) -> KinesisRecord {
        KinesisRecord {
            event_id: format!("shardId-000000000000:{seq}"),
            partition_key: format!("key-é-{seq}"),
            sequence_number: seq.to_string(),
            data: vec![seq as u8, 0, 255, b'\n'],
            approximate_arrival_timestamp_ms: 1_700_000_000_000 + u64::from(seq),
            encryption_type: encryption.map(str::to_owned),
        }
    }

    /// What the host packs is what the guest SDK unpacks, field for field.
    #[test]
    fn the_guest_sdk_unpacks_what_the_host_packs() {
        let records: Vec<KinesisRecord> =
            vec![record(1, None), record(2, Some("KMS")), KinesisRecord { data: Vec::new(), ..record(3, Some("")) }];
        let mut buffer = vec![7; 3];
        pack_kinesis(&records, &mut buffer);
        let unpacked = eddy_guest::packed::unpack_kinesis(&buffer).expect("unpacks");
        assert_eq!(unpacked.len(), records.len());
        for (host, guest) in records.iter().zip(&unpacked) {
            assert_eq!(guest.event_id, host.event_id);
            assert_eq!(guest.partition_key, host.partition_key);
            assert_eq!(guest.sequence_number, host.sequence_number);
            assert_eq!(guest.data, host.data);
            assert_eq!(guest.approximate_arrival_timestamp_ms, host.approximate_arrival_timestamp_ms);
            assert_eq!(guest.encryption_type, host.encryption_type, "an empty encryption type is not an absent one");
        }
        pack_kinesis(&[], &mut buffer);
        assert!(eddy_guest::packed::unpack_kinesis(&buffer).is_ok_and(|r| r.is_empty()), "the buffer is cleared first");
    }
}
