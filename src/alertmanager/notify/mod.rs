//! What the pipeline hands to delivery: a `Notification` for one receiver (one group of alerts,
//! firing or resolved), and the notifiers that turn it into an email, a webhook call or a chat
//! message. The durable outbox (`super::outbox`) sits between the two.
//!
//! Nothing here decides whether an alert should be delivered (that is the pipeline's job); it
//! must never drop a notification it was given without counting it and recording why.

use std::collections::BTreeMap;
use std::sync::Arc;

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
    /// Shared with the pipeline's records: a notification does not copy its alerts.
    #[serde(with = "super::alert::shared")]
    pub alert: Arc<Alert>,
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

pub mod chat;
pub mod email;
pub mod template;
pub mod webhook;

use std::time::Duration;

/// The three ways a receiver is reached. Each receiver channel is its own outbox queue, so a
/// webhook that is down never holds back the email of the same receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Email,
    Webhook,
    Chat,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Chat => "chat",
        }
    }

    pub fn parse(text: &str) -> Option<ChannelKind> {
        match text {
            "email" => Some(ChannelKind::Email),
            "webhook" => Some(ChannelKind::Webhook),
            "chat" => Some(ChannelKind::Chat),
            _ => None,
        }
    }
}

impl std::fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one delivery attempt failed, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying: connection refused, timeout, HTTP 5xx/408/429, SMTP 4xx.
    #[error("{message}")]
    Transient {
        message: String,
        /// The receiver asked not to be called again before this (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Retrying the same message will not help: HTTP 4xx (other than 408/429), SMTP 5xx, a
    /// message that cannot be built. Retried only a few times (the receiver may be
    /// misconfigured and fixed), then dead-lettered.
    #[error("{message}")]
    Permanent { message: String },
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> Self {
        DeliveryError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError::Permanent {
            message: message.into(),
        }
    }

    pub fn is_permanent(&self) -> bool {
        matches!(self, DeliveryError::Permanent { .. })
    }
}

/// One configured channel of one receiver, ready to send.
#[derive(Debug)]
pub enum Notifier {
    Email(email::EmailNotifier),
    Webhook(webhook::WebhookNotifier),
    Chat(chat::ChatNotifier),
}

impl Notifier {
    pub fn kind(&self) -> ChannelKind {
        match self {
            Notifier::Email(_) => ChannelKind::Email,
            Notifier::Webhook(_) => ChannelKind::Webhook,
            Notifier::Chat(_) => ChannelKind::Chat,
        }
    }

    /// One delivery attempt.
    pub async fn send(&self, notification: &Notification) -> Result<(), DeliveryError> {
        match self {
            Notifier::Email(email) => email.send(notification).await,
            Notifier::Webhook(webhook) => webhook.send(notification).await,
            Notifier::Chat(chat) => chat.send(notification).await,
        }
    }
}

/// A notifier that cannot be built from its (validated) config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotifierBuildError(pub String);

/// Every channel of a receiver, in a fixed order (email, webhook, chat).
pub fn build_notifiers(
    receiver: &crate::config::alert::ReceiverConfig,
    external_url: &str,
) -> Result<Vec<Notifier>, NotifierBuildError> {
    let mut notifiers = Vec::new();
    if let Some(config) = &receiver.email {
        notifiers.push(Notifier::Email(email::EmailNotifier::new(
            config,
            external_url,
        )?));
    }
    if let Some(config) = &receiver.webhook {
        notifiers.push(Notifier::Webhook(webhook::WebhookNotifier::new(
            config,
            external_url,
        )?));
    }
    if let Some(config) = &receiver.chat {
        notifiers.push(Notifier::Chat(chat::ChatNotifier::new(
            config,
            external_url,
        )?));
    }
    Ok(notifiers)
}

/// The channel kinds a receiver config delivers to, in the order of [`build_notifiers`].
pub fn channel_kinds(receiver: &crate::config::alert::ReceiverConfig) -> Vec<ChannelKind> {
    let mut kinds = Vec::new();
    if receiver.email.is_some() {
        kinds.push(ChannelKind::Email);
    }
    if receiver.webhook.is_some() {
        kinds.push(ChannelKind::Webhook);
    }
    if receiver.chat.is_some() {
        kinds.push(ChannelKind::Chat);
    }
    kinds
}
