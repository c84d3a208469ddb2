//! Host liveness for the SuccessDuration sweep: asks monitor-api's host registry
//! (`GET {monitor_api}/api/v1/hosts?index=I&host=H`) whether a host is Active, and keeps each
//! answer for `host_cache_ttl`.
//!
//! It must never report a host Active that it could not confirm: an unreachable monitor-api, an
//! answer it cannot read, or a host it does not list are all "not known active" (no Success is
//! sent: silence is not recovery), and each such lookup is logged and counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;

use super::clock::Clock;
use super::metrics::{AlertMetrics, ResultLabels};
use super::pipeline::{HostKey, Liveness};
use crate::telemetry::error_chain;

#[derive(Deserialize)]
struct HostsAnswer {
    #[serde(default)]
    hosts: Vec<HostEntry>,
}

#[derive(Deserialize)]
struct HostEntry {
    #[serde(default)]
    index: String,
    host: String,
    #[serde(default)]
    active: bool,
}

/// The monitor-api client with its cache.
pub struct HostLiveness {
    urls: Vec<String>,
    client: reqwest::Client,
    ttl_ms: u64,
    clock: Arc<dyn Clock>,
    metrics: AlertMetrics,
    cache: Mutex<HashMap<HostKey, (Liveness, u64)>>,
}

impl HostLiveness {
    pub fn new(
        urls: Vec<String>,
        ttl: Duration,
        clock: Arc<dyn Clock>,
        metrics: AlertMetrics,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            urls,
            client,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            clock,
            metrics,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn count(&self, result: &'static str) {
        self.metrics
            .host_lookups
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Liveness of every host asked about.
    pub async fn check_all(
        &self,
        hosts: impl IntoIterator<Item = HostKey>,
    ) -> BTreeMap<HostKey, Liveness> {
        let mut answers = BTreeMap::new();
        for key in hosts {
            let liveness = self.check(&key).await;
            answers.insert(key, liveness);
        }
        answers
    }

    /// Whether monitor-api says this host is Active (cached).
    pub async fn check(&self, key: &HostKey) -> Liveness {
        if key.host.is_empty() {
            self.count("unknown");
            return Liveness::Unknown;
        }
        let now = self.clock.now_ms();
        if let Some((liveness, at)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            && now.saturating_sub(at) < self.ttl_ms
        {
            self.count("cached");
            return liveness;
        }
        let liveness = self.ask(key).await;
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), (liveness, now));
        liveness
    }

    async fn ask(&self, key: &HostKey) -> Liveness {
        if self.urls.is_empty() {
            self.count("unknown");
            return Liveness::Unknown;
        }
        for base in &self.urls {
            let url = format!("{}/api/v1/hosts", base.trim_end_matches('/'));
            let mut query: Vec<(&str, &str)> = vec![("host", key.host.as_str())];
            if !key.index.is_empty() {
                query.push(("index", key.index.as_str()));
            }
            let response = match self.client.get(&url).query(&query).send().await {
                Ok(response) => response,
                Err(error) => {
                    tracing::warn!(url, host = %key.host, index = %key.index, error = %error_chain(&error), "monitor-api unreachable for a host liveness lookup");
                    self.count("unreachable");
                    continue;
                }
            };
            let status = response.status();
            if !status.is_success() {
                tracing::warn!(url, host = %key.host, status = status.as_u16(), "monitor-api refused a host liveness lookup");
                self.count("unreachable");
                continue;
            }
            let answer: HostsAnswer = match response.json().await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::warn!(url, host = %key.host, error = %error_chain(&error), "unreadable host liveness answer");
                    self.count("unreachable");
                    continue;
                }
            };
            let entry = answer
                .hosts
                .iter()
                .find(|h| h.host == key.host && (key.index.is_empty() || h.index == key.index));
            return match entry {
                Some(entry) if entry.active => {
                    self.count("active");
                    Liveness::Active
                }
                Some(_) => {
                    self.count("inactive");
                    Liveness::Inactive
                }
                None => {
                    self.count("unknown");
                    Liveness::Unknown
                }
            };
        }
        Liveness::Unknown
    }
}
