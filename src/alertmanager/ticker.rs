//! The background loop of the pipeline: hands groups to the outbox when their `group_wait` is
//! over (waking exactly then, or when a new group opens) and runs the SuccessDuration sweep
//! every `sweep_interval` (asking monitor-api about the hosts of quiet issued alerts).
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
    mut shutdown: watch::Receiver<bool>,
) {
    let mut next_sweep = Instant::now();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let flushing = Arc::clone(&pipeline);
        match tokio::task::spawn_blocking(move || flushing.flush_due_groups()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot hand due groups to the outbox; retrying")
            }
            Err(error) => tracing::error!(%error, "group flush task failed"),
        }
        if Instant::now() >= next_sweep {
            sweep(&pipeline, &liveness).await;
            next_sweep = Instant::now() + sweep_interval;
        }
        let mut wait = next_sweep.saturating_duration_since(Instant::now());
        if let Some(due) = pipeline.next_group_due_ms() {
            let until_due = Duration::from_millis(due.saturating_sub(pipeline.now_ms()));
            wait = wait.min(until_due);
        }
        // Registered before sleeping so a group opened meanwhile is not missed.
        let opened = pipeline.group_opened.notified();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = opened => {}
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
