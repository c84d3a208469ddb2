//! The compiled rule set and its evaluation of one parsed line. Rules are indexed so that a line
//! meets only its candidates: field rules by measurement (plus the few without one), keyword
//! rules through two Aho-Corasick automatons (case-sensitive and not) that find every keyword of
//! every rule in one pass over `msg`. Per-rule state (times fired, per-series throttle and window
//! buckets) survives a reload when the rule's definition is unchanged.
//!
//! It must never allocate for a line that fires nothing beyond what the parser already did
//! (hashing the series key only for rules that keep series state), and never keep more series
//! per rule than `rules.max_series_per_rule`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde::Serialize;
use xxhash_rust::xxh3::Xxh3DefaultBuilder;

use crate::alertmanager::alert::{Alert, fingerprint};
use crate::config::Matcher;
use crate::protocol::{FieldValue, Kind, Line};

use super::config::{Op, RuleConfig, RuleKind, RulesFile};
use super::template::{Template, Var, Vars};
use super::window::{Budget, SeriesWindow, horizon_minutes};
use crate::calendar::rfc3339_ms;

const NANOS_PER_MINUTE: i64 = 60_000_000_000;
/// `msg` is cut to this many bytes in generated summaries.
const SUMMARY_MSG_BYTES: usize = 200;

/// What a rule remembers between lines.
#[derive(Debug, Default)]
pub struct RuleState {
    fired: AtomicU64,
    last_fired_ms: AtomicU64,
    tracked: AtomicUsize,
    refused_series: AtomicU64,
    series: Mutex<HashMap<u64, SeriesState>>,
}

#[derive(Debug, Default)]
struct SeriesState {
    last_sent_ms: Option<u64>,
    window: SeriesWindow,
}

impl RuleState {
    pub fn times_fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    pub fn last_fired_ms(&self) -> Option<u64> {
        match self.last_fired_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(ms),
        }
    }

    pub fn series_tracked(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, SeriesState>> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, budget: &Budget) {
        let mut series = self.lock();
        for state in series.values_mut() {
            state.window.release(budget);
        }
        series.clear();
        self.tracked.store(0, Ordering::Relaxed);
    }
}

/// One rule, ready to evaluate.
#[derive(Debug)]
pub struct CompiledRule {
    pub config: RuleConfig,
    op: Op,
    threshold: f64,
    index: Option<Vec<u8>>,
    matchers: Vec<Matcher>,
    field: Vec<u8>,
    regex: Option<regex::Regex>,
    annotations: Vec<(String, Template)>,
    window_minutes: i64,
    horizon: i64,
    resend_ms: u64,
    max_series: usize,
    pub state: Arc<RuleState>,
}

/// The settings evaluation reads.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    pub max_series_per_rule: usize,
    pub default_resend_ms: u64,
}

/// Everything a line is evaluated with besides itself.
pub struct EvalContext<'a> {
    /// Wall-clock now, for throttling and the alerts' `at`.
    pub now_ms: u64,
    pub request_id: &'a str,
    pub budget: &'a Budget,
    /// The request's receive time in nanoseconds: the timestamp a line without one is stored
    /// with (the write path stamps it so), used by the windowed kinds.
    pub receive_nanos: Option<i64>,
}

/// The compiled rules.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// Field rules by measurement.
    by_measurement: HashMap<Vec<u8>, FieldRules, Xxh3DefaultBuilder>,
    /// Field rules without a measurement: every metric line meets them.
    any_measurement: FieldRules,
    /// Every keyword of every keyword rule, in one automaton.
    keywords: Option<KeywordAutomaton>,
    /// Keyword rules with a regex.
    regex_rules: Vec<usize>,
    deadman: Vec<usize>,
    limits: EngineLimits,
    log_measurement: Vec<u8>,
    tracelog_measurement: Vec<u8>,
}

/// Distinct fields read by the rules of one measurement, looked up in one pass per line.
const MAX_FIELD_SLOTS: usize = 16;

/// The field rules of one measurement (or of every measurement).
#[derive(Debug, Default)]
struct FieldRules {
    rules: Vec<usize>,
    /// Per rule, its field's position in `fields`.
    slots: Vec<usize>,
    fields: Vec<Vec<u8>>,
}

impl FieldRules {
    fn add(&mut self, rule: usize, field: &[u8]) {
        let slot = match self.fields.iter().position(|f| f == field) {
            Some(slot) => slot,
            None => {
                self.fields.push(field.to_vec());
                self.fields.len() - 1
            }
        };
        self.rules.push(rule);
        self.slots.push(slot);
    }
}

#[derive(Debug)]
struct KeywordAutomaton {
    automaton: AhoCorasick,
    /// Pattern id -> rule.
    rule_of: Vec<usize>,
    /// Pattern id -> whether case matters. When the automaton folds ASCII case (some rule
    /// asked for it), a case-sensitive keyword's match is confirmed byte for byte.
    case_sensitive: Vec<bool>,
    patterns: Vec<String>,
    folds_case: bool,
}

/// Why a rule set could not be built (only for inputs that skipped validation).
#[derive(Debug, thiserror::Error)]
#[error("rule {rule:?}: {message}")]
pub struct CompileError {
    pub rule: String,
    pub message: String,
}

impl RuleSet {
    /// An empty set: the no-rule case costs nothing.
    pub fn empty(limits: EngineLimits) -> RuleSet {
        RuleSet {
            rules: Vec::new(),
            by_measurement: HashMap::default(),
            any_measurement: FieldRules::default(),
            keywords: None,
            regex_rules: Vec::new(),
            deadman: Vec::new(),
            limits,
            log_measurement: b"log".to_vec(),
            tracelog_measurement: b"tracelog".to_vec(),
        }
    }

    /// Compiles a validated file. A rule whose definition is unchanged from one in `previous`
    /// keeps that rule's state; the state of removed or changed rules is released.
    pub fn compile(
        file: &RulesFile,
        previous: Option<&RuleSet>,
        limits: EngineLimits,
        classifier: &crate::protocol::Classifier,
        budget: &Budget,
    ) -> Result<RuleSet, CompileError> {
        let mut set = RuleSet::empty(limits);
        set.log_measurement = classifier.log_measurement.clone();
        set.tracelog_measurement = classifier.tracelog_measurement.clone();
        let mut keywords = KeywordPatterns::default();
        let mut kept = Vec::new();
        for config in &file.rules {
            let error = |message: String| CompileError {
                rule: config.name.clone(),
                message,
            };
            let reused = previous.and_then(|p| {
                p.rules
                    .iter()
                    .find(|r| r.config == *config)
                    .map(|r| r.state.clone())
            });
            if let Some(state) = &reused {
                kept.push(Arc::as_ptr(state));
            }
            let matchers = config
                .tags
                .iter()
                .map(|m| Matcher::parse(m).map_err(|e| error(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            let annotations = config
                .annotations
                .iter()
                .map(|(k, v)| Template::parse(v).map(|t| (k.clone(), t)).map_err(error))
                .collect::<Result<Vec<_>, _>>()?;
            let regex = match &config.regex {
                Some(source) => Some(
                    regex::RegexBuilder::new(source)
                        .case_insensitive(!config.case_sensitive)
                        .build()
                        .map_err(|e| error(e.to_string()))?,
                ),
                None => None,
            };
            let op = config.op.as_deref().and_then(Op::parse).unwrap_or(Op::Gt);
            let window_minutes = (config.window_or_default().as_secs() / 60).max(1) as i64;
            let position = set.rules.len();
            set.rules.push(CompiledRule {
                op,
                threshold: config.value.unwrap_or(0.0),
                index: config.index.as_ref().map(|i| i.as_bytes().to_vec()),
                matchers,
                field: config.field.clone().unwrap_or_default().into_bytes(),
                regex,
                annotations,
                window_minutes,
                horizon: horizon_minutes(config.kind, window_minutes),
                resend_ms: config
                    .resend
                    .map_or(set.limits.default_resend_ms, |d| d.get().as_millis() as u64),
                max_series: set.limits.max_series_per_rule.max(1),
                state: reused.unwrap_or_default(),
                config: config.clone(),
            });
            match config.kind {
                RuleKind::Keyword => {
                    for keyword in &config.keywords {
                        keywords.patterns.push(keyword.clone());
                        keywords.rule_of.push(position);
                        keywords.case_sensitive.push(config.case_sensitive);
                    }
                    if config.regex.is_some() {
                        set.regex_rules.push(position);
                    }
                }
                RuleKind::Deadman => set.deadman.push(position),
                _ => {
                    let field = config.field.as_deref().unwrap_or_default().as_bytes();
                    match &config.measurement {
                        Some(m) => set
                            .by_measurement
                            .entry(m.as_bytes().to_vec())
                            .or_default()
                            .add(position, field),
                        None => set.any_measurement.add(position, field),
                    }
                }
            }
        }
        set.keywords = build_automaton(keywords)?;
        if let Some(previous) = previous {
            for rule in &previous.rules {
                if !kept.contains(&Arc::as_ptr(&rule.state)) {
                    rule.state.release(budget);
                }
            }
        }
        Ok(set)
    }

    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Forgets throttle entries whose resend time has passed (they no longer hold anything
    /// back), so the series a rule tracks are those that fired within its resend interval plus
    /// the windowed series. Called about once a second.
    pub fn prune(&self, now_ms: u64) {
        for rule in &self.rules {
            if rule.state.tracked.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut states = rule.state.lock();
            let resend = rule.resend_ms;
            states.retain(|_, s| {
                !s.window.is_empty() || s.last_sent_ms.is_some_and(|t| now_ms < t + resend)
            });
            rule.state.tracked.store(states.len(), Ordering::Relaxed);
        }
    }

    /// Deadman rules (evaluated against the host registry, not lines).
    pub fn deadman_rules(&self) -> impl Iterator<Item = &CompiledRule> {
        self.deadman.iter().map(|&i| &self.rules[i])
    }

    /// Evaluates every candidate rule on `line`, appending fired alerts to `out`.
    pub fn evaluate(&self, line: &Line<'_>, ctx: &EvalContext<'_>, out: &mut Vec<Alert>) {
        if self.rules.is_empty() {
            return;
        }
        let measurement = line.measurement().unescaped();
        if let Some(candidates) = self.by_measurement.get(measurement.as_ref()) {
            self.evaluate_field_rules(candidates, line, ctx, out);
        }
        if line.kind() == Kind::Metric && !self.any_measurement.rules.is_empty() {
            self.evaluate_field_rules(&self.any_measurement, line, ctx, out);
        }
        if line.kind() != Kind::Metric && (self.keywords.is_some() || !self.regex_rules.is_empty())
        {
            self.evaluate_keywords(line, measurement.as_ref(), ctx, out);
        }
    }

    /// One pass over the line's fields serves every candidate rule.
    fn evaluate_field_rules(
        &self,
        group: &FieldRules,
        line: &Line<'_>,
        ctx: &EvalContext<'_>,
        out: &mut Vec<Alert>,
    ) {
        let mut values = [None; MAX_FIELD_SLOTS];
        let slotted = group.fields.len() <= MAX_FIELD_SLOTS;
        if slotted {
            for (key, value) in line.fields() {
                if let Some(slot) = group.fields.iter().position(|f| key.eq_unescaped(f)) {
                    // The last of duplicate keys wins, as in InfluxDB.
                    values[slot] = numeric(value);
                }
            }
        }
        for (&position, &slot) in group.rules.iter().zip(&group.slots) {
            let rule = &self.rules[position];
            let value = if slotted {
                values[slot]
            } else {
                line.field(&rule.field).and_then(numeric)
            };
            if let Some(value) = value {
                self.evaluate_field_rule(rule, value, line, ctx, out);
            }
        }
    }

    fn evaluate_field_rule(
        &self,
        rule: &CompiledRule,
        value: f64,
        line: &Line<'_>,
        ctx: &EvalContext<'_>,
        out: &mut Vec<Alert>,
    ) {
        let windowed = rule.config.kind.is_windowed();
        // Most lines do not breach a threshold: compare before matching tags.
        if !windowed && !rule.op.holds(value, rule.threshold) {
            return;
        }
        if !rule.filters_hold(line) {
            return;
        }
        let verdict = if windowed {
            let series = series_hash(line);
            let Some(nanos) = line.timestamp_nanos().or(ctx.receive_nanos) else {
                return;
            };
            let minute = nanos.div_euclid(NANOS_PER_MINUTE);
            let mut states = rule.state.lock();
            let Some(state) = rule.series_entry(&mut states, series, ctx.now_ms) else {
                return;
            };
            if !state.window.add(minute, value, rule.horizon, ctx.budget) {
                return;
            }
            let Some(result) = state.window.evaluate(
                rule.config.kind,
                minute,
                rule.window_minutes,
                rule.config.direction,
                rule.config.baseline,
            ) else {
                return;
            };
            if !rule.op.holds(result, rule.threshold) {
                return;
            }
            if !rule.due(state, ctx.now_ms) {
                return;
            }
            result
        } else {
            let series = series_hash(line);
            let mut states = rule.state.lock();
            let Some(state) = rule.series_entry(&mut states, series, ctx.now_ms) else {
                return;
            };
            if !rule.due(state, ctx.now_ms) {
                return;
            }
            value
        };
        out.push(rule.alert(&LineVars::new(rule, line, Some(verdict), ctx)));
    }

    fn evaluate_keywords(
        &self,
        line: &Line<'_>,
        measurement: &[u8],
        ctx: &EvalContext<'_>,
        out: &mut Vec<Alert>,
    ) {
        let Some(FieldValue::String(msg)) = line.field(b"msg") else {
            return;
        };
        let msg = msg.as_str();
        // Small: a line rarely matches more than a few rules.
        let mut matched: Vec<usize> = Vec::new();
        if let Some(automaton) = &self.keywords {
            let haystack = msg.as_bytes();
            for found in automaton.automaton.find_overlapping_iter(haystack) {
                let pattern = found.pattern().as_usize();
                let rule = automaton.rule_of[pattern];
                if matched.contains(&rule) {
                    continue;
                }
                if automaton.folds_case
                    && automaton.case_sensitive[pattern]
                    && haystack.get(found.range()) != Some(automaton.patterns[pattern].as_bytes())
                {
                    continue;
                }
                matched.push(rule);
            }
        }
        for &position in &self.regex_rules {
            if !matched.contains(&position)
                && self.rules[position]
                    .regex
                    .as_ref()
                    .is_some_and(|r| r.is_match(&msg))
            {
                matched.push(position);
            }
        }
        for position in matched {
            let rule = &self.rules[position];
            let measurement_ok = match &rule.config.measurement {
                Some(m) => m.as_bytes() == measurement,
                None => {
                    measurement == self.log_measurement || measurement == self.tracelog_measurement
                }
            };
            if !measurement_ok || !rule.filters_hold(line) {
                continue;
            }
            let mut states = rule.state.lock();
            let Some(state) = rule.series_entry(&mut states, series_hash(line), ctx.now_ms) else {
                continue;
            };
            if !rule.due(state, ctx.now_ms) {
                continue;
            }
            drop(states);
            out.push(rule.alert(&LineVars::new(rule, line, None, ctx)));
        }
    }
}

#[derive(Default)]
struct KeywordPatterns {
    patterns: Vec<String>,
    rule_of: Vec<usize>,
    case_sensitive: Vec<bool>,
}

fn build_automaton(keywords: KeywordPatterns) -> Result<Option<KeywordAutomaton>, CompileError> {
    if keywords.patterns.is_empty() {
        return Ok(None);
    }
    let folds_case = keywords.case_sensitive.iter().any(|sensitive| !sensitive);
    // A DFA is the fastest search; its memory grows with the patterns, so very large keyword
    // sets let the library pick.
    let kind = (keywords.patterns.len() <= 5_000).then_some(AhoCorasickKind::DFA);
    let automaton = AhoCorasickBuilder::new()
        .kind(kind)
        .ascii_case_insensitive(folds_case)
        .match_kind(MatchKind::Standard)
        .build(&keywords.patterns)
        .map_err(|e| CompileError {
            rule: String::new(),
            message: format!("keyword automaton: {e}"),
        })?;
    Ok(Some(KeywordAutomaton {
        automaton,
        rule_of: keywords.rule_of,
        case_sensitive: keywords.case_sensitive,
        patterns: keywords.patterns,
        folds_case,
    }))
}

fn numeric(value: FieldValue<'_>) -> Option<f64> {
    match value {
        FieldValue::Float(f) => Some(f),
        FieldValue::Integer(i) => Some(i as f64),
        FieldValue::Unsigned(u) => Some(u as f64),
        FieldValue::Boolean(_) | FieldValue::String(_) => None,
    }
}

/// xxh3 of the series key as written (measurement and tags).
fn series_hash(line: &Line<'_>) -> u64 {
    let raw = line.raw();
    let fields = line.fields_raw();
    let offset = (fields.as_ptr() as usize).saturating_sub(raw.as_ptr() as usize);
    let key = raw.get(..offset.saturating_sub(1)).unwrap_or(raw);
    xxhash_rust::xxh3::xxh3_64(key)
}

impl CompiledRule {
    fn filters_hold(&self, line: &Line<'_>) -> bool {
        if let Some(index) = &self.index
            && !line.index().is_some_and(|i| i.eq_unescaped(index))
        {
            return false;
        }
        self.matchers.iter().all(|m| {
            let value = line.tag(m.name.as_bytes()).map(|v| v.as_str());
            m.matches(value.as_deref())
        })
    }

    /// The state of `series`, created if the rule may track one more.
    fn series_entry<'m>(
        &self,
        states: &'m mut HashMap<u64, SeriesState>,
        series: u64,
        now_ms: u64,
    ) -> Option<&'m mut SeriesState> {
        let limit = self.max_series;
        if !states.contains_key(&series) {
            if states.len() >= limit {
                // Forget throttle-only series whose resend time has passed before refusing.
                let resend = self.resend_ms;
                states.retain(|_, s| {
                    !s.window.is_empty() || s.last_sent_ms.is_some_and(|t| now_ms < t + resend)
                });
                if states.len() >= limit {
                    self.state.refused_series.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            }
            states.insert(series, SeriesState::default());
            self.state.tracked.store(states.len(), Ordering::Relaxed);
        }
        states.get_mut(&series)
    }

    /// Whether a firing series is due for (re)sending; records the send.
    fn due(&self, state: &mut SeriesState, now_ms: u64) -> bool {
        if state
            .last_sent_ms
            .is_some_and(|last| now_ms < last + self.resend_ms)
        {
            return false;
        }
        state.last_sent_ms = Some(now_ms);
        true
    }

    /// Builds the alert and counts the firing.
    pub fn alert(&self, vars: &dyn AlertVars) -> Alert {
        self.state.fired.fetch_add(1, Ordering::Relaxed);
        self.state
            .last_fired_ms
            .store(vars.now_ms().max(1), Ordering::Relaxed);
        let get = |var: Var| vars.get(&var).unwrap_or_default();
        let (index, host, source) = (get(Var::Index), get(Var::Host), get(Var::Source));
        let mut labels: BTreeMap<String, String> = self.config.labels.clone();
        for (name, value) in [
            ("alertname", &self.config.name),
            ("index", &index),
            ("host", &host),
            ("source", &source),
            ("severity", &self.config.severity),
        ] {
            if !value.is_empty() {
                labels.insert(name.to_owned(), value.clone());
            }
        }
        let mut annotations: BTreeMap<String, String> = self
            .annotations
            .iter()
            .map(|(k, t)| (k.clone(), t.render(vars)))
            .collect();
        annotations
            .entry("summary".to_owned())
            .or_insert_with(|| self.default_summary(vars));
        let request_id = get(Var::RequestId);
        if !request_id.is_empty() {
            annotations.insert("request_id".to_owned(), request_id);
        }
        let fingerprint = fingerprint(&labels);
        Alert {
            name: self.config.name.clone(),
            index,
            host,
            source,
            severity: self.config.severity.clone(),
            labels,
            annotations,
            value: vars.get(&Var::Value).and_then(|v| v.parse().ok()),
            at: rfc3339_ms(vars.now_ms()),
            fingerprint,
        }
    }

    fn default_summary(&self, vars: &dyn AlertVars) -> String {
        let get = |var: Var| vars.get(&var).unwrap_or_default();
        let host = get(Var::Host);
        let on = if host.is_empty() {
            String::new()
        } else {
            format!(" on {host}")
        };
        let c = &self.config;
        match c.kind {
            RuleKind::Threshold => format!(
                "{} {} {} {} {}{on}",
                get(Var::Measurement),
                get(Var::Field),
                get(Var::Value),
                self.op.as_str(),
                get(Var::Threshold)
            ),
            RuleKind::Keyword => {
                let mut msg = get(Var::Msg);
                if msg.len() > SUMMARY_MSG_BYTES {
                    let mut cut = SUMMARY_MSG_BYTES;
                    while !msg.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    msg.truncate(cut);
                    msg.push_str("...");
                }
                format!("{} matched{on}: {msg}", c.name)
            }
            RuleKind::Deadman => format!(
                "host {host} of index {} silent for more than {}",
                get(Var::Index),
                c.silent_for.map(|d| d.to_string()).unwrap_or_default()
            ),
            kind => format!(
                "{} of {} {} {} {} over {}m{on}",
                kind.as_str(),
                get(Var::Field),
                get(Var::Value),
                self.op.as_str(),
                get(Var::Threshold),
                self.window_minutes
            ),
        }
    }
}

/// What an alert is built from.
pub trait AlertVars: Vars {
    fn now_ms(&self) -> u64;
}

struct LineVars<'l, 'a> {
    rule: &'l CompiledRule,
    line: &'l Line<'a>,
    value: Option<f64>,
    now_ms: u64,
    request_id: &'l str,
}

impl<'l, 'a> LineVars<'l, 'a> {
    fn new(
        rule: &'l CompiledRule,
        line: &'l Line<'a>,
        value: Option<f64>,
        ctx: &'l EvalContext<'_>,
    ) -> Self {
        LineVars {
            rule,
            line,
            value,
            now_ms: ctx.now_ms,
            request_id: ctx.request_id,
        }
    }
}

impl Vars for LineVars<'_, '_> {
    fn get(&self, var: &Var) -> Option<String> {
        let tag = |key: &[u8]| self.line.tag(key).map(|v| v.as_str().into_owned());
        match var {
            Var::Name => Some(self.rule.config.name.clone()),
            Var::Index => self.line.index().map(|v| v.as_str().into_owned()),
            Var::Host => self.line.host().map(|v| v.as_str().into_owned()),
            Var::Source => tag(b"source"),
            Var::Value => self.value.map(format_number),
            Var::Threshold => self.rule.config.value.map(format_number),
            Var::Field => self.rule.config.field.clone(),
            Var::Measurement => Some(self.line.measurement().as_str().into_owned()),
            Var::Msg => match self.line.field(b"msg") {
                Some(FieldValue::String(s)) => Some(s.as_str().into_owned()),
                _ => None,
            },
            Var::Severity => Some(self.rule.config.severity.clone()),
            Var::RequestId => Some(self.request_id.to_owned()),
            Var::Tag(key) => tag(key.as_bytes()),
        }
    }
}

impl AlertVars for LineVars<'_, '_> {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
}

/// The variables of a deadman alert.
pub struct HostVars<'a> {
    pub rule: &'a CompiledRule,
    pub index: &'a str,
    pub host: &'a str,
    pub silent_seconds: f64,
    pub now_ms: u64,
}

impl Vars for HostVars<'_> {
    fn get(&self, var: &Var) -> Option<String> {
        match var {
            Var::Name => Some(self.rule.config.name.clone()),
            Var::Index => Some(self.index.to_owned()),
            Var::Host => Some(self.host.to_owned()),
            Var::Value => Some(format_number(self.silent_seconds)),
            Var::Severity => Some(self.rule.config.severity.clone()),
            Var::Tag(key) if key == "host" => Some(self.host.to_owned()),
            Var::Tag(key) if key == "index" => Some(self.index.to_owned()),
            _ => None,
        }
    }
}

impl AlertVars for HostVars<'_> {
    fn now_ms(&self) -> u64 {
        self.now_ms
    }
}

impl CompiledRule {
    /// Deadman: whether `(index, host)` passes the rule's index and tag matchers (only `index`
    /// and `host` are known for a silent host).
    pub fn matches_host(&self, index: &str, host: &str) -> bool {
        if self.index.as_deref().is_some_and(|i| i != index.as_bytes()) {
            return false;
        }
        self.matchers.iter().all(|m| match m.name.as_str() {
            "host" => m.matches(Some(host)),
            "index" => m.matches(Some(index)),
            _ => true,
        })
    }

    /// Deadman: whether the silent host is due for an alert (throttled like any series).
    pub fn host_due(&self, index: &str, host: &str, now_ms: u64) -> bool {
        let key = xxhash_rust::xxh3::xxh3_64(format!("{index}\u{0}{host}").as_bytes());
        let mut states = self.state.lock();
        let Some(state) = self.series_entry(&mut states, key, now_ms) else {
            return false;
        };
        self.due(state, now_ms)
    }

    /// Deadman: the host reports again; its next silence alerts at once.
    pub fn host_back(&self, index: &str, host: &str) {
        if self.state.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let key = xxhash_rust::xxh3::xxh3_64(format!("{index}\u{0}{host}").as_bytes());
        let mut states = self.state.lock();
        if states.remove(&key).is_some() {
            self.state.tracked.store(states.len(), Ordering::Relaxed);
        }
    }

    /// `for` of a deadman rule, in milliseconds.
    pub fn silent_for_ms(&self) -> u64 {
        self.config
            .silent_for
            .map_or(u64::MAX, |d| d.get().as_millis() as u64)
    }
}

/// Shortest text for a value: `93`, `0.6`, `1.5e20`.
pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// A rule's state for `GET /api/v1/rules`.
#[derive(Debug, Serialize)]
pub struct RuleReport {
    pub name: String,
    pub kind: &'static str,
    pub severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    pub times_fired: u64,
    pub last_fired: Option<String>,
    pub series_tracked: usize,
    pub series_refused: u64,
    pub definition: RuleConfig,
}

impl RuleSet {
    pub fn report(&self) -> Vec<RuleReport> {
        self.rules
            .iter()
            .map(|rule| RuleReport {
                name: rule.config.name.clone(),
                kind: rule.config.kind.as_str(),
                severity: rule.config.severity.clone(),
                measurement: rule.config.measurement.clone(),
                index: rule.config.index.clone(),
                times_fired: rule.state.times_fired(),
                last_fired: rule.state.last_fired_ms().map(rfc3339_ms),
                series_tracked: rule.state.series_tracked(),
                series_refused: rule.state.refused_series.load(Ordering::Relaxed),
                definition: rule.config.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Classifier, Precision, lines};

    fn set(yaml: &str) -> (RuleSet, Budget) {
        let file = RulesFile::from_yaml_str(yaml, "t.yaml").unwrap();
        let budget = Budget::new(1 << 30);
        let limits = EngineLimits {
            max_series_per_rule: 1000,
            default_resend_ms: 60_000,
        };
        let set = RuleSet::compile(&file, None, limits, &Classifier::default(), &budget).unwrap();
        (set, budget)
    }

    fn run(set: &RuleSet, budget: &Budget, body: &str, now_ms: u64) -> Vec<Alert> {
        let classifier = Classifier::default();
        let ctx = EvalContext {
            now_ms,
            request_id: "rid-1",
            budget,
            receive_nanos: None,
        };
        let mut out = Vec::new();
        for line in lines(body.as_bytes(), &classifier).with_precision(Precision::Second) {
            set.evaluate(&line.unwrap(), &ctx, &mut out);
        }
        out
    }

    const RULES: &str = r#"
rules:
  - name: HighMem
    kind: threshold
    measurement: mem
    field: used
    op: ">"
    value: 90
    tags: ["host=~web.*"]
    labels: {team: ops}
    annotations: {summary: "mem {{ value }} > {{ threshold }} on {{ host }} ({{ tags.dc }})"}
  - name: Panic
    kind: keyword
    keywords: ["panic", "fatal"]
    severity: critical
  - name: Oops
    kind: keyword
    keywords: ["oops"]
    case_sensitive: false
    index: cluster1
"#;

    #[test]
    fn threshold_fires_with_labels_fingerprint_and_template() {
        let (set, budget) = set(RULES);
        let alerts = run(
            &set,
            &budget,
            "mem,index=cluster1,host=web1,dc=eu used=93 100\nmem,index=cluster1,host=db1 used=99 100\nmem,index=cluster1,host=web2 used=50 100\n",
            1_795_262_400_000,
        );
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let alert = &alerts[0];
        assert_eq!(alert.name, "HighMem");
        assert_eq!(alert.host, "web1");
        assert_eq!(alert.value, Some(93.0));
        assert_eq!(alert.at, "2026-11-21T12:00:00.000Z");
        assert_eq!(alert.labels.get("team").map(String::as_str), Some("ops"));
        assert_eq!(
            alert.labels.get("severity").map(String::as_str),
            Some("warning")
        );
        assert_eq!(alert.fingerprint, fingerprint(&alert.labels));
        assert_eq!(alert.annotations["summary"], "mem 93 > 90 on web1 (eu)");
        assert_eq!(alert.annotations["request_id"], "rid-1");
    }

    #[test]
    fn a_firing_series_is_resent_only_after_the_resend_interval() {
        let (set, budget) = set(RULES);
        let over = "mem,index=cluster1,host=web1 used=93 100\n";
        assert_eq!(run(&set, &budget, over, 1_000_000).len(), 1);
        assert_eq!(run(&set, &budget, over, 1_010_000).len(), 0);
        // A recovery does not reset the throttle: a flapping series cannot storm.
        run(
            &set,
            &budget,
            "mem,index=cluster1,host=web1 used=10 100\n",
            1_020_000,
        );
        assert_eq!(run(&set, &budget, over, 1_030_000).len(), 0);
        assert_eq!(run(&set, &budget, over, 1_061_000).len(), 1);
        assert_eq!(set.rules()[0].state.series_tracked(), 1);
        set.prune(1_100_000);
        assert_eq!(set.rules()[0].state.series_tracked(), 1, "sent 39s ago");
        set.prune(1_121_001);
        assert_eq!(set.rules()[0].state.series_tracked(), 0);
        assert_eq!(set.rules()[0].state.times_fired(), 2);
    }

    #[test]
    fn keywords_respect_case_and_filters_in_one_pass() {
        let (set, budget) = set(RULES);
        let alerts = run(
            &set,
            &budget,
            "log,index=cluster1,host=h1,source=api msg=\"a PANIC and an OOPS\" 1\n\
             log,index=cluster2,host=h2,source=api msg=\"kernel panic, oops\" 1\n\
             tracelog,index=cluster1,host=h3,traceid=t msg=\"fatal: x\" 1\n\
             mem,index=cluster1,host=h4 msg=\"panic\" 1\n",
            5_000,
        );
        let names: Vec<(&str, &str)> = alerts
            .iter()
            .map(|a| (a.name.as_str(), a.host.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![("Oops", "h1"), ("Panic", "h2"), ("Panic", "h3")]
        );
        assert_eq!(alerts[1].source, "api");
        assert_eq!(alerts[1].severity, "critical");
    }

    #[test]
    fn windowed_kinds_on_past_timestamps() {
        let (set, budget) = set(r#"
rules:
  - {name: DoD, kind: day_over_day, measurement: req, field: n, op: ">", value: 0.5}
  - {name: Vol, kind: volatility, measurement: cpu, field: p, op: ">=", value: 0.5, baseline: 10}
"#);
        let day = 86_400;
        let t = 1_795_262_400; // a whole minute
        let yesterday = format!("req,index=c,host=h n=100 {}\n", t - day);
        assert!(
            run(&set, &budget, &yesterday, 1).is_empty(),
            "no history yet"
        );
        let today = format!("req,index=c,host=h n=140 {t}\n");
        assert!(
            run(&set, &budget, &today, 2).is_empty(),
            "+40% is not > 50%"
        );
        let later = format!("req,index=c,host=h n=200 {}\n", t + 60);
        let yesterday_later = format!("req,index=c,host=h n=100 {}\n", t - day + 60);
        run(&set, &budget, &yesterday_later, 3);
        let alerts = run(&set, &budget, &later, 4);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].value, Some(1.0)); // (200 - 100) / 100
        // volatility up: 10, 20, 30 -> (30 - 20) / 20 = 0.5
        let body = format!(
            "cpu,index=c,host=h p=10 {}\ncpu,index=c,host=h p=20 {}\ncpu,index=c,host=h p=30 {}\n",
            t,
            t + 60,
            t + 120
        );
        let alerts = run(&set, &budget, &body, 5);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].value, Some(0.5));
        assert!(budget.used_bytes() > 0);
    }

    #[test]
    fn reload_keeps_state_of_unchanged_rules_and_releases_the_rest() {
        let (first, budget) = set(
            "rules:\n  - {name: A, kind: max, measurement: m, field: f, op: \">\", value: 5}\n  - {name: B, kind: min, measurement: m, field: f, op: \"<\", value: 0}\n",
        );
        run(&first, &budget, "m,index=c,host=h f=9 60\n", 1);
        assert_eq!(first.rules()[0].state.times_fired(), 1);
        let used = budget.used_bytes();
        let file = RulesFile::from_yaml_str(
            "rules:\n  - {name: A, kind: max, measurement: m, field: f, op: \">\", value: 5}\n",
            "t.yaml",
        )
        .unwrap();
        let second = RuleSet::compile(
            &file,
            Some(&first),
            first.limits.clone(),
            &Classifier::default(),
            &budget,
        )
        .unwrap();
        assert_eq!(second.rules()[0].state.times_fired(), 1);
        assert!(budget.used_bytes() < used, "B's buckets were given back");
    }
}
