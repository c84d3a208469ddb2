//! The rules engine as the proxy runs it: the write path's batcher shows each accepted line to
//! a [`RequestEvaluation`] as it parses it (no copy, no second parse), and once the request's
//! lines are durable the evaluation's alerts go to the outbox and its derived counts are merged.
//! The host registry is fed with the `(index, host)` pairs the batcher collected. A small
//! housekeeping thread runs the deadman check, the host registry snapshot and the derived-metrics
//! flush on their timers.
//!
//! Evaluation costs the request a hash lookup per line and a pass over the fields of lines that
//! have candidate rules (field rules indexed by measurement, keywords in one automaton); with no
//! rule and no derived metric configured nothing is evaluated at all. It must never panic on a
//! line and never hold a lock across an await.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::alertmanager::alert::Alert;
use crate::alertmanager::clock::{Clock, SystemClock};
use crate::config::{ApiConfig, ConfigError};
use crate::protocol::{Classifier, Line};
use crate::shard::Shared;
use crate::telemetry::metrics::{ApiMetrics, RuleLabels};

use super::config::{RulesFile, load_rules_file};
use super::derived::{Derived, DerivedBatch, Target};
use super::engine::{EngineLimits, EvalContext, HostVars, RuleSet};
use super::hosts::HostRegistry;
use super::outbox::{Outbox, Queued};
use super::window::Budget;

/// The host registry's snapshot file inside `data_dir`.
pub const HOSTS_FILE: &str = "hosts.json";

/// Why the rules could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Compile(#[from] super::engine::CompileError),
    #[error("starting the rules thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What the evaluation thread and the handlers share.
struct Shared_ {
    rules: Shared<RuleSet>,
    hosts: Arc<HostRegistry>,
    budget: Budget,
    outbox: Arc<Outbox>,
    metrics: Arc<ApiMetrics>,
    clock: Arc<dyn Clock>,
    classifier: Classifier,
    /// The derived-metrics accumulators; each evaluation counts into its own and merges here.
    derived: Option<std::sync::Mutex<Derived>>,
    derived_settings: crate::rules::settings::DerivedSettings,
}

/// The running engine.
pub struct RulesRuntime {
    shared: Arc<Shared_>,
    active_window: std::sync::atomic::AtomicU64,
    derived_rx: std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<DerivedBatch>>>,
}

impl RulesRuntime {
    /// Loads `rules_file`, opens the host registry in `data_dir` and starts the evaluation
    /// thread and the outbox senders (on the current tokio runtime, when there is one).
    pub fn start(
        config: &ApiConfig,
        metrics: Arc<ApiMetrics>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<RulesRuntime>, RulesError> {
        let classifier = config.classifier();
        let budget = Budget::new(config.rules.buffer_max_bytes.0);
        let file = match &config.rules_file {
            Some(path) => load_rules_file(path)?,
            None => RulesFile::default(),
        };
        let rules = RuleSet::compile(&file, None, limits(config), &classifier, &budget)?;
        metrics.rules.rules_loaded.set(rules.rules().len() as i64);
        metrics
            .rules
            .buffer_max_bytes
            .set(i64::try_from(budget.cap_bytes()).unwrap_or(i64::MAX));
        let hosts = Arc::new(HostRegistry::open(Some(config.data_dir.join(HOSTS_FILE))));
        let outbox = Outbox::start(
            &config.alert_managers,
            config.rules.outbox_capacity,
            metrics.clone(),
        );
        let shared = Arc::new(Shared_ {
            rules: Shared::new(rules),
            hosts,
            budget,
            outbox,
            metrics,
            clock,
            classifier: classifier.clone(),
            derived: Derived::new(&config.derived, &classifier).map(std::sync::Mutex::new),
            derived_settings: config.derived.clone(),
        });
        let (derived_tx, derived_rx) = tokio::sync::mpsc::channel(64);
        let housekeeper = Housekeeper {
            shared: Arc::downgrade(&shared),
            derived_tx,
            deadman_interval: config.rules.deadman_interval.get(),
            snapshot_interval: config.rules.hosts_snapshot_interval.get(),
        };
        std::thread::Builder::new()
            .name("rules-housekeeping".to_owned())
            .spawn(move || housekeeper.run())
            .map_err(RulesError::Thread)?;
        Ok(Arc::new(RulesRuntime {
            shared,
            active_window: (config.host_active_window.get().as_millis() as u64).into(),
            derived_rx: std::sync::Mutex::new(Some(derived_rx)),
        }))
    }

    /// Starts with the real clock.
    pub fn start_default(
        config: &ApiConfig,
        metrics: Arc<ApiMetrics>,
    ) -> Result<Arc<RulesRuntime>, RulesError> {
        Self::start(config, metrics, Arc::new(SystemClock))
    }

    /// Whether evaluation needs the lines themselves (some rule or derived metric is
    /// configured). Without, the write path only feeds the host registry ([`Self::touch_hosts`])
    /// and nothing is copied or parsed again.
    pub fn needs_lines(&self) -> bool {
        self.shared.derived.is_some() || !self.shared.rules.snapshot().is_empty()
    }

    /// Records that these `(index, host)` pairs reported now (the write path's batcher collects
    /// them while it parses).
    pub fn touch_hosts(&self, hosts: &[(String, String)]) {
        if hosts.is_empty() {
            return;
        }
        let now_ms = self.shared.clock.now_ms();
        self.shared.hosts.touch(
            hosts
                .iter()
                .map(|(index, host)| (index.as_str(), host.as_str())),
            now_ms,
        );
    }

    /// An evaluation of one write request's lines as the write path's batcher parses them (no
    /// copy, no second parse); `None` when no rule or derived metric is configured. Its alerts
    /// leave and its counts are merged only by [`RequestEvaluation::finish`], which the write
    /// path calls once the request's lines are durable.
    pub fn evaluation(
        &self,
        request_id: &str,
        database: &str,
        retention_policy: &str,
        receive_nanos: Option<i64>,
        arrived: Instant,
    ) -> Option<RequestEvaluation<'_>> {
        if !self.needs_lines() {
            return None;
        }
        let shared = &self.shared;
        Some(RequestEvaluation {
            shared,
            rules: shared.rules.snapshot(),
            derived: shared
                .derived
                .as_ref()
                .and_then(|_| Derived::new(&shared.derived_settings, &shared.classifier)),
            alerts: Vec::new(),
            now_ms: shared.clock.now_ms(),
            request_id: request_id.to_owned(),
            database: database.to_owned(),
            retention_policy: retention_policy.to_owned(),
            receive_nanos,
            arrived,
        })
    }

    /// Loads `config.rules_file` and compiles it; nothing changes until [`apply`](Self::apply).
    pub fn prepare(&self, config: &ApiConfig) -> Result<PreparedRules, RulesError> {
        let file = match &config.rules_file {
            Some(path) => load_rules_file(path)?,
            None => RulesFile::default(),
        };
        Ok(PreparedRules {
            file,
            limits: limits(config),
            alert_managers: config.alert_managers.clone(),
            active_window_ms: config.host_active_window.get().as_millis() as u64,
        })
    }

    /// Installs prepared rules (keeping the state of unchanged rules) and alert managers.
    pub fn apply(&self, prepared: PreparedRules) -> Result<usize, RulesError> {
        let shared = &self.shared;
        let old = shared.rules.snapshot();
        let new = RuleSet::compile(
            &prepared.file,
            Some(&old),
            prepared.limits,
            &shared.classifier,
            &shared.budget,
        )?;
        let count = new.rules().len();
        shared.rules.swap(Arc::new(new));
        shared.metrics.rules.rules_loaded.set(count as i64);
        shared.outbox.set_targets(&prepared.alert_managers);
        self.active_window
            .store(prepared.active_window_ms, Ordering::Relaxed);
        Ok(count)
    }

    pub fn rules(&self) -> Arc<RuleSet> {
        self.shared.rules.snapshot()
    }

    pub fn hosts(&self) -> &HostRegistry {
        &self.shared.hosts
    }

    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    /// `host_active_window` in milliseconds.
    pub fn active_window_ms(&self) -> u64 {
        self.active_window.load(Ordering::Relaxed)
    }

    pub fn outbox(&self) -> &Outbox {
        &self.shared.outbox
    }

    /// The derived-metric batches to write back (taken once, by the proxy's writer task).
    pub fn take_derived_receiver(&self) -> Option<tokio::sync::mpsc::Receiver<DerivedBatch>> {
        self.derived_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Writes the host registry snapshot (at shutdown).
    pub fn save_hosts(&self) {
        if let Err(error) = self.shared.hosts.save_if_dirty() {
            tracing::warn!(%error, "cannot save the host registry");
        }
    }
}

/// A loaded, validated rules file waiting to be applied by a reload.
pub struct PreparedRules {
    file: RulesFile,
    limits: EngineLimits,
    alert_managers: Vec<String>,
    active_window_ms: u64,
}

fn limits(config: &ApiConfig) -> EngineLimits {
    EngineLimits {
        max_series_per_rule: config.rules.max_series_per_rule,
        default_resend_ms: config.rules.resend_interval.get().as_millis() as u64,
    }
}

/// One request's lines being evaluated on the write path (see [`RulesRuntime::evaluation`]).
pub struct RequestEvaluation<'r> {
    shared: &'r Arc<Shared_>,
    rules: Arc<RuleSet>,
    derived: Option<Derived>,
    alerts: Vec<Alert>,
    now_ms: u64,
    request_id: String,
    database: String,
    retention_policy: String,
    receive_nanos: Option<i64>,
    arrived: Instant,
}

impl RequestEvaluation<'_> {
    /// Evaluates one accepted line (called by the batcher with the line it just parsed).
    pub fn observe(&mut self, line: &Line<'_>) {
        let ctx = EvalContext {
            now_ms: self.now_ms,
            request_id: &self.request_id,
            budget: &self.shared.budget,
            receive_nanos: self.receive_nanos,
        };
        self.rules.evaluate(line, &ctx, &mut self.alerts);
        if let Some(derived) = self.derived.as_mut() {
            let target = Target {
                database: &self.database,
                retention_policy: &self.retention_policy,
            };
            derived.observe(line, target, self.now_ms, self.receive_nanos);
        }
    }

    /// Sends the fired alerts to the outbox and merges the derived counts: the request's lines
    /// are durable. Dropping it instead discards both (the request was refused).
    pub fn finish(self) {
        let shared = self.shared;
        if let (Some(accumulated), Some(local)) = (&shared.derived, self.derived) {
            accumulated
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .merge(local);
        }
        let queued: Vec<Queued> = self
            .alerts
            .into_iter()
            .map(|alert| Queued {
                alert,
                arrived: self.arrived,
                request_id: self.request_id.clone(),
            })
            .collect();
        for queued in &queued {
            shared
                .metrics
                .rules
                .alerts_fired
                .get_or_create(&RuleLabels {
                    rule: queued.alert.name.clone(),
                })
                .inc();
        }
        shared.outbox.push(&queued);
        shared.update_buffer_metrics();
    }
}

impl Shared_ {
    fn update_buffer_metrics(&self) {
        let metrics = &self.metrics.rules;
        metrics
            .buffer_bytes
            .set(i64::try_from(self.budget.used_bytes()).unwrap_or(i64::MAX));
        let refused = self.budget.refused();
        let counted = metrics.buffer_refused.get();
        if refused > counted {
            metrics.buffer_refused.inc_by(refused - counted);
        }
    }

    fn deadman(&self) {
        let rules = self.rules.snapshot();
        let mut deadman = rules.deadman_rules().peekable();
        if deadman.peek().is_none() {
            return;
        }
        let now_ms = self.clock.now_ms();
        let hosts = self.hosts.all();
        let mut queued = Vec::new();
        for rule in deadman {
            let silent_for = rule.silent_for_ms();
            for (index, host, seen) in &hosts {
                if !rule.matches_host(index, host) {
                    continue;
                }
                let silent = now_ms.saturating_sub(*seen);
                if silent < silent_for {
                    rule.host_back(index, host);
                    continue;
                }
                if !rule.host_due(index, host, now_ms) {
                    continue;
                }
                let alert = rule.alert(&HostVars {
                    rule,
                    index,
                    host,
                    silent_seconds: (silent / 1000) as f64,
                    now_ms,
                });
                self.metrics
                    .rules
                    .alerts_fired
                    .get_or_create(&RuleLabels {
                        rule: alert.name.clone(),
                    })
                    .inc();
                queued.push(Queued {
                    alert,
                    arrived: Instant::now(),
                    request_id: String::new(),
                });
            }
        }
        self.outbox.push(&queued);
    }
}

/// The timers: deadman checks, host registry snapshots, derived-metric flushes. Ends when the
/// engine is dropped.
struct Housekeeper {
    shared: std::sync::Weak<Shared_>,
    derived_tx: tokio::sync::mpsc::Sender<DerivedBatch>,
    deadman_interval: Duration,
    snapshot_interval: Duration,
}

impl Housekeeper {
    fn run(self) {
        let tick = self.deadman_interval.min(Duration::from_secs(1));
        let mut next_deadman = Instant::now() + self.deadman_interval;
        let mut next_snapshot = Instant::now() + self.snapshot_interval;
        let mut next_derived = Instant::now() + Duration::from_secs(1);
        loop {
            std::thread::sleep(tick);
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            let now = Instant::now();
            if now >= next_deadman {
                next_deadman = now + self.deadman_interval;
                shared.deadman();
                shared.rules.snapshot().prune(shared.clock.now_ms());
            }
            if now >= next_snapshot {
                next_snapshot = now + self.snapshot_interval;
                if let Err(error) = shared.hosts.save_if_dirty() {
                    tracing::warn!(%error, "cannot save the host registry snapshot");
                }
                shared
                    .metrics
                    .rules
                    .hosts_known
                    .set(shared.hosts.len() as i64);
            }
            if now >= next_derived {
                next_derived = now + Duration::from_secs(1);
                self.flush_derived(&shared);
            }
        }
    }

    fn flush_derived(&self, shared: &Shared_) {
        let Some(derived) = &shared.derived else {
            return;
        };
        let now_ms = shared.clock.now_ms();
        let batches = {
            let mut derived = derived.lock().unwrap_or_else(|p| p.into_inner());
            if derived.refused > 0 {
                shared.metrics.rules.derived_dropped.inc_by(derived.refused);
                derived.refused = 0;
            }
            derived.take_due(now_ms, false)
        };
        for batch in batches {
            let lines = batch.lines as u64;
            if self.derived_tx.try_send(batch).is_err() {
                shared.metrics.rules.derived_dropped.inc_by(lines);
            }
        }
    }
}

/// Where the host registry lives for a config.
pub fn hosts_path(config: &ApiConfig) -> PathBuf {
    config.data_dir.join(HOSTS_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alertmanager::clock::ManualClock;
    use std::time::SystemTime;

    fn wait_until(mut check: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn deadman_fires_on_the_injected_clock_once_per_silence() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules.yaml");
        std::fs::write(
            &rules,
            "rules:\n  - {name: Dead, kind: deadman, for: 5m, tags: [\"host=~h.*\"]}\n",
        )
        .unwrap();
        let config = ApiConfig::from_yaml_str(
            &format!(
                "groups:\n  g1:\n    replicas: [{{url: \"http://127.0.0.1:1\"}}, {{url: \"http://127.0.0.1:2\"}}]\n\
                 open_access: true\ndata_dir: \"{}\"\nrules_file: \"{}\"\nalert_managers: [\"http://127.0.0.1:3\"]\n\
                 rules: {{deadman_interval: 10ms, resend_interval: 1h}}\n",
                dir.path().display(),
                rules.display()
            ),
            "t.yaml",
        )
        .unwrap();
        let clock = Arc::new(ManualClock::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_262_400),
        ));
        let runtime =
            RulesRuntime::start(&config, Arc::new(ApiMetrics::new()), clock.clone()).unwrap();
        runtime
            .hosts()
            .touch([("c1", "h1"), ("c1", "other")], clock.now_ms());
        clock.advance(Duration::from_secs(299));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(runtime.outbox().queued(), 0, "silent for less than 5m");
        clock.advance(Duration::from_secs(2));
        assert!(wait_until(|| runtime.outbox().queued() == 1));
        clock.advance(Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            runtime.outbox().queued(),
            1,
            "one alert per silence (resend 1h)"
        );
        // The host reports again, then falls silent again: a new alert.
        runtime.hosts().touch([("c1", "h1")], clock.now_ms());
        assert!(wait_until(|| runtime.rules().rules()[0]
            .state
            .series_tracked()
            == 0));
        clock.advance(Duration::from_secs(301));
        assert!(wait_until(|| runtime.outbox().queued() == 2));
        assert_eq!(runtime.rules().rules()[0].state.times_fired(), 2);
    }
}
