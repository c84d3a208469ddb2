//! Process-wide structured logging on stderr: one JSON object per line by default (or text),
//! filtered by the configured level, which `MONITOR_LOG` (tracing's `EnvFilter` syntax)
//! overrides. Never panics when a subscriber is already installed (tests install several).

use tracing_subscriber::EnvFilter;

/// The environment variable that overrides the log filter, e.g. `MONITOR_LOG=monitor=debug`.
pub const LOG_FILTER_ENV: &str = "MONITOR_LOG";

/// Installs the subscriber; `level` is a filter such as `info` or `monitor=debug,info`.
pub fn init_logging(service: &'static str, level: &str, json: bool) {
    let filter = EnvFilter::try_from_env(LOG_FILTER_ENV)
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    if installed.is_ok() {
        tracing::info!(service, version = env!("CARGO_PKG_VERSION"), "starting");
    }
}
