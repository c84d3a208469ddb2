//! The tail of the log kept in memory: the chunks the writer just wrote, shared by every replica's
//! reader, so that replicas keeping up read each record from memory once written instead of each
//! reading (and checksumming) the same bytes back from the page cache. Readers that fell behind
//! the cached window read the segment files as before.
//!
//! It must never hold bytes that were not written to the log file first (a reader could otherwise
//! send a record the log could still lose), never hand out a partial frame, and never grow past
//! its byte cap (the oldest chunks are dropped; memory still referenced by a batch in flight is
//! freed when that batch is).

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;

/// A run of whole frames and the log position of its first byte.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    pub start: u64,
    pub bytes: Bytes,
}

impl Chunk {
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

#[derive(Debug, Default)]
struct Window {
    chunks: VecDeque<Chunk>,
    bytes: u64,
}

/// Recently written chunks, oldest first, contiguous in log positions.
#[derive(Debug)]
pub(crate) struct RecentChunks {
    window: Mutex<Window>,
    cap: u64,
}

impl RecentChunks {
    pub fn new(cap: u64) -> Self {
        RecentChunks {
            window: Mutex::new(Window::default()),
            cap,
        }
    }

    /// Adds a chunk the writer has just written (whole frames from `start`). A chunk that does not
    /// continue the previous one (after a failed write, a rotation gap) resets the window.
    pub fn push(&self, start: u64, bytes: Bytes) {
        if self.cap == 0 || bytes.is_empty() {
            return;
        }
        let mut window = super::lock(&self.window);
        if window.chunks.back().is_some_and(|last| last.end() != start) {
            window.chunks.clear();
            window.bytes = 0;
        }
        window.bytes += bytes.len() as u64;
        window.chunks.push_back(Chunk { start, bytes });
        while window.bytes > self.cap && window.chunks.len() > 1 {
            if let Some(old) = window.chunks.pop_front() {
                window.bytes -= old.bytes.len() as u64;
            }
        }
        if window.bytes > self.cap {
            // A single chunk larger than the cap is not kept.
            window.chunks.clear();
            window.bytes = 0;
        }
    }

    /// The chunk holding `position`, if it is still cached.
    pub fn chunk_at(&self, position: u64) -> Option<Chunk> {
        let window = super::lock(&self.window);
        let first = window.chunks.front()?;
        if position < first.start {
            return None;
        }
        // Chunks are contiguous and sorted: binary search on their starts.
        let index = window
            .chunks
            .partition_point(|chunk| chunk.start <= position)
            .checked_sub(1)?;
        let chunk = window.chunks.get(index)?;
        (position < chunk.end()).then(|| chunk.clone())
    }

    /// Bytes currently held.
    pub fn bytes(&self) -> u64 {
        super::lock(&self.window).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_positions_inside_cached_chunks_only() {
        let recent = RecentChunks::new(100);
        recent.push(10, Bytes::from_static(&[0; 20]));
        recent.push(30, Bytes::from_static(&[0; 20]));
        assert!(recent.chunk_at(9).is_none());
        assert_eq!(recent.chunk_at(10).map(|c| c.start), Some(10));
        assert_eq!(recent.chunk_at(29).map(|c| c.start), Some(10));
        assert_eq!(recent.chunk_at(30).map(|c| c.start), Some(30));
        assert!(recent.chunk_at(50).is_none());
    }

    #[test]
    fn stays_under_its_cap_dropping_the_oldest() {
        let recent = RecentChunks::new(50);
        for i in 0..10u64 {
            recent.push(i * 20, Bytes::from_static(&[0; 20]));
        }
        assert!(recent.bytes() <= 50);
        assert!(recent.chunk_at(0).is_none());
        assert_eq!(recent.chunk_at(185).map(|c| c.start), Some(180));
    }

    #[test]
    fn a_gap_resets_the_window() {
        let recent = RecentChunks::new(100);
        recent.push(0, Bytes::from_static(&[0; 10]));
        recent.push(50, Bytes::from_static(&[0; 10]));
        assert!(recent.chunk_at(5).is_none());
        assert_eq!(recent.chunk_at(55).map(|c| c.start), Some(50));
    }

    #[test]
    fn zero_cap_disables_it() {
        let recent = RecentChunks::new(0);
        recent.push(0, Bytes::from_static(&[0; 10]));
        assert!(recent.chunk_at(0).is_none());
    }
}
