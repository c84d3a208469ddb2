//! Building and running the `monitor-api` HTTP server: routes, shared state, SIGHUP reloads and
//! graceful shutdown. It never starts serving before every group's durable log is open and
//! replayed into its senders.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::config::ApiConfig;
use crate::replication::pipeline::Pipeline;
use crate::shard::{Access, ShardMapStore, Shared};
use crate::telemetry::metrics::ApiMetrics;

use super::admin;
use super::hosts;
use super::query;
use super::rules;
use super::search;
use super::state::AppState;
use super::write;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error("starting the write pipeline: {0}")]
    Pipeline(#[from] crate::replication::pipeline::PipelineError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// The routes of `monitor-api`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/write", post(write::write_v1))
        .route("/api/v2/write", post(write::write_v2))
        .route("/ping", get(admin::ping).head(admin::ping))
        .route("/health", get(admin::health))
        .route("/ready", get(admin::ready))
        .route("/metrics", get(admin::metrics))
        .route(
            "/api/v1/shardmap",
            get(admin::get_shardmap).put(admin::put_shardmap),
        )
        .route("/-/reload", post(admin::reload))
        .route("/api/v1/traces/{traceid}", get(search::trace))
        .route("/api/v1/logs", get(search::logs))
        .route("/query", get(query::handle).post(query::handle))
        .route("/api/v1/rules", get(rules::list_rules))
        .route("/api/v1/hosts", get(hosts::list_hosts))
        // Write bodies are limited by our own reader (before decompression); the shard map
        // body by this.
        .layer(DefaultBodyLimit::disable())
        .layer(query_runtime(&state))
        .with_state(state)
}

/// The query path's runtime (pending DDL list) as a request extension. When the list cannot be
/// opened, `/query` still serves reads and DDL is refused until a restart fixes it.
fn query_runtime(state: &Arc<AppState>) -> axum::Extension<Arc<query::QueryRuntime>> {
    let runtime = query::QueryRuntime::start(state).unwrap_or_else(|error| {
        tracing::error!(%error, "the pending DDL list cannot be opened; DDL through /query cannot be queued for down replicas");
        query::QueryRuntime::without_queue()
    });
    axum::Extension(runtime)
}

/// Opens everything `config` names and returns the state the handlers share.
pub fn build_state(
    config: ApiConfig,
    config_path: Option<PathBuf>,
) -> Result<Arc<AppState>, ServeError> {
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let metrics = Arc::new(ApiMetrics::new());
    let shardmap = ShardMapStore::open(&config).map_err(|e| ServeError::Config(e.to_string()))?;
    let access = Access::from_config(&config).map_err(|e| ServeError::Config(e.to_string()))?;
    let pipeline = Pipeline::start(&config, &shardmap.snapshot(), metrics.clone())?;
    let rules = crate::rules::RulesRuntime::start_default(&config, metrics.clone())
        .map_err(|e| ServeError::Config(e.to_string()))?;
    Ok(Arc::new(AppState {
        rules,
        config_path,
        classifier: config.classifier(),
        config: Shared::new(config),
        shardmap,
        access: Shared::new(access),
        pipeline,
        metrics,
    }))
}

/// Serves `config` (loaded from `config_path`, which reloads re-read) until SIGINT/SIGTERM.
pub async fn serve(config: ApiConfig, config_path: &Path) -> Result<(), ServeError> {
    let listen = config.listen.clone();
    let state = build_state(config, Some(config_path.to_path_buf()))?;
    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: listen.clone(),
            source,
        })?;
    let local: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(listen = %listen, address = ?local, "monitor-api listening");
    spawn_sighup_reloader(state.clone());
    rules::spawn_derived_writer(state.clone());
    let app = router(state.clone());
    // Answers stream in several writes (head, then chunks as the replicas send them): without
    // NODELAY the kernel holds a short write back until the previous one is acknowledged.
    let listener = listener.tap_io(|connection| {
        if let Err(error) = connection.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set on a client connection");
        }
    });
    // A make-service that hands each connection the router as it is (an `Arc` clone): served
    // directly, a `Router` rebuilds itself for every connection (`with_state(())` re-maps every
    // route), which cost a tenth of the CPU of a query on a fresh connection.
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(ServeError::Serve)?;
    state.pipeline.shutdown().await;
    state.rules.save_hosts();
    tracing::info!("monitor-api stopped");
    Ok(())
}

fn spawn_sighup_reloader(state: Arc<AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; use POST /-/reload");
            return;
        };
        while hangups.recv().await.is_some() {
            match state.reload() {
                Ok(message) => tracing::info!("SIGHUP: {message}"),
                Err(message) => tracing::warn!(
                    "SIGHUP: reload refused, the running configuration is unchanged: {message}"
                ),
            }
        }
    });
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
