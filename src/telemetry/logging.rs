//! Process-wide structured logging: one JSON object per line on stderr, filtered by
//! `MONITOR_LOG` (tracing's `EnvFilter` syntax, default `info`). Never panics when a subscriber
//! is already installed (tests install several times).

use tracing_subscriber::EnvFilter;

/// The environment variable that sets the log filter, e.g. `MONITOR_LOG=monitor=debug`.
pub const LOG_FILTER_ENV: &str = "MONITOR_LOG";

/// Installs the JSON subscriber; `service` is added to every line as `service`.
pub fn init_logging(service: &'static str) {
    let filter = EnvFilter::try_from_env(LOG_FILTER_ENV).unwrap_or_else(|_| EnvFilter::new("info"));
    let installed = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .try_init();
    if installed.is_ok() {
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
    }
}
