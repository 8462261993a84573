//! Unpacking a batch of the packed world (`eddy:handler/packed` in
//! wit/handler.wit): the host sends a batch's Kinesis records as one byte list,
//! which costs it one allocation and one copy into the guest instead of four
//! calls into the guest's allocator per record. Here they become the typed
//! world's [`KinesisRecord`]s, so a [`crate::TypedHandler`] sees no difference.

use crate::KinesisRecord;

/// The length the host writes for a field a record does not have.
const ABSENT: u32 = u32::MAX;

/// Bytes before a record's fields: its arrival time and five field lengths.
const RECORD_HEADER_BYTES: usize = 8 + 5 * 4;

/// Why a packed batch could not be read (only a host that breaks the layout
/// would send one).
#[derive(Debug, PartialEq, Eq)]
pub struct UnpackError(&'static str);

impl std::fmt::Display for UnpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the host sent a malformed packed batch: {}", self.0)
    }
}

/// Reads packed Kinesis records.
pub fn unpack_kinesis(bytes: &[u8]) -> Result<Vec<KinesisRecord>, UnpackError> {
    let mut reader = Reader { bytes };
    let count = reader.u32()? as usize;
    // Every record takes at least its header: a count larger than the bytes
    // allow is refused before anything is allocated for it.
    if count > bytes.len() / RECORD_HEADER_BYTES {
        return Err(UnpackError("the record count exceeds what the bytes hold"));
    }
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let arrival = reader.u64()?;
        let lengths = [reader.u32()?, reader.u32()?, reader.u32()?, reader.u32()?, reader.u32()?];
        records.push(KinesisRecord {
            event_id: reader.text(lengths[0])?,
            partition_key: reader.text(lengths[1])?,
            sequence_number: reader.text(lengths[2])?,
            data: reader.take(lengths[3])?.to_vec(),
            approximate_arrival_timestamp_ms: arrival,
            encryption_type: match lengths[4] {
                ABSENT => None,
                len => Some(reader.text(len)?),
            },
        });
    }
    if !reader.bytes.is_empty() {
        return Err(UnpackError("bytes are left after the last record"));
    }
    Ok(records)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: u32) -> Result<&'a [u8], UnpackError> {
        let len = len as usize;
        if self.bytes.len() < len {
            return Err(UnpackError("a record runs past the end"));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, UnpackError> {
        let mut le = [0; 4];
        le.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(le))
    }

    fn u64(&mut self) -> Result<u64, UnpackError> {
        let mut le = [0; 8];
        le.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(le))
    }

    fn text(&mut self, len: u32) -> Result<String, UnpackError> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| UnpackError("a text field is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_overlong_input_is_an_error_not_a_panic() {
        assert!(unpack_kinesis(&[]).is_err());
        assert!(unpack_kinesis(&[1, 0, 0]).is_err());
        // One record announced, none there.
        assert!(unpack_kinesis(&1u32.to_le_bytes()).is_err());
        // A huge count is refused before allocating.
        assert!(unpack_kinesis(&u32::MAX.to_le_bytes()).is_err());
        // No records, and a stray byte.
        assert_eq!(unpack_kinesis(&[0, 0, 0, 0, 9]).err(), Some(UnpackError("bytes are left after the last record")));
        assert!(unpack_kinesis(&0u32.to_le_bytes()).is_ok_and(|records| records.is_empty()));
    }
}
