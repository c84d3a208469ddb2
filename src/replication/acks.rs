//! Backend acknowledgements per group, for the consistency wait: each replica's sender publishes
//! the log position up to which its backend has stored everything (or dead-lettered what it
//! refused, with the refusal); a write handler waits until enough replicas have passed the end of
//! its record and then learns which of its lines a backend refused. It never decides that data is
//! safe: only senders, after a backend said so, move a replica's acknowledged position.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// Acknowledged positions of one group's replicas (in the group's replica order).
#[derive(Debug)]
pub struct GroupAcks {
    positions: watch::Sender<Vec<u64>>,
    /// Recent refusals, oldest first, bounded: a waiter only looks at records it just appended.
    rejections: Mutex<VecDeque<Rejection>>,
}

/// Lines of the record at `[start, end)` that a backend refused (and that were dead-lettered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub start: u64,
    pub end: u64,
    pub replica: usize,
    /// The backend's message, e.g. `partial write: field type conflict: ...`.
    pub message: String,
    pub lines: usize,
}

const MAX_REMEMBERED_REJECTIONS: usize = 4096;

/// The wait ended before enough replicas acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{acked} of {required} required replicas acknowledged within {waited:?}")]
pub struct AckTimeout {
    pub acked: usize,
    pub required: usize,
    pub waited: Duration,
}

impl GroupAcks {
    /// `initial[i]` is replica i's committed position when its sender starts.
    pub fn new(initial: Vec<u64>) -> Self {
        GroupAcks {
            positions: watch::Sender::new(initial),
            rejections: Mutex::new(VecDeque::new()),
        }
    }

    /// A backend refused lines of the record at `[start, end)`. Publish before the position that
    /// passes the record, so a waiter that sees the position also sees the refusal.
    pub fn publish_rejection(&self, rejection: Rejection) {
        let mut rejections = self.rejections.lock().unwrap_or_else(|p| p.into_inner());
        if rejections.len() >= MAX_REMEMBERED_REJECTIONS {
            rejections.pop_front();
        }
        rejections.push_back(rejection);
    }

    /// Refusals of lines of the record at `[start, end)`, one per replica and message.
    pub fn rejections_of(&self, start: u64, end: u64) -> Vec<Rejection> {
        let rejections = self.rejections.lock().unwrap_or_else(|p| p.into_inner());
        let mut found: Vec<Rejection> = Vec::new();
        for r in rejections.iter().filter(|r| r.start < end && start < r.end) {
            if let Some(same) = found
                .iter_mut()
                .find(|f| f.replica == r.replica && f.message == r.message)
            {
                same.lines += r.lines;
            } else {
                found.push(r.clone());
            }
        }
        found
    }

    /// Replica `replica` has everything before `position` stored in its backend.
    pub fn publish(&self, replica: usize, position: u64) {
        self.positions
            .send_if_modified(|positions| match positions.get_mut(replica) {
                Some(current) if *current < position => {
                    *current = position;
                    true
                }
                _ => false,
            });
    }

    /// How many replicas have stored everything before `end`.
    pub fn acked(&self, end: u64) -> usize {
        count_at_least(&self.positions.borrow(), end)
    }

    /// Waits until `required` replicas have acknowledged everything before `end`.
    pub async fn wait(
        &self,
        end: u64,
        required: usize,
        timeout: Duration,
    ) -> Result<(), AckTimeout> {
        if required == 0 {
            return Ok(());
        }
        let mut receiver = self.positions.subscribe();
        let waited = tokio::time::timeout(
            timeout,
            receiver.wait_for(|positions| count_at_least(positions, end) >= required),
        )
        .await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            // A closed channel cannot happen while `self` lives; treat it like a timeout.
            Ok(Err(_)) | Err(_) => Err(AckTimeout {
                acked: self.acked(end),
                required,
                waited: timeout,
            }),
        }
    }
}

fn count_at_least(positions: &[u64], end: u64) -> usize {
    positions.iter().filter(|p| **p >= end).count()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_quorum_wait_returns_once_two_of_three_replicas_passed_the_record() {
        let acks = Arc::new(GroupAcks::new(vec![0, 0, 0]));
        let waiter = {
            let acks = acks.clone();
            tokio::spawn(async move { acks.wait(100, 2, Duration::from_secs(10)).await })
        };
        acks.publish(0, 100);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        acks.publish(2, 150);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        assert_eq!(acks.acked(100), 2);
    }

    #[tokio::test]
    async fn a_wait_that_cannot_be_met_times_out_saying_how_many_acknowledged() {
        let acks = GroupAcks::new(vec![100, 0]);
        let err = acks
            .wait(100, 2, Duration::from_millis(20))
            .await
            .unwrap_err();
        assert_eq!((err.acked, err.required), (1, 2));
        assert_eq!(acks.wait(100, 0, Duration::ZERO).await, Ok(()));
    }

    #[test]
    fn positions_never_move_backwards() {
        let acks = GroupAcks::new(vec![50]);
        acks.publish(0, 40);
        assert_eq!(acks.acked(50), 1);
        acks.publish(7, 1000); // unknown replica: ignored
    }

    #[test]
    fn rejections_are_found_by_overlapping_record_range() {
        let acks = GroupAcks::new(vec![0, 0]);
        let rejection = |start, end, replica| Rejection {
            start,
            end,
            replica,
            message: "field type conflict".into(),
            lines: 1,
        };
        acks.publish_rejection(rejection(100, 200, 0));
        acks.publish_rejection(rejection(100, 200, 0));
        acks.publish_rejection(rejection(100, 200, 1));
        acks.publish_rejection(rejection(200, 300, 1));
        let found = acks.rejections_of(100, 200);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].lines, 2);
        assert!(acks.rejections_of(300, 400).is_empty());
    }
}
