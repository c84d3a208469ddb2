//! Counters and gauges of one group's log as plain values, so the telemetry module can export
//! them under its own names. Nothing here may block the write path: counters are relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters, shared by the writer, the readers and the maintenance thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub bytes_appended: AtomicU64,
    pub records_appended: AtomicU64,
    pub writes: AtomicU64,
    pub fsyncs: AtomicU64,
    pub full_rejections: AtomicU64,
    pub write_errors: AtomicU64,
    pub segments_created: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub torn_tails_truncated: AtomicU64,
    pub torn_bytes_truncated: AtomicU64,
    pub corrupt_regions_skipped: AtomicU64,
    pub corrupt_bytes_skipped: AtomicU64,
    pub cursor_persist_errors: AtomicU64,
    pub padding_bytes: AtomicU64,
    pub direct_writes: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }
}

/// A snapshot of one group's log. Counters are totals since the log was opened; byte counts
/// include the 16-byte frame header of each record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Framed bytes written to segments.
    pub bytes_appended: u64,
    pub records_appended: u64,
    /// `write()` batches (one per group commit, more when a segment rotates inside one).
    pub writes: u64,
    pub fsyncs: u64,
    /// Appends refused with `QueueError::Full`.
    pub full_rejections: u64,
    pub write_errors: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
    /// Torn tails cut off when the log was opened (0 or 1 per open) and their size.
    pub torn_tails_truncated: u64,
    pub torn_bytes_truncated: u64,
    /// Damaged ranges readers skipped (counted once per replica that skipped them).
    pub corrupt_regions_skipped: u64,
    pub corrupt_bytes_skipped: u64,
    pub cursor_persist_errors: u64,
    /// Bytes of padding frames (included in `bytes_appended`): what direct I/O costs on disk.
    pub padding_bytes: u64,
    /// Writes that went to the disk with `O_DIRECT` (included in `writes`).
    pub direct_writes: u64,
    /// Position after the last acknowledged record.
    pub head: u64,
    /// Position up to which the log was last fsynced by the writer: `head - synced` is what a
    /// machine crash could take back under `interval`/`never` (always 0 under `always`).
    pub synced: u64,
    /// Position of the oldest byte still on disk.
    pub tail: u64,
    /// Bytes of recent records held in memory for the readers (`LogConfig::read_cache_bytes`).
    pub read_cache_bytes: u64,
    pub disk_bytes: u64,
    pub segments: u64,
    pub replicas: Vec<ReplicaStats>,
}

/// Per-replica gauges: how far behind the replica's backend is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    pub name: String,
    /// Position up to which the backend acknowledged (in memory).
    pub committed: u64,
    /// Position last written to the cursor file (lags `committed` by up to one sync interval).
    pub persisted: u64,
    /// `head - committed`: framed bytes this replica still has to receive. 0 means in sync.
    pub pending_bytes: u64,
    /// Age of the oldest record this replica has not acknowledged.
    pub oldest_pending_age: Option<Duration>,
}

impl Counters {
    pub fn snapshot_into(&self, stats: &mut QueueStats) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        stats.bytes_appended = get(&self.bytes_appended);
        stats.records_appended = get(&self.records_appended);
        stats.writes = get(&self.writes);
        stats.fsyncs = get(&self.fsyncs);
        stats.full_rejections = get(&self.full_rejections);
        stats.write_errors = get(&self.write_errors);
        stats.segments_created = get(&self.segments_created);
        stats.segments_deleted = get(&self.segments_deleted);
        stats.torn_tails_truncated = get(&self.torn_tails_truncated);
        stats.torn_bytes_truncated = get(&self.torn_bytes_truncated);
        stats.corrupt_regions_skipped = get(&self.corrupt_regions_skipped);
        stats.corrupt_bytes_skipped = get(&self.corrupt_bytes_skipped);
        stats.cursor_persist_errors = get(&self.cursor_persist_errors);
        stats.padding_bytes = get(&self.padding_bytes);
        stats.direct_writes = get(&self.direct_writes);
    }
}
