//! What the pipeline hands to delivery: a `Notification` for one receiver (one group of alerts,
//! firing or resolved), and the notifiers that turn it into an email, a webhook call or a chat
//! message. The durable outbox (`super::outbox`) sits between the two.
//!
//! Nothing here decides whether an alert should be delivered (that is the pipeline's job); it
//! must never drop a notification it was given without counting it and recording why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alert::Alert;

/// Whether a notification announces trouble or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// First delivery or a reissue of alerts still being seen.
    Firing,
    /// Success: the alerts stopped and their hosts are still active.
    Resolved,
}

/// One alert inside a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotifiedAlert {
    pub alert: Alert,
    pub status: NotificationStatus,
    /// When the alert was first delivered in this episode (ms since the epoch).
    pub starts_at_ms: u64,
    /// When it was declared over (resolved notifications only).
    pub ends_at_ms: Option<u64>,
    /// How many times it was delivered in this episode, this one included (1 = first).
    pub delivery: u32,
}

/// One message owed to one receiver. Persisted in the outbox until delivered or dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key, stable across retries and restarts: a receiver that sees it twice may
    /// drop the second (sent as `Idempotency-Key` on webhooks). Built by the pipeline from the
    /// receiver, group key, status and the alerts' fingerprints and delivery counts.
    pub id: String,
    pub receiver: String,
    /// The grouping key (route + group_by label values), as Alertmanager's `groupKey`.
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    /// Firing if any alert is firing.
    pub status: NotificationStatus,
    pub alerts: Vec<NotifiedAlert>,
    pub created_at_ms: u64,
    /// Request id of the request that made it due (absent for sweeps).
    pub request_id: Option<String>,
}
