//! The alert manager's Prometheus metrics: what came in, what each stage held back, what went
//! out, and how host-liveness lookups fared. Counted per batch where possible.
//!
//! Labels never carry client-chosen text (no alert names, no fingerprints): only fixed reasons
//! and configured receiver names.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    pub receiver: String,
    pub status: &'static str,
}

/// Every metric of the pipeline.
#[derive(Debug, Default, Clone)]
pub struct AlertMetrics {
    pub received: Counter,
    pub ignored: Counter,
    pub waiting_occurrences: Counter,
    pub due: Counter,
    pub suppressed_reissue: Counter,
    pub unrouted: Counter,
    pub resolved_by_sender: Counter,
    pub notifications: Family<ReceiverLabels, Counter>,
    pub delivered_alerts: Family<StatusLabels, Counter>,
    pub successes: Counter,
    pub successes_withheld: Counter,
    pub host_lookups: Family<ResultLabels, Counter>,
    pub issued: Gauge,
    pub ignore_rules: Gauge,
    pub groups_waiting: Gauge,
    pub store_errors: Counter,
    /// Group commits of HTTP ingests, and the requests they answered (their ratio is the
    /// average group size).
    pub ingest_commits: Counter,
    pub ingest_committed_requests: Counter,
}

impl AlertMetrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("monitor_am");
        r.register(
            "alerts_received",
            "Alerts received (v1 and v2 APIs)",
            self.received.clone(),
        );
        r.register(
            "alerts_ignored",
            "Alerts matched by an active ignore rule (never delivered)",
            self.ignored.clone(),
        );
        r.register(
            "alerts_waiting_occurrences",
            "Sightings below their Occurrences count",
            self.waiting_occurrences.clone(),
        );
        r.register(
            "alerts_due",
            "Sightings handed to grouping for delivery (first or reissue)",
            self.due.clone(),
        );
        r.register(
            "alerts_suppressed_reissue",
            "Sightings of issued alerts inside ReissueDuration",
            self.suppressed_reissue.clone(),
        );
        r.register(
            "alerts_unrouted",
            "Alerts no route (and no default receiver) takes",
            self.unrouted.clone(),
        );
        r.register(
            "alerts_resolved_by_sender",
            "Alerts sent with an end in the past (not sightings)",
            self.resolved_by_sender.clone(),
        );
        r.register(
            "notifications_enqueued",
            "Notifications handed to the outbox, by receiver and status (the outbox's own am_notifications counts deliveries)",
            self.notifications.clone(),
        );
        r.register(
            "delivered_alerts",
            "Alerts inside notifications handed to the outbox, by status",
            self.delivered_alerts.clone(),
        );
        r.register(
            "successes",
            "Success (resolved) notifications owed and sent to the outbox",
            self.successes.clone(),
        );
        r.register(
            "successes_withheld",
            "Success messages withheld because the host was not known to be Active",
            self.successes_withheld.clone(),
        );
        r.register(
            "host_lookups",
            "Host liveness lookups by result (active, inactive, unknown, unreachable, cached)",
            self.host_lookups.clone(),
        );
        r.register(
            "issued_alerts",
            "Alerts currently in IssuedAlerts",
            self.issued.clone(),
        );
        r.register(
            "ignore_rules",
            "Ignore rules stored (any state)",
            self.ignore_rules.clone(),
        );
        r.register(
            "groups_waiting",
            "Groups waiting for group_wait",
            self.groups_waiting.clone(),
        );
        r.register(
            "store_errors",
            "Requests or ticks whose state could not be committed",
            self.store_errors.clone(),
        );
        r.register(
            "ingest_group_commits",
            "Transactions that committed queued alert requests (several concurrent requests share one)",
            self.ingest_commits.clone(),
        );
        r.register(
            "ingest_group_committed_requests",
            "Alert requests answered by those transactions",
            self.ingest_committed_requests.clone(),
        );
    }
}
