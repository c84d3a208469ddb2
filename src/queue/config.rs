//! Configuration of one group's durable log: fsync policy, segment size and the caps that make
//! the proxy answer 503 instead of growing. It must never accept a combination under which the
//! cap could not be honoured (a cap smaller than two segments could never free space).

use std::time::Duration;

use super::error::QueueError;
use super::frame::MAX_PAYLOAD_LEN;

/// When an append is acknowledged relative to `fsync`. See the module documentation of
/// [`crate::queue`] for what each policy guarantees after a proxy crash and a machine crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `append` returns after the record was written and `fdatasync`ed. Concurrent appends are
    /// group-committed: one write and one fsync cover every record staged meanwhile.
    Always,
    /// `append` returns after `write()`; the writer fsyncs at most this long after the first
    /// unsynced write.
    Interval(Duration),
    /// `append` returns after `write()`; the kernel decides when data reaches the disk.
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = QueueError;

    /// `always`, `never`, or `interval:<ms>` (e.g. `interval:100`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            other => other
                .strip_prefix("interval:")
                .and_then(|ms| ms.trim_end_matches("ms").parse::<u64>().ok())
                .map(|ms| FsyncPolicy::Interval(Duration::from_millis(ms)))
                .ok_or_else(|| {
                    QueueError::InvalidConfig(format!(
                        "fsync policy {other:?}: expected always, never or interval:<ms>"
                    ))
                }),
        }
    }
}

/// Tunables of one group's log. `Default` is sized for a proxy: 64 MiB segments, 1 GiB cap.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub fsync: FsyncPolicy,
    /// A segment is sealed and a new one started once it would exceed this size (a single
    /// larger record gets a segment of its own).
    pub segment_bytes: u64,
    /// Total bytes of segment files this group may hold; appends beyond it get `Full`.
    pub max_disk_bytes: u64,
    /// Optional: refuse appends while some replica's oldest unsent record is older than this.
    pub max_pending_age: Option<Duration>,
    /// Largest single record accepted.
    pub max_record_bytes: u64,
    /// Bytes of appended-but-not-yet-written records the writer may hold in memory; appenders
    /// wait (backpressure) beyond it, so it also bounds what one group commit covers.
    pub write_buffer_bytes: u64,
    /// How often committed cursors are persisted and fully passed segments deleted.
    pub cursor_sync_interval: Duration,
    /// The `Retry-After` suggested with `Full`.
    pub full_retry_after: Duration,
    /// Bytes of the most recently written records kept in memory for the readers, so replicas
    /// that keep up do not each read them back from the files. 0 disables it.
    pub read_cache_bytes: u64,
    /// Write the segment files with `O_DIRECT` (whole blocks from an aligned buffer, no copy into
    /// the page cache), padding each group commit to a block boundary with a padding frame. Falls
    /// back to buffered writes where the filesystem refuses `O_DIRECT` (tmpfs). Off by default
    /// here; the proxy turns it on (`queue.direct_io`).
    pub direct_io: bool,
    /// With `direct_io`, only group commits of at least this many bytes are padded and written
    /// direct; smaller ones are written buffered, unpadded, so that a trickle of small writes does
    /// not take a block each (and fill `max_disk_bytes` that many times faster while a replica is
    /// down). Under load commits are megabytes and all go direct.
    pub direct_io_min_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            fsync: FsyncPolicy::Always,
            segment_bytes: 64 << 20,
            max_disk_bytes: 1 << 30,
            max_pending_age: None,
            max_record_bytes: 64 << 20,
            write_buffer_bytes: 16 << 20,
            cursor_sync_interval: Duration::from_secs(1),
            full_retry_after: Duration::from_secs(2),
            read_cache_bytes: 32 << 20,
            direct_io: false,
            direct_io_min_bytes: 256 << 10,
        }
    }
}

impl LogConfig {
    pub(crate) fn validate(&self) -> Result<(), QueueError> {
        let invalid = |msg: String| Err(QueueError::InvalidConfig(msg));
        if self.segment_bytes < 4096 {
            return invalid(format!("segment_bytes {} < 4096", self.segment_bytes));
        }
        if self.max_disk_bytes < 2 * self.segment_bytes {
            return invalid(format!(
                "max_disk_bytes {} must be at least two segments ({})",
                self.max_disk_bytes,
                2 * self.segment_bytes
            ));
        }
        if self.max_record_bytes == 0 || self.max_record_bytes > MAX_PAYLOAD_LEN {
            return invalid(format!(
                "max_record_bytes {} out of range (1..={MAX_PAYLOAD_LEN})",
                self.max_record_bytes
            ));
        }
        if self.write_buffer_bytes == 0 || self.write_buffer_bytes > u32::MAX as u64 {
            return invalid(format!(
                "write_buffer_bytes {} out of range",
                self.write_buffer_bytes
            ));
        }
        if self.fsync == FsyncPolicy::Interval(Duration::ZERO) {
            return invalid("fsync interval must be > 0 (use always)".to_string());
        }
        if self.cursor_sync_interval.is_zero() {
            return invalid("cursor_sync_interval must be > 0".to_string());
        }
        Ok(())
    }
}
