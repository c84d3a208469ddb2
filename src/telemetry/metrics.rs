//! The Prometheus metrics of `monitor-api`, registered once and shared by every component.
//! Families are updated per request or per batch, never per line, so the hot path pays for a
//! handful of atomic adds. Labels never carry secrets or unbounded client input (an index name
//! the client invented is not a label: unknown indexes are counted under one reason).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum LineKind {
    Metric,
    Log,
    Tracelog,
}

/// Why a line was not accepted.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum RejectReason {
    /// Line protocol that does not parse.
    Parse,
    /// No shard group for the line's index.
    UnknownIndex,
    /// The line has no index tag and there is no default group.
    MissingIndex,
    /// The token may not write this index (the whole request is refused).
    Forbidden,
    /// The group's durable log is at its cap (the whole request is refused).
    QueueFull,
    /// The request body was over a limit (the whole request is refused).
    BodyTooLarge,
}

impl LineKind {
    pub fn as_label(self) -> &'static str {
        match self {
            LineKind::Metric => "metric",
            LineKind::Log => "log",
            LineKind::Tracelog => "tracelog",
        }
    }
}

impl RejectReason {
    pub fn as_label(self) -> &'static str {
        match self {
            RejectReason::Parse => "parse",
            RejectReason::UnknownIndex => "unknown_index",
            RejectReason::MissingIndex => "missing_index",
            RejectReason::Forbidden => "forbidden",
            RejectReason::QueueFull => "queue_full",
            RejectReason::BodyTooLarge => "body_too_large",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: String,
    pub status: u16,
}

/// A search request's kind (`trace`, `logs`) and outcome (`ok`, `partial`, `not_found`,
/// `bad_request`, `unauthorized`, `forbidden`, `backend_error`, `unavailable`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SearchLabels {
    pub kind: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    pub group: String,
    pub replica: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionEventLabels {
    pub group: String,
    pub replica: String,
    /// `opened`, `reused` or `replaced`.
    pub event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendOutcomeLabels {
    pub group: String,
    pub replica: String,
    /// `ok`, `rejected`, `too_large`, `unavailable`, `unreachable`, `unauthorized`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeadLetterLabels {
    pub group: String,
    pub replica: String,
    pub reason: String,
}

fn latency_histogram() -> Histogram {
    // 100 µs .. ~52 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

/// Every metric `monitor-api` exports.
pub struct ApiMetrics {
    registry: Registry,
    pub lines_received: Family<KindLabels, Counter>,
    pub lines_rejected: Family<RejectLabels, Counter>,
    pub write_requests: Family<RequestLabels, Counter>,
    pub write_duration: Histogram,
    pub backend_requests: Family<BackendOutcomeLabels, Counter>,
    pub backend_duration: Family<ReplicaLabels, Histogram, fn() -> Histogram>,
    pub backend_lines_written: Family<ReplicaLabels, Counter>,
    pub dead_letter_lines: Family<DeadLetterLabels, Counter>,
    pub queue_pending_bytes: Family<ReplicaLabels, Gauge>,
    pub queue_oldest_pending_seconds:
        Family<ReplicaLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub queue_disk_bytes: Family<GroupLabels, Gauge>,
    pub queue_appended_bytes: Family<GroupLabels, Counter>,
    pub circuit_state: Family<ReplicaLabels, Gauge>,
    pub search_requests: Family<SearchLabels, Counter>,
    pub search_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    /// The `/query` read path.
    pub query: QueryMetrics,
    pub rules: RulesMetrics,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `sent`, `rejected`, `failed`, `dropped`.
    pub outcome: &'static str,
}

/// The rules engine, its outbox, the host registry and the derived metrics (issue 5).
pub struct RulesMetrics {
    pub rules_loaded: Gauge,
    pub alerts_fired: Family<RuleLabels, Counter>,
    pub alerts_delivered: Family<OutcomeLabels, Counter>,
    pub outbox_queued: Gauge,
    pub alert_delay: Histogram,
    pub buffer_bytes: Gauge,
    pub buffer_max_bytes: Gauge,
    pub buffer_refused: Counter,
    pub hosts_known: Gauge,
    pub derived_lines: Counter,
    pub derived_dropped: Counter,
}

impl RulesMetrics {
    fn new() -> Self {
        RulesMetrics {
            rules_loaded: Gauge::default(),
            alerts_fired: Family::default(),
            alerts_delivered: Family::default(),
            outbox_queued: Gauge::default(),
            alert_delay: latency_histogram(),
            buffer_bytes: Gauge::default(),
            buffer_max_bytes: Gauge::default(),
            buffer_refused: Counter::default(),
            hosts_known: Gauge::default(),
            derived_lines: Counter::default(),
            derived_dropped: Counter::default(),
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "rules_loaded",
            "Rules in the running rule set",
            self.rules_loaded.clone(),
        );
        registry.register(
            "alerts_fired",
            "Alerts fired, by rule",
            self.alerts_fired.clone(),
        );
        registry.register(
            "alerts_delivered",
            "Alerts leaving the outbox, by outcome (sent, rejected by the alert manager, dropped at the outbox cap)",
            self.alerts_delivered.clone(),
        );
        registry.register(
            "alerts_outbox_queued",
            "Alerts waiting in the outbox",
            self.outbox_queued.clone(),
        );
        registry.register(
            "alert_delay_seconds",
            "Time from the arrival of the write request whose line fired an alert to the alert leaving the proxy",
            self.alert_delay.clone(),
        );
        registry.register(
            "rules_buffer_bytes",
            "Estimated bytes of the rules window buffer",
            self.buffer_bytes.clone(),
        );
        registry.register(
            "rules_buffer_max_bytes",
            "Cap of the rules window buffer (rules.buffer_max_bytes)",
            self.buffer_max_bytes.clone(),
        );
        registry.register(
            "rules_buffer_refused",
            "Window buckets refused at the buffer cap",
            self.buffer_refused.clone(),
        );
        registry.register(
            "hosts_known",
            "Hosts in the host registry",
            self.hosts_known.clone(),
        );
        registry.register(
            "derived_lines",
            "Derived metric lines written back",
            self.derived_lines.clone(),
        );
        registry.register(
            "derived_dropped",
            "Derived metric lines or traces dropped (caps, full log)",
            self.derived_dropped.clone(),
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `select_raw`, `select_aggregate`, `show`, `ddl`, `other`.
    pub kind: &'static str,
    /// `ok`, `partial`, `error` (statement error), `refused` (400 before any backend call).
    pub outcome: &'static str,
}

/// Metrics of the `/query` read path.
#[derive(Clone)]
pub struct QueryMetrics {
    /// Statements answered, by kind and outcome.
    pub statements: Family<QueryLabels, Counter>,
    /// Backend `/query` call durations, by replica.
    pub backend_duration: Family<ReplicaLabels, Histogram, fn() -> Histogram>,
    /// Backend `/query` calls that failed (unreachable, 5xx), by replica.
    pub backend_failures: Family<ReplicaLabels, Counter>,
    /// Answers marked partial (a group had no reachable replica).
    pub partial_answers: Counter,
    /// DDL statements waiting for a replica that was down.
    pub ddl_pending: Gauge,
    /// Raw-merge chunks a replica reader decoded itself.
    pub raw_chunks_parsed: Counter,
    /// Raw-merge chunks taken already decoded from a sibling replica that sent the same bytes.
    pub raw_chunks_shared: Counter,
    /// The proxy's own `/query` connections to plain-HTTP replicas, by replica and event.
    pub backend_connections: Family<ConnectionEventLabels, Counter>,
}

impl QueryMetrics {
    fn new() -> Self {
        QueryMetrics {
            statements: Family::default(),
            backend_duration: Family::new_with_constructor(latency_histogram),
            backend_failures: Family::default(),
            partial_answers: Counter::default(),
            ddl_pending: Gauge::default(),
            raw_chunks_parsed: Counter::default(),
            raw_chunks_shared: Counter::default(),
            backend_connections: Family::default(),
        }
    }

    /// The counter of one replica's `/query` connection `event` (`opened`, `reused`, `replaced`).
    pub fn connection_event(&self, group: &str, replica: &str, event: &'static str) -> Counter {
        self.backend_connections
            .get_or_create(&ConnectionEventLabels {
                group: group.to_owned(),
                replica: replica.to_owned(),
                event,
            })
            .clone()
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "query_statements",
            "InfluxQL statements answered through /query, by kind and outcome",
            self.statements.clone(),
        );
        registry.register(
            "query_backend_duration_seconds",
            "Backend /query call duration, by replica",
            self.backend_duration.clone(),
        );
        registry.register(
            "query_raw_chunks_parsed",
            "Chunks of replicas' raw SELECT answers decoded by the proxy",
            self.raw_chunks_parsed.clone(),
        );
        registry.register(
            "query_raw_chunks_shared",
            "Chunks of replicas' raw SELECT answers taken decoded from a sibling replica that sent the same bytes",
            self.raw_chunks_shared.clone(),
        );
        registry.register(
            "query_backend_connections",
            "The proxy's /query requests to plain-HTTP replicas by connection event: opened (a new connection), reused (a kept one), replaced (a kept one the replica had closed; the request was sent again on a new one)",
            self.backend_connections.clone(),
        );
        registry.register(
            "query_backend_failures",
            "Backend /query calls that failed (unreachable, 5xx), by replica",
            self.backend_failures.clone(),
        );
        registry.register(
            "query_partial_answers",
            "Query answers marked partial because a shard group had no reachable replica",
            self.partial_answers.clone(),
        );
        registry.register(
            "query_ddl_pending",
            "DDL statements queued for replicas that were down",
            self.ddl_pending.clone(),
        );
    }

    pub fn count_statement(&self, kind: &'static str, outcome: &'static str) {
        self.statements
            .get_or_create(&QueryLabels { kind, outcome })
            .inc();
    }
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("monitor");
        let metrics = ApiMetrics {
            lines_received: Family::default(),
            lines_rejected: Family::default(),
            write_requests: Family::default(),
            write_duration: latency_histogram(),
            backend_requests: Family::default(),
            backend_duration: Family::new_with_constructor(latency_histogram),
            backend_lines_written: Family::default(),
            dead_letter_lines: Family::default(),
            queue_pending_bytes: Family::default(),
            queue_oldest_pending_seconds: Family::default(),
            queue_disk_bytes: Family::default(),
            queue_appended_bytes: Family::default(),
            circuit_state: Family::default(),
            search_requests: Family::default(),
            search_duration: Family::new_with_constructor(latency_histogram),
            query: QueryMetrics::new(),
            rules: RulesMetrics::new(),
            registry: Registry::default(),
        };
        metrics.query.register(&mut registry);
        metrics.rules.register(&mut registry);
        registry.register(
            "lines_received",
            "Lines accepted into a durable log, by kind",
            metrics.lines_received.clone(),
        );
        registry.register(
            "lines_rejected",
            "Lines refused, by reason",
            metrics.lines_rejected.clone(),
        );
        registry.register(
            "write_requests",
            "Write requests answered, by endpoint and HTTP status",
            metrics.write_requests.clone(),
        );
        registry.register(
            "write_request_duration_seconds",
            "Time from a write request's arrival to its answer",
            metrics.write_duration.clone(),
        );
        registry.register(
            "backend_requests",
            "Backend write requests, by replica and outcome",
            metrics.backend_requests.clone(),
        );
        registry.register(
            "backend_request_duration_seconds",
            "Backend write request duration, by replica",
            metrics.backend_duration.clone(),
        );
        registry.register(
            "backend_lines_written",
            "Lines a backend acknowledged, by replica",
            metrics.backend_lines_written.clone(),
        );
        registry.register(
            "dead_letter_lines",
            "Lines a backend rejected, written to the dead-letter file, by replica and reason",
            metrics.dead_letter_lines.clone(),
        );
        registry.register(
            "queue_pending_bytes",
            "Bytes in the group's durable log not yet acknowledged by the replica",
            metrics.queue_pending_bytes.clone(),
        );
        registry.register(
            "queue_oldest_pending_seconds",
            "Age of the oldest record the replica has not acknowledged",
            metrics.queue_oldest_pending_seconds.clone(),
        );
        registry.register(
            "queue_disk_bytes",
            "Bytes of segment files of the group's durable log",
            metrics.queue_disk_bytes.clone(),
        );
        registry.register(
            "queue_appended_bytes",
            "Bytes appended to the group's durable log",
            metrics.queue_appended_bytes.clone(),
        );
        registry.register(
            "circuit_state",
            "Replica circuit breaker: 0 closed, 1 half-open, 2 open",
            metrics.circuit_state.clone(),
        );
        registry.register(
            "search_requests",
            "Trace and log search requests answered, by kind and outcome",
            metrics.search_requests.clone(),
        );
        registry.register(
            "search_request_duration_seconds",
            "Time from a search request's arrival to its answer, by kind",
            metrics.search_duration.clone(),
        );
        ApiMetrics {
            registry,
            ..metrics
        }
    }

    /// The text exposition format for `GET /metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn count_rejected(&self, reason: RejectReason, lines: u64) {
        if lines > 0 {
            self.lines_rejected
                .get_or_create(&RejectLabels {
                    reason: reason.as_label(),
                })
                .inc_by(lines);
        }
    }

    /// One search request answered.
    pub fn count_search(&self, kind: &'static str, outcome: &'static str, seconds: f64) {
        self.search_requests
            .get_or_create(&SearchLabels { kind, outcome })
            .inc();
        self.search_duration
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }

    pub fn count_received(&self, kind: LineKind, lines: u64) {
        if lines > 0 {
            self.lines_received
                .get_or_create(&KindLabels {
                    kind: kind.as_label(),
                })
                .inc_by(lines);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_lines_appear_in_the_exposition() {
        let metrics = ApiMetrics::new();
        metrics.count_received(LineKind::Log, 3);
        metrics.count_rejected(RejectReason::UnknownIndex, 2);
        let text = metrics.encode();
        assert!(
            text.contains("monitor_lines_received_total{kind=\"log\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("monitor_lines_rejected_total{reason=\"unknown_index\"} 2"),
            "{text}"
        );
    }
}
