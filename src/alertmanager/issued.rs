//! IssuedAlerts: every alert handed to delivery is recorded with when it was delivered and last
//! seen. The same fingerprint is suppressed until ReissueDuration has passed; seen again after
//! that, it is delivered again and its time updated. Not seen for SuccessDuration, it becomes a
//! Success candidate (the pipeline asks whether its host is Active before sending one).
//!
//! It must never decide from anything but its persisted record and the injected clock's time, so
//! a restart inside ReissueDuration suppresses exactly as the process before it would have.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::alert::Alert;

/// One issued alert, as persisted (keyed by fingerprint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedAlert {
    pub fingerprint: String,
    /// The latest sighting (labels, annotations, value).
    #[serde(with = "super::alert::shared")]
    pub alert: Arc<Alert>,
    /// First delivery of this episode.
    pub first_delivered_ms: u64,
    /// Last (re)delivery: the reissue clock starts here.
    pub last_delivered_ms: u64,
    pub last_seen_ms: u64,
    /// Deliveries in this episode (1 = first).
    pub deliveries: u32,
    /// Set while a Success is owed but withheld because the host is not known to be Active.
    #[serde(default)]
    pub success_withheld_since_ms: Option<u64>,
}

/// What IssuedAlerts says about a sighting that passed Occurrences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueDecision {
    /// Deliver: first time (`delivery == 1`) or a reissue.
    Deliver { delivery: u32, starts_at_ms: u64 },
    /// Delivered less than ReissueDuration ago.
    Suppressed { until_ms: u64 },
}

/// Decides on a sighting at `now_ms` and updates (or creates) the record accordingly.
pub fn decide(
    record: &mut Option<IssuedAlert>,
    fingerprint: &str,
    alert: &Arc<Alert>,
    now_ms: u64,
    reissue_ms: u64,
) -> IssueDecision {
    match record {
        None => {
            *record = Some(IssuedAlert {
                fingerprint: fingerprint.to_owned(),
                alert: Arc::clone(alert),
                first_delivered_ms: now_ms,
                last_delivered_ms: now_ms,
                last_seen_ms: now_ms,
                deliveries: 1,
                success_withheld_since_ms: None,
            });
            IssueDecision::Deliver {
                delivery: 1,
                starts_at_ms: now_ms,
            }
        }
        Some(issued) => {
            if !Arc::ptr_eq(&issued.alert, alert) && *issued.alert != **alert {
                issued.alert = Arc::clone(alert);
            }
            issued.last_seen_ms = issued.last_seen_ms.max(now_ms);
            issued.success_withheld_since_ms = None;
            let until_ms = issued.last_delivered_ms.saturating_add(reissue_ms);
            if now_ms < until_ms {
                IssueDecision::Suppressed { until_ms }
            } else {
                issued.last_delivered_ms = now_ms;
                issued.deliveries = issued.deliveries.saturating_add(1);
                IssueDecision::Deliver {
                    delivery: issued.deliveries,
                    starts_at_ms: issued.first_delivered_ms,
                }
            }
        }
    }
}

impl IssuedAlert {
    /// Not seen for `success_ms`: a Success is owed if the host is Active.
    pub fn quiet_for(&self, now_ms: u64, success_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_seen_ms) >= success_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            name: "HighMem".into(),
            index: "c1".into(),
            host: "h1".into(),
            source: String::new(),
            severity: String::new(),
            labels: Default::default(),
            annotations: Default::default(),
            value: None,
            at: "2026-11-21T12:00:00.000Z".into(),
            fingerprint: String::new(),
        }
    }

    #[test]
    fn suppressed_inside_reissue_then_delivered_again() {
        let mut record = None;
        let a = Arc::new(alert());
        assert_eq!(
            decide(&mut record, "fp", &a, 1_000, 500),
            IssueDecision::Deliver {
                delivery: 1,
                starts_at_ms: 1_000
            }
        );
        assert_eq!(
            decide(&mut record, "fp", &a, 1_499, 500),
            IssueDecision::Suppressed { until_ms: 1_500 }
        );
        assert_eq!(
            decide(&mut record, "fp", &a, 1_500, 500),
            IssueDecision::Deliver {
                delivery: 2,
                starts_at_ms: 1_000
            }
        );
        assert_eq!(
            decide(&mut record, "fp", &a, 1_900, 500),
            IssueDecision::Suppressed { until_ms: 2_000 }
        );
        let issued = record.unwrap();
        assert_eq!(issued.last_seen_ms, 1_900);
        assert!(!issued.quiet_for(2_000, 200));
        assert!(issued.quiet_for(2_100, 200));
    }
}
