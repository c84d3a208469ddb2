//! The alert as it travels from `monitor-api` (and any other sender) to the alert manager:
//! the JSON shape of `POST /api/v1/alerts` (DESIGN.md) and its fingerprint.
//!
//! The fingerprint must never depend on anything but the labels (not on their order, the
//! annotations, the value or the time): it is what suppression state is keyed by, across
//! restarts and across versions, so the hash function and encoding here must not change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One alert. `labels` is what matching, grouping and routing see; `index` and `host` are
/// also labels, and `host` is what liveness is asked about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub name: String,
    #[serde(default)]
    pub index: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub value: Option<f64>,
    /// RFC 3339 with milliseconds, UTC (`2026-11-21T12:00:00.000Z`).
    pub at: String,
    /// 16 lowercase hex digits; recomputed from `labels` by the receiver when absent.
    #[serde(default)]
    pub fingerprint: String,
}

/// Serde for an alert shared between the records that hold it (an `Arc`, so the alert record,
/// the issued entry and a waiting group hold one copy): the same JSON as a plain [`Alert`].
pub mod shared {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Alert;

    pub fn serialize<S: Serializer>(alert: &Arc<Alert>, serializer: S) -> Result<S::Ok, S::Error> {
        alert.as_ref().serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<Alert>, D::Error> {
        Alert::deserialize(deserializer).map(Arc::new)
    }
}

/// xxh3-64 of the labels sorted by name, each name and value followed by a 0xff byte (a byte
/// that cannot occur in UTF-8, so `a=bc` and `ab=c` differ), as 16 lowercase hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for (name, value) in labels {
        hasher.update(name.as_bytes());
        hasher.update(&[0xff]);
        hasher.update(value.as_bytes());
        hasher.update(&[0xff]);
    }
    format!("{:016x}", hasher.digest())
}

impl Alert {
    /// The labels every alert carries, derived from the named fields when the sender left
    /// them out: `alertname`, `index`, `host`, `source`, `severity` (empty values omitted).
    pub fn complete_labels(&mut self) {
        let derived = [
            ("alertname", &self.name),
            ("index", &self.index),
            ("host", &self.host),
            ("source", &self.source),
            ("severity", &self.severity),
        ];
        for (name, value) in derived {
            if !value.is_empty() && !self.labels.contains_key(name) {
                self.labels.insert(name.to_owned(), value.clone());
            }
        }
    }

    /// The fingerprint of `labels`, computed now (ignores the `fingerprint` field).
    pub fn computed_fingerprint(&self) -> String {
        fingerprint(&self.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fingerprint_is_stable_and_order_free() {
        let a = labels(&[("alertname", "HighMem"), ("host", "host1")]);
        let b = labels(&[("host", "host1"), ("alertname", "HighMem")]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        // Pinned: state on disk is keyed by this value.
        assert_eq!(fingerprint(&a), "0fa1b9fea54b6750");
        assert_eq!(fingerprint(&a).len(), 16);
    }

    #[test]
    fn fingerprint_separates_name_and_value() {
        assert_ne!(
            fingerprint(&labels(&[("a", "bc")])),
            fingerprint(&labels(&[("ab", "c")]))
        );
    }

    #[test]
    fn the_design_example_parses() {
        let text = r#"{"name": "HighMem", "index": "cluster1", "host": "host1", "source": "api", "severity": "warning",
 "labels": {"alertname": "HighMem", "index": "cluster1", "host": "host1", "severity": "warning"},
 "annotations": {"summary": "mem used 93 > 90 on host1"},
 "value": 93.0, "at": "2026-11-21T12:00:00.000Z", "fingerprint": "9f3a6c0e1b2d4a57"}"#;
        let mut alert: Alert = serde_json::from_str(text).unwrap();
        alert.complete_labels();
        assert_eq!(alert.labels.get("source").map(String::as_str), Some("api"));
        assert_eq!(alert.value, Some(93.0));
    }
}
