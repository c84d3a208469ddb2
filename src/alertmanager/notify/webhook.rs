//! Webhook delivery: Prometheus Alertmanager's webhook payload (version "4"), so anything that
//! consumes Alertmanager webhooks consumes ours, plus an `Idempotency-Key` header carrying the
//! notification id. Also the HTTP outcome classification the chat notifier shares.
//!
//! It must never treat a 429 or a 5xx as final, and never retry sooner than a `Retry-After`
//! the receiver sent.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::template::common;
use super::{DeliveryError, Notification, NotificationStatus, NotifierBuildError};
use crate::calendar::rfc3339_ms;
use crate::config::alert::WebhookConfig;

/// Alertmanager's `endsAt` for an alert that has not ended.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The webhook body, Alertmanager webhook format version 4.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload<'a> {
    pub version: &'static str,
    pub group_key: &'a str,
    pub truncated_alerts: u32,
    pub status: NotificationStatus,
    pub receiver: &'a str,
    pub group_labels: &'a BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: &'a str,
    pub alerts: Vec<WebhookAlert<'a>>,
}

/// One alert of the webhook body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert<'a> {
    pub status: NotificationStatus,
    pub labels: &'a BTreeMap<String, String>,
    pub annotations: &'a BTreeMap<String, String>,
    pub starts_at: String,
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: &'a str,
    pub fingerprint: &'a str,
}

impl<'a> WebhookPayload<'a> {
    pub fn new(notification: &'a Notification, external_url: &'a str) -> Self {
        WebhookPayload {
            version: "4",
            group_key: &notification.group_key,
            truncated_alerts: 0,
            status: notification.status,
            receiver: &notification.receiver,
            group_labels: &notification.group_labels,
            common_labels: common(notification.alerts.iter().map(|a| &a.alert.labels)),
            common_annotations: common(notification.alerts.iter().map(|a| &a.alert.annotations)),
            external_url,
            alerts: notification
                .alerts
                .iter()
                .map(|notified| WebhookAlert {
                    status: notified.status,
                    labels: &notified.alert.labels,
                    annotations: &notified.alert.annotations,
                    starts_at: rfc3339_ms(notified.starts_at_ms),
                    ends_at: notified
                        .ends_at_ms
                        .map_or_else(|| ZERO_TIME.to_owned(), rfc3339_ms),
                    generator_url: "",
                    fingerprint: &notified.alert.fingerprint,
                })
                .collect(),
        }
    }
}

/// Posts the Alertmanager-compatible JSON to one URL.
pub struct WebhookNotifier {
    client: reqwest::Client,
    url: String,
    bearer_token: Option<String>,
    external_url: String,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bearer token stays out of logs.
        f.debug_struct("WebhookNotifier")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    pub fn new(config: &WebhookConfig, external_url: &str) -> Result<Self, NotifierBuildError> {
        check_scheme(&config.url)?;
        Ok(WebhookNotifier {
            client: http_client(config.timeout.0)?,
            url: config.url.clone(),
            bearer_token: config.bearer_token.clone(),
            external_url: external_url.to_owned(),
        })
    }

    pub async fn send(&self, notification: &Notification) -> Result<(), DeliveryError> {
        let payload = WebhookPayload::new(notification, &self.external_url);
        let mut request = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", &notification.id)
            .json(&payload);
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token);
        }
        post(&self.url, request).await
    }
}

/// Only http and https can be delivered to (reqwest with rustls; system roots); anything else
/// would fail on every attempt until `give_up_after`, so it is refused when the outbox opens.
pub(super) fn check_scheme(url: &str) -> Result<(), NotifierBuildError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return Ok(());
    }
    Err(NotifierBuildError(format!(
        "{url}: only http:// and https:// URLs can be delivered to"
    )))
}

pub(super) fn http_client(timeout: Duration) -> Result<reqwest::Client, NotifierBuildError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("monitor-alert-manager/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| NotifierBuildError(format!("HTTP client: {error}")))
}

/// Sends a prepared request and classifies the outcome.
pub(super) async fn post(url: &str, request: reqwest::RequestBuilder) -> Result<(), DeliveryError> {
    let response = request.send().await.map_err(|error| {
        let mut message = format!("POST {url}: {error}");
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        // A request that cannot even be built will not succeed on retry.
        if error.is_builder() {
            DeliveryError::permanent(message)
        } else {
            DeliveryError::transient(message)
        }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let body = response.text().await.unwrap_or_default();
    let excerpt: String = body.chars().take(200).collect();
    let message = format!("POST {url}: HTTP {status}: {}", excerpt.trim());
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        Err(DeliveryError::Transient {
            message,
            retry_after,
        })
    } else {
        Err(DeliveryError::permanent(message))
    }
}

/// `Retry-After` as delay-seconds. (The HTTP-date form is rare on webhooks; it is ignored and
/// the normal backoff applies.) Capped at one hour so a bogus value cannot stall a receiver.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(3600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outcome_classification() {
        let client = http_client(Duration::from_secs(2)).unwrap();
        // Nothing listens on port 1: transient.
        let refused = post("http://127.0.0.1:1/x", client.post("http://127.0.0.1:1/x")).await;
        assert!(
            matches!(refused, Err(DeliveryError::Transient { .. })),
            "{refused:?}"
        );
        assert!(check_scheme("https://hooks.example.org/x").is_ok());
        assert!(check_scheme("http://hooks.example.org/x").is_ok());
        assert!(check_scheme("ftp://hooks.example.org/x").is_err());
    }

    #[test]
    fn retry_after_seconds() {
        assert_eq!(parse_retry_after(" 7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("999999"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
