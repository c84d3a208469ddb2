//! `GroupLog`: one shard group's durable log: open and recover, append with group commit,
//! replicas and their cursors, caps, and the maintenance thread that persists cursors and deletes
//! segments every replica has passed. It must never delete a segment some replica's *persisted*
//! cursor still needs, and never accept an append it could not keep under the disk cap.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, watch};

use super::config::LogConfig;
use super::cursor;
use super::error::{FullReason, QueueError};
use super::frame::{self, FRAME_HEADER_LEN, FrameHeader};
use super::lock;
use super::reader::Reader;
use super::recent::RecentChunks;
use super::segment::{Segment, SegmentList, parse_segment_file_name, segment_file_name};
use super::stats::{Counters, QueueStats, ReplicaStats};
use super::writer::{Progress, Staging, Writer};

const VERSION_FILE: &str = "VERSION";
const VERSION_TEXT: &str = "monitor-queue 1\n";
const LOCK_FILE: &str = "LOCK";

/// Where a newly added replica's cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// At the head: the replica receives every record acknowledged after it was added. The
    /// default, because the log is not a history (older data must be copied backend to backend)
    /// and starting at the tail would replay an arbitrary, slowest-replica-dependent window.
    Head,
    /// At the oldest record still on disk.
    Tail,
}

/// Where an appended record landed: `[start, end)` in log positions (frame header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReceipt {
    pub start: u64,
    pub end: u64,
}

/// What opening the log found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub tail: u64,
    pub head: u64,
    /// Where the torn tail of the active segment was cut, and how many bytes it had.
    pub torn_tail_at: Option<u64>,
    pub torn_bytes_truncated: u64,
    /// Damaged ranges inside the active segment that are followed by valid records: kept on disk
    /// and skipped, with a count, by every reader.
    pub corrupt_ranges: Vec<(u64, u64)>,
    /// Sealed segments shorter than their successor's base says (possible only after a machine
    /// crash under `interval`/`never`): `(base, missing bytes)`; readers skip the gap.
    pub short_segments: Vec<(u64, u64)>,
    /// Every replica found, with the position its reader resumes from.
    pub cursors: Vec<(String, u64)>,
    /// Cursors moved into `[tail, head]` or back onto a record boundary.
    pub cursors_adjusted: Vec<String>,
    /// Cursor files that failed their checksum; those replicas restart from the tail.
    pub cursors_damaged: Vec<String>,
}

pub(crate) struct ReplicaState {
    pub name: String,
    pub committed: AtomicU64,
    pub persisted: AtomicU64,
    pub reader_active: AtomicBool,
    pub removed: AtomicBool,
}

impl ReplicaState {
    fn new(name: &str, position: u64) -> Arc<Self> {
        Arc::new(ReplicaState {
            name: name.to_string(),
            committed: AtomicU64::new(position),
            persisted: AtomicU64::new(position),
            reader_active: AtomicBool::new(false),
            removed: AtomicBool::new(false),
        })
    }
}

/// State shared by the handle, the writer thread, the maintenance thread and the readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub config: LogConfig,
    pub staging: Mutex<Staging>,
    pub writer_wake: Condvar,
    /// Permits = bytes the staging buffer may hold; bounds the writer's memory.
    pub memory: Semaphore,
    pub progress: watch::Sender<Progress>,
    pub segments: SegmentList,
    pub replicas: Mutex<BTreeMap<String, Arc<ReplicaState>>>,
    pub counters: Counters,
    /// The records just written, for readers that keep up.
    pub recent: RecentChunks,
    maintenance_stop: Mutex<bool>,
    maintenance_wake: Condvar,
    /// Append time (Unix ms) of the oldest record some replica has not acknowledged; 0 = none.
    oldest_pending_ms: AtomicU64,
}

impl Shared {
    pub fn visible_end(&self) -> u64 {
        self.progress.borrow().visible_end
    }

    /// The append time of the record starting at `position`, from its frame header. Falls back to
    /// the segment's modification time if the header is unreadable or implausible.
    pub fn record_time_at(&self, position: u64) -> Option<SystemTime> {
        let (segment, _) = self.segments.containing(position)?;
        let mut header = [0; FRAME_HEADER_LEN as usize];
        let parsed = segment
            .read_exact_at(&mut header, position)
            .ok()
            .map(|()| FrameHeader::decode(&header));
        let plausible = |h: &FrameHeader| {
            h.appended_at_ms > 0 && h.appended_at_ms <= frame::now_unix_ms() + 86_400_000
        };
        match parsed {
            Some(header) if plausible(&header) => Some(header.appended_at()),
            _ => segment.modified(),
        }
    }

    pub fn pending_age(&self, committed: u64) -> Option<Duration> {
        if committed >= self.visible_end() {
            return None;
        }
        let appended_at = self.record_time_at(committed)?;
        Some(
            SystemTime::now()
                .duration_since(appended_at)
                .unwrap_or_default(),
        )
    }

    fn check_caps(&self, staging: &Staging, frame_len: u64) -> Result<(), QueueError> {
        let cap = self.config.max_disk_bytes;
        let reason = if staging.disk_bytes + frame_len > cap {
            Some(FullReason::DiskCap {
                used_bytes: staging.disk_bytes,
                cap_bytes: cap,
                record_bytes: frame_len,
            })
        } else {
            self.config.max_pending_age.and_then(|cap| {
                let oldest_ms = self.oldest_pending_ms.load(Ordering::Relaxed);
                let age = Duration::from_millis(frame::now_unix_ms().saturating_sub(oldest_ms));
                (oldest_ms != 0 && age > cap).then_some(FullReason::PendingAge { oldest: age, cap })
            })
        };
        match reason {
            None => Ok(()),
            Some(reason) => {
                Counters::add(&self.counters.full_rejections, 1);
                Err(QueueError::Full {
                    retry_after: self.config.full_retry_after,
                    reason,
                })
            }
        }
    }

    /// Persists moved cursors, then deletes sealed segments that every persisted cursor passed,
    /// and refreshes the oldest-pending time the age cap reads.
    fn maintain(&self) -> Result<(), QueueError> {
        let replicas = lock(&self.replicas);
        let mut first_error = None;
        for state in replicas.values() {
            let committed = state.committed.load(Ordering::Acquire);
            if committed != state.persisted.load(Ordering::Acquire) {
                match cursor::persist(&self.dir, &state.name, committed) {
                    Ok(()) => state.persisted.store(committed, Ordering::Release),
                    Err(error) => {
                        Counters::add(&self.counters.cursor_persist_errors, 1);
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        // With no replica registered nothing is deleted: the records have not been delivered.
        let min_persisted = replicas
            .values()
            .map(|s| s.persisted.load(Ordering::Acquire))
            .min();
        if let Some(min_persisted) = min_persisted {
            let passed = self.segments.sealed_before(min_persisted);
            for segment in &passed {
                self.segments.remove(segment.base);
                if let Err(e) = fs::remove_file(&segment.path) {
                    first_error.get_or_insert(QueueError::io(&segment.path, e));
                }
                let mut staging = lock(&self.staging);
                staging.disk_bytes = staging
                    .disk_bytes
                    .saturating_sub(segment.disk_len.load(Ordering::Relaxed));
                Counters::add(&self.counters.segments_deleted, 1);
            }
            if !passed.is_empty() {
                if let Err(error) = cursor::sync_dir(&self.dir) {
                    first_error.get_or_insert(error);
                }
            }
        }
        let oldest = replicas
            .values()
            .filter_map(|s| {
                let committed = s.committed.load(Ordering::Acquire);
                (committed < self.visible_end())
                    .then(|| self.record_time_at(committed))
                    .flatten()
            })
            .min();
        let oldest_ms = oldest
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| (d.as_millis() as u64).max(1));
        self.oldest_pending_ms.store(oldest_ms, Ordering::Relaxed);
        first_error.map_or(Ok(()), Err)
    }

    /// Every interval, and once more when stopping (so a clean shutdown persists every cursor).
    fn run_maintenance(&self) {
        loop {
            let mut stop = lock(&self.maintenance_stop);
            if !*stop {
                stop = self
                    .maintenance_wake
                    .wait_timeout(stop, self.config.cursor_sync_interval)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .0;
            }
            let stopping = *stop;
            drop(stop);
            if let Err(error) = self.maintain() {
                tracing::warn!(dir = %self.dir.display(), %error, "queue maintenance failed; retrying next interval");
            }
            if stopping {
                return;
            }
        }
    }
}

/// One shard group's durable log. Share it behind an `Arc`; dropping (or [`GroupLog::close`])
/// flushes staged records, persists cursors and blocks until both background threads stopped.
pub struct GroupLog {
    shared: Arc<Shared>,
    recovery: RecoveryReport,
    threads: Vec<JoinHandle<()>>,
    _lock_file: File,
}

impl std::fmt::Debug for GroupLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupLog")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl GroupLog {
    /// Opens (creating if needed) the log in `dir`, e.g. `<data_dir>/queue/<group>`: validates and
    /// truncates the torn tail of the active segment, loads every replica's cursor, and starts
    /// the writer and maintenance threads. Blocking; call it before serving.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Self, QueueError> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| QueueError::io(&dir, e))?;
        let lock_file = acquire_lock(&dir)?;
        check_version(&dir)?;

        let mut recovery = RecoveryReport::default();
        let mut bases = list_segments(&dir)?;
        let loaded_cursors = cursor::load_all(&dir)?;
        if bases.is_empty() {
            // Segments exist from the first open on; if they vanished, start past every cursor so
            // that no cursor points into positions that will be reused.
            let base = loaded_cursors
                .iter()
                .filter_map(|c| c.position)
                .max()
                .unwrap_or(0);
            create_segment_file(&dir, base)?;
            cursor::sync_dir(&dir)?;
            bases.push(base);
        }
        let segments = SegmentList::default();
        for pair in bases.windows(2) {
            let segment = Segment::open(&dir, pair[0])?;
            let len = segment.disk_len.load(Ordering::Relaxed);
            let span = pair[1] - pair[0];
            if len > span {
                return Err(QueueError::CorruptSegment {
                    path: segment.path.clone(),
                    offset: span,
                    reason: format!(
                        "segment holds {len} bytes but the next segment starts after {span}"
                    ),
                });
            }
            if len < span {
                tracing::warn!(path = %segment.path.display(), missing = span - len, "sealed segment is short; readers will skip the gap");
                recovery.short_segments.push((pair[0], span - len));
            }
            segments.insert(segment);
        }
        let last_base = *bases.last().unwrap_or(&0);
        let (head, boundaries) = recover_active_segment(&dir, last_base, &mut recovery)?;
        let active = segments.insert(Segment::open(&dir, last_base)?);
        let tail = segments.oldest_base().unwrap_or(last_base);
        recovery.segments = segments.len();
        recovery.tail = tail;
        recovery.head = head;

        let counters = Counters::default();
        if let Some(_at) = recovery.torn_tail_at {
            Counters::add(&counters.torn_tails_truncated, 1);
            Counters::add(
                &counters.torn_bytes_truncated,
                recovery.torn_bytes_truncated,
            );
        }

        let mut replicas = BTreeMap::new();
        for loaded in loaded_cursors {
            let position = match loaded.position {
                Some(position) => {
                    let adjusted = align_cursor(position, tail, head, last_base, &boundaries);
                    if adjusted != position {
                        tracing::warn!(replica = %loaded.replica, from = position, to = adjusted, "cursor adjusted on open");
                        recovery.cursors_adjusted.push(loaded.replica.clone());
                    }
                    adjusted
                }
                None => {
                    tracing::error!(replica = %loaded.replica, "cursor file damaged; replaying from the tail");
                    recovery.cursors_damaged.push(loaded.replica.clone());
                    tail
                }
            };
            if loaded.position != Some(position) {
                cursor::persist(&dir, &loaded.replica, position)?;
            }
            recovery.cursors.push((loaded.replica.clone(), position));
            replicas.insert(
                loaded.replica.clone(),
                ReplicaState::new(&loaded.replica, position),
            );
        }

        let disk_bytes = segments.disk_bytes();
        let staging = Staging {
            buf_start: head,
            active_base: last_base,
            disk_bytes,
            ..Staging::default()
        };
        let (progress, _) = watch::channel(Progress {
            visible_end: head,
            synced_end: head,
            failed: None,
            closed: false,
        });
        let read_cache_bytes = config.read_cache_bytes;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            memory: Semaphore::new(config.write_buffer_bytes as usize),
            config,
            staging: Mutex::new(staging),
            writer_wake: Condvar::new(),
            progress,
            segments,
            replicas: Mutex::new(replicas),
            counters,
            recent: RecentChunks::new(read_cache_bytes),
            maintenance_stop: Mutex::new(false),
            maintenance_wake: Condvar::new(),
            oldest_pending_ms: AtomicU64::new(0),
        });
        shared.maintain()?;

        let writer = Writer::new(shared.clone(), active, head)?;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("log")
            .to_string();
        let writer_thread = std::thread::Builder::new()
            .name(format!("queue-writer-{name}"))
            .spawn(move || writer.run())
            .map_err(|e| QueueError::io(&dir, e))?;
        let maintenance_shared = shared.clone();
        let maintenance_thread = std::thread::Builder::new()
            .name(format!("queue-maint-{name}"))
            .spawn(move || maintenance_shared.run_maintenance())
            .map_err(|e| QueueError::io(&dir, e))?;
        Ok(GroupLog {
            shared,
            recovery,
            threads: vec![writer_thread, maintenance_thread],
            _lock_file: lock_file,
        })
    }

    /// Appends one record (for the proxy: one group batch of newline-terminated lines) and
    /// returns once it is acknowledged per the fsync policy. Refuses with `QueueError::Full`,
    /// writing nothing, when the record would take the group over its disk or age cap.
    /// Cancel-safe in the sense that dropping the future never corrupts the log (the record may
    /// still be written, unacknowledged).
    pub async fn append(&self, payload: &[u8]) -> Result<AppendReceipt, QueueError> {
        self.append_parts(&[payload]).await
    }

    /// [`GroupLog::append`] for a record given as pieces (one record, the pieces back to back):
    /// the caller need not copy them into one buffer first.
    pub async fn append_parts(&self, parts: &[&[u8]]) -> Result<AppendReceipt, QueueError> {
        let shared = &self.shared;
        let size = parts.iter().map(|part| part.len() as u64).sum::<u64>();
        if size > shared.config.max_record_bytes {
            return Err(QueueError::RecordTooLarge {
                size,
                limit: shared.config.max_record_bytes,
            });
        }
        let frame_len = size + FRAME_HEADER_LEN;
        // A record larger than the whole buffer takes every permit and is staged alone.
        let permits = frame_len.min(shared.config.write_buffer_bytes) as u32;
        let permit = shared
            .memory
            .acquire_many(permits)
            .await
            .map_err(|_| QueueError::Closed)?;
        let appended_at = frame::now_unix_ms();
        let receipt = {
            let mut staging = lock(&shared.staging);
            if let Some(error) = &staging.failed {
                return Err(error.clone());
            }
            if staging.closing {
                return Err(QueueError::Closed);
            }
            shared.check_caps(&staging, frame_len)?;
            let start = staging.end();
            let segment_fill = start - staging.active_base;
            if segment_fill > 0 && segment_fill + frame_len > shared.config.segment_bytes {
                staging.rotations.push(start);
                staging.active_base = start;
            }
            frame::encode_parts_into(&mut staging.buf, parts, appended_at);
            staging.records += 1;
            staging.permits += permits as u64;
            staging.disk_bytes += frame_len;
            permit.forget();
            AppendReceipt {
                start,
                end: start + frame_len,
            }
        };
        shared.writer_wake.notify_one();
        let mut progress = shared.progress.subscribe();
        let outcome = progress
            .wait_for(|p| p.visible_end >= receipt.end || p.failed.is_some() || p.closed)
            .await
            .map_err(|_| QueueError::Closed)?;
        if outcome.visible_end >= receipt.end {
            Ok(receipt)
        } else {
            Err(outcome.failed.clone().unwrap_or(QueueError::Closed))
        }
    }

    /// Whether a record of `payload_len` bytes would be refused for the caps right now, without
    /// staging anything. A request spanning several groups asks every group first so that it is
    /// refused whole rather than stored in part (appends racing in between can still fill a
    /// group; then the caller gets `Full` from `append` as usual).
    pub fn check_room(&self, payload_len: usize) -> Result<(), QueueError> {
        let staging = lock(&self.shared.staging);
        if let Some(error) = &staging.failed {
            return Err(error.clone());
        }
        self.shared
            .check_caps(&staging, payload_len as u64 + FRAME_HEADER_LEN)
    }

    /// Registers a replica and persists its cursor before returning, so a crash right after
    /// cannot make it miss records. Blocking (one small fsynced file).
    pub fn add_replica(&self, name: &str, start: StartAt) -> Result<u64, QueueError> {
        cursor::validate_replica_name(name)?;
        let mut replicas = lock(&self.shared.replicas);
        if replicas.contains_key(name) {
            return Err(QueueError::ReplicaExists(name.to_string()));
        }
        let position = match start {
            StartAt::Head => self.shared.visible_end(),
            StartAt::Tail => self.shared.segments.oldest_base().unwrap_or(0),
        };
        cursor::persist(&self.shared.dir, name, position)?;
        replicas.insert(name.to_string(), ReplicaState::new(name, position));
        Ok(position)
    }

    /// The replica's committed position, adding it at the head if it is not known yet: what the
    /// proxy calls for every configured replica at startup.
    pub fn ensure_replica(&self, name: &str) -> Result<u64, QueueError> {
        if let Some(state) = lock(&self.shared.replicas).get(name) {
            return Ok(state.committed.load(Ordering::Acquire));
        }
        self.add_replica(name, StartAt::Head)
    }

    /// Forgets a replica: its cursor file is deleted and it no longer holds segments back. Its
    /// reader, if any, fails with `ReplicaRemoved`.
    pub fn remove_replica(&self, name: &str) -> Result<(), QueueError> {
        let mut replicas = lock(&self.shared.replicas);
        let state = replicas
            .remove(name)
            .ok_or_else(|| QueueError::UnknownReplica(name.to_string()))?;
        state.removed.store(true, Ordering::Release);
        cursor::remove(&self.shared.dir, name)?;
        drop(replicas);
        // Wake a reader waiting for data so it notices.
        self.shared.progress.send_modify(|_| {});
        Ok(())
    }

    pub fn replicas(&self) -> Vec<String> {
        lock(&self.shared.replicas).keys().cloned().collect()
    }

    /// The reader of one replica, starting at its committed position. One reader per replica at
    /// a time (`ReaderBusy` otherwise); dropping it frees the slot.
    pub fn reader(&self, name: &str) -> Result<Reader, QueueError> {
        let state = self.replica_state(name)?;
        if state.reader_active.swap(true, Ordering::AcqRel) {
            return Err(QueueError::ReaderBusy(name.to_string()));
        }
        Ok(Reader::new(self.shared.clone(), state))
    }

    fn replica_state(&self, name: &str) -> Result<Arc<ReplicaState>, QueueError> {
        lock(&self.shared.replicas)
            .get(name)
            .cloned()
            .ok_or_else(|| QueueError::UnknownReplica(name.to_string()))
    }

    /// Framed bytes the replica has not acknowledged; 0 means it is in sync.
    pub fn pending_bytes(&self, name: &str) -> Result<u64, QueueError> {
        let committed = self.replica_state(name)?.committed.load(Ordering::Acquire);
        Ok(self.shared.visible_end().saturating_sub(committed))
    }

    /// Age of the oldest record the replica has not acknowledged (`None`: in sync).
    pub fn oldest_pending_age(&self, name: &str) -> Result<Option<Duration>, QueueError> {
        let committed = self.replica_state(name)?.committed.load(Ordering::Acquire);
        Ok(self.shared.pending_age(committed))
    }

    /// Position after the last acknowledged record.
    pub fn head(&self) -> u64 {
        self.shared.visible_end()
    }

    /// Position of the oldest byte still on disk.
    pub fn tail(&self) -> u64 {
        self.shared.segments.oldest_base().unwrap_or(0)
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.shared.config
    }

    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Persists cursors and deletes passed segments now instead of at the next interval.
    /// Blocking (fsyncs).
    pub fn maintain(&self) -> Result<(), QueueError> {
        self.shared.maintain()
    }

    pub fn stats(&self) -> QueueStats {
        let mut stats = QueueStats::default();
        self.shared.counters.snapshot_into(&mut stats);
        stats.head = self.head();
        stats.synced = self.shared.progress.borrow().synced_end;
        stats.tail = self.tail();
        stats.read_cache_bytes = self.shared.recent.bytes();
        stats.disk_bytes = lock(&self.shared.staging).disk_bytes;
        stats.segments = self.shared.segments.len() as u64;
        let states: Vec<_> = lock(&self.shared.replicas).values().cloned().collect();
        stats.replicas = states
            .iter()
            .map(|state| {
                let committed = state.committed.load(Ordering::Acquire);
                ReplicaStats {
                    name: state.name.clone(),
                    committed,
                    persisted: state.persisted.load(Ordering::Acquire),
                    pending_bytes: stats.head.saturating_sub(committed),
                    oldest_pending_age: self.shared.pending_age(committed),
                }
            })
            .collect();
        stats
    }

    /// Flushes staged records, persists cursors and stops the background threads.
    pub fn close(mut self) -> Result<(), QueueError> {
        self.shutdown();
        self.shared
            .progress
            .borrow()
            .failed
            .clone()
            .map_or(Ok(()), Err)
    }

    fn shutdown(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        lock(&self.shared.staging).closing = true;
        self.shared.writer_wake.notify_all();
        *lock(&self.shared.maintenance_stop) = true;
        self.shared.maintenance_wake.notify_all();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!(dir = %self.shared.dir.display(), "queue background thread panicked");
            }
        }
    }
}

impl Drop for GroupLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn acquire_lock(dir: &Path) -> Result<File, QueueError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| QueueError::io(&path, e))?;
    // flock (not a pid file): the kernel drops it when the process dies, however it dies.
    // SAFETY: `file` owns a valid open descriptor for the duration of the call.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked == 0 {
        return Ok(file);
    }
    let error = std::io::Error::last_os_error();
    if error.kind() == std::io::ErrorKind::WouldBlock {
        Err(QueueError::Locked {
            path: dir.to_path_buf(),
        })
    } else {
        Err(QueueError::io(&path, error))
    }
}

fn check_version(dir: &Path) -> Result<(), QueueError> {
    let path = dir.join(VERSION_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if text == VERSION_TEXT => Ok(()),
        Ok(text) => Err(QueueError::CorruptSegment {
            path,
            offset: 0,
            reason: format!("unsupported queue format {:?}", text.trim()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::write(&path, VERSION_TEXT).map_err(|e| QueueError::io(&path, e))?;
            cursor::sync_dir(dir)
        }
        Err(e) => Err(QueueError::io(&path, e)),
    }
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, QueueError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| QueueError::io(dir, e))? {
        let entry = entry.map_err(|e| QueueError::io(dir, e))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_segment_file_name) {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn create_segment_file(dir: &Path, base: u64) -> Result<(), QueueError> {
    let path = dir.join(segment_file_name(base));
    OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map(drop)
        .map_err(|e| QueueError::io(&path, e))
}

/// Validates every frame of the active segment and cuts its torn tail. Returns the head and the
/// record boundaries (log positions) found.
fn recover_active_segment(
    dir: &Path,
    base: u64,
    recovery: &mut RecoveryReport,
) -> Result<(u64, Vec<u64>), QueueError> {
    let path = dir.join(segment_file_name(base));
    let bytes = fs::read(&path).map_err(|e| QueueError::io(&path, e))?;
    let report = frame::scan(&bytes);
    let torn = report.torn_bytes(bytes.len()) as u64;
    if torn > 0 {
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| QueueError::io(&path, e))?;
        file.set_len(report.valid_end as u64)
            .and_then(|()| file.sync_all())
            .map_err(|e| QueueError::io(&path, e))?;
        tracing::warn!(path = %path.display(), offset = report.valid_end, bytes = torn, "truncated torn tail of queue segment");
        recovery.torn_tail_at = Some(base + report.valid_end as u64);
        recovery.torn_bytes_truncated = torn;
    }
    for &(start, end) in &report.corrupt_ranges {
        tracing::error!(path = %path.display(), offset = start, bytes = end - start, "damaged records inside queue segment; readers will skip them");
        recovery
            .corrupt_ranges
            .push((base + start as u64, base + end as u64));
    }
    let boundaries = report.boundaries.iter().map(|&b| base + b as u64).collect();
    Ok((base + report.valid_end as u64, boundaries))
}

/// Clamps a loaded cursor into `[tail, head]` and, inside the active segment (the only one whose
/// boundaries are known), moves it back onto a record boundary: replaying one record is harmless,
/// skipping into the middle of one is not.
fn align_cursor(position: u64, tail: u64, head: u64, active_base: u64, boundaries: &[u64]) -> u64 {
    let clamped = position.clamp(tail, head);
    if clamped <= active_base || clamped == head {
        return clamped;
    }
    match boundaries.binary_search(&clamped) {
        Ok(_) => clamped,
        Err(index) => index.checked_sub(1).map_or(active_base, |i| boundaries[i]),
    }
}

#[cfg(test)]
mod tests {
    use super::align_cursor;

    #[test]
    fn cursors_are_clamped_and_aligned_to_record_boundaries() {
        let boundaries = [100, 130, 170];
        assert_eq!(align_cursor(50, 60, 200, 100, &boundaries), 60);
        assert_eq!(align_cursor(500, 60, 200, 100, &boundaries), 200);
        assert_eq!(align_cursor(130, 60, 200, 100, &boundaries), 130);
        assert_eq!(align_cursor(150, 60, 200, 100, &boundaries), 130);
        assert_eq!(align_cursor(80, 60, 200, 100, &boundaries), 80);
    }
}
