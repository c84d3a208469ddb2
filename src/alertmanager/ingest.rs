//! Group commit of concurrent ingests: requests whose alerts were already validated queue here,
//! and one committer at a time takes every request waiting (up to a bound of alerts) through
//! [`Pipeline::ingest_group`] in ONE redb write transaction, then answers each request with its
//! own summary. Under concurrent load that turns N durable commits into one; a lone request is
//! committed at once, as before.
//!
//! Each request prepares its own alerts before it queues ([`Pipeline::prepare`]: labels,
//! fingerprint, routes), so that work runs in the requests' handlers in parallel and the one
//! committer is left with what needs the pipeline's state (ignore rules, Occurrences,
//! IssuedAlerts, grouping) and the write.
//!
//! Leader/follower: the request that finds no committer running starts one on the blocking pool;
//! the committer keeps taking groups until the queue is empty, so requests arriving while a
//! group commits form the next group. No thread runs while nothing is waiting.
//!
//! It must never answer a request before the transaction holding its alerts has committed
//! (crash safety: a 2xx means the state is durable), never let one request's batch fail another
//! (only validated batches enter, and the one failure they can share is the commit itself), and
//! never grow a group past [`IngestQueue::max_group_alerts`] unless a single request is larger.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::pipeline::{
    Incoming, IngestRequest, IngestSummary, Pipeline, PipelineError, PreparedAlert,
};

/// Alerts per group commit by default: a few requests of 1,000 alerts (what monitor-api sends)
/// share a commit, while the latency a request can add to the ones behind it stays bounded.
pub const DEFAULT_MAX_GROUP_ALERTS: usize = 4_096;

/// What a request gets back: its own summary, or the failure of the commit it shared.
pub type IngestAnswer = Result<IngestSummary, Arc<PipelineError>>;

struct Waiting {
    alerts: Vec<PreparedAlert>,
    request_id: Option<String>,
    answer: oneshot::Sender<IngestAnswer>,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Waiting>,
    /// A committer is running (it will take whatever is queued before it stops).
    committing: bool,
}

/// Counts of the group commits made, for `/metrics` and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    pub commits: u64,
    pub requests: u64,
}

/// The queue of validated ingests and its committer.
pub struct IngestQueue {
    pipeline: Arc<Pipeline>,
    queue: Mutex<Queue>,
    max_group_alerts: usize,
    stats: Mutex<GroupStats>,
}

/// If the committer panics: resets the committer flag and drops the requests still queued, so
/// that they fail instead of waiting forever. (A committer that ends normally resets the flag
/// itself, under the same lock as the look that found the queue empty: a request queued in
/// between would otherwise wait for a committer that is gone.)
struct PanicGuard<'a>(&'a IngestQueue);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = self.0.lock_queue();
            queue.committing = false;
            queue.waiting.clear();
        }
    }
}

impl IngestQueue {
    pub fn new(pipeline: Arc<Pipeline>) -> Arc<Self> {
        Self::with_max_group_alerts(pipeline, DEFAULT_MAX_GROUP_ALERTS)
    }

    pub fn with_max_group_alerts(pipeline: Arc<Pipeline>, max_group_alerts: usize) -> Arc<Self> {
        Arc::new(Self {
            pipeline,
            queue: Mutex::new(Queue::default()),
            max_group_alerts: max_group_alerts.max(1),
            stats: Mutex::new(GroupStats::default()),
        })
    }

    /// The largest number of alerts one group commit takes (a larger single request is taken
    /// alone).
    pub fn max_group_alerts(&self) -> usize {
        self.max_group_alerts
    }

    pub fn stats(&self) -> GroupStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a validated batch and waits until it is durably committed (alone or with others).
    pub async fn ingest(
        self: &Arc<Self>,
        alerts: Vec<Incoming>,
        request_id: Option<String>,
    ) -> IngestAnswer {
        let (receiver, lead) = self.enqueue(alerts, request_id);
        if lead {
            let span = tracing::Span::current();
            let queue = Arc::clone(self);
            // Detached: the groups it commits hold other requests' alerts too, so it must run
            // to the end even if this request's client goes away.
            drop(tokio::task::spawn_blocking(move || {
                span.in_scope(|| queue.commit_while_waiting());
            }));
        }
        match receiver.await {
            Ok(answer) => answer,
            Err(_) => Err(Arc::new(PipelineError::Ingest(
                "the committer stopped before answering".to_owned(),
            ))),
        }
    }

    /// Queues a batch; returns its answer channel and whether the caller must start a committer
    /// (none was running). The alerts are prepared here, by the caller, before they queue: the
    /// requests' handlers do that work in parallel, the committer only what needs the state.
    fn enqueue(
        &self,
        alerts: Vec<Incoming>,
        request_id: Option<String>,
    ) -> (oneshot::Receiver<IngestAnswer>, bool) {
        let alerts = self.pipeline.prepare_all(alerts);
        let (answer, receiver) = oneshot::channel();
        let mut queue = self.lock_queue();
        queue.waiting.push_back(Waiting {
            alerts,
            request_id,
            answer,
        });
        let lead = !queue.committing;
        queue.committing = true;
        (receiver, lead)
    }

    /// Takes the requests at the front of the queue up to the alert bound (at least one).
    fn take_group(&self, queue: &mut Queue) -> Vec<Waiting> {
        let mut group = Vec::new();
        let mut alerts = 0;
        while let Some(next) = queue.waiting.front() {
            if !group.is_empty() && alerts + next.alerts.len() > self.max_group_alerts {
                break;
            }
            alerts += next.alerts.len();
            group.extend(queue.waiting.pop_front());
        }
        group
    }

    /// Commits groups until nothing is waiting (runs on the blocking pool).
    fn commit_while_waiting(&self) {
        let _guard = PanicGuard(self);
        loop {
            let group = {
                let mut queue = self.lock_queue();
                let group = self.take_group(&mut queue);
                if group.is_empty() {
                    queue.committing = false;
                    return;
                }
                group
            };
            self.commit_group(group);
        }
    }

    fn commit_group(&self, group: Vec<Waiting>) {
        let mut answers = Vec::with_capacity(group.len());
        let mut requests = Vec::with_capacity(group.len());
        let mut ids = Vec::with_capacity(group.len());
        for waiting in group {
            answers.push(waiting.answer);
            requests.push(waiting.alerts);
            ids.push(waiting.request_id);
        }
        let requests: Vec<IngestRequest<'_>> = requests
            .into_iter()
            .zip(&ids)
            .map(|(alerts, request_id)| IngestRequest {
                alerts,
                request_id: request_id.as_deref(),
            })
            .collect();
        let outcome = self.pipeline.ingest_group(requests);
        {
            let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.commits += 1;
            stats.requests += answers.len() as u64;
        }
        let metrics = self.pipeline.metrics();
        metrics.ingest_commits.inc();
        metrics
            .ingest_committed_requests
            .inc_by(answers.len() as u64);
        match outcome {
            Ok(summaries) => {
                for (answer, summary) in answers.into_iter().zip(summaries) {
                    // A client that went away no longer waits for its answer: nothing to do.
                    let _ = answer.send(Ok(summary));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for answer in answers {
                    let _ = answer.send(Err(Arc::clone(&error)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;

    use crate::alertmanager::alert::Alert;
    use crate::alertmanager::clock::{Clock, SystemClock};
    use crate::alertmanager::metrics::AlertMetrics;
    use crate::alertmanager::notify::Notification;
    use crate::alertmanager::pipeline::Dispatch;
    use crate::alertmanager::store::Store;
    use crate::config::alert::AlertManagerConfig;

    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl Dispatch for Count {
        fn enqueue_in(
            &self,
            _txn: &redb::WriteTransaction,
            _notification: &Notification,
        ) -> Result<(), String> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
        fn wake(&self) {}
    }

    fn config() -> AlertManagerConfig {
        AlertManagerConfig::from_yaml_str(
            r#"
reissue_duration: "1h"
success_duration: "1h"
group_wait: "1h"
receivers:
  - { name: hook, webhook: { url: "http://127.0.0.1:9/hook" } }
default_receiver: hook
"#,
            "test.yaml",
        )
        .unwrap()
    }

    fn incoming(name: &str, host: &str) -> Incoming {
        Incoming {
            alert: Alert {
                name: name.to_owned(),
                index: "cluster1".to_owned(),
                host: host.to_owned(),
                source: String::new(),
                severity: "warning".to_owned(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                value: None,
                at: String::new(),
                fingerprint: String::new(),
            },
            ends_at_ms: None,
        }
    }

    fn open(dir: &std::path::Path) -> Arc<Pipeline> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Arc::new(
            Pipeline::open(
                Store::open(dir).unwrap(),
                &config(),
                Arc::new(Count::default()),
                clock,
                AlertMetrics::default(),
            )
            .unwrap(),
        )
    }

    /// Queues requests while no committer runs, then runs one: they share one commit.
    #[test]
    fn waiting_requests_share_one_commit_and_get_their_own_summaries() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = open(dir.path());
        let queue = IngestQueue::new(Arc::clone(&pipeline));
        let (first, lead) = queue.enqueue(
            vec![incoming("A", "h1"), incoming("B", "h1")],
            Some("r1".into()),
        );
        assert!(lead, "the first request leads");
        // The same alert twice in one request and once in another: one fingerprint, counted
        // in each request's own summary.
        let (second, lead) = queue.enqueue(
            vec![
                incoming("C", "h2"),
                incoming("C", "h2"),
                incoming("D", "h2"),
            ],
            Some("r2".into()),
        );
        assert!(!lead, "a committer is already due to run");
        let (third, _) = queue.enqueue(vec![incoming("A", "h1")], Some("r3".into()));
        queue.commit_while_waiting();

        let first = first.blocking_recv().unwrap().unwrap();
        let second = second.blocking_recv().unwrap().unwrap();
        let third = third.blocking_recv().unwrap().unwrap();
        assert_eq!((first.received, first.due), (2, 2));
        assert_eq!((second.received, second.due, second.suppressed), (3, 2, 1));
        // Already issued by the first request of the same group: suppressed, not re-delivered.
        assert_eq!((third.received, third.due, third.suppressed), (1, 0, 1));
        assert_eq!(
            queue.stats(),
            GroupStats {
                commits: 1,
                requests: 3
            }
        );
        assert!(!queue.lock_queue().committing);

        // Durable: a fresh pipeline on the same directory knows all four alerts as issued.
        drop(queue);
        drop(pipeline);
        let reopened = open(dir.path());
        let mut names: Vec<String> = reopened
            .issued()
            .iter()
            .map(|i| i.alert.name.clone())
            .collect();
        names.sort();
        assert_eq!(names, ["A", "B", "C", "D"]);
    }

    #[test]
    fn a_group_stops_at_the_alert_bound_but_takes_a_large_request_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = open(dir.path());
        let queue = IngestQueue::with_max_group_alerts(pipeline, 3);
        let many = |prefix: &str, n: usize| -> Vec<Incoming> {
            (0..n)
                .map(|i| incoming(&format!("{prefix}{i}"), "h"))
                .collect()
        };
        let mut receivers = Vec::new();
        for (prefix, n) in [("big", 5), ("a", 2), ("b", 1), ("c", 1)] {
            receivers.push(queue.enqueue(many(prefix, n), None).0);
        }
        // Groups: [big] (alone, over the bound), [a, b] (3 alerts), [c].
        queue.commit_while_waiting();
        for (receiver, n) in receivers.into_iter().zip([5, 2, 1, 1]) {
            assert_eq!(receiver.blocking_recv().unwrap().unwrap().received, n);
        }
        assert_eq!(
            queue.stats(),
            GroupStats {
                commits: 3,
                requests: 4
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_are_all_answered_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = open(dir.path());
        let queue = IngestQueue::new(Arc::clone(&pipeline));
        let mut tasks = Vec::new();
        for request in 0..16 {
            let queue = Arc::clone(&queue);
            tasks.push(tokio::spawn(async move {
                let alerts = (0..=request)
                    .map(|i| incoming(&format!("R{request}A{i}"), "h"))
                    .collect();
                (request, queue.ingest(alerts, None).await)
            }));
        }
        for task in tasks {
            let (request, answer) = task.await.unwrap();
            let summary = answer.unwrap();
            assert_eq!(summary.received, request + 1);
            assert_eq!(summary.due, request + 1);
        }
        assert_eq!(pipeline.issued().len(), (1..=16).sum::<usize>());
        let stats = queue.stats();
        assert_eq!(stats.requests, 16);
        assert!(stats.commits >= 1 && stats.commits <= 16);
    }
}
