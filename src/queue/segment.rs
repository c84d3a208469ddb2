//! Segment files and the in-memory list of them. A segment is named after the global log position
//! of its first byte (`<base:020>.seg`) and holds nothing but frames, so a position maps to a file
//! and an offset without any index. This module must never hand out bytes at or past the
//! published end of the log (the writer may be extending the active segment).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::error::QueueError;
use super::read_lock;

pub const SEGMENT_SUFFIX: &str = ".seg";

pub fn segment_file_name(base: u64) -> String {
    format!("{base:020}{SEGMENT_SUFFIX}")
}

/// The base position encoded in a segment file name, if `name` is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// One segment file, opened for reading (the writer has its own append handle).
#[derive(Debug)]
pub struct Segment {
    pub base: u64,
    pub path: PathBuf,
    file: File,
    /// Bytes in the file; for the active segment this trails the writer.
    pub disk_len: AtomicU64,
}

impl Segment {
    pub fn open(dir: &Path, base: u64) -> Result<Self, QueueError> {
        let path = dir.join(segment_file_name(base));
        let file = File::open(&path).map_err(|e| QueueError::io(&path, e))?;
        let len = file.metadata().map_err(|e| QueueError::io(&path, e))?.len();
        Ok(Segment {
            base,
            path,
            file,
            disk_len: AtomicU64::new(len),
        })
    }

    /// Reads exactly `buf.len()` bytes at log position `position` (inside this segment).
    pub fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, position - self.base)
    }

    /// Reads up to `len` bytes at `position`, fewer if the file ends first.
    pub fn read_up_to(&self, position: u64, len: usize) -> Result<Vec<u8>, QueueError> {
        let mut out = vec![0; len];
        let mut filled = 0;
        while filled < len {
            match self
                .file
                .read_at(&mut out[filled..], position - self.base + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(QueueError::io(&self.path, e)),
            }
        }
        out.truncate(filled);
        Ok(out)
    }

    pub fn modified(&self) -> Option<std::time::SystemTime> {
        self.file.metadata().and_then(|m| m.modified()).ok()
    }
}

/// Every live segment by base position; the last one is the active (written) segment.
#[derive(Debug, Default)]
pub struct SegmentList {
    by_base: RwLock<BTreeMap<u64, Arc<Segment>>>,
}

impl SegmentList {
    pub fn insert(&self, segment: Segment) -> Arc<Segment> {
        let segment = Arc::new(segment);
        super::write_lock(&self.by_base).insert(segment.base, segment.clone());
        segment
    }

    /// The segment holding `position` and the base of the segment after it (`None` for the
    /// active segment).
    pub fn containing(&self, position: u64) -> Option<(Arc<Segment>, Option<u64>)> {
        let map = read_lock(&self.by_base);
        let (_, segment) = map.range(..=position).next_back()?;
        let next = map.range(position + 1..).next().map(|(base, _)| *base);
        Some((segment.clone(), next))
    }

    pub fn oldest_base(&self) -> Option<u64> {
        read_lock(&self.by_base).keys().next().copied()
    }

    pub fn len(&self) -> usize {
        read_lock(&self.by_base).len()
    }

    pub fn disk_bytes(&self) -> u64 {
        read_lock(&self.by_base)
            .values()
            .map(|s| s.disk_len.load(Ordering::Relaxed))
            .sum()
    }

    /// Sealed segments that end at or before `position` (never the active segment).
    pub fn sealed_before(&self, position: u64) -> Vec<Arc<Segment>> {
        let map = read_lock(&self.by_base);
        let bases: Vec<u64> = map.keys().copied().collect();
        bases
            .windows(2)
            .filter(|pair| pair[1] <= position)
            .filter_map(|pair| map.get(&pair[0]).cloned())
            .collect()
    }

    pub fn remove(&self, base: u64) {
        super::write_lock(&self.by_base).remove(&base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.cursor"), None);
    }
}
