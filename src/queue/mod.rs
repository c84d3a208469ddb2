//! The durable per-group write log with one read cursor per replica (issue 3). The proxy appends
//! each shard group's batch once ([`GroupLog::append`]), acknowledges the client per consistency
//! level, and one sender per replica drains the log through its [`Reader`]. It must never hand a
//! replica a record whose checksum does not match, never acknowledge a record it cannot keep
//! (at the cap it refuses with [`QueueError::Full`] and writes nothing), and never delete a record
//! some replica's persisted cursor has not passed.
//!
//! # On disk
//!
//! ```text
//! <dir>/                      one directory per group, e.g. <data_dir>/queue/<group>
//!   VERSION                   "monitor-queue 1\n"
//!   LOCK                      flock'ed while open: one process per log
//!   00000000000000000000.seg  segments, named after the log position of their first byte
//!   00000000000067108880.seg  (the last one is the active segment, the only one written)
//!   <replica>.cursor          16 bytes: "MQC1", position u64 LE, crc32 of the first 12 bytes
//! ```
//!
//! A segment is a sequence of frames (see `frame`): `crc32 u32 | len u32 | appended_at_ms u64 |
//! payload`, little-endian, CRC32 (IEEE) over everything after the crc field. A record is one
//! appended batch, opaque bytes (for the proxy newline-terminated line protocol).
//!
//! **Positions** are global byte offsets: the position of a frame is the segment's base plus the
//! frame's offset in that file, so positions grow monotonically over the life of the log, survive
//! segment deletion, and `head - cursor` is the backlog in bytes. A cursor holds the position
//! after the last record its backend acknowledged. Segments roll over at `segment_bytes` (a
//! larger record gets a segment of its own).
//!
//! # Acknowledgement and crashes, per fsync policy
//!
//! Appends are group-committed: appenders copy their frame into a shared staging buffer (bounded
//! by `write_buffer_bytes`; appenders wait beyond it) and one writer thread writes everything
//! staged with one `write()` and, under `always`, one `fdatasync`, then acknowledges all of them.
//! A new segment's file and directory entry are synced (except under `never`) before any record
//! in it is acknowledged, and the segment before it is synced when sealed.
//!
//! | policy | `append` returns after | proxy crash (kill -9, panic, OOM) | machine crash / power loss |
//! | --- | --- | --- | --- |
//! | `always` | write + `fdatasync` | nothing acknowledged is lost | nothing acknowledged is lost (if the disk honours flushes) |
//! | `interval(d)` | `write()` | nothing acknowledged is lost (it is in the page cache) | records acknowledged in the last `d` plus one fsync's duration may be lost |
//! | `never` | `write()` | nothing acknowledged is lost | whatever the kernel had not written back may be lost (typically up to ~30 s) |
//!
//! Readers only see acknowledged records (under `always`: synced ones), so a replica never
//! receives a record that the log could still lose and replicas converge.
//!
//! The chunks the writer has just written stay in memory (`LogConfig::read_cache_bytes`, 32 MiB
//! per group by default), shared by the readers: replicas that keep up take their records from
//! there without reading the files back (one copy of the data, not one per replica); a replica
//! that falls behind that window reads the segment files, checksums verified.
//!
//! With `LogConfig::direct_io` the writer opens the active segment with `O_DIRECT` as well and
//! writes large group commits (`direct_io_min_bytes`, 256 KiB by default; under load they are
//! megabytes) as whole 4 KiB blocks from an aligned buffer: the lines are not copied into the page
//! cache, a copy that cost as much CPU as all the proxy's socket sends. Such a commit ends with a
//! **padding frame** up to the next block boundary (the top bit of its length field set, payload
//! zeros, checksummed); readers step over padding frames, which take positions like any frame.
//! Smaller commits are written buffered and unpadded, so a trickle of small writes does not take a
//! block each. A block is written either buffered (the bytes of a commit before its first block
//! boundary complete the block buffered writes started) or exactly once direct, never both, so no
//! reader can meet a stale cached copy of a block. `EINVAL` (a filesystem without `O_DIRECT`, e.g.
//! tmpfs) switches the log to buffered writes for good. A binary from before padding frames reads
//! one as a damaged range: skipped and counted, nothing lost.
//!
//! On open, the active segment is scanned frame by frame: the **torn tail** (a damaged frame with
//! no valid frame after it) is truncated, reported in [`RecoveryReport`] and counted. A machine
//! crash under `interval`/`never` can also leave a damaged range *followed* by valid frames, or a
//! sealed segment shorter than its successor's base: those are kept and skipped by readers.
//!
//! # Corruption in the middle (a flipped byte)
//!
//! Decision: **skip with a counted error and continue**. A reader that meets a frame whose
//! checksum fails (or whose length runs past the segment) searches forward for the next valid
//! frame (plausible length and matching CRC), skips the bytes in between, logs them at error level
//! and counts them (`corrupt_regions_skipped`, `corrupt_bytes_skipped`, and in
//! [`Batch::skipped_corrupt_bytes`]). Stopping would block the replica (and, through the disk
//! cap, the whole group's ingestion) on a record nobody can repair; the damaged record is
//! lost either way, and the count makes it visible. A damaged record is never handed out.
//!
//! # Cursors and segments
//!
//! [`Reader::commit`] moves the in-memory cursor (the sender calls it after the backend
//! acknowledged); a maintenance thread persists moved cursors every `cursor_sync_interval`
//! (temp file + fsync + rename + directory fsync), so a persisted cursor lags but is never ahead
//! of what the backend acknowledged, and replay after a crash resends at most one interval's worth
//! (idempotent). Segments are deleted by the same thread only when every replica's **persisted**
//! cursor passed them; with no replica registered nothing is deleted. A replica added with
//! [`StartAt::Head`] (the default of [`GroupLog::ensure_replica`]) receives every record
//! acknowledged after it was added; its cursor file is written before `add_replica` returns.
//! [`StartAt::Tail`] replays what is still on disk. Removing a replica deletes its cursor file and
//! frees what only it held. On open, cursors are clamped into `[tail, head]`, moved back onto a
//! record boundary if needed, and a damaged cursor file restarts that replica from the tail
//! (replaying rather than losing).
//!
//! # Caps and memory
//!
//! `max_disk_bytes` bounds the sum of the group's segment files including records not yet
//! written; an append that would exceed it fails with `Full { retry_after }` before anything is
//! staged. The optional `max_pending_age` refuses appends while some replica's oldest unsent
//! record is older (checked against a value refreshed every `cursor_sync_interval`). Space comes
//! back when whole segments are deleted, so the cap must hold at least two segments. Memory: records
//! staged or being written hold at most `write_buffer_bytes` (or one larger record); the two
//! alternating buffers keep at most twice that allocated (32 MiB per group by default). Readers
//! hold what they request (`max_bytes` per batch) and read the files through the page cache.
//!
//! # Use
//!
//! ```no_run
//! # async fn example() -> Result<(), monitor::queue::QueueError> {
//! use monitor::queue::{GroupLog, LogConfig, QueueError};
//!
//! let log = GroupLog::open("/var/lib/monitor/queue/g1", LogConfig::default())?;
//! for replica in ["influx-a", "influx-b", "influx-c"] {
//!     log.ensure_replica(replica)?;
//! }
//! // Write path: one append per group batch; `Full` becomes 503 + Retry-After.
//! match log.append(b"cpu,index=c1 v=1 1\n").await {
//!     Ok(_receipt) => { /* acknowledge per consistency level */ }
//!     Err(QueueError::Full { retry_after, .. }) => { /* 503, Retry-After: retry_after */ }
//!     Err(other) => return Err(other),
//! }
//! // One sender per replica.
//! let mut reader = log.reader("influx-a")?;
//! loop {
//!     let batch = reader.next_batch(4 << 20).await?;
//!     for _record in batch.records() { /* group by target, write to the backend */ }
//!     // ... once the backend acknowledged every record of the batch:
//!     reader.commit(batch.end)?;
//! }
//! # }
//! ```
//!
//! A write or fsync error stops the log: that append and every later one fail with the error
//! ([`QueueError::DiskFull`] for ENOSPC), because after a failed fsync the kernel may have dropped
//! the data and retrying could acknowledge a lost record. Reopening rescans and recovers.

mod config;
mod cursor;
mod error;
mod frame;
mod log;
mod reader;
mod recent;
mod segment;
mod stats;
mod writer;

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use config::{FsyncPolicy, LogConfig};
pub use error::{FullReason, QueueError};
pub use frame::{FRAME_HEADER_LEN, MAX_PAYLOAD_LEN};
pub use log::{AppendReceipt, GroupLog, RecoveryReport, StartAt};
pub use reader::{Batch, Reader};
pub use stats::{QueueStats, ReplicaStats};

/// Locks ignoring poisoning: every structure behind these locks stays consistent even if a
/// holder panicked, and the queue must keep serving.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read_lock<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write_lock<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
