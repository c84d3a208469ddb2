//! Chat delivery in Slack's incoming-webhook format (`{"text", "channel"?, "attachments"?}`),
//! which Mattermost, Rocket.Chat and most chat bridges accept.
//!
//! It must never put secrets in the message: only the alerts' own labels, annotations and
//! values are rendered.

use serde::Serialize;

use super::template::{DEFAULT_CHAT_TEXT, RenderContext, Template};
use super::webhook::{check_scheme, http_client, post};
use super::{DeliveryError, Notification, NotificationStatus, NotifierBuildError};
use crate::config::alert::ChatConfig;

/// The Slack message body.
#[derive(Debug, Serialize)]
pub struct ChatPayload {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub attachments: Vec<ChatAttachment>,
}

/// A colour bar under the text: red while firing, green once resolved.
#[derive(Debug, Serialize)]
pub struct ChatAttachment {
    pub color: &'static str,
    pub fallback: String,
    pub footer: String,
}

/// Posts one chat message per notification.
#[derive(Debug)]
pub struct ChatNotifier {
    client: reqwest::Client,
    url: String,
    channel: Option<String>,
    text: Template,
    external_url: String,
}

impl ChatNotifier {
    pub fn new(config: &ChatConfig, external_url: &str) -> Result<Self, NotifierBuildError> {
        check_scheme(&config.url)?;
        let text = Template::parse(config.text.as_deref().unwrap_or(DEFAULT_CHAT_TEXT))
            .map_err(|error| NotifierBuildError(format!("chat.text: {error}")))?;
        Ok(ChatNotifier {
            client: http_client(config.timeout.0)?,
            url: config.url.clone(),
            channel: config.channel.clone(),
            text,
            external_url: external_url.to_owned(),
        })
    }

    pub fn payload(&self, notification: &Notification) -> ChatPayload {
        let text = self.text.render(&RenderContext {
            notification,
            external_url: &self.external_url,
        });
        let color = match notification.status {
            NotificationStatus::Firing => "danger",
            NotificationStatus::Resolved => "good",
        };
        ChatPayload {
            attachments: vec![ChatAttachment {
                color,
                fallback: text.lines().next().unwrap_or_default().to_owned(),
                footer: self.external_url.clone(),
            }],
            text,
            channel: self.channel.clone(),
        }
    }

    pub async fn send(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let request = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", &notification.id)
            .json(&self.payload(notification));
        post(&self.url, request).await
    }
}
