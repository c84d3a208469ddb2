//! The group-commit writer: appenders copy framed records into a shared staging buffer under a
//! short lock; one writer thread per log takes the whole buffer (padded to a block boundary when it
//! writes with `O_DIRECT`, see the module doc of `queue`), writes it with one `write()` and
//! (policy permitting) one `fdatasync`, then publishes the new end so every appender whose record
//! it covered is acknowledged at once. It must never publish an end it has not written (and, under
//! `FsyncPolicy::Always`, synced), and after a failed write it acknowledges nothing more.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::config::FsyncPolicy;
use super::cursor::sync_dir;
use super::error::QueueError;
use super::frame;
use super::lock;
use super::log::Shared;
use super::segment::{Segment, segment_file_name};
use super::stats::Counters;

/// Records accepted but not yet taken by the writer. Guarded by `Shared::staging`.
#[derive(Debug, Default)]
pub(crate) struct Staging {
    pub buf: Vec<u8>,
    /// Log position of `buf[0]`.
    pub buf_start: u64,
    /// Positions inside `buf` where a new segment must start.
    pub rotations: Vec<u64>,
    pub records: u64,
    /// Write-buffer permits held by the staged records, released once they are written.
    pub permits: u64,
    /// Base of the segment the next staged record goes to.
    pub active_base: u64,
    /// Bytes of all segment files including staged records: what the disk cap is checked against.
    pub disk_bytes: u64,
    /// Set forever by the first failed write: nothing after it can be acknowledged.
    pub failed: Option<QueueError>,
    pub closing: bool,
}

impl Staging {
    pub fn end(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }
}

/// What appenders and readers watch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// End of the acknowledged records: written, and synced under `FsyncPolicy::Always`. Readers
    /// never read past it, so a replica never receives a record the log could still lose.
    pub visible_end: u64,
    pub synced_end: u64,
    pub failed: Option<QueueError>,
    pub closed: bool,
}

struct Taken {
    buf: Vec<u8>,
    start: u64,
    rotations: Vec<u64>,
    records: u64,
    permits: u64,
    closing: bool,
}

/// The block size direct writes are aligned to (offsets, lengths and the buffer's address).
const DIRECT_BLOCK: u64 = 4096;

pub(crate) struct Writer {
    shared: Arc<Shared>,
    /// The active segment, for positional buffered writes and `fdatasync`.
    active: File,
    /// The same file opened with `O_DIRECT`, while direct I/O is on.
    active_direct: Option<File>,
    /// Reused scratch space from which block-aligned pieces are written with `O_DIRECT`.
    direct_buffer: Vec<u8>,
    active_path: PathBuf,
    active_segment: Arc<Segment>,
    written_end: u64,
    synced_end: u64,
    unsynced_since: Option<Instant>,
    failed: bool,
}

/// Makes appenders fail instead of waiting forever if the writer thread panics.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0.staging).failed = Some(QueueError::Closed);
            self.0.progress.send_modify(|p| {
                p.failed = Some(QueueError::Closed);
                p.closed = true;
            });
            self.0.memory.close();
        }
    }
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        active_segment: Arc<Segment>,
        end: u64,
    ) -> Result<Self, QueueError> {
        let active_path = active_segment.path.clone();
        let active = OpenOptions::new()
            .write(true)
            .open(&active_path)
            .map_err(|e| QueueError::io(&active_path, e))?;
        let active_direct = if shared.config.direct_io {
            open_direct(&active_path)
        } else {
            None
        };
        Ok(Writer {
            shared,
            active,
            active_direct,
            direct_buffer: Vec::new(),
            active_path,
            active_segment,
            written_end: end,
            synced_end: end,
            unsynced_since: None,
            failed: false,
        })
    }

    pub fn run(mut self) {
        let shared = self.shared.clone();
        let _guard = PanicGuard(&shared);
        let mut spare = Vec::new();
        loop {
            let mut taken = self.take(std::mem::take(&mut spare));
            let taken_len = taken.buf.len();
            if !taken.buf.is_empty() {
                self.write_and_publish(&mut taken);
            }
            let sync_due = self
                .sync_deadline()
                .is_some_and(|deadline| Instant::now() >= deadline);
            if sync_due {
                if let Err(error) = self.sync() {
                    self.fail(error);
                }
            }
            if taken.closing {
                if !self.failed {
                    if let Err(error) = self.sync() {
                        self.fail(error);
                    }
                }
                shared.progress.send_modify(|p| {
                    p.closed = true;
                    p.synced_end = self.synced_end;
                });
                shared.memory.close();
                return;
            }
            spare = taken.buf;
            if spare.capacity() == 0 {
                // The buffer went to the in-memory tail; start the next one at about the size
                // this one reached so appenders rarely reallocate.
                spare =
                    Vec::with_capacity(taken_len.min(shared.config.write_buffer_bytes as usize));
            }
            spare.clear();
            spare.shrink_to(shared.config.write_buffer_bytes as usize);
        }
    }

    fn sync_deadline(&self) -> Option<Instant> {
        match self.shared.config.fsync {
            FsyncPolicy::Interval(every) => self.unsynced_since.map(|since| since + every),
            FsyncPolicy::Always | FsyncPolicy::Never => None,
        }
    }

    /// Waits for staged records (or the fsync timer, or closing) and takes them all.
    fn take(&self, spare: Vec<u8>) -> Taken {
        let mut staging = lock(&self.shared.staging);
        while staging.buf.is_empty() && !staging.closing {
            match self.sync_deadline() {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    staging = self
                        .shared
                        .writer_wake
                        .wait_timeout(staging, deadline - now)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                }
                None => {
                    staging = self
                        .shared
                        .writer_wake
                        .wait(staging)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
        }
        // Only a writer that writes direct pads: a commit must end on a block to go direct.
        if self.active_direct.is_some()
            && !staging.buf.is_empty()
            && staging.buf.len() as u64 >= self.shared.config.direct_io_min_bytes
        {
            let filled = staging.end() - staging.active_base;
            let padding = frame::padding_to(filled, DIRECT_BLOCK);
            if padding > 0 {
                frame::encode_padding_into(&mut staging.buf, padding, frame::now_unix_ms());
                staging.disk_bytes += padding;
                Counters::add(&self.shared.counters.padding_bytes, padding);
            }
        }
        let start = staging.buf_start;
        let buf = std::mem::replace(&mut staging.buf, spare);
        staging.buf_start = start + buf.len() as u64;
        Taken {
            buf,
            start,
            rotations: std::mem::take(&mut staging.rotations),
            records: std::mem::take(&mut staging.records),
            permits: std::mem::take(&mut staging.permits),
            closing: staging.closing,
        }
    }

    fn write_and_publish(&mut self, taken: &mut Taken) {
        if self.failed {
            let mut staging = lock(&self.shared.staging);
            staging.disk_bytes = staging.disk_bytes.saturating_sub(taken.buf.len() as u64);
        } else {
            match self.write_taken(taken) {
                Ok(()) => {
                    let counters = &self.shared.counters;
                    Counters::add(&counters.bytes_appended, taken.buf.len() as u64);
                    Counters::add(&counters.records_appended, taken.records);
                    if self.shared.config.read_cache_bytes > 0 {
                        // Written (and synced if the policy says so): readers may have it.
                        let written = Bytes::from(std::mem::take(&mut taken.buf));
                        self.shared.recent.push(taken.start, written);
                    }
                    let (visible_end, synced_end) = (self.written_end, self.synced_end);
                    self.shared.progress.send_modify(|p| {
                        p.visible_end = visible_end;
                        p.synced_end = synced_end;
                    });
                }
                Err(error) => self.fail(error),
            }
        }
        self.shared.memory.add_permits(taken.permits as usize);
    }

    /// After a failed write or fsync nothing is retried: the kernel may have dropped the data, so
    /// a retry that succeeds could acknowledge records that are not on disk.
    fn fail(&mut self, error: QueueError) {
        self.failed = true;
        self.unsynced_since = None;
        tracing::error!(dir = %self.shared.dir.display(), %error, "queue write failed; log stops accepting appends until reopened");
        Counters::add(&self.shared.counters.write_errors, 1);
        lock(&self.shared.staging).failed = Some(error.clone());
        self.shared.progress.send_modify(|p| {
            if p.failed.is_none() {
                p.failed = Some(error);
            }
        });
    }

    fn write_taken(&mut self, taken: &Taken) -> Result<(), QueueError> {
        let mut offset = 0;
        for &rotation in &taken.rotations {
            let cut = (rotation - taken.start) as usize;
            self.write_piece(&taken.buf[offset..cut])?;
            offset = cut;
            self.rotate(rotation)?;
        }
        self.write_piece(&taken.buf[offset..])?;
        if self.shared.config.fsync == FsyncPolicy::Always {
            self.sync()?;
        }
        Ok(())
    }

    fn write_piece(&mut self, bytes: &[u8]) -> Result<(), QueueError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let file_offset = self.written_end - self.active_segment.base;
        let end_offset = file_offset + bytes.len() as u64;
        // A piece that ends on a block boundary (a padded commit) goes direct from its first
        // boundary on; the bytes before it complete a block that buffered writes started. Each
        // block is thus written either buffered or exactly once direct, never both.
        let buffered_len = if self.active_direct.is_some() && end_offset % DIRECT_BLOCK == 0 {
            (((DIRECT_BLOCK - file_offset % DIRECT_BLOCK) % DIRECT_BLOCK) as usize).min(bytes.len())
        } else {
            bytes.len()
        };
        let (buffered, direct) = bytes.split_at(buffered_len);
        if !buffered.is_empty() {
            self.active
                .write_all_at(buffered, file_offset)
                .map_err(|e| QueueError::io(&self.active_path, e))?;
        }
        if !direct.is_empty() {
            self.write_direct(direct, file_offset + buffered_len as u64)?;
        }
        let len = bytes.len() as u64;
        self.written_end += len;
        self.active_segment
            .disk_len
            .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        Counters::add(&self.shared.counters.writes, 1);
        self.unsynced_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Writes whole blocks at a block-aligned offset with `O_DIRECT`, or buffered once the
    /// filesystem has refused `O_DIRECT`.
    fn write_direct(&mut self, blocks: &[u8], file_offset: u64) -> Result<(), QueueError> {
        if let Some(direct) = &self.active_direct {
            let buffer = aligned_copy(&mut self.direct_buffer, blocks);
            match direct.write_all_at(buffer, file_offset) {
                Ok(()) => {
                    Counters::add(&self.shared.counters.direct_writes, 1);
                    return Ok(());
                }
                // Refused before anything was written: this filesystem has no O_DIRECT.
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::warn!(path = %self.active_path.display(), %error, "O_DIRECT write refused; the log writes buffered from now on");
                    self.active_direct = None;
                }
                Err(error) => return Err(QueueError::io(&self.active_path, error)),
            }
        }
        self.active
            .write_all_at(blocks, file_offset)
            .map_err(|e| QueueError::io(&self.active_path, e))
    }

    fn sync(&mut self) -> Result<(), QueueError> {
        if self.synced_end == self.written_end {
            self.unsynced_since = None;
            return Ok(());
        }
        self.active
            .sync_data()
            .map_err(|e| QueueError::io(&self.active_path, e))?;
        Counters::add(&self.shared.counters.fsyncs, 1);
        self.synced_end = self.written_end;
        self.unsynced_since = None;
        let synced_end = self.synced_end;
        // Recorded for stats only: nobody waits on it, so no wake-up.
        self.shared.progress.send_if_modified(|p| {
            p.synced_end = synced_end;
            false
        });
        Ok(())
    }

    /// Seals the active segment (synced unless the policy is `Never`) and starts one at `base`,
    /// whose directory entry is synced before any record in it can be acknowledged.
    fn rotate(&mut self, base: u64) -> Result<(), QueueError> {
        let durable = self.shared.config.fsync != FsyncPolicy::Never;
        if durable {
            self.sync()?;
        }
        let dir = &self.shared.dir;
        let path = dir.join(segment_file_name(base));
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(|e| QueueError::io(&path, e))?;
        if durable {
            sync_dir(dir)?;
        }
        self.active_direct = if self.active_direct.is_some() {
            open_direct(&path)
        } else {
            None
        };
        let segment = Segment::open(dir, base)?;
        self.active_segment = self.shared.segments.insert(segment);
        self.active = file;
        self.active_path = path;
        if durable {
            self.synced_end = self.written_end;
            self.unsynced_since = None;
        }
        Counters::add(&self.shared.counters.segments_created, 1);
        Ok(())
    }
}

/// The file opened for `O_DIRECT` writes, or `None` (logged) where the filesystem refuses it.
fn open_direct(path: &Path) -> Option<File> {
    match OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
    {
        Ok(file) => Some(file),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot open the queue segment with O_DIRECT; writing buffered");
            None
        }
    }
}

/// `bytes` copied to a `DIRECT_BLOCK`-aligned address inside `scratch` (grown as needed).
fn aligned_copy<'a>(scratch: &'a mut Vec<u8>, bytes: &[u8]) -> &'a [u8] {
    let block = DIRECT_BLOCK as usize;
    if scratch.len() < bytes.len() + block {
        *scratch = vec![0; bytes.len() + block];
    }
    let start = scratch.as_ptr().align_offset(block);
    let target = &mut scratch[start..start + bytes.len()];
    target.copy_from_slice(bytes);
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_copies_start_on_a_block_boundary() {
        let mut scratch = Vec::new();
        let bytes = vec![7u8; 8192];
        let copy = aligned_copy(&mut scratch, &bytes);
        assert_eq!(copy.as_ptr() as usize % DIRECT_BLOCK as usize, 0);
        assert_eq!(copy, &bytes[..]);
    }
}
