//! The rules file (`rules_file` in the api config): its YAML shape and the checks that run
//! before a rule set replaces the running one. Errors name the file, line and key
//! (`rules.yaml:12: rules[3].op: ...`) like every other config error. It must never accept a
//! rule that could not be evaluated (a missing field, an unknown operator, a bad regex or
//! template variable): a refused file leaves the running rules in place.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::locate::KeyPath;
use crate::config::units::HumanDuration;
use crate::config::{ConfigError, Matcher, Problems};

use super::template::Template;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// The rules, evaluated independently of each other.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// What a rule decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// `field op value` on each line.
    Threshold,
    /// Keywords or a regex in `msg` of log and tracelog lines.
    Keyword,
    /// A host that reported and has been silent for `for`.
    Deadman,
    /// Maximum of the field over `window`, compared with `op value`.
    Max,
    /// Minimum of the field over `window`.
    Min,
    /// Relative swing over `window` (default 15m), see [`Direction`].
    Volatility,
    /// (current − same minute yesterday) / same minute yesterday.
    DayOverDay,
    /// (current − same minute last week) / same minute last week.
    WeekOverWeek,
    /// (sum of the last hour − sum of the same hour yesterday) / that sum.
    HourDay,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Threshold => "threshold",
            RuleKind::Keyword => "keyword",
            RuleKind::Deadman => "deadman",
            RuleKind::Max => "max",
            RuleKind::Min => "min",
            RuleKind::Volatility => "volatility",
            RuleKind::DayOverDay => "day_over_day",
            RuleKind::WeekOverWeek => "week_over_week",
            RuleKind::HourDay => "hour_day",
        }
    }

    /// Kinds that compare a numeric field.
    pub fn reads_field(self) -> bool {
        !matches!(self, RuleKind::Keyword | RuleKind::Deadman)
    }

    /// Kinds that keep per-series history in the window buffer.
    pub fn is_windowed(self) -> bool {
        matches!(
            self,
            RuleKind::Max
                | RuleKind::Min
                | RuleKind::Volatility
                | RuleKind::DayOverDay
                | RuleKind::WeekOverWeek
                | RuleKind::HourDay
        )
    }
}

/// Which volatility formula: up = (max − avg) / avg, down = (avg − min) / avg,
/// interval = (max − min) / max.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Up,
    Down,
    Interval,
}

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique; becomes the `alertname` label.
    pub name: String,
    pub kind: RuleKind,
    /// Only lines of this measurement (keyword rules: the log or tracelog measurement; default
    /// both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<String>,
    /// Only lines of this index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Tag matchers, all of which must hold: `host=web1`, `dc!=eu`, `host=~"web.*"`, `env!~test`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The numeric field compared (threshold and windowed kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `>`, `>=`, `<`, `<=`, `==`, `!=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// What the field (or the windowed kind's result) is compared with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Keyword rules: substrings sought in `msg`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    /// Keyword rules: a regex sought in `msg` (instead of or besides keywords).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Keyword rules: whether case matters. Default true.
    #[serde(default = "default_true")]
    pub case_sensitive: bool,
    /// Windowed kinds: the window (default 15m for volatility, 5m for max/min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<HumanDuration>,
    /// Volatility: which formula.
    #[serde(default)]
    pub direction: Direction,
    /// Volatility, day/week-over-week, hour-day: no alert while the reference level (window
    /// average, or the earlier value/sum) is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// Deadman: how long a host must be silent.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub silent_for: Option<HumanDuration>,
    /// Re-send a still-matching series at most this often (default `rules.resend_interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend: Option<HumanDuration>,
    /// Default `warning`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Extra labels (part of the fingerprint).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Templated annotations: `{{ host }}`, `{{ index }}`, `{{ source }}`, `{{ value }}`,
    /// `{{ threshold }}`, `{{ field }}`, `{{ measurement }}`, `{{ msg }}`, `{{ name }}`,
    /// `{{ tags.KEY }}`. A `summary` is generated when absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}
fn default_severity() -> String {
    "warning".to_owned()
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    pub fn parse(text: &str) -> Option<Op> {
        Some(match text.trim() {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            "==" | "=" => Op::Eq,
            "!=" => Op::Ne,
            _ => return None,
        })
    }

    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Gt => left > right,
            Op::Ge => left >= right,
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

impl RulesFile {
    /// Parses and validates YAML text; `file` names the source in errors.
    pub fn from_yaml_str(source: &str, file: &str) -> Result<Self, ConfigError> {
        crate::config::load::parse_validated(source, file, RulesFile::validate)
    }

    /// Every problem, each with its key path.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::default();
        let root = KeyPath::root().key("rules");
        for (position, rule) in self.rules.iter().enumerate() {
            let path = root.index(position);
            if let Some(first) = self.rules[..position]
                .iter()
                .position(|r| r.name == rule.name)
            {
                problems.push(
                    &path.key("name"),
                    format!("duplicate of rules[{first}].name {:?}", rule.name),
                );
            }
            rule.validate(&path, &mut problems);
        }
        problems.into_result()
    }
}

impl RuleConfig {
    fn validate(&self, path: &KeyPath, problems: &mut Problems) {
        if self.name.trim().is_empty() {
            problems.push(&path.key("name"), "must not be empty");
        }
        if self.severity.trim().is_empty() {
            problems.push(&path.key("severity"), "must not be empty");
        }
        for (item, matcher) in self.tags.iter().enumerate() {
            if let Err(error) = Matcher::parse(matcher) {
                problems.push(&path.key("tags").index(item), error.to_string());
            }
        }
        for (key, text) in &self.annotations {
            if let Err(message) = Template::parse(text) {
                problems.push(&path.key("annotations").key(key), message);
            }
        }
        for key in self.labels.keys() {
            let valid =
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                problems.push(
                    &path.key("labels").key(key),
                    "label names use letters, digits and '_'",
                );
            }
        }
        let kind = self.kind.as_str();
        if self.kind.reads_field() {
            if self.field.as_deref().is_none_or(str::is_empty) {
                problems.push(
                    &path.key("field"),
                    format!("a {kind} rule needs the numeric field it compares"),
                );
            }
            match self.op.as_deref() {
                None => problems.push(
                    &path.key("op"),
                    format!("a {kind} rule needs op: one of >, >=, <, <=, ==, !="),
                ),
                Some(op) if Op::parse(op).is_none() => problems.push(
                    &path.key("op"),
                    format!("unknown operator {op:?}: use >, >=, <, <=, == or !="),
                ),
                Some(_) => {}
            }
            match self.value {
                None => problems.push(
                    &path.key("value"),
                    format!("a {kind} rule needs the value it compares with"),
                ),
                Some(value) if !value.is_finite() => {
                    problems.push(&path.key("value"), "must be a finite number")
                }
                Some(_) => {}
            }
        }
        if self.kind == RuleKind::Keyword {
            if self.keywords.is_empty() && self.regex.is_none() {
                problems.push(
                    &path.key("keywords"),
                    "a keyword rule needs keywords or regex",
                );
            }
            for (item, keyword) in self.keywords.iter().enumerate() {
                if keyword.is_empty() {
                    problems.push(&path.key("keywords").index(item), "must not be empty");
                }
            }
            if let Some(regex) = &self.regex
                && let Err(error) = regex::RegexBuilder::new(regex)
                    .case_insensitive(!self.case_sensitive)
                    .build()
            {
                let reason = error.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim();
                problems.push(&path.key("regex"), format!("bad regex: {reason}"));
            }
        } else {
            for (key, set) in [
                ("keywords", !self.keywords.is_empty()),
                ("regex", self.regex.is_some()),
            ] {
                if set {
                    problems.push(&path.key(key), format!("only keyword rules take {key}"));
                }
            }
        }
        if self.kind == RuleKind::Deadman {
            match self.silent_for {
                None => problems.push(
                    &path.key("for"),
                    "a deadman rule needs `for`: how long a host must be silent",
                ),
                Some(d) if d.is_zero() => problems.push(&path.key("for"), "must be longer than 0s"),
                Some(_) => {}
            }
            if self.measurement.is_some() || self.field.is_some() {
                problems.push(
                    &path.key(if self.measurement.is_some() {
                        "measurement"
                    } else {
                        "field"
                    }),
                    "a deadman rule watches hosts, not a measurement or field",
                );
            }
        } else if self.silent_for.is_some() {
            problems.push(&path.key("for"), "only deadman rules take `for`");
        }
        if let Some(window) = self.window {
            if !self.kind.is_windowed() {
                problems.push(&path.key("window"), format!("a {kind} rule has no window"));
            } else if window.get().as_secs() < 60 {
                problems.push(
                    &path.key("window"),
                    "must be at least 1m (the window buffer keeps 1-minute buckets)",
                );
            } else if window.get().as_secs() > 86_400 {
                problems.push(&path.key("window"), "must be at most 24h");
            }
        }
    }

    /// The window of a windowed rule, with its kind's default.
    pub fn window_or_default(&self) -> std::time::Duration {
        self.window.map(HumanDuration::get).unwrap_or_else(|| {
            std::time::Duration::from_secs(match self.kind {
                RuleKind::Volatility => 15 * 60,
                RuleKind::HourDay => 3600,
                _ => 5 * 60,
            })
        })
    }
}

/// Loads and validates a rules file.
pub fn load_rules_file(path: impl AsRef<Path>) -> Result<RulesFile, ConfigError> {
    let (source, file) = crate::config::load::read_config(path.as_ref())?;
    RulesFile::from_yaml_str(&source, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_shape_loads() {
        let text = r#"
rules:
  - name: HighMem
    kind: threshold
    measurement: mem
    field: used
    op: ">"
    value: 90
    severity: warning
  - name: Panic
    kind: keyword
    measurement: log
    keywords: ["panic", "fatal"]
    severity: critical
"#;
        let file = RulesFile::from_yaml_str(text, "rules.yaml").unwrap();
        assert_eq!(file.rules.len(), 2);
        assert!(file.rules[1].case_sensitive);
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let text = "rules:\n  - name: A\n    kind: threshold\n    field: used\n    op: \"~\"\n    value: 1\n  - name: A\n    kind: keyword\n    regex: \"(\"\n";
        let error = RulesFile::from_yaml_str(text, "r.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("r.yaml:5: rules[0].op: unknown operator"),
            "{error}"
        );
        assert!(
            error.contains("r.yaml:7: rules[1].name: duplicate"),
            "{error}"
        );
        assert!(error.contains("rules[1].regex: bad regex"), "{error}");
    }

    #[test]
    fn the_example_file_and_its_commented_kinds_load() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rules.yaml");
        assert_eq!(load_rules_file(path).unwrap().rules.len(), 2);
        let text = std::fs::read_to_string(path).unwrap();
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix("  # ") {
                Some(rest) if !rest.starts_with("More kinds") => format!("  {rest}\n"),
                _ => format!("{line}\n"),
            })
            .collect();
        let file = RulesFile::from_yaml_str(&uncommented, "uncommented.yaml").unwrap();
        assert_eq!(file.rules.len(), 8);
    }

    #[test]
    fn an_unknown_template_variable_is_refused() {
        let text = "rules:\n  - name: A\n    kind: deadman\n    for: 1m\n    annotations:\n      summary: \"{{ hots }} down\"\n";
        let error = RulesFile::from_yaml_str(text, "r.yaml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("rules[0].annotations.summary"), "{error}");
        assert!(error.contains("hots"), "{error}");
    }
}
