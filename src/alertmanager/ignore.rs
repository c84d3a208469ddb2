//! IgnoreAlerts: operator rules (label matchers, a start, an optional end, author, comment) that
//! keep matching alerts from being delivered. An Alertmanager silence is an ignore rule.
//!
//! It must never let a rule with a matcher it cannot evaluate in: every rule is validated (and
//! its regexes compiled) before it is stored, with an error naming the offending field.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::config::alert::{MatchOp, Matcher};

/// One matcher as stored and shown: `{"name": "severity", "op": "=", "value": "critical"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatcherSpec {
    pub name: String,
    pub op: String,
    pub value: String,
}

impl MatcherSpec {
    pub fn compile(&self) -> Result<Matcher, String> {
        let op = MatchOp::from_str_op(&self.op).ok_or_else(|| {
            format!(
                "unknown matcher operator {:?} (expected =, !=, =~ or !~)",
                self.op
            )
        })?;
        Matcher::new(&self.name, op, &self.value).map_err(|e| e.to_string())
    }

    pub fn from_matcher(matcher: &Matcher) -> Self {
        Self {
            name: matcher.name.clone(),
            op: matcher.op.as_str().to_owned(),
            value: matcher.value.clone(),
        }
    }

    /// Alertmanager text form, `name=~"value"`.
    pub fn text(&self) -> String {
        format!(
            "{}{}\"{}\"",
            self.name,
            self.op,
            self.value.replace('"', "\\\"")
        )
    }
}

/// One ignore rule, as persisted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IgnoreRule {
    pub id: String,
    pub matchers: Vec<MatcherSpec>,
    pub starts_at_ms: u64,
    /// None: until removed.
    pub ends_at_ms: Option<u64>,
    pub author: String,
    pub comment: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// Where a rule stands at a given time (Alertmanager's silence states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleState {
    Pending,
    Active,
    Expired,
}

impl RuleState {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleState::Pending => "pending",
            RuleState::Active => "active",
            RuleState::Expired => "expired",
        }
    }
}

impl IgnoreRule {
    pub fn state(&self, now_ms: u64) -> RuleState {
        if now_ms < self.starts_at_ms {
            RuleState::Pending
        } else if self.ends_at_ms.is_some_and(|end| end <= now_ms) {
            RuleState::Expired
        } else {
            RuleState::Active
        }
    }
}

/// A rule that is not valid, with the field to blame (`matchers[1]`, `ends_at`, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RuleError {
    pub field: String,
    pub message: String,
}

impl RuleError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks a rule before it is stored; `end_field`/`matchers_field` name the fields as the
/// caller's API spells them (`ends_at` for v1, `endsAt` for v2).
pub fn validate_rule(
    rule: &IgnoreRule,
    matchers_field: &str,
    end_field: &str,
) -> Result<Vec<Matcher>, RuleError> {
    if rule.matchers.is_empty() {
        return Err(RuleError::new(matchers_field, "needs at least one matcher"));
    }
    let mut compiled = Vec::with_capacity(rule.matchers.len());
    for (position, spec) in rule.matchers.iter().enumerate() {
        compiled.push(
            spec.compile().map_err(|message| {
                RuleError::new(format!("{matchers_field}[{position}]"), message)
            })?,
        );
    }
    if let Some(end) = rule.ends_at_ms
        && end < rule.starts_at_ms
    {
        return Err(RuleError::new(end_field, "must not be before the start"));
    }
    if compiled.iter().all(|m| m.matches(Some(""))) {
        return Err(RuleError::new(
            matchers_field,
            "would match every alert (each matcher matches the empty value); name at least one label value",
        ));
    }
    Ok(compiled)
}

struct Compiled {
    rule: IgnoreRule,
    matchers: Vec<Matcher>,
}

/// All rules, indexed for matching: a rule with an equality matcher is only tried on alerts
/// carrying that label value, so 100 rules cost a couple of hash lookups per alert, not 100 scans.
#[derive(Default)]
pub struct IgnoreRules {
    rules: HashMap<String, Compiled>,
    by_label: HashMap<String, HashMap<String, Vec<String>>>,
    unindexed: Vec<String>,
}

impl IgnoreRules {
    /// Adds or replaces a validated rule.
    pub fn upsert(&mut self, rule: IgnoreRule, matchers: Vec<Matcher>) {
        self.remove(&rule.id);
        let id = rule.id.clone();
        match matchers
            .iter()
            .find(|m| m.op == MatchOp::Equal && !m.value.is_empty())
        {
            Some(key) => self
                .by_label
                .entry(key.name.clone())
                .or_default()
                .entry(key.value.clone())
                .or_default()
                .push(id.clone()),
            None => self.unindexed.push(id.clone()),
        }
        self.rules.insert(id, Compiled { rule, matchers });
    }

    pub fn remove(&mut self, id: &str) -> Option<IgnoreRule> {
        let removed = self.rules.remove(id)?;
        self.unindexed.retain(|other| other != id);
        for values in self.by_label.values_mut() {
            for ids in values.values_mut() {
                ids.retain(|other| other != id);
            }
        }
        Some(removed.rule)
    }

    pub fn get(&self, id: &str) -> Option<&IgnoreRule> {
        self.rules.get(id).map(|c| &c.rule)
    }

    pub fn all(&self) -> impl Iterator<Item = &IgnoreRule> {
        self.rules.values().map(|c| &c.rule)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Ids of the rules active at `now_ms` that match these labels (sorted).
    pub fn matching(&self, labels: &BTreeMap<String, String>, now_ms: u64) -> Vec<String> {
        let mut found = Vec::new();
        let mut consider = |id: &String| {
            if let Some(compiled) = self.rules.get(id)
                && compiled.rule.state(now_ms) == RuleState::Active
                && compiled
                    .matchers
                    .iter()
                    .all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
            {
                found.push(id.clone());
            }
        };
        for (name, values) in &self.by_label {
            if let Some(value) = labels.get(name)
                && let Some(ids) = values.get(value)
            {
                ids.iter().for_each(&mut consider);
            }
        }
        self.unindexed.iter().for_each(&mut consider);
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, op: &str, value: &str) -> MatcherSpec {
        MatcherSpec {
            name: name.into(),
            op: op.into(),
            value: value.into(),
        }
    }

    fn rule(id: &str, matchers: Vec<MatcherSpec>, start: u64, end: Option<u64>) -> IgnoreRule {
        IgnoreRule {
            id: id.into(),
            matchers,
            starts_at_ms: start,
            ends_at_ms: end,
            author: "ops".into(),
            comment: "maintenance".into(),
            created_at_ms: start,
            updated_at_ms: start,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_rule_matches_only_while_active() {
        let mut rules = IgnoreRules::default();
        let r = rule(
            "r1",
            vec![spec("host", "=", "h1"), spec("alertname", "=~", "High.*")],
            100,
            Some(200),
        );
        let compiled = validate_rule(&r, "matchers", "ends_at").unwrap();
        rules.upsert(r, compiled);
        let hit = labels(&[("host", "h1"), ("alertname", "HighMem")]);
        assert!(rules.matching(&hit, 99).is_empty(), "pending");
        assert_eq!(rules.matching(&hit, 100), vec!["r1".to_string()]);
        assert_eq!(rules.matching(&hit, 199), vec!["r1".to_string()]);
        assert!(rules.matching(&hit, 200).is_empty(), "expired at its end");
        assert!(
            rules
                .matching(&labels(&[("host", "h2"), ("alertname", "HighMem")]), 150)
                .is_empty()
        );
        assert!(
            rules
                .matching(&labels(&[("host", "h1"), ("alertname", "LowMem")]), 150)
                .is_empty()
        );
    }

    #[test]
    fn unindexed_rules_are_tried_too() {
        let mut rules = IgnoreRules::default();
        let r = rule(
            "r2",
            vec![
                spec("severity", "!=", "critical"),
                spec("index", "=~", "eu-.*"),
            ],
            0,
            None,
        );
        let compiled = validate_rule(&r, "matchers", "ends_at").unwrap();
        rules.upsert(r, compiled);
        assert_eq!(
            rules
                .matching(&labels(&[("severity", "warning"), ("index", "eu-1")]), 5)
                .len(),
            1
        );
        assert!(
            rules
                .matching(&labels(&[("severity", "critical"), ("index", "eu-1")]), 5)
                .is_empty()
        );
        assert!(rules.remove("r2").is_some());
        assert!(
            rules
                .matching(&labels(&[("severity", "warning"), ("index", "eu-1")]), 5)
                .is_empty()
        );
    }

    #[test]
    fn validation_names_the_field() {
        let bad_op = rule(
            "x",
            vec![spec("host", "=", "h1"), spec("host", ">", "h1")],
            0,
            None,
        );
        let error = validate_rule(&bad_op, "matchers", "ends_at").unwrap_err();
        assert_eq!(error.field, "matchers[1]");
        assert!(error.message.contains("operator"), "{error}");
        let backwards = rule("x", vec![spec("host", "=", "h1")], 100, Some(50));
        assert_eq!(
            validate_rule(&backwards, "matchers", "endsAt")
                .unwrap_err()
                .field,
            "endsAt"
        );
        let everything = rule("x", vec![spec("host", "=~", ".*")], 0, None);
        assert_eq!(
            validate_rule(&everything, "matchers", "ends_at")
                .unwrap_err()
                .field,
            "matchers"
        );
        let bad_regex = rule("x", vec![spec("host", "=~", "(")], 0, None);
        assert_eq!(
            validate_rule(&bad_regex, "matchers", "ends_at")
                .unwrap_err()
                .field,
            "matchers[0]"
        );
    }
}
