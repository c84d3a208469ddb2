//! DDL that a replica missed because it was down: a per-replica, ordered list kept in memory
//! and in one JSON file under `data_dir` (rewritten atomically on every change), retried by a
//! task every `query.ddl_retry_interval` and whenever something is queued. A new DDL for a
//! replica that still has some pending is queued behind it, never sent ahead of it.
//!
//! It must never drop a pending statement because a retry failed, and never reorder the
//! statements of one replica.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::backend::client::QueryRequest;
use crate::replication::pipeline::Pipeline;
use crate::telemetry::metrics::ApiMetrics;

/// File name of the pending list under `<data_dir>/query/`.
pub const PENDING_DDL_FILE: &str = "pending_ddl.json";

#[derive(Debug, thiserror::Error)]
pub enum DdlQueueError {
    #[error("pending DDL file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pending DDL file {path} is not valid JSON: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One statement waiting for one replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDdl {
    pub id: u64,
    pub group: String,
    pub replica: String,
    /// Already rendered for this replica (its database name).
    pub statement: String,
    /// Unix milliseconds when queued.
    pub queued_at_ms: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct PendingFile {
    next_id: u64,
    pending: Vec<PendingDdl>,
}

#[derive(Debug)]
pub struct DdlQueue {
    path: PathBuf,
    state: Mutex<PendingFile>,
    wake: Notify,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl DdlQueue {
    /// Opens (or starts) the pending list in `dir`.
    pub fn open(dir: &Path) -> Result<Self, DdlQueueError> {
        let path = dir.join(PENDING_DDL_FILE);
        let io = |source| DdlQueueError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| DdlQueueError::Corrupt {
                    path: path.clone(),
                    source,
                })?
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => PendingFile::default(),
            Err(error) => return Err(io(error)),
        };
        Ok(DdlQueue {
            path,
            state: Mutex::new(state),
            wake: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PendingFile> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, state: &PendingFile) -> Result<(), DdlQueueError> {
        let io = |source| DdlQueueError::Io {
            path: self.path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| io(std::io::Error::other(e)))?;
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, bytes).map_err(io)?;
        std::fs::rename(&temporary, &self.path).map_err(io)
    }

    /// Whether `replica` of `group` has statements waiting (a new one must queue behind them).
    pub fn has_pending(&self, group: &str, replica: &str) -> bool {
        self.lock()
            .pending
            .iter()
            .any(|p| p.group == group && p.replica == replica)
    }

    pub fn pending(&self) -> Vec<PendingDdl> {
        self.lock().pending.clone()
    }

    /// Queues `statement` for `replica` of `group` (persisted before returning) and wakes the
    /// retry task.
    pub fn push(&self, group: &str, replica: &str, statement: &str) -> Result<(), DdlQueueError> {
        {
            let mut state = self.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.pending.push(PendingDdl {
                id,
                group: group.to_owned(),
                replica: replica.to_owned(),
                statement: statement.to_owned(),
                queued_at_ms: now_ms(),
            });
            if let Err(error) = self.save(&state) {
                state.pending.retain(|p| p.id != id);
                return Err(error);
            }
        }
        self.wake.notify_one();
        Ok(())
    }

    fn remove(&self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        let mut state = self.lock();
        state.pending.retain(|p| !ids.contains(&p.id));
        if let Err(error) = self.save(&state) {
            tracing::warn!(%error, "cannot persist the pending DDL list; applied statements may be sent again after a restart (DDL is idempotent)");
        }
    }

    /// One pass: every replica's statements in order, stopping at its first failure.
    pub async fn retry_once(&self, pipeline: &Pipeline) {
        let pending = self.pending();
        let mut done = Vec::new();
        let mut blocked: Vec<(String, String)> = Vec::new();
        for item in pending {
            let key = (item.group.clone(), item.replica.clone());
            if blocked.contains(&key) {
                continue;
            }
            let Some(group) = pipeline.group(&item.group) else {
                tracing::warn!(group = %item.group, statement = %item.statement, "dropping pending DDL: the group is no longer in the shard map");
                done.push(item.id);
                continue;
            };
            let Some(replica) = group
                .read_replicas()
                .into_iter()
                .find(|r| r.id == item.replica)
            else {
                tracing::warn!(group = %item.group, replica = %item.replica, statement = %item.statement, "dropping pending DDL: the replica is no longer in its group");
                done.push(item.id);
                continue;
            };
            let request = QueryRequest {
                statement: &item.statement,
                ..QueryRequest::default()
            };
            match replica.client.query(&request, "ddl-retry").await {
                Ok(answer) => {
                    let text = String::from_utf8_lossy(&answer.body);
                    if text.contains("\"error\"") {
                        tracing::warn!(group = %item.group, replica = %item.replica, statement = %item.statement, answer = %text, "a queued DDL statement was refused by the replica that missed it");
                    } else {
                        tracing::info!(group = %item.group, replica = %item.replica, statement = %item.statement, "queued DDL applied");
                    }
                    done.push(item.id);
                }
                Err(error) => {
                    tracing::debug!(group = %item.group, replica = %item.replica, %error, "queued DDL still waiting");
                    blocked.push(key);
                }
            }
        }
        self.remove(&done);
    }

    /// Retries every `interval` and when woken, for as long as the runtime runs.
    pub fn spawn(
        self: Arc<Self>,
        pipeline: Arc<Pipeline>,
        interval: Duration,
        metrics: Arc<ApiMetrics>,
    ) {
        tokio::spawn(async move {
            loop {
                metrics
                    .query
                    .ddl_pending
                    .set(self.lock().pending.len() as i64);
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = self.wake.notified() => {}
                }
                if !self.lock().pending.is_empty() {
                    self.retry_once(&pipeline).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_statements_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let queue = DdlQueue::open(dir.path()).unwrap();
        queue.push("g1", "r2", "CREATE DATABASE \"a\"").unwrap();
        queue.push("g1", "r2", "DROP DATABASE \"a\"").unwrap();
        assert!(queue.has_pending("g1", "r2"));
        assert!(!queue.has_pending("g1", "r1"));
        let reopened = DdlQueue::open(dir.path()).unwrap();
        let statements: Vec<String> = reopened
            .pending()
            .into_iter()
            .map(|p| p.statement)
            .collect();
        assert_eq!(
            statements,
            vec!["CREATE DATABASE \"a\"", "DROP DATABASE \"a\""]
        );
        reopened.remove(&[0]);
        assert_eq!(DdlQueue::open(dir.path()).unwrap().pending().len(), 1);
    }
}
