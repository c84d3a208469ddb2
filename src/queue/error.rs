//! Typed errors of the durable queue. Every variant names what the caller can do about it
//! (retry later, fix the disk, fix the configuration); none of them may hide lost data.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why an append was refused with [`QueueError::Full`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullReason {
    /// Appending would take the group's files over `max_disk_bytes`.
    DiskCap {
        used_bytes: u64,
        cap_bytes: u64,
        record_bytes: u64,
    },
    /// The oldest record some replica has not acknowledged is older than `max_pending_age`.
    PendingAge { oldest: Duration, cap: Duration },
}

impl std::fmt::Display for FullReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FullReason::DiskCap {
                used_bytes,
                cap_bytes,
                record_bytes,
            } => write!(
                f,
                "disk cap reached ({used_bytes} of {cap_bytes} bytes used, record needs {record_bytes})"
            ),
            FullReason::PendingAge { oldest, cap } => write!(
                f,
                "oldest unsent record is {}s old (cap {}s)",
                oldest.as_secs(),
                cap.as_secs()
            ),
        }
    }
}

/// Errors of the durable queue. `Clone` because one writer failure is reported to every
/// appender whose record was in the failed write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The append was refused and nothing was written; answer 503 with `Retry-After`.
    #[error("queue full: {reason}; retry after {}s", retry_after.as_secs())]
    Full {
        retry_after: Duration,
        reason: FullReason,
    },
    /// The file system ran out of space (ENOSPC / EDQUOT) while writing `path`.
    #[error("disk full writing {}", path.display())]
    DiskFull {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Any other I/O failure, with the file it happened on.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// A file of the log does not have the expected shape; opening refuses to guess.
    #[error("corrupt segment {} at offset {offset}: {reason}", path.display())]
    CorruptSegment {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// A single record larger than the configured limit (it could never be written).
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge { size: u64, limit: u64 },
    /// Another process (or another `GroupLog` in this one) has the log open.
    #[error("queue directory {} is locked by another process", path.display())]
    Locked { path: PathBuf },
    #[error("unknown replica {0:?}")]
    UnknownReplica(String),
    #[error("replica {0:?} already exists")]
    ReplicaExists(String),
    #[error("replica {0:?} already has an active reader")]
    ReaderBusy(String),
    #[error("replica {0:?} was removed")]
    ReplicaRemoved(String),
    #[error("invalid replica name {0:?}: use 1-128 of [A-Za-z0-9._-], not starting with '.'")]
    InvalidReplicaName(String),
    /// `commit` was given a position outside what this reader handed out.
    #[error("invalid commit to {position}: committed {committed}, handed out up to {read}")]
    InvalidCommit {
        position: u64,
        committed: u64,
        read: u64,
    },
    #[error("invalid queue configuration: {0}")]
    InvalidConfig(String),
    /// The log was closed, or an earlier write failure stopped the writer (reopen to recover).
    #[error("queue log is closed")]
    Closed,
}

impl QueueError {
    /// Wraps an I/O error with its path, classifying "no space left" as [`QueueError::DiskFull`].
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        let disk_full = matches!(
            source.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        );
        let source = Arc::new(source);
        if disk_full {
            QueueError::DiskFull { path, source }
        } else {
            QueueError::Io { path, source }
        }
    }

    /// The `Retry-After` a caller should send, for errors that mean "try again later".
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            QueueError::Full { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}
