//! The background loops of the pipeline: one hands groups to the outbox when their `group_wait`
//! is over (waking exactly then, or when a new group opens); the other runs the SuccessDuration
//! sweep every `sweep_interval` (asking monitor-api about the hosts of quiet issued alerts).
//! They are separate so that a slow or unreachable monitor-api never delays a due group.
//!
//! It must never hold the pipeline's lock across an `.await` (liveness lookups happen between
//! two short, synchronous pipeline calls), and never stop on an error: errors are logged and
//! retried on the next turn.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::liveness::HostLiveness;
use super::pipeline::Pipeline;

/// Runs until `shutdown` turns true.
pub async fn run(
    pipeline: Arc<Pipeline>,
    liveness: Arc<HostLiveness>,
    sweep_interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let sweeper = tokio::spawn(sweep_loop(
        Arc::clone(&pipeline),
        liveness,
        sweep_interval,
        shutdown.clone(),
    ));
    flush_loop(pipeline, shutdown).await;
    let _ = sweeper.await;
}

/// The longest the flush loop sleeps without a reason (a safety net: it is woken on new groups).
const IDLE_WAKE: Duration = Duration::from_secs(1);
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(200);

async fn flush_loop(pipeline: Arc<Pipeline>, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let flushing = Arc::clone(&pipeline);
        let failed = match tokio::task::spawn_blocking(move || flushing.flush_due_groups()).await {
            Ok(Ok(_)) => false,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot hand due groups to the outbox; retrying");
                true
            }
            Err(error) => {
                tracing::error!(%error, "group flush task failed");
                true
            }
        };
        let mut wait = IDLE_WAKE;
        if let Some(due) = pipeline.next_group_due_ms() {
            let until_due = Duration::from_millis(due.saturating_sub(pipeline.now_ms()));
            wait = wait.min(until_due);
        }
        if failed {
            // A store that refuses commits is not retried in a hot loop.
            wait = wait.max(RETRY_AFTER_ERROR);
        }
        // `notify_one` keeps a permit when nobody waits: a group opened since the flush still
        // wakes this select at once.
        let opened = pipeline.group_opened.notified();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = opened => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn sweep_loop(
    pipeline: Arc<Pipeline>,
    liveness: Arc<HostLiveness>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let next = Instant::now() + every;
        sweep(&pipeline, &liveness).await;
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = shutdown.changed() => {}
        }
    }
}

async fn sweep(pipeline: &Arc<Pipeline>, liveness: &HostLiveness) {
    let candidates = pipeline.success_candidates();
    if !candidates.is_empty() {
        let answers = liveness.check_all(candidates.into_keys()).await;
        let applying = Arc::clone(pipeline);
        match tokio::task::spawn_blocking(move || applying.apply_successes(&answers)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot record Success messages; retrying"),
            Err(error) => tracing::error!(%error, "success sweep task failed"),
        }
    }
    let forgetting = Arc::clone(pipeline);
    if let Ok(Err(error)) = tokio::task::spawn_blocking(move || forgetting.forget_old()).await {
        tracing::warn!(%error, "cannot forget old alert records");
    }
}
