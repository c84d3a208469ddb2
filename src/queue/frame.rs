//! Record framing of segment files: a 16-byte header (CRC32, length, append time) before each
//! record's bytes. It must never call a frame valid unless its checksum matches, so a torn or
//! flipped record is detected instead of handed to a replica.
//!
//! ```text
//! offset  size  field
//!      0     4  crc32 (IEEE, crc32fast) of bytes 4 .. 16 + len, i.e. length, time and payload
//!      4     4  len: payload length, u32 little-endian; the top bit marks a padding frame
//!      8     8  appended_at: milliseconds since the Unix epoch, u64 little-endian
//!     16   len  payload (opaque; for the proxy newline-terminated line protocol)
//! ```
//!
//! A padding frame (top bit of `len` set, payload zeros, checksummed like any frame) fills a
//! segment up to a block boundary so that the writer's direct I/O never rewrites a block; readers
//! step over it and never hand it out as a record.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const FRAME_HEADER_LEN: u64 = 16;
const HEADER: usize = FRAME_HEADER_LEN as usize;
/// The bit of the length field that marks a padding frame.
const PADDING_FLAG: u32 = 1 << 31;
/// Largest payload a frame can carry (the length field's other 31 bits).
pub const MAX_PAYLOAD_LEN: u64 = (PADDING_FLAG - 1) as u64;

/// The decoded fixed part of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub crc: u32,
    /// Payload length (without the padding flag).
    pub len: u32,
    pub appended_at_ms: u64,
    /// A padding frame: skipped by readers, never a record.
    pub padding: bool,
}

impl FrameHeader {
    pub fn decode(bytes: &[u8; HEADER]) -> Self {
        let [
            c0,
            c1,
            c2,
            c3,
            l0,
            l1,
            l2,
            l3,
            t0,
            t1,
            t2,
            t3,
            t4,
            t5,
            t6,
            t7,
        ] = *bytes;
        let len = u32::from_le_bytes([l0, l1, l2, l3]);
        FrameHeader {
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
            len: len & !PADDING_FLAG,
            appended_at_ms: u64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]),
            padding: len & PADDING_FLAG != 0,
        }
    }

    /// Total bytes of the frame, header included.
    pub fn frame_len(&self) -> u64 {
        FRAME_HEADER_LEN + self.len as u64
    }

    pub fn appended_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.appended_at_ms)
    }

    /// Whether `payload` (exactly `len` bytes) is what this header's checksum covers.
    pub fn matches(&self, header_bytes: &[u8; HEADER], payload: &[u8]) -> bool {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header_bytes[4..]);
        hasher.update(payload);
        hasher.finalize() == self.crc
    }
}

pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Appends one framed record to `out`. The caller has checked that `payload` fits in a u32.
#[cfg(test)]
pub fn encode_into(out: &mut Vec<u8>, payload: &[u8], appended_at_ms: u64) {
    encode_parts_into(out, &[payload], appended_at_ms);
}

/// Like [`encode_into`] for a payload given as pieces written back to back.
pub fn encode_parts_into(out: &mut Vec<u8>, parts: &[&[u8]], appended_at_ms: u64) {
    let len: usize = parts.iter().map(|part| part.len()).sum();
    out.reserve(HEADER + len);
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&appended_at_ms.to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends a padding frame of exactly `frame_len` bytes (at least a header) to `out`.
pub fn encode_padding_into(out: &mut Vec<u8>, frame_len: u64, appended_at_ms: u64) {
    let len = frame_len.saturating_sub(FRAME_HEADER_LEN) as usize;
    let start = out.len();
    out.reserve(HEADER + len);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(len as u32 | PADDING_FLAG).to_le_bytes());
    out.extend_from_slice(&appended_at_ms.to_le_bytes());
    out.resize(start + HEADER + len, 0);
    let crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Bytes of padding frame that take a segment holding `filled` bytes to a multiple of `block`:
/// 0 when it already is one; never fewer than a frame header otherwise (so one more block when
/// the gap is smaller than that).
pub fn padding_to(filled: u64, block: u64) -> u64 {
    let gap = (block - filled % block) % block;
    match gap {
        0 => 0,
        gap if gap < FRAME_HEADER_LEN => gap + block,
        gap => gap,
    }
}

fn header_at(region: &[u8], offset: usize) -> Option<(&[u8; HEADER], FrameHeader)> {
    let bytes: &[u8; HEADER] = region
        .get(offset..offset.checked_add(HEADER)?)?
        .try_into()
        .ok()?;
    Some((bytes, FrameHeader::decode(bytes)))
}

/// The length of the valid frame starting at `offset` of `region`, if one does (it must lie
/// entirely inside `region` and its checksum must match).
pub fn valid_frame_at(region: &[u8], offset: usize) -> Option<usize> {
    let (bytes, header) = header_at(region, offset)?;
    let payload_start = offset + HEADER;
    let payload = region.get(payload_start..payload_start.checked_add(header.len as usize)?)?;
    header
        .matches(bytes, payload)
        .then_some(HEADER + payload.len())
}

/// The first offset at or after `from` where a valid frame starts: how a reader resynchronises
/// after a damaged record. A false match needs a plausible length and a CRC32 collision.
pub fn next_valid_frame(region: &[u8], from: usize) -> Option<usize> {
    (from..region.len().saturating_sub(HEADER - 1)).find(|&offset| {
        header_at(region, offset)
            .is_some_and(|(_, h)| offset + HEADER + h.len as usize <= region.len())
            && valid_frame_at(region, offset).is_some()
    })
}

/// What a full scan of a segment's bytes found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Offset just past the last valid frame (everything after it is a torn tail).
    pub valid_end: usize,
    /// Start offset of every valid frame, ascending.
    pub boundaries: Vec<usize>,
    /// Damaged ranges followed by valid frames: kept on disk, skipped (and counted) by readers.
    pub corrupt_ranges: Vec<(usize, usize)>,
}

impl ScanReport {
    pub fn torn_bytes(&self, region_len: usize) -> usize {
        region_len - self.valid_end
    }
}

/// Validates every frame of `region`. A damaged frame followed by a valid one is mid-file
/// corruption (kept, reported); a damaged frame with nothing valid after it is the torn tail.
pub fn scan(region: &[u8]) -> ScanReport {
    let mut report = ScanReport::default();
    let mut offset = 0;
    while offset < region.len() {
        if let Some(len) = valid_frame_at(region, offset) {
            report.boundaries.push(offset);
            offset += len;
            report.valid_end = offset;
            continue;
        }
        match next_valid_frame(region, offset + 1) {
            Some(next) => {
                report.corrupt_ranges.push((offset, next));
                offset = next;
            }
            None => break,
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for payload in payloads {
            encode_into(&mut out, payload, 1_700_000_000_000);
        }
        out
    }

    #[test]
    fn padding_frames_fill_to_the_block_and_scan_as_valid_frames() {
        for filled in [0u64, 1, 100, 4080, 4081, 4095, 4096, 5000] {
            let pad = padding_to(filled, 4096);
            assert_eq!((filled + pad) % 4096, 0, "filled {filled}");
            assert!(
                pad == 0 || pad >= FRAME_HEADER_LEN,
                "filled {filled}: {pad}"
            );
        }
        let mut region = framed(&[b"cpu v=1\n"]);
        let pad = padding_to(region.len() as u64, 4096);
        encode_padding_into(&mut region, pad, 7);
        region.extend(framed(&[b"mem v=2\n"]));
        let report = scan(&region);
        assert_eq!(report.boundaries, vec![0, 24, 4096]);
        assert!(report.corrupt_ranges.is_empty());
        let (_, padding) = header_at(&region, 24).unwrap();
        assert!(padding.padding);
        assert_eq!(padding.frame_len(), 4096 - 24);
        assert_eq!(padding.appended_at_ms, 7);
        let (_, record) = header_at(&region, 0).unwrap();
        assert!(!record.padding);
    }

    #[test]
    fn encodes_and_validates_frames() {
        let region = framed(&[b"cpu v=1\n", b"", b"mem v=2\n"]);
        let report = scan(&region);
        assert_eq!(report.boundaries, vec![0, 24, 40]);
        assert_eq!(report.valid_end, region.len());
        assert!(report.corrupt_ranges.is_empty());
        let (_, header) = header_at(&region, 0).unwrap();
        assert_eq!(header.len, 8);
        assert_eq!(header.appended_at_ms, 1_700_000_000_000);
    }

    #[test]
    fn torn_tail_is_reported_and_earlier_frames_kept() {
        let region = framed(&[b"a v=1\n", b"b v=2\n", b"c v=3\n"]);
        for cut in 45..region.len() {
            let report = scan(&region[..cut]);
            assert_eq!(report.valid_end, 44, "cut at {cut}");
            assert_eq!(report.boundaries, vec![0, 22]);
        }
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let region = framed(&[b"a v=1\n", b"bb v=2\n", b"c v=3\n"]);
        for index in 0..region.len() {
            let mut damaged = region.clone();
            damaged[index] ^= 0x40;
            let report = scan(&damaged);
            let intact: Vec<usize> = report.boundaries.clone();
            // The damaged frame is never reported valid; the others are.
            let damaged_frame = [0usize, 22, 45].iter().rposition(|&s| s <= index).unwrap();
            let expected: Vec<usize> = [0usize, 22, 45]
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != damaged_frame)
                .map(|(_, s)| *s)
                .collect();
            assert_eq!(intact, expected, "flip at {index}");
        }
    }

    #[test]
    fn garbage_after_frames_is_a_torn_tail() {
        let mut region = framed(&[b"a v=1\n"]);
        region.extend_from_slice(&[0xff; 40]);
        let report = scan(&region);
        assert_eq!(report.valid_end, 22);
        assert_eq!(report.torn_bytes(region.len()), 40);
    }
}
