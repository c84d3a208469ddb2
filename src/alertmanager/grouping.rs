//! Grouping: alerts due for delivery on one route are collected per `group_by` label values and
//! held for `group_wait`, so one incident is one message, not a storm. A waiting group is
//! persisted: a restart delivers it when it is due, not never and not twice.
//!
//! It must never put alerts of two routes, or two `group_by` value sets, in one group, and never
//! hold a group longer than its `group_wait` (the ticker wakes at the earliest due time).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::alert::Alert;
use super::notify::{Notification, NotificationStatus, NotifiedAlert};
use super::routing::Route;

/// One alert waiting in a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingAlert {
    #[serde(with = "super::alert::shared")]
    pub alert: Arc<Alert>,
    pub delivery: u32,
    pub starts_at_ms: u64,
}

/// A group waiting for its `group_wait`, as persisted (keyed by `key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Unique among the groups ever opened by one store (formats 2 and 3 match alerts to it).
    #[serde(default)]
    pub seq: u64,
    pub key: String,
    pub receiver: String,
    pub labels: BTreeMap<String, String>,
    pub created_ms: u64,
    pub due_ms: u64,
    /// By fingerprint: a later sighting of the same alert replaces the earlier one.
    pub alerts: BTreeMap<String, PendingAlert>,
    /// Request id of the request that opened the group.
    #[serde(default)]
    pub request_id: Option<String>,
}

/// The group labels and key of an alert on a route: Alertmanager's `{}:{alertname="X"}` shape,
/// prefixed with the route's position so two routes never share a group.
pub fn group_key(
    route: &Route,
    labels: &BTreeMap<String, String>,
) -> (String, BTreeMap<String, String>) {
    let group_labels: BTreeMap<String, String> = route
        .group_by
        .iter()
        .filter_map(|name| labels.get(name).map(|v| (name.clone(), v.clone())))
        .collect();
    (group_key_only(route, labels), group_labels)
}

/// The key of [`group_key`] alone, without copying the group labels (per due alert).
pub fn group_key_only(route: &Route, labels: &BTreeMap<String, String>) -> String {
    use std::fmt::Write;
    let mut pairs: Vec<(&str, &str)> = route
        .group_by
        .iter()
        .filter_map(|name| labels.get(name).map(|v| (name.as_str(), v.as_str())))
        .collect();
    // By name, each once: the order and uniqueness of the group labels' map.
    pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
    pairs.dedup_by(|a, b| a.0 == b.0);
    let mut key = String::with_capacity(64);
    // Writing to a String cannot fail.
    let _ = write!(key, "{}/{}:{{", route.index, route.receiver);
    for (position, (name, value)) in pairs.into_iter().enumerate() {
        if position > 0 {
            key.push(',');
        }
        let _ = write!(key, "{name}={value:?}");
    }
    key.push('}');
    key
}

/// A stable idempotency key: the same receiver, group, status and alerts (with their delivery
/// counts, which are persisted) always give the same id, across retries and restarts.
pub fn notification_id(
    receiver: &str,
    group_key: &str,
    status: NotificationStatus,
    alerts: &[NotifiedAlert],
) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in [
        receiver,
        group_key,
        match status {
            NotificationStatus::Firing => "firing",
            NotificationStatus::Resolved => "resolved",
        },
    ] {
        hasher.update(part.as_bytes());
        hasher.update(&[0xff]);
    }
    for alert in alerts {
        hasher.update(alert.alert.fingerprint.as_bytes());
        hasher.update(&alert.delivery.to_le_bytes());
        hasher.update(&alert.starts_at_ms.to_le_bytes());
    }
    format!("{:016x}", hasher.digest())
}

impl Group {
    pub fn open(
        route: &Route,
        labels: &BTreeMap<String, String>,
        now_ms: u64,
        request_id: Option<String>,
        seq: u64,
    ) -> Self {
        let (key, group_labels) = group_key(route, labels);
        let wait_ms = super::occurrences::duration_ms(route.group_wait);
        Self {
            seq,
            key,
            receiver: route.receiver.clone(),
            labels: group_labels,
            created_ms: now_ms,
            due_ms: now_ms.saturating_add(wait_ms),
            alerts: BTreeMap::new(),
            request_id,
        }
    }

    pub fn add(&mut self, alert: &Arc<Alert>, delivery: u32, starts_at_ms: u64) {
        self.alerts.insert(
            alert.fingerprint.clone(),
            PendingAlert {
                alert: Arc::clone(alert),
                delivery,
                starts_at_ms,
            },
        );
    }

    /// The firing notification this group becomes when it is due.
    pub fn into_notification(self, now_ms: u64) -> Notification {
        self.notification_without(&[], now_ms)
            .unwrap_or_else(|| Notification {
                id: notification_id(&self.receiver, &self.key, NotificationStatus::Firing, &[]),
                receiver: self.receiver,
                group_key: self.key,
                group_labels: self.labels,
                status: NotificationStatus::Firing,
                alerts: Vec::new(),
                created_at_ms: now_ms,
                request_id: self.request_id,
            })
    }

    /// The firing notification of this group without the alerts of `skipped` fingerprints
    /// (None when no alert is left). Borrows the group: its alerts are shared, not copied.
    pub fn notification_without(&self, skipped: &[String], now_ms: u64) -> Option<Notification> {
        let alerts: Vec<NotifiedAlert> = self
            .alerts
            .iter()
            .filter(|(fingerprint, _)| !skipped.contains(fingerprint))
            .map(|(_, pending)| NotifiedAlert {
                alert: Arc::clone(&pending.alert),
                status: NotificationStatus::Firing,
                starts_at_ms: pending.starts_at_ms,
                ends_at_ms: None,
                delivery: pending.delivery,
            })
            .collect();
        if alerts.is_empty() {
            return None;
        }
        Some(Notification {
            id: notification_id(
                &self.receiver,
                &self.key,
                NotificationStatus::Firing,
                &alerts,
            ),
            receiver: self.receiver.clone(),
            group_key: self.key.clone(),
            group_labels: self.labels.clone(),
            status: NotificationStatus::Firing,
            alerts,
            created_at_ms: now_ms,
            request_id: self.request_id.clone(),
        })
    }
}

/// Resolved notifications for alerts declared over, one per route group.
pub fn resolved_notifications(
    over: &[(Alert, u64, u32, Vec<Route>)],
    now_ms: u64,
) -> Vec<Notification> {
    type Pending = (String, BTreeMap<String, String>, Vec<NotifiedAlert>);
    let mut groups: BTreeMap<String, Pending> = BTreeMap::new();
    for (alert, starts_at_ms, delivery, routes) in over {
        for route in routes {
            let (key, labels) = group_key(route, &alert.labels);
            groups
                .entry(key)
                .or_insert_with(|| (route.receiver.clone(), labels, Vec::new()))
                .2
                .push(NotifiedAlert {
                    alert: Arc::new(alert.clone()),
                    status: NotificationStatus::Resolved,
                    starts_at_ms: *starts_at_ms,
                    ends_at_ms: Some(now_ms),
                    delivery: *delivery,
                });
        }
    }
    groups
        .into_iter()
        .map(|(key, (receiver, labels, alerts))| Notification {
            id: notification_id(&receiver, &key, NotificationStatus::Resolved, &alerts),
            receiver,
            group_key: key,
            group_labels: labels,
            status: NotificationStatus::Resolved,
            alerts,
            created_at_ms: now_ms,
            request_id: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn route(index: usize) -> Route {
        Route {
            index,
            receiver: "hook".into(),
            matchers: vec![],
            continue_matching: false,
            group_by: vec!["alertname".into(), "index".into()],
            group_wait: Duration::from_millis(100),
            occurrences: None,
        }
    }

    fn alert(host: &str) -> Alert {
        let mut alert = Alert {
            name: "HighMem".into(),
            index: "c1".into(),
            host: host.into(),
            source: String::new(),
            severity: String::new(),
            labels: Default::default(),
            annotations: Default::default(),
            value: None,
            at: "2026-11-21T12:00:00.000Z".into(),
            fingerprint: String::new(),
        };
        alert.complete_labels();
        alert.fingerprint = alert.computed_fingerprint();
        alert
    }

    #[test]
    fn hosts_of_one_alertname_share_a_group_routes_do_not() {
        let (k1, labels) = group_key(&route(0), &alert("h1").labels);
        let (k2, _) = group_key(&route(0), &alert("h2").labels);
        let (k3, _) = group_key(&route(1), &alert("h1").labels);
        assert_eq!(k1, k2);
        assert_ne!(k1, k3);
        assert_eq!(labels.len(), 2);
        assert_eq!(k1, "0/hook:{alertname=\"HighMem\",index=\"c1\"}");
    }

    #[test]
    fn the_key_alone_is_the_key_of_group_key() {
        let mut odd = route(2);
        odd.group_by = vec![
            "index".into(),
            "missing".into(),
            "alertname".into(),
            "index".into(),
        ];
        let mut quoted = alert("h1");
        quoted.labels.insert("index".into(), "c\"1\\".into());
        for route in [
            route(0),
            odd,
            Route {
                group_by: vec![],
                ..route(3)
            },
        ] {
            for alert in [alert("h1"), quoted.clone()] {
                assert_eq!(
                    group_key_only(&route, &alert.labels),
                    group_key(&route, &alert.labels).0
                );
            }
        }
    }

    #[test]
    fn a_group_becomes_one_notification_with_a_stable_id() {
        let make = || {
            let mut group = Group::open(&route(0), &alert("h1").labels, 1_000, None, 1);
            group.add(&Arc::new(alert("h1")), 1, 1_000);
            group.add(&Arc::new(alert("h2")), 2, 500);
            group
        };
        let group = make();
        assert_eq!(group.due_ms, 1_100);
        let first = group.into_notification(1_100);
        let second = make().into_notification(9_999);
        assert_eq!(first.alerts.len(), 2);
        assert_eq!(first.id, second.id, "same content, same id");
        let mut other = make();
        other.add(&Arc::new(alert("h1")), 3, 1_000);
        assert_ne!(
            other.into_notification(1_100).id,
            first.id,
            "a reissue is a new message"
        );
    }
}
