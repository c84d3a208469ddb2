//! Documents the replicas of one group answered alike, parsed once. Replicas in sync hold the
//! same data, so for a raw `SELECT` they send the same chunks byte for byte. The first reader
//! to come to a position in its answer leaves its document there with a cell for the parsed
//! chunk; a sibling that finds the same bytes at the same position shares the cell (waiting for
//! the parse if it is under way) instead of decoding and re-encoding every row again. The merge
//! still gets every replica's chunk and still takes the union: this only saves the work, never
//! a comparison. It must never hand a chunk to a reader whose bytes differ, and never hold more
//! than [`KEPT`] documents, whatever a lagging or diverging replica does.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

use crate::influxql::merge::chunk::Chunk;

/// Documents kept for siblings. Readers run at most a few chunks apart (each feeds the merge
/// through a short channel), so a document older than this will not be asked for.
const KEPT: usize = 4;

/// A document's parsed chunk, filled by whichever reader gets to it first.
pub(super) type ChunkCell = Arc<OnceCell<Chunk>>;

struct Kept {
    /// Position in the answer (0 for the first document).
    position: u64,
    document: Bytes,
    chunk: ChunkCell,
    /// Siblings that have not come to this position yet.
    awaited: usize,
}

/// What the readers of one group share.
pub(super) struct Twins {
    kept: Mutex<Vec<Kept>>,
    siblings: usize,
}

impl Twins {
    /// For a group whose `replicas` are all asked.
    pub(super) fn new(replicas: usize) -> Self {
        Twins {
            kept: Mutex::new(Vec::with_capacity(KEPT)),
            siblings: replicas.saturating_sub(1),
        }
    }

    /// The cell for the chunk of `document` at `position`: shared with the siblings that sent
    /// the same bytes there; `None` when a sibling sent other bytes there (parse it alone).
    pub(super) fn cell(&self, position: u64, document: &Bytes) -> Option<ChunkCell> {
        if self.siblings == 0 {
            return None;
        }
        let mut kept = self.kept.lock().ok()?;
        if let Some(at) = kept.iter().position(|k| k.position == position) {
            let entry = &mut kept[at];
            entry.awaited = entry.awaited.saturating_sub(1);
            let cell = (entry.document == *document).then(|| entry.chunk.clone());
            if entry.awaited == 0 {
                kept.swap_remove(at);
            }
            return cell;
        }
        if kept.len() >= KEPT
            && let Some(oldest) = kept
                .iter()
                .enumerate()
                .min_by_key(|(_, k)| k.position)
                .map(|(i, _)| i)
        {
            kept.swap_remove(oldest);
        }
        let cell = ChunkCell::default();
        kept.push(Kept {
            position,
            document: document.clone(),
            chunk: cell.clone(),
            awaited: self.siblings,
        });
        Some(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siblings_with_the_same_bytes_at_the_same_position_share_one_cell() {
        let twins = Twins::new(3);
        let document = Bytes::from_static(b"doc0");
        let first = twins.cell(0, &document).unwrap();
        // Different bytes at that position: parse alone.
        assert!(twins.cell(0, &Bytes::from_static(b"other")).is_none());
        // The third replica gets the first one's cell, then the position is forgotten (every
        // sibling came by): a fourth visit starts afresh.
        let third = twins.cell(0, &document).unwrap();
        assert!(Arc::ptr_eq(&first, &third));
        let again = twins.cell(0, &document).unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        // The same bytes at another position are another document.
        let elsewhere = twins.cell(1, &document).unwrap();
        assert!(!Arc::ptr_eq(&first, &elsewhere));
    }

    #[test]
    fn never_more_than_kept_documents_and_the_oldest_goes_first() {
        let twins = Twins::new(2);
        let cells: Vec<ChunkCell> = (0..10u64)
            .map(|position| {
                twins
                    .cell(position, &Bytes::from(format!("doc{position}")))
                    .unwrap()
            })
            .collect();
        assert_eq!(twins.kept.lock().unwrap().len(), KEPT);
        // 6 and 9 are still shared; position 5 was let go: a late sibling starts a new cell.
        assert!(Arc::ptr_eq(
            &twins.cell(6, &Bytes::from("doc6")).unwrap(),
            &cells[6]
        ));
        assert!(Arc::ptr_eq(
            &twins.cell(9, &Bytes::from("doc9")).unwrap(),
            &cells[9]
        ));
        assert!(!Arc::ptr_eq(
            &twins.cell(5, &Bytes::from("doc5")).unwrap(),
            &cells[5]
        ));
        assert!(twins.kept.lock().unwrap().len() <= KEPT);
    }

    #[test]
    fn a_lone_replica_shares_nothing() {
        let twins = Twins::new(1);
        assert!(twins.cell(0, &Bytes::from_static(b"doc")).is_none());
        assert!(twins.kept.lock().unwrap().is_empty());
    }
}
