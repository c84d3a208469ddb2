//! Wires the alert manager together for `monitor-alert-manager`: opens the store, the outbox and
//! the pipeline, starts the delivery loop and the ticker, and serves the v1 and v2 APIs until
//! SIGINT/SIGTERM.
//!
//! It must never start serving before the persisted state is loaded (an alert accepted before
//! the ignore rules are known could be delivered against a rule), and never print a secret:
//! `/api/v2/status` shows the config with passwords and tokens redacted.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::api::{AppState, request_id_layer};
use super::clock::{Clock, SystemClock};
use super::liveness::HostLiveness;
use super::metrics::AlertMetrics;
use super::notify::Notification;
use super::outbox::Outbox;
use super::pipeline::{Dispatch, Pipeline, PipelineError};
use super::store::{Store, StoreError};
use crate::config::alert::AlertManagerConfig;

/// Largest request body accepted (a batch of alerts).
const BODY_LIMIT: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("outbox: {0}")]
    Outbox(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

impl Dispatch for Outbox {
    fn enqueue_in(
        &self,
        txn: &redb::WriteTransaction,
        notification: &Notification,
    ) -> Result<(), String> {
        Outbox::enqueue_in(self, txn, notification).map_err(|e| e.to_string())
    }

    fn enqueue_all_in(
        &self,
        txn: &redb::WriteTransaction,
        notifications: &[Notification],
    ) -> Result<(), String> {
        Outbox::enqueue_all_in(self, txn, notifications).map_err(|e| e.to_string())
    }

    fn wake(&self) {
        Outbox::wake(self);
    }
}

/// The config as `/api/v2/status` shows it: secrets replaced.
pub fn redacted_config(config: &AlertManagerConfig) -> String {
    let mut shown = config.clone();
    for receiver in &mut shown.receivers {
        if let Some(email) = &mut receiver.email
            && email.password.is_some()
        {
            email.password = Some("<secret>".to_owned());
        }
        if let Some(webhook) = &mut receiver.webhook
            && webhook.bearer_token.is_some()
        {
            webhook.bearer_token = Some("<secret>".to_owned());
        }
    }
    serde_yaml_ng::to_string(&shown).unwrap_or_default()
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve(config: AlertManagerConfig) -> Result<(), ServeError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Store::open(&config.data_dir)?;
    let mut registry = Registry::default();
    let metrics = AlertMetrics::default();
    metrics.register(&mut registry);
    let outbox = Outbox::open(
        store.database(),
        &config,
        Arc::clone(&clock),
        registry.sub_registry_with_prefix("monitor"),
    )
    .map_err(|e| ServeError::Outbox(e.to_string()))?;
    let dispatch: Arc<dyn Dispatch> = outbox.clone();
    let pipeline = Arc::new(Pipeline::open(
        store,
        &config,
        dispatch,
        Arc::clone(&clock),
        metrics.clone(),
    )?);
    let liveness = Arc::new(HostLiveness::new(
        config.monitor_api.clone(),
        config.host_cache_ttl.get(),
        Arc::clone(&clock),
        metrics,
    ));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let delivery = tokio::spawn(Arc::clone(&outbox).run(shutdown_rx.clone()));
    let ticker = tokio::spawn(super::ticker::run(
        Arc::clone(&pipeline),
        liveness,
        config.sweep_interval.get(),
        shutdown_rx.clone(),
    ));
    let state = AppState {
        started_ms: clock.now_ms(),
        ingest: super::ingest::IngestQueue::new(Arc::clone(&pipeline)),
        pipeline,
        registry: Arc::new(registry),
        config_text: Arc::new(redacted_config(&config)),
        config: Arc::new(config.clone()),
        outbox,
    };
    let app = super::api::routes()
        .merge(super::api_v2::routes())
        .layer(axum::middleware::from_fn(request_id_layer))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen.clone(),
            source,
        })?;
    tracing::info!(listen = %config.listen, data_dir = %config.data_dir.display(), "monitor-alert-manager listening");
    let mut on_shutdown = shutdown_rx.clone();
    // The router as it is for each connection (see `proxy::server::serve`: served directly it
    // rebuilds itself per connection).
    let served = axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = on_shutdown.changed() => {}
            }
        })
        .await;
    let _ = shutdown_tx.send(true);
    let _ = ticker.await;
    let _ = delivery.await;
    served.map_err(ServeError::Io)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
