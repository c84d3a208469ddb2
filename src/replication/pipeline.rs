//! The running write pipeline: for every shard group its durable log, its acknowledgement
//! tracker and one sender task per replica (one per group for a `replicated` group), plus the
//! health checks that ping every backend. The HTTP side appends through it and asks it for
//! health; a new shard map adds groups and replicas without disturbing writes in flight.
//!
//! It must never drop a group's log while it holds unsent records: groups and replicas removed
//! from the map keep draining until their cursors reach the head.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::query_http::ConnectionCounters;
use crate::backend::{BackendClient, Endpoint};
use crate::config::{ApiConfig, FsyncPolicy as ConfigFsync};
use crate::queue::{AppendReceipt, FsyncPolicy, GroupLog, LogConfig, MAX_PAYLOAD_LEN, QueueError};
use crate::shard::{Group, ShardMap};
use crate::telemetry::metrics::{ApiMetrics, GroupLabels, ReplicaLabels};

use super::acks::{AckTimeout, GroupAcks, Rejection};
use super::deadletter::DeadLetterFile;
use super::sender::{ReplicaHealth, ReplicaStatus, Sender, SenderSettings, Target};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("opening the durable log of group {group:?}: {source}")]
    Queue {
        group: String,
        #[source]
        source: QueueError,
    },
    #[error("replica {replica:?} of group {group:?}: {message}")]
    Backend {
        group: String,
        replica: String,
        message: String,
    },
}

/// One sender's view for health and the read path.
struct ReplicaRuntime {
    /// Cursor name in the log (also the metric label).
    cursor: String,
    targets: Vec<String>,
    /// The backends behind this cursor, for the read path (several for a `replicated` group,
    /// in failover order).
    read_targets: Vec<Target>,
    status: Arc<ReplicaStatus>,
    task: JoinHandle<()>,
}

/// A group's log, acks and senders.
pub struct GroupRuntime {
    pub name: String,
    log: Arc<GroupLog>,
    acks: Arc<GroupAcks>,
    replicas: Vec<ReplicaRuntime>,
}

/// `/health` for one replica.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaReport {
    pub replica: String,
    pub targets: Vec<String>,
    pub pending_bytes: u64,
    pub oldest_pending_seconds: Option<f64>,
    /// Healthy and nothing pending: the read path may trust this replica's answers alone.
    pub in_sync: bool,
    #[serde(flatten)]
    pub health: ReplicaHealth,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: String,
    pub disk_bytes: u64,
    pub replicas: Vec<ReplicaReport>,
}

impl GroupRuntime {
    /// Refuses now (`Full`) if a record of `len` bytes would not fit; stages nothing.
    pub fn check_room(&self, len: usize) -> Result<(), QueueError> {
        self.log.check_room(len)
    }

    /// Appends one record given as pieces (durable per the fsync policy when this returns).
    pub async fn append(&self, record_parts: &[&[u8]]) -> Result<AppendReceipt, QueueError> {
        self.log.append_parts(record_parts).await
    }

    /// Waits until `required` replicas stored (or refused) everything up to `end`, then returns
    /// the refusals of lines of the record at `[start, end)` seen so far.
    pub async fn wait_acks(
        &self,
        start: u64,
        end: u64,
        required: usize,
        timeout: Duration,
    ) -> Result<Vec<Rejection>, AckTimeout> {
        self.acks.wait(end, required, timeout).await?;
        if required == 0 {
            return Ok(Vec::new());
        }
        Ok(self.acks.rejections_of(start, end))
    }

    /// The replicas the read path may ask, in configured order, each with its sync state at
    /// this instant. A `replicated` group yields its backends as one entry per backend, all
    /// sharing the one cursor's state (the backend replicates itself).
    pub fn read_replicas(&self) -> Vec<ReadReplica> {
        let mut replicas = Vec::new();
        for replica in &self.replicas {
            let pending_bytes = self.log.pending_bytes(&replica.cursor).unwrap_or(u64::MAX);
            let health = replica.status.snapshot();
            for target in &replica.read_targets {
                replicas.push(ReadReplica {
                    id: target.id.clone(),
                    client: target.client.clone(),
                    config: target.config.clone(),
                    up: health.up,
                    pending_bytes,
                    in_sync: health.up && pending_bytes == 0,
                });
            }
        }
        replicas
    }

    pub fn report(&self) -> GroupReport {
        let stats = self.log.stats();
        GroupReport {
            group: self.name.clone(),
            disk_bytes: stats.disk_bytes,
            replicas: self
                .replicas
                .iter()
                .map(|replica| {
                    let pending_bytes = self.log.pending_bytes(&replica.cursor).unwrap_or(0);
                    let oldest = self.log.oldest_pending_age(&replica.cursor).ok().flatten();
                    let health = replica.status.snapshot();
                    ReplicaReport {
                        replica: replica.cursor.clone(),
                        targets: replica.targets.clone(),
                        pending_bytes,
                        oldest_pending_seconds: oldest.map(|d| d.as_secs_f64()),
                        in_sync: health.up && pending_bytes == 0,
                        health,
                    }
                })
                .collect(),
        }
    }
}

/// The replicas worth asking for a union: those the health checks see up, or all of them when
/// none is (the health view may be stale). Asking one seen down while another is up would only
/// add its timeout to the answer.
pub fn replicas_worth_asking(replicas: Vec<ReadReplica>) -> Vec<ReadReplica> {
    let any_up = replicas.iter().any(|r| r.up);
    replicas.into_iter().filter(|r| r.up || !any_up).collect()
}

/// One replica as the read path sees it: how to ask it and whether its answer alone is
/// complete.
#[derive(Debug, Clone)]
pub struct ReadReplica {
    pub id: String,
    pub client: BackendClient,
    /// Database/bucket mapping and credentials (`config.backend_database(client_db)`).
    pub config: crate::config::ReplicaConfig,
    /// The last health check reached it.
    pub up: bool,
    /// Bytes acknowledged to clients and not yet stored by this replica.
    pub pending_bytes: u64,
    /// Up and nothing pending: an aggregate from this replica alone is complete.
    pub in_sync: bool,
}

/// All groups' runtimes.
pub struct Pipeline {
    groups: RwLock<HashMap<String, Arc<GroupRuntime>>>,
    data_dir: PathBuf,
    log_config: LogConfig,
    settings: SenderSettings,
    backend_timeout: Duration,
    backend_gzip: bool,
    health_interval: Duration,
    metrics: Arc<ApiMetrics>,
    shutdown: watch::Sender<bool>,
}

impl Pipeline {
    /// Opens every group's log (replaying what it holds) and starts the senders.
    pub fn start(
        config: &ApiConfig,
        map: &ShardMap,
        metrics: Arc<ApiMetrics>,
    ) -> Result<Arc<Self>, PipelineError> {
        let pipeline = Arc::new(Pipeline {
            groups: RwLock::new(HashMap::new()),
            data_dir: config.data_dir.clone(),
            log_config: log_config(config),
            settings: SenderSettings {
                max_batch_bytes: config.sender.batch_max_bytes.get() as usize,
                backoff_min: config.sender.retry_backoff_min.get(),
                backoff_max: config.sender.retry_backoff_max.get(),
                create_database: config.create_database,
                breaker_threshold: 3,
            },
            backend_timeout: config.backend.timeout.get(),
            backend_gzip: config.backend.gzip,
            health_interval: config.backend.health_check_interval.get(),
            metrics,
            shutdown: watch::Sender::new(false),
        });
        pipeline.apply_map(map)?;
        Ok(pipeline)
    }

    /// Starts runtimes for groups the map has and we do not. Existing groups keep their senders
    /// (a changed replica list takes effect at restart; documented in the README).
    pub fn apply_map(self: &Arc<Self>, map: &ShardMap) -> Result<(), PipelineError> {
        for group in map.groups() {
            let exists = self
                .groups
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&group.name);
            if !exists {
                let runtime = self.start_group(group)?;
                self.groups
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(group.name.clone(), Arc::new(runtime));
            }
        }
        Ok(())
    }

    pub fn group(&self, name: &str) -> Option<Arc<GroupRuntime>> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn reports(&self) -> Vec<GroupReport> {
        let groups: Vec<Arc<GroupRuntime>> = self
            .groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut reports: Vec<GroupReport> = groups.iter().map(|g| g.report()).collect();
        reports.sort_by(|a, b| a.group.cmp(&b.group));
        reports
    }

    /// Copies queue figures into the gauges; called before `/metrics` is encoded.
    pub fn refresh_gauges(&self) {
        for report in self.reports() {
            self.metrics
                .queue_disk_bytes
                .get_or_create(&GroupLabels {
                    group: report.group.clone(),
                })
                .set(report.disk_bytes as i64);
            for replica in report.replicas {
                let labels = ReplicaLabels {
                    group: report.group.clone(),
                    replica: replica.replica.clone(),
                };
                self.metrics
                    .queue_pending_bytes
                    .get_or_create(&labels)
                    .set(replica.pending_bytes as i64);
                self.metrics
                    .queue_oldest_pending_seconds
                    .get_or_create(&labels)
                    .set(replica.oldest_pending_seconds.unwrap_or(0.0));
            }
        }
    }

    /// Stops the senders and closes the logs (cursors persisted).
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let groups: Vec<Arc<GroupRuntime>> = self
            .groups
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, g)| g)
            .collect();
        for group in groups {
            for replica in &group.replicas {
                replica.task.abort();
            }
            if let Err(error) = group.log.maintain() {
                tracing::warn!(group = %group.name, %error, "persisting cursors at shutdown failed");
            }
        }
    }

    fn start_group(self: &Arc<Self>, group: &Group) -> Result<GroupRuntime, PipelineError> {
        let queue_error = |source| PipelineError::Queue {
            group: group.name.clone(),
            source,
        };
        let dir = self.data_dir.join("queue").join(&group.name);
        let log = Arc::new(GroupLog::open(&dir, self.log_config.clone()).map_err(queue_error)?);
        let report = log.recovery_report();
        if report.torn_bytes_truncated > 0 || !report.corrupt_ranges.is_empty() {
            tracing::warn!(group = %group.name, torn_bytes = report.torn_bytes_truncated, corrupt_ranges = report.corrupt_ranges.len(), "durable log recovered from a crash");
        }
        let mut targets_per_sender: Vec<(String, Vec<Target>)> = Vec::new();
        let mut all_targets = Vec::new();
        for replica in &group.replicas {
            all_targets.push(self.target(group, replica)?);
        }
        if group.replicated {
            targets_per_sender.push(("replicated".to_owned(), all_targets));
        } else {
            for target in all_targets {
                targets_per_sender.push((cursor_name(&target.id), vec![target]));
            }
        }
        let mut initial = Vec::new();
        let mut readers = Vec::new();
        for (cursor, _) in &targets_per_sender {
            log.ensure_replica(cursor).map_err(queue_error)?;
            let reader = log.reader(cursor).map_err(queue_error)?;
            initial.push(reader.committed());
            readers.push(reader);
        }
        let acks = Arc::new(GroupAcks::new(initial));
        let mut replicas = Vec::new();
        for (index, ((cursor, targets), reader)) in
            targets_per_sender.into_iter().zip(readers).enumerate()
        {
            let status = Arc::new(ReplicaStatus::default());
            let target_ids: Vec<String> = targets.iter().map(|t| t.id.clone()).collect();
            let read_targets = targets.clone();
            spawn_health_checks(
                targets.clone(),
                status.clone(),
                self.health_interval,
                self.shutdown.subscribe(),
            );
            let sender = Sender {
                group: group.name.clone(),
                replica: cursor.clone(),
                replica_index: index,
                dead_letters: DeadLetterFile::new(&self.data_dir, &group.name, &cursor),
                targets,
                settings: self.settings.clone(),
                reader,
                acks: acks.clone(),
                status: status.clone(),
                metrics: self.metrics.clone(),
                shutdown: self.shutdown.subscribe(),
            };
            replicas.push(ReplicaRuntime {
                cursor,
                targets: target_ids,
                read_targets,
                status,
                task: tokio::spawn(sender.run()),
            });
        }
        tracing::info!(group = %group.name, replicas = replicas.len(), head = log.head(), "group pipeline started");
        Ok(GroupRuntime {
            name: group.name.clone(),
            log,
            acks,
            replicas,
        })
    }

    fn target(
        &self,
        group: &Group,
        replica: &crate::shard::Replica,
    ) -> Result<Target, PipelineError> {
        let config = &replica.config;
        let endpoint = Endpoint {
            url: replica.url.as_str().trim_end_matches('/').to_owned(),
            dialect: config.dialect,
            username: config.username.clone(),
            password: config.password.clone(),
            token: config.token.clone(),
            org: config.org.clone(),
            gzip: self.backend_gzip,
        };
        let event = |event| {
            self.metrics
                .query
                .connection_event(&group.name, &replica.id, event)
        };
        let counters = ConnectionCounters {
            opened: event("opened"),
            reused: event("reused"),
            replaced: event("replaced"),
        };
        let client =
            BackendClient::counted(endpoint, self.backend_timeout, counters).map_err(|e| {
                PipelineError::Backend {
                    group: group.name.clone(),
                    replica: replica.id.clone(),
                    message: e.to_string(),
                }
            })?;
        Ok(Target {
            id: replica.id.clone(),
            client,
            config: config.clone(),
        })
    }
}

fn spawn_health_checks(
    targets: Vec<Target>,
    status: Arc<ReplicaStatus>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            let mut any_up = false;
            let mut last_error = None;
            for target in &targets {
                match target.client.ping().await {
                    Ok(()) => any_up = true,
                    Err(error) => last_error = Some(error.to_string()),
                }
            }
            status.set_up(any_up, if any_up { None } else { last_error });
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}

/// Queue cursor names allow `[A-Za-z0-9._-]`; replica ids are `host:port` by default.
fn cursor_name(replica_id: &str) -> String {
    replica_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .chars()
        .take(128)
        .collect()
}

fn log_config(config: &ApiConfig) -> LogConfig {
    let defaults = LogConfig::default();
    let fsync = match config.queue.fsync {
        ConfigFsync::Always => FsyncPolicy::Always,
        ConfigFsync::Interval => FsyncPolicy::Interval(config.queue.fsync_interval.get()),
        ConfigFsync::Never => FsyncPolicy::Never,
    };
    let max_record = (config.limits.max_decompressed_bytes.get() + (64 << 10)).min(MAX_PAYLOAD_LEN);
    LogConfig {
        fsync,
        segment_bytes: config.queue.segment_bytes.get(),
        max_disk_bytes: config.queue.max_bytes.get(),
        max_pending_age: config.queue.max_age.map(|d| d.get()),
        max_record_bytes: max_record,
        direct_io: config.queue.direct_io,
        ..defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_ids_become_valid_cursor_names() {
        assert_eq!(cursor_name("127.0.0.1:18086"), "127.0.0.1_18086");
        assert_eq!(cursor_name("shard-a"), "shard-a");
        assert_eq!(cursor_name(".hidden/x"), "hidden_x");
    }
}
