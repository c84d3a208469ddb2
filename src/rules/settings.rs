//! The `rules:` and `derived:` sections of the `monitor-api` config: the rules engine's memory
//! caps, outbox size and timers, and which derived metrics are written back. They live here
//! (not in `config/api.rs`) so the engine owns its knobs; `ApiConfig` embeds them. Nothing here
//! may be unbounded: every cap has a default.

use serde::{Deserialize, Serialize};

use crate::config::Problems;
use crate::config::locate::KeyPath;
use crate::config::units::{ByteSize, HumanDuration};

/// `rules:` in the api config. A list there (rules pasted into the api config, or a rules file
/// checked as an api config) is refused with a message saying where rules belong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RulesSettings {
    /// Memory cap of the window buffer (per-series 1-minute buckets of the windowed kinds).
    /// At the cap new buckets are refused and counted. Default 64MiB.
    pub buffer_max_bytes: ByteSize,
    /// Series a single rule tracks at most (throttle and window state). Default 100000.
    pub max_series_per_rule: usize,
    /// Fired alerts waiting for an alert manager, per alert manager; the oldest are dropped
    /// (and counted) beyond it. Default 10000.
    pub outbox_capacity: usize,
    /// How often deadman rules look at the host registry. Default 1s.
    pub deadman_interval: HumanDuration,
    /// How often the host registry is written to `data_dir/hosts.json`. Default 10s.
    pub hosts_snapshot_interval: HumanDuration,
    /// A series that keeps matching a rule is re-sent at most this often. Default 1m.
    pub resend_interval: HumanDuration,
}

/// The map form, as serde derives it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RulesSettingsMap {
    buffer_max_bytes: ByteSize,
    max_series_per_rule: usize,
    outbox_capacity: usize,
    deadman_interval: HumanDuration,
    hosts_snapshot_interval: HumanDuration,
    resend_interval: HumanDuration,
}

impl Default for RulesSettingsMap {
    fn default() -> Self {
        let s = RulesSettings::default();
        RulesSettingsMap {
            buffer_max_bytes: s.buffer_max_bytes,
            max_series_per_rule: s.max_series_per_rule,
            outbox_capacity: s.outbox_capacity,
            deadman_interval: s.deadman_interval,
            hosts_snapshot_interval: s.hosts_snapshot_interval,
            resend_interval: s.resend_interval,
        }
    }
}

impl From<RulesSettingsMap> for RulesSettings {
    fn from(s: RulesSettingsMap) -> Self {
        RulesSettings {
            buffer_max_bytes: s.buffer_max_bytes,
            max_series_per_rule: s.max_series_per_rule,
            outbox_capacity: s.outbox_capacity,
            deadman_interval: s.deadman_interval,
            hosts_snapshot_interval: s.hosts_snapshot_interval,
            resend_interval: s.resend_interval,
        }
    }
}

impl<'de> Deserialize<'de> for RulesSettings {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Settings;
        impl<'de> serde::de::Visitor<'de> for Settings {
            type Value = RulesSettings;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the rules engine settings (buffer_max_bytes, outbox_capacity, ...)")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                _: A,
            ) -> Result<RulesSettings, A::Error> {
                Err(serde::de::Error::custom(
                    "unknown field `rules` as a list: rules belong in the file named by rules_file; \
                     in the monitor-api config `rules:` holds the engine settings \
                     (buffer_max_bytes, max_series_per_rule, outbox_capacity, resend_interval, ...)",
                ))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RulesSettings, A::Error> {
                RulesSettingsMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RulesSettings::from)
            }
        }
        deserializer.deserialize_any(Settings)
    }
}

impl Default for RulesSettings {
    fn default() -> Self {
        Self {
            buffer_max_bytes: ByteSize(64 << 20),
            max_series_per_rule: 100_000,
            outbox_capacity: 10_000,
            deadman_interval: HumanDuration::from_secs(1),
            hosts_snapshot_interval: HumanDuration::from_secs(10),
            resend_interval: HumanDuration::from_secs(60),
        }
    }
}

/// `derived:` in the api config: metrics computed from logs and tracelogs and written back
/// through the normal write path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DerivedSettings {
    /// Count log lines per (index, source, host, level) per interval.
    pub log_counts: Option<LogCountSettings>,
    /// Per trace id and source, the time between its first and last tracelog line.
    pub trace_durations: Option<TraceDurationSettings>,
}

/// `derived.log_counts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogCountSettings {
    /// Measurement written. Default `log_count`.
    pub measurement: String,
    /// Counting interval (a point per interval and key). Default 1m.
    pub interval: HumanDuration,
    /// Tag holding the level. Default `level`.
    pub level_tag: String,
}

impl Default for LogCountSettings {
    fn default() -> Self {
        Self {
            measurement: "log_count".to_owned(),
            interval: HumanDuration::from_secs(60),
            level_tag: "level".to_owned(),
        }
    }
}

/// `derived.trace_durations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceDurationSettings {
    /// Measurement written. Default `trace_duration`.
    pub measurement: String,
    /// A trace is written once no line of it arrived for this long. Default 30s.
    pub idle: HumanDuration,
    /// Traces followed at once; beyond it new traces are not measured (counted). Default 100000.
    pub max_traces: usize,
}

impl Default for TraceDurationSettings {
    fn default() -> Self {
        Self {
            measurement: "trace_duration".to_owned(),
            idle: HumanDuration::from_secs(30),
            max_traces: 100_000,
        }
    }
}

impl RulesSettings {
    /// Problems with the `rules:` section.
    pub fn validate(&self, path: &KeyPath, problems: &mut Problems) {
        for (key, value) in [
            ("max_series_per_rule", self.max_series_per_rule),
            ("outbox_capacity", self.outbox_capacity),
        ] {
            if value == 0 {
                problems.push(&path.key(key), "must be at least 1");
            }
        }
        for (key, value) in [
            ("deadman_interval", self.deadman_interval),
            ("hosts_snapshot_interval", self.hosts_snapshot_interval),
        ] {
            if value.is_zero() {
                problems.push(&path.key(key), "must be longer than 0s");
            }
        }
    }
}

impl DerivedSettings {
    /// Problems with the `derived:` section.
    pub fn validate(&self, path: &KeyPath, problems: &mut Problems) {
        if let Some(counts) = &self.log_counts {
            let path = path.key("log_counts");
            check_name(&counts.measurement, &path.key("measurement"), problems);
            check_name(&counts.level_tag, &path.key("level_tag"), problems);
            if counts.interval.get().as_secs() == 0 {
                problems.push(&path.key("interval"), "must be at least 1s");
            }
        }
        if let Some(traces) = &self.trace_durations {
            let path = path.key("trace_durations");
            check_name(&traces.measurement, &path.key("measurement"), problems);
            if traces.idle.is_zero() {
                problems.push(&path.key("idle"), "must be longer than 0s");
            }
            if traces.max_traces == 0 {
                problems.push(&path.key("max_traces"), "must be at least 1");
            }
        }
    }
}

/// A measurement or tag key we write ourselves: non-empty and without characters that would
/// need escaping, so the derived lines are always valid.
fn check_name(name: &str, path: &KeyPath, problems: &mut Problems) {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if !valid {
        problems.push(
            path,
            format!("use letters, digits, '_', '-', '.' or ':' (got {name:?})"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ApiConfig;

    const GROUPS: &str = "groups:\n  g1:\n    replicas: [{url: \"http://127.0.0.1:1\"}, {url: \"http://127.0.0.1:2\"}]\nopen_access: true\n";

    #[test]
    fn the_sections_parse_and_refuse_what_they_do_not_know() {
        let config = ApiConfig::from_yaml_str(
            &format!("{GROUPS}rules:\n  buffer_max_bytes: 1MiB\n  resend_interval: 5m\nderived:\n  log_counts: {{interval: 10s}}\n"),
            "a.yaml",
        )
        .unwrap();
        assert_eq!(config.rules.buffer_max_bytes.0, 1 << 20);
        assert_eq!(config.rules.outbox_capacity, 10_000);
        assert_eq!(config.derived.log_counts.unwrap().measurement, "log_count");
        let error = ApiConfig::from_yaml_str(&format!("{GROUPS}rules:\n  bogus: 1\n"), "a.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("a.yaml:6") && error.contains("bogus"),
            "{error}"
        );
        let error = ApiConfig::from_yaml_str(
            &format!("{GROUPS}rules:\n  - name: A\n    kind: deadman\n"),
            "a.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("rules belong in the file named by rules_file"),
            "{error}"
        );
        let error = ApiConfig::from_yaml_str(
            &format!("{GROUPS}derived:\n  log_counts: {{measurement: \"bad name\"}}\n"),
            "a.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("derived.log_counts.measurement"), "{error}");
    }
}
