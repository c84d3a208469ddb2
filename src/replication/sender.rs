//! One sender per replica (per group for a `replicated: true` group): it drains the group's
//! durable log from the replica's cursor, writes the lines to the backend in large batches,
//! and moves the cursor only after the backend acknowledged them.
//!
//! Transient failures (refused connection, 5xx, 429, timeout, credentials) are retried with
//! exponential backoff and a circuit breaker, honouring `Retry-After`. A rejection (4xx) never
//! blocks the queue: the batch is bisected until the offending lines are isolated, those go to
//! the dead-letter file with the backend's reason, and the rest is written. A sender must never
//! commit a position its backend has not acknowledged or dead-lettered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use serde::Serialize;
use tokio::sync::watch;

use crate::backend::{
    BackendClient, BackendError, Backoff, BreakerState, Chunks, CircuitBreaker, WriteTarget,
};
use crate::config::ReplicaConfig;
use crate::protocol::{Classifier, lines};
use crate::queue::{Batch, Reader};
use crate::telemetry::metrics::{
    ApiMetrics, BackendOutcomeLabels, DeadLetterLabels, ReplicaLabels,
};

use super::acks::{GroupAcks, Rejection};
use super::deadletter::{DeadLetter, DeadLetterFile, now_ms};
use super::envelope::{Envelope, decode};

/// One backend a sender may write to. A normal replica has one; a `replicated` group lists its
/// replicas in failover order.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    pub client: BackendClient,
    pub config: ReplicaConfig,
}

/// Tunables of a sender.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    pub max_batch_bytes: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub create_database: bool,
    /// Consecutive failures that open a target's circuit.
    pub breaker_threshold: u32,
}

/// What `/health` shows of a sender.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaHealth {
    pub up: bool,
    pub circuit: &'static str,
    pub active_target: String,
    pub last_error: Option<String>,
    pub last_success_ms: Option<u64>,
    pub dead_letter_lines: u64,
}

/// Shared, updated by the sender, read by `/health` and the read path.
#[derive(Debug, Default)]
pub struct ReplicaStatus(Mutex<ReplicaHealth>);

impl ReplicaStatus {
    pub fn snapshot(&self) -> ReplicaHealth {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReplicaHealth> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_up(&self, up: bool, error: Option<String>) {
        let mut health = self.lock();
        health.up = up;
        if up {
            health.last_success_ms = Some(now_ms());
        }
        if error.is_some() {
            health.last_error = error;
        }
    }
}

/// Everything one sender task owns.
pub struct Sender {
    pub group: String,
    /// Cursor name in the group's log; also the `replica` metric label.
    pub replica: String,
    /// Position in the group's [`GroupAcks`].
    pub replica_index: usize,
    pub targets: Vec<Target>,
    pub settings: SenderSettings,
    pub reader: Reader,
    pub acks: Arc<GroupAcks>,
    pub status: Arc<ReplicaStatus>,
    pub metrics: Arc<ApiMetrics>,
    pub dead_letters: DeadLetterFile,
    pub shutdown: watch::Receiver<bool>,
}

/// Where one queue record's lines sit in a run's body, and its log position.
#[derive(Debug, Clone, Copy)]
struct RecordSpan {
    body_start: usize,
    body_end: usize,
    start: u64,
    end: u64,
    lines: Option<u32>,
}

impl RecordSpan {
    fn new(body_start: usize, len: usize, start: u64, end: u64, lines: Option<u32>) -> Self {
        RecordSpan {
            body_start,
            body_end: body_start + len,
            start,
            end,
            lines,
        }
    }
}

/// How a piece of lines ended.
enum Outcome {
    Rejected {
        status: Option<u16>,
        reason: &'static str,
        message: String,
    },
    Split,
}

struct Delivery {
    breakers: Vec<CircuitBreaker>,
    backoff: Backoff,
    active: usize,
    metrics: ReplicaMetrics,
}

/// This replica's metric handles, resolved once: a backend request then costs atomic adds, not
/// label hashing and string copies.
struct ReplicaMetrics {
    registry: Arc<ApiMetrics>,
    labels: ReplicaLabels,
    duration: Histogram,
    lines_written: Counter,
    circuit: Gauge,
    requests: HashMap<&'static str, Counter>,
}

impl ReplicaMetrics {
    fn new(registry: Arc<ApiMetrics>, group: &str, replica: &str) -> Self {
        let labels = ReplicaLabels {
            group: group.to_owned(),
            replica: replica.to_owned(),
        };
        let duration = registry.backend_duration.get_or_create(&labels).clone();
        let lines_written = registry
            .backend_lines_written
            .get_or_create(&labels)
            .clone();
        let circuit = registry.circuit_state.get_or_create(&labels).clone();
        ReplicaMetrics {
            registry,
            labels,
            duration,
            lines_written,
            circuit,
            requests: HashMap::new(),
        }
    }

    fn count_request(&mut self, outcome: &'static str) {
        let (registry, labels) = (&self.registry, &self.labels);
        self.requests
            .entry(outcome)
            .or_insert_with(|| {
                registry
                    .backend_requests
                    .get_or_create(&BackendOutcomeLabels {
                        group: labels.group.clone(),
                        replica: labels.replica.clone(),
                        outcome: outcome.to_owned(),
                    })
                    .clone()
            })
            .inc();
    }
}

impl Sender {
    /// Runs until shutdown. Errors of the log itself (closed, I/O) end the sender with a log line.
    pub async fn run(mut self) {
        let mut delivery = Delivery {
            breakers: self
                .targets
                .iter()
                .map(|_| {
                    CircuitBreaker::new(
                        self.settings.breaker_threshold,
                        self.settings.backoff_min.max(Duration::from_millis(100)),
                        self.settings.backoff_max,
                    )
                })
                .collect(),
            backoff: Backoff::new(self.settings.backoff_min, self.settings.backoff_max),
            active: 0,
            metrics: ReplicaMetrics::new(self.metrics.clone(), &self.group, &self.replica),
        };
        self.acks
            .publish(self.replica_index, self.reader.committed());
        loop {
            let batch = tokio::select! {
                batch = self.reader.next_batch(self.settings.max_batch_bytes) => batch,
                _ = self.shutdown.changed() => return,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(group = %self.group, replica = %self.replica, %error, "sender stops: the durable log failed");
                    self.status.set_up(false, Some(error.to_string()));
                    return;
                }
            };
            let end = batch.end;
            if !self.deliver_batch(batch, &mut delivery).await {
                return; // shutdown while retrying: the cursor stays, the batch is resent on restart
            }
            if let Err(error) = self.reader.commit(end) {
                tracing::error!(group = %self.group, replica = %self.replica, %error, "cannot commit the cursor");
                return;
            }
            self.acks.publish(self.replica_index, end);
        }
    }

    /// Delivers every record of `batch`; consecutive records with the same target share one
    /// backend request. Returns false on shutdown.
    async fn deliver_batch(&mut self, batch: Batch, delivery: &mut Delivery) -> bool {
        // Every run below is a list of slices of the records' shared bytes, sent without
        // copying the lines again.
        let mut record_start = batch.start;
        let mut runs: Vec<(Envelope<'_>, Vec<Bytes>, Vec<RecordSpan>)> = Vec::new();
        for (record, end) in batch
            .record_bytes()
            .iter()
            .zip(batch.records_with_end().map(|(_, end)| end))
        {
            let start = std::mem::replace(&mut record_start, end);
            let envelope = match decode(record) {
                Ok(envelope) => envelope,
                Err(error) => {
                    // Written by us and CRC-checked: only a bug or a format change gets here.
                    tracing::error!(group = %self.group, replica = %self.replica, %error, "undecodable queue record skipped");
                    continue;
                }
            };
            let lines = record.slice_ref(envelope.lines);
            match runs.last_mut() {
                Some((first, chunks, spans)) if first.same_target(&envelope) => {
                    let body_start = spans.last().map_or(0, |s| s.body_end);
                    spans.push(RecordSpan::new(
                        body_start,
                        lines.len(),
                        start,
                        end,
                        envelope.line_count,
                    ));
                    chunks.push(lines);
                }
                _ => {
                    let span = RecordSpan::new(0, lines.len(), start, end, envelope.line_count);
                    runs.push((envelope, vec![lines], vec![span]));
                }
            }
        }
        for (envelope, chunks, spans) in &runs {
            if !self.deliver_lines(envelope, chunks, spans, delivery).await {
                return false;
            }
        }
        true
    }

    /// Writes `body` (lines for `envelope`'s target), bisecting rejections down to single lines.
    async fn deliver_lines(
        &mut self,
        envelope: &Envelope<'_>,
        chunks: &[Bytes],
        spans: &[RecordSpan],
        delivery: &mut Delivery,
    ) -> bool {
        // The common case: the backend takes the whole run, sent as the records' slices.
        let whole = Chunks::new(chunks.iter().cloned());
        let line_count: Option<u64> = spans.iter().map(|s| s.lines.map(u64::from)).sum();
        let refusal = match self
            .write_once(envelope, &whole, line_count, delivery)
            .await
        {
            None => return false,
            Some(Ok(())) => return true,
            Some(Err(refusal)) => refusal,
        };
        // Refused or too large: bisect a contiguous copy, starting from the answer just had.
        let body = whole.concat();
        let base = body.as_ptr() as usize;
        let mut pieces: Vec<(Bytes, Option<Outcome>)> = vec![(body, Some(refusal))];
        let mut database_created = false;
        while let Some((piece, mut known)) = pieces.pop() {
            loop {
                let outcome = match known.take() {
                    Some(refusal) => Err(refusal),
                    None => match self
                        .write_once(envelope, &Chunks::from(piece.clone()), None, delivery)
                        .await
                    {
                        Some(outcome) => outcome,
                        None => return false,
                    },
                };
                match outcome {
                    Ok(()) => break,
                    Err(Outcome::Split) => {
                        let middle = split_point(&piece, envelope);
                        if middle == 0 {
                            let offset = piece.as_ptr() as usize - base;
                            self.dead_letter(
                                envelope,
                                &piece,
                                (offset, spans),
                                Some(413),
                                "too_large",
                                "a single line is larger than the backend accepts",
                            );
                        } else {
                            pieces.push((piece.slice(middle..), None));
                            pieces.push((piece.slice(..middle), None));
                        }
                        break;
                    }
                    Err(Outcome::Rejected {
                        status,
                        reason,
                        message,
                    }) => {
                        if reason == "database_not_found"
                            && self.settings.create_database
                            && !database_created
                        {
                            database_created = true;
                            if self.create_database(envelope, delivery.active).await {
                                continue;
                            }
                        }
                        let middle = split_point(&piece, envelope);
                        let whole_batch_problem =
                            reason == "database_not_found" || reason == "unsupported";
                        if middle == 0 || whole_batch_problem {
                            let offset = piece.as_ptr() as usize - base;
                            self.dead_letter(
                                envelope,
                                &piece,
                                (offset, spans),
                                status,
                                reason,
                                &message,
                            );
                        } else {
                            pieces.push((piece.slice(middle..), None));
                            pieces.push((piece.slice(..middle), None));
                        }
                        break;
                    }
                }
            }
        }
        true
    }

    /// One attempt, retried internally on transient failures until it is written, rejected or
    /// must be split. `None` on shutdown.
    async fn write_once(
        &mut self,
        envelope: &Envelope<'_>,
        piece: &Chunks,
        // Lines in `piece` when the records said (else they are counted here).
        line_count: Option<u64>,
        delivery: &mut Delivery,
    ) -> Option<Result<(), Outcome>> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            let now = Instant::now();
            let Some(index) = self.pick_target(delivery, now) else {
                let wait = delivery
                    .breakers
                    .iter()
                    .map(|b| b.retry_in(now))
                    .min()
                    .unwrap_or(self.settings.backoff_min)
                    .max(Duration::from_millis(10));
                if !self.sleep(wait).await {
                    return None;
                }
                continue;
            };
            let target = &self.targets[index];
            let database = target.config.backend_database(envelope.database);
            let write_target = WriteTarget {
                database,
                retention_policy: (!envelope.retention_policy.is_empty())
                    .then_some(envelope.retention_policy),
                precision: envelope.precision,
            };
            let started = Instant::now();
            let result = target
                .client
                .write(write_target, piece.clone(), envelope.request_id)
                .await;
            delivery
                .metrics
                .duration
                .observe(started.elapsed().as_secs_f64());
            delivery.metrics.count_request(
                result
                    .as_ref()
                    .map_or_else(BackendError::outcome_label, |()| "ok"),
            );
            match result {
                Ok(()) => {
                    delivery.breakers[index].record_success();
                    delivery.backoff.reset();
                    delivery.active = index;
                    self.publish_circuit(delivery);
                    self.status.set_up(true, None);
                    self.status.lock().active_target = self.targets[index].id.clone();
                    delivery
                        .metrics
                        .lines_written
                        .inc_by(line_count.unwrap_or_else(|| {
                            piece
                                .parts()
                                .map(|p| memchr::memchr_iter(b'\n', p).count() as u64)
                                .sum()
                        }));
                    return Some(Ok(()));
                }
                Err(BackendError::TooLarge { .. }) => return Some(Err(Outcome::Split)),
                Err(BackendError::Rejected {
                    status,
                    reason,
                    message,
                    ..
                }) => {
                    // The backend answered: it is up.
                    delivery.breakers[index].record_success();
                    self.status.set_up(true, None);
                    return Some(Err(Outcome::Rejected {
                        status: Some(status),
                        reason: reason.as_str(),
                        message,
                    }));
                }
                Err(BackendError::Unsupported { message, .. }) => {
                    return Some(Err(Outcome::Rejected {
                        status: None,
                        reason: "unsupported",
                        message,
                    }));
                }
                Err(error) => {
                    delivery.breakers[index].record_failure(Instant::now());
                    self.publish_circuit(delivery);
                    tracing::warn!(group = %self.group, replica = %self.replica, target = %self.targets[index].id, %error, request_id = envelope.request_id, "backend write failed; will retry");
                    self.status.set_up(false, Some(error.to_string()));
                    if self.targets.len() > 1 {
                        // Fail over to the next replica of a replicated group at once.
                        delivery.active = (index + 1) % self.targets.len();
                        continue;
                    }
                    let wait = error
                        .retry_after()
                        .unwrap_or_else(|| delivery.backoff.next_delay());
                    if !self.sleep(wait).await {
                        return None;
                    }
                }
            }
        }
    }

    fn pick_target(&self, delivery: &mut Delivery, now: Instant) -> Option<usize> {
        let n = self.targets.len();
        (0..n)
            .map(|offset| (delivery.active + offset) % n)
            .find(|&i| delivery.breakers[i].try_acquire(now))
    }

    fn publish_circuit(&self, delivery: &Delivery) {
        let now = Instant::now();
        let state = delivery
            .breakers
            .get(delivery.active)
            .map(|b| b.state(now))
            .unwrap_or(BreakerState::Closed);
        delivery.metrics.circuit.set(state.as_gauge());
        self.status.lock().circuit = state.as_str();
    }

    async fn create_database(&self, envelope: &Envelope<'_>, index: usize) -> bool {
        let target = &self.targets[index];
        let database = target.config.backend_database(envelope.database);
        match target
            .client
            .create_database(database, envelope.request_id)
            .await
        {
            Ok(()) => {
                tracing::info!(group = %self.group, replica = %target.id, database, "created missing database");
                true
            }
            Err(error) => {
                tracing::warn!(group = %self.group, replica = %target.id, database, %error, "cannot create missing database");
                false
            }
        }
    }

    /// Writes `piece` (at `offset` in a run made of `spans`) to the dead-letter file, counts it,
    /// and tells waiting clients which of their records lost lines.
    fn dead_letter(
        &self,
        envelope: &Envelope<'_>,
        piece: &[u8],
        (offset, spans): (usize, &[RecordSpan]),
        status: Option<u16>,
        reason: &str,
        message: &str,
    ) {
        let texts: Vec<String> = line_slices(piece, envelope)
            .into_iter()
            .map(|line| {
                String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(line)).into_owned()
            })
            .collect();
        for span in spans
            .iter()
            .filter(|s| s.body_start < offset + piece.len() && offset < s.body_end)
        {
            self.acks.publish_rejection(Rejection {
                start: span.start,
                end: span.end,
                replica: self.replica_index,
                message: format!("{message} ({reason}, replica {})", self.replica),
                lines: texts.len(),
            });
        }
        let at_ms = now_ms();
        let precision = envelope.precision.as_v1();
        let letters: Vec<DeadLetter<'_>> = texts
            .iter()
            .map(|line| DeadLetter {
                at_ms,
                group: &self.group,
                replica: &self.replica,
                database: envelope.database,
                retention_policy: envelope.retention_policy,
                precision,
                request_id: envelope.request_id,
                reason,
                status,
                message,
                line,
            })
            .collect();
        self.metrics
            .dead_letter_lines
            .get_or_create(&DeadLetterLabels {
                group: self.group.clone(),
                replica: self.replica.clone(),
                reason: reason.to_owned(),
            })
            .inc_by(letters.len() as u64);
        self.status.lock().dead_letter_lines += letters.len() as u64;
        tracing::warn!(group = %self.group, replica = %self.replica, lines = letters.len(), reason, message, request_id = envelope.request_id, file = %self.dead_letters.path().display(), "lines dead-lettered");
        if let Err(error) = self.dead_letters.append(&letters) {
            tracing::error!(group = %self.group, replica = %self.replica, %error, file = %self.dead_letters.path().display(), "cannot write the dead-letter file; the lines are only in this log");
        }
    }

    async fn sleep(&mut self, wait: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.shutdown.changed() => false,
        }
    }
}

/// The lines of `piece` (each with its newline), found with the parser so that a newline inside
/// a string field does not split a line.
fn line_slices<'a>(piece: &'a [u8], envelope: &Envelope<'_>) -> Vec<&'a [u8]> {
    let classifier = Classifier::default();
    let base = piece.as_ptr() as usize;
    let mut starts: Vec<usize> = lines(piece, &classifier)
        .with_precision(envelope.precision)
        .filter_map(Result::ok)
        .map(|line| line.raw().as_ptr() as usize - base)
        .collect();
    if starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| &piece[start..starts.get(i + 1).copied().unwrap_or(piece.len())])
        .collect()
}

/// Where to cut `piece` in two halves of whole lines; 0 when it holds a single line.
fn split_point(piece: &[u8], envelope: &Envelope<'_>) -> usize {
    let slices = line_slices(piece, envelope);
    if slices.len() <= 1 {
        return 0;
    }
    slices[slices.len() / 2].as_ptr() as usize - piece.as_ptr() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Precision;

    fn envelope() -> Envelope<'static> {
        Envelope {
            database: "db",
            retention_policy: "",
            precision: Precision::Nanosecond,
            request_id: "r",
            line_count: None,
            lines: b"",
        }
    }

    #[test]
    fn lines_are_split_at_line_boundaries_even_with_newlines_in_strings() {
        let body = b"a f=\"x\ny\" 1\nb f=1 2\nc f=2 3\n";
        let slices = line_slices(body, &envelope());
        assert_eq!(
            slices,
            vec![&b"a f=\"x\ny\" 1\n"[..], b"b f=1 2\n", b"c f=2 3\n"]
        );
        let middle = split_point(body, &envelope());
        assert_eq!(&body[..middle], b"a f=\"x\ny\" 1\n");
        assert_eq!(&body[middle..], b"b f=1 2\nc f=2 3\n");
        assert_eq!(split_point(b"a f=1 1\n", &envelope()), 0);
    }
}
