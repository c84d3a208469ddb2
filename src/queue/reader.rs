//! A replica's reader: hands its sender whole records from the replica's position, from the log's
//! in-memory tail or the segment files, and takes back commits once the backend acknowledged them.
//! Padding frames are stepped over. It must never hand out a record whose checksum does not match
//! (or a padding frame), never split a record, and never let a commit move past what it handed out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tokio::sync::watch;

use super::error::QueueError;
use super::frame::{self, FRAME_HEADER_LEN, FrameHeader};
use super::log::{ReplicaState, Shared};
use super::segment::Segment;
use super::stats::Counters;
use super::writer::Progress;

/// Whole records read for one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Position of the first byte covered (the reader's position before this batch).
    pub start: u64,
    /// Position after the last record covered: what to `commit` once the backend acknowledged.
    pub end: u64,
    /// Each record's payload (newline-terminated line protocol for the proxy): shared slices of
    /// the log's in-memory tail when the replica keeps up, of a file read otherwise.
    records: Vec<Bytes>,
    record_ends: Vec<u64>,
    /// When the first record of the batch was appended.
    pub first_appended_at: Option<SystemTime>,
    /// Damaged bytes inside `[start, end)` that were skipped (and counted) instead of returned.
    pub skipped_corrupt_bytes: u64,
}

impl Batch {
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Payload bytes in the batch.
    pub fn payload_len(&self) -> usize {
        self.records.iter().map(Bytes::len).sum()
    }

    /// Each record's payload, in log order.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        self.records.iter().map(|record| &record[..])
    }

    /// Each record's payload as shared bytes (cheap to clone and to slice), in log order.
    pub fn record_bytes(&self) -> &[Bytes] {
        &self.records
    }

    /// Each record's payload with the position just after it: a valid `commit` point when the
    /// backend acknowledged the records up to that one but not the rest of the batch.
    pub fn records_with_end(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.records().zip(self.record_ends.iter().copied())
    }

    /// The records' payloads back to back (a copy; for tests and tools).
    pub fn payload(&self) -> Vec<u8> {
        self.records.concat()
    }

    fn push(&mut self, payload: Bytes, end: u64, header: &FrameHeader) {
        self.first_appended_at
            .get_or_insert_with(|| header.appended_at());
        self.records.push(payload);
        self.record_ends.push(end);
    }
}

/// The sender's handle on one replica's position in the log.
pub struct Reader {
    shared: Arc<Shared>,
    state: Arc<ReplicaState>,
    read_position: u64,
    progress: watch::Receiver<Progress>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("replica", &self.state.name)
            .field("read_position", &self.read_position)
            .finish_non_exhaustive()
    }
}

impl Reader {
    pub(crate) fn new(shared: Arc<Shared>, state: Arc<ReplicaState>) -> Self {
        let read_position = state.committed.load(Ordering::Acquire);
        let progress = shared.progress.subscribe();
        Reader {
            shared,
            state,
            read_position,
            progress,
        }
    }

    pub fn replica(&self) -> &str {
        &self.state.name
    }

    /// Waits until records are available after the read position, then returns whole records
    /// totalling at most `max_bytes` of payload (always at least one record, even if larger).
    /// A batch may hold no record when it only covers a damaged range that was skipped
    /// (`skipped_corrupt_bytes > 0`): commit its `end` all the same.
    /// Successive calls continue where the previous batch ended; `rewind` goes back to the
    /// committed position (to resend after a backend failure). Cancel-safe.
    pub async fn next_batch(&mut self, max_bytes: usize) -> Result<Batch, QueueError> {
        let end = self.wait_for_data().await?;
        let shared = self.shared.clone();
        let from = self.read_position;
        let batch = tokio::task::spawn_blocking(move || read_batch(&shared, from, end, max_bytes))
            .await
            .map_err(|join| {
                QueueError::io(&self.shared.dir, std::io::Error::other(join.to_string()))
            })??;
        self.read_position = batch.end;
        Ok(batch)
    }

    /// Like `next_batch` but never waits: `None` when nothing is available. Reads on the calling
    /// thread (blocking file I/O, normally served from the page cache).
    pub fn try_next_batch(&mut self, max_bytes: usize) -> Result<Option<Batch>, QueueError> {
        self.check_removed()?;
        let end = self.shared.visible_end();
        if end <= self.read_position {
            return Ok(None);
        }
        let batch = read_batch(&self.shared, self.read_position, end, max_bytes)?;
        self.read_position = batch.end;
        Ok(Some(batch))
    }

    fn check_removed(&self) -> Result<(), QueueError> {
        if self.state.removed.load(Ordering::Acquire) {
            return Err(QueueError::ReplicaRemoved(self.state.name.clone()));
        }
        Ok(())
    }

    async fn wait_for_data(&mut self) -> Result<u64, QueueError> {
        let position = self.read_position;
        let state = self.state.clone();
        let progress = self
            .progress
            .wait_for(|p| {
                p.visible_end > position || p.closed || state.removed.load(Ordering::Acquire)
            })
            .await
            .map_err(|_| QueueError::Closed)?;
        let end = progress.visible_end;
        drop(progress);
        self.check_removed()?;
        if end > position {
            Ok(end)
        } else {
            Err(QueueError::Closed)
        }
    }

    /// Records that the backend acknowledged everything before `position` (a `Batch::end`). The
    /// cursor file follows within one `cursor_sync_interval`.
    pub fn commit(&mut self, position: u64) -> Result<(), QueueError> {
        let committed = self.state.committed.load(Ordering::Acquire);
        if position < committed || position > self.read_position {
            return Err(QueueError::InvalidCommit {
                position,
                committed,
                read: self.read_position,
            });
        }
        self.state.committed.store(position, Ordering::Release);
        Ok(())
    }

    /// Moves the read position back to the committed position.
    pub fn rewind(&mut self) {
        self.read_position = self.committed();
    }

    pub fn committed(&self) -> u64 {
        self.state.committed.load(Ordering::Acquire)
    }

    pub fn read_position(&self) -> u64 {
        self.read_position
    }

    /// Framed bytes not yet acknowledged by this replica's backend; 0 means in sync.
    pub fn pending_bytes(&self) -> u64 {
        self.shared.visible_end().saturating_sub(self.committed())
    }

    pub fn oldest_pending_age(&self) -> Option<Duration> {
        self.shared.pending_age(self.committed())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.state.reader_active.store(false, Ordering::Release);
    }
}

/// Reads whole valid records from `from` up to `end`, skipping damaged ranges (counted): from
/// the in-memory tail while it holds the position, else from the segment files.
fn read_batch(shared: &Shared, from: u64, end: u64, max_bytes: usize) -> Result<Batch, QueueError> {
    let mut batch = Batch {
        start: from,
        end: from,
        ..Batch::default()
    };
    let mut payload_bytes = 0usize;
    let mut position = from;
    let mut header = [0u8; FRAME_HEADER_LEN as usize];
    'records: while position < end {
        if let Some(chunk) = shared.recent.chunk_at(position) {
            // Written by this process and never read back from disk: no checksum to verify.
            let limit = chunk.end().min(end);
            while position < limit {
                let offset = (position - chunk.start) as usize;
                let Some(header_bytes) = chunk
                    .bytes
                    .get(offset..offset + FRAME_HEADER_LEN as usize)
                    .and_then(|h| <&[u8; FRAME_HEADER_LEN as usize]>::try_from(h).ok())
                else {
                    break; // not a whole frame in memory: let the file path judge it
                };
                let frame = FrameHeader::decode(header_bytes);
                let len = frame.len as usize;
                if position + frame.frame_len() > limit {
                    break;
                }
                if frame.padding {
                    position += frame.frame_len();
                    continue;
                }
                if !batch.is_empty() && payload_bytes + len > max_bytes {
                    break 'records;
                }
                let payload_at = offset + FRAME_HEADER_LEN as usize;
                position += frame.frame_len();
                payload_bytes += len;
                batch.push(
                    chunk.bytes.slice(payload_at..payload_at + len),
                    position,
                    &frame,
                );
            }
            if position >= limit || position >= end {
                continue;
            }
        }
        let Some((segment, next_base)) = shared.segments.containing(position) else {
            // Before the oldest segment: cannot happen for a registered replica (segments are
            // only deleted once every persisted cursor passed them); skip to what exists.
            let oldest = shared.segments.oldest_base().unwrap_or(end).min(end);
            if oldest <= position {
                break;
            }
            skip(shared, &mut batch, position, oldest, None);
            position = oldest;
            continue;
        };
        let segment_end = next_base.map_or(end, |next| next.min(end));
        let available = segment_end - position;
        let frame = (available >= FRAME_HEADER_LEN)
            .then(|| segment.read_exact_at(&mut header, position).ok())
            .flatten()
            .map(|()| FrameHeader::decode(&header))
            .filter(|h| h.frame_len() <= available);
        if let Some(frame) = frame {
            let len = frame.len as usize;
            if !frame.padding && !batch.is_empty() && payload_bytes + len > max_bytes {
                break;
            }
            let mut payload = vec![0u8; len];
            let intact = segment
                .read_exact_at(&mut payload, position + FRAME_HEADER_LEN)
                .is_ok()
                && frame.matches(&header, &payload);
            if intact {
                position += frame.frame_len();
                if !frame.padding {
                    payload_bytes += len;
                    batch.push(Bytes::from(payload), position, &frame);
                }
                continue;
            }
        }
        let resume = resync(&segment, position, segment_end)?;
        skip(shared, &mut batch, position, resume, Some(&segment));
        position = resume;
    }
    batch.end = position;
    Ok(batch)
}

/// The next valid frame after a damaged one at `position`, or the segment's end.
fn resync(segment: &Segment, position: u64, segment_end: u64) -> Result<u64, QueueError> {
    let from = position + 1;
    let region = segment.read_up_to(from, (segment_end - from) as usize)?;
    Ok(frame::next_valid_frame(&region, 0).map_or(segment_end, |offset| from + offset as u64))
}

fn skip(shared: &Shared, batch: &mut Batch, from: u64, to: u64, segment: Option<&Segment>) {
    let path = segment
        .map(|s| s.path.display().to_string())
        .unwrap_or_default();
    tracing::error!(
        path,
        offset = from,
        bytes = to - from,
        "skipping damaged or missing queue records"
    );
    Counters::add(&shared.counters.corrupt_regions_skipped, 1);
    Counters::add(&shared.counters.corrupt_bytes_skipped, to - from);
    batch.skipped_corrupt_bytes += to - from;
}
