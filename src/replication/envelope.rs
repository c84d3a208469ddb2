//! The record the write path appends to a group's durable log: a small header saying where the
//! lines go (database, retention policy, precision) and which request they came from, followed
//! by the newline-terminated line-protocol bytes exactly as every replica will receive them.
//!
//! Layout (all integers little-endian), version 2:
//! `version:u8 = 2 | precision:u8 | line_count:u32 | db_len:u16 | db | rp_len:u16 | rp |
//! rid_len:u8 | rid | lines`. Version 1 (no `line_count`) is still read, so a log written by an
//! older proxy replays after an upgrade. Decoding must never trust a length it has not
//! bounds-checked: a record comes from disk.

use crate::protocol::Precision;

const VERSION: u8 = 2;
const VERSION_WITHOUT_LINE_COUNT: u8 = 1;
const LINE_COUNT_OFFSET: usize = 2;

/// Where a batch of lines is written, and on whose behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchHeader {
    pub database: String,
    /// Empty means the database's default retention policy.
    pub retention_policy: String,
    pub precision: Precision,
    pub request_id: String,
}

/// A decoded record, borrowing the record bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub database: &'a str,
    pub retention_policy: &'a str,
    pub precision: Precision,
    pub request_id: &'a str,
    /// How many lines `lines` holds (absent in version-1 records).
    pub line_count: Option<u32>,
    /// Newline-terminated line protocol.
    pub lines: &'a [u8],
}

impl Envelope<'_> {
    /// Whether two records can share one backend request.
    pub fn same_target(&self, other: &Envelope<'_>) -> bool {
        self.database == other.database
            && self.retention_policy == other.retention_policy
            && self.precision == other.precision
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("queue record is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("queue record has unknown version {0}")]
    UnknownVersion(u8),
    #[error("queue record has unknown precision code {0}")]
    UnknownPrecision(u8),
    #[error("queue record header is not UTF-8")]
    NotUtf8,
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
}

impl BatchHeader {
    /// Starts a record: the header is written into `out`, the caller appends the lines after it.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        let db = self.database.as_bytes();
        let rp = self.retention_policy.as_bytes();
        let rid = self.request_id.as_bytes();
        check_len("database name", db, u16::MAX as usize)?;
        check_len("retention policy", rp, u16::MAX as usize)?;
        check_len("request id", rid, u8::MAX as usize)?;
        out.push(VERSION);
        out.push(precision_code(self.precision));
        // Patched with `set_line_count` once the record's lines are in.
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(db.len() as u16).to_le_bytes());
        out.extend_from_slice(db);
        out.extend_from_slice(&(rp.len() as u16).to_le_bytes());
        out.extend_from_slice(rp);
        out.push(rid.len() as u8);
        out.extend_from_slice(rid);
        Ok(())
    }
}

/// Records how many lines a record started with [`BatchHeader::encode_into`] holds.
pub fn set_line_count(record: &mut [u8], count: u32) {
    if let Some(slot) = record.get_mut(LINE_COUNT_OFFSET..LINE_COUNT_OFFSET + 4) {
        slot.copy_from_slice(&count.to_le_bytes());
    }
}

fn check_len(what: &'static str, bytes: &[u8], max: usize) -> Result<(), EnvelopeError> {
    if bytes.len() > max {
        Err(EnvelopeError::TooLong { what, max })
    } else {
        Ok(())
    }
}

/// Decodes a record written by [`BatchHeader::encode_into`] followed by lines.
pub fn decode(record: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let mut reader = Reader { record, at: 0 };
    let version = reader.u8()?;
    if version != VERSION && version != VERSION_WITHOUT_LINE_COUNT {
        return Err(EnvelopeError::UnknownVersion(version));
    }
    let code = reader.u8()?;
    let precision = precision_from_code(code).ok_or(EnvelopeError::UnknownPrecision(code))?;
    let line_count = if version == VERSION {
        Some(reader.u32()?)
    } else {
        None
    };
    let db_len = reader.u16()? as usize;
    let database = reader.str(db_len)?;
    let rp_len = reader.u16()? as usize;
    let retention_policy = reader.str(rp_len)?;
    let rid_len = reader.u8()? as usize;
    let request_id = reader.str(rid_len)?;
    Ok(Envelope {
        database,
        retention_policy,
        precision,
        request_id,
        line_count,
        lines: &record[reader.at..],
    })
}

struct Reader<'a> {
    record: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.record.len())
            .ok_or(EnvelopeError::Truncated(self.record.len()))?;
        let bytes = &self.record[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, EnvelopeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn str(&mut self, n: usize) -> Result<&'a str, EnvelopeError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| EnvelopeError::NotUtf8)
    }
}

fn precision_code(precision: Precision) -> u8 {
    match precision {
        Precision::Nanosecond => 0,
        Precision::Microsecond => 1,
        Precision::Millisecond => 2,
        Precision::Second => 3,
        Precision::Minute => 4,
        Precision::Hour => 5,
    }
}

fn precision_from_code(code: u8) -> Option<Precision> {
    Some(match code {
        0 => Precision::Nanosecond,
        1 => Precision::Microsecond,
        2 => Precision::Millisecond,
        3 => Precision::Second,
        4 => Precision::Minute,
        5 => Precision::Hour,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips() {
        let header = BatchHeader {
            database: "telegraf".into(),
            retention_policy: "autogen".into(),
            precision: Precision::Millisecond,
            request_id: "req-42".into(),
        };
        let mut record = Vec::new();
        header.encode_into(&mut record).unwrap();
        record.extend_from_slice(b"m,index=a f=1 1\n");
        set_line_count(&mut record, 1);
        let envelope = decode(&record).unwrap();
        assert_eq!(envelope.line_count, Some(1));
        assert_eq!(envelope.database, "telegraf");
        assert_eq!(envelope.retention_policy, "autogen");
        assert_eq!(envelope.precision, Precision::Millisecond);
        assert_eq!(envelope.request_id, "req-42");
        assert_eq!(envelope.lines, b"m,index=a f=1 1\n");
    }

    #[test]
    fn every_truncation_of_a_record_header_is_an_error_not_a_panic() {
        let header = BatchHeader {
            database: "db".into(),
            retention_policy: String::new(),
            precision: Precision::Nanosecond,
            request_id: "r".into(),
        };
        let mut record = Vec::new();
        header.encode_into(&mut record).unwrap();
        for cut in 0..record.len() {
            assert!(decode(&record[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(decode(&[9]).unwrap_err(), EnvelopeError::UnknownVersion(9));
        assert_eq!(
            decode(&[2, 77]).unwrap_err(),
            EnvelopeError::UnknownPrecision(77)
        );
    }

    #[test]
    fn version_1_records_of_an_older_proxy_still_decode() {
        // version 1, ns, db "db", no rp, request id "r", one line
        let mut record = vec![1u8, 0, 2, 0, b'd', b'b', 0, 0, 1, b'r'];
        record.extend_from_slice(b"m f=1 1\n");
        let envelope = decode(&record).unwrap();
        assert_eq!(envelope.database, "db");
        assert_eq!(envelope.line_count, None);
        assert_eq!(envelope.lines, b"m f=1 1\n");
    }
}
