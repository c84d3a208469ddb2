//! The retrying outbox of fired alerts: one bounded queue and one sender task per alert manager
//! URL, each posting JSON arrays to `{url}/api/v1/alerts` (with the firing write's request id
//! as `X-Request-Id`), retrying with exponential backoff and jitter while the alert manager is
//! unreachable or answers 5xx/429.
//!
//! It is in memory: alerts queued when the proxy stops are lost (the rules fire again while the
//! condition holds). It must never block the evaluator (pushing is a short lock), never grow
//! beyond `rules.outbox_capacity` per alert manager (the oldest are dropped and counted), and
//! never retry forever a batch the alert manager refuses as malformed (4xx other than 408/429 is
//! counted as rejected and dropped).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::alertmanager::alert::Alert;
use crate::backend::backoff::Backoff;
use crate::config::api::normalise_url;
use crate::telemetry::metrics::{ApiMetrics, OutcomeLabels};

/// Alerts per POST.
const BATCH: usize = 256;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One alert waiting to leave.
#[derive(Debug, Clone)]
pub struct Queued {
    pub alert: Alert,
    /// When the write request whose line fired it arrived.
    pub arrived: Instant,
    pub request_id: String,
}

struct Target {
    url: String,
    queue: Mutex<VecDeque<Queued>>,
    wake: Notify,
    stopped: AtomicBool,
}

impl Target {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Every alert manager's queue.
pub struct Outbox {
    targets: Mutex<Vec<Arc<Target>>>,
    capacity: usize,
    metrics: Arc<ApiMetrics>,
    client: reqwest::Client,
    runtime: Option<tokio::runtime::Handle>,
}

impl Outbox {
    /// Starts one sender per URL on the current tokio runtime (without one, alerts are only
    /// queued; tests of the evaluator run that way).
    pub fn start(urls: &[String], capacity: usize, metrics: Arc<ApiMetrics>) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox {
            targets: Mutex::new(Vec::new()),
            capacity: capacity.max(1),
            metrics,
            client: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap_or_default(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        });
        outbox.set_targets(urls);
        outbox
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Target>>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a new `alert_managers` list: new URLs get a sender, removed ones stop (their
    /// queued alerts are dropped and counted), unchanged ones keep their queue.
    pub fn set_targets(&self, urls: &[String]) {
        let wanted: Vec<String> = urls.iter().map(|u| normalise_url(u)).collect();
        let mut targets = self.lock();
        targets.retain(|target| {
            let keep = wanted.contains(&target.url);
            if !keep {
                target.stopped.store(true, Ordering::Relaxed);
                target.wake.notify_one();
                let dropped = target.lock().drain(..).count();
                self.count("dropped", dropped);
            }
            keep
        });
        for url in wanted {
            if targets.iter().any(|t| t.url == url) {
                continue;
            }
            let target = Arc::new(Target {
                url,
                queue: Mutex::new(VecDeque::new()),
                wake: Notify::new(),
                stopped: AtomicBool::new(false),
            });
            if let Some(runtime) = &self.runtime {
                runtime.spawn(deliver(
                    target.clone(),
                    self.client.clone(),
                    self.metrics.clone(),
                    self.capacity,
                ));
            }
            targets.push(target);
        }
    }

    /// Queues `alerts` for every alert manager.
    pub fn push(&self, alerts: &[Queued]) {
        if alerts.is_empty() {
            return;
        }
        let targets = self.lock().clone();
        for target in targets {
            let mut queue = target.lock();
            for alert in alerts {
                if queue.len() >= self.capacity {
                    queue.pop_front();
                    self.count("dropped", 1);
                }
                queue.push_back(alert.clone());
            }
            drop(queue);
            target.wake.notify_one();
        }
        self.update_gauge();
    }

    /// Alerts waiting, over every alert manager.
    pub fn queued(&self) -> usize {
        self.lock().iter().map(|t| t.lock().len()).sum()
    }

    fn update_gauge(&self) {
        self.metrics.rules.outbox_queued.set(self.queued() as i64);
    }

    fn count(&self, outcome: &'static str, n: usize) {
        count(&self.metrics, outcome, n);
    }
}

fn count(metrics: &ApiMetrics, outcome: &'static str, n: usize) {
    if n > 0 {
        metrics
            .rules
            .alerts_delivered
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(n as u64);
    }
}

async fn deliver(
    target: Arc<Target>,
    client: reqwest::Client,
    metrics: Arc<ApiMetrics>,
    capacity: usize,
) {
    let endpoint = format!("{}/api/v1/alerts", target.url);
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        if target.stopped.load(Ordering::Relaxed) {
            return;
        }
        let batch: Vec<Queued> = {
            let mut queue = target.lock();
            let n = queue.len().min(BATCH);
            queue.drain(..n).collect()
        };
        if batch.is_empty() {
            // A lost wake-up costs at most this long.
            let _ = tokio::time::timeout(Duration::from_secs(1), target.wake.notified()).await;
            continue;
        }
        let alerts: Vec<&Alert> = batch.iter().map(|q| &q.alert).collect();
        let request_id = batch[0].request_id.clone();
        let leaving = Instant::now();
        let mut request = client.post(&endpoint).json(&alerts);
        if !request_id.is_empty() {
            request = request.header("X-Request-Id", request_id);
        }
        let retry_after = match request.send().await {
            Ok(response) if response.status().is_success() => {
                for queued in &batch {
                    metrics.rules.alert_delay.observe(
                        leaving
                            .saturating_duration_since(queued.arrived)
                            .as_secs_f64(),
                    );
                }
                count(&metrics, "sent", batch.len());
                backoff.reset();
                update_gauge(&target, &metrics);
                continue;
            }
            Ok(response)
                if response.status().is_client_error()
                    && response.status() != reqwest::StatusCode::TOO_MANY_REQUESTS
                    && response.status() != reqwest::StatusCode::REQUEST_TIMEOUT =>
            {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                tracing::warn!(url = %endpoint, %status, body = %body.chars().take(300).collect::<String>(), alerts = batch.len(), "alert manager refused alerts; dropping them");
                count(&metrics, "rejected", batch.len());
                update_gauge(&target, &metrics);
                continue;
            }
            Ok(response) => {
                let after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                tracing::warn!(url = %endpoint, status = %response.status(), "alert manager unavailable; will retry");
                after
            }
            Err(error) => {
                tracing::warn!(url = %endpoint, error = %crate::telemetry::error_chain(&error), "cannot reach alert manager; will retry");
                None
            }
        };
        count(&metrics, "failed", batch.len());
        {
            // Put the batch back in front, in order, within the cap (the newest win).
            let mut queue = target.lock();
            for queued in batch.into_iter().rev() {
                if queue.len() >= capacity {
                    count(&metrics, "dropped", 1);
                    continue;
                }
                queue.push_front(queued);
            }
        }
        let wait = retry_after
            .map(|d| d.min(Duration::from_secs(60)))
            .unwrap_or_else(|| backoff.next_delay());
        tokio::time::sleep(wait).await;
    }
}

fn update_gauge(target: &Target, metrics: &ApiMetrics) {
    // Per target; with several alert managers the gauge shows the last one updated, which is
    // enough to see a backlog building.
    metrics.rules.outbox_queued.set(target.lock().len() as i64);
}
