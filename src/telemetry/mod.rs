//! Observability shared by the binaries: structured JSON logs, request ids that travel from the
//! client to the backends and the alerts, and the Prometheus registry helpers.
//!
//! It must never put a secret (token, password) in a log line or a metric label.

pub mod logging;
pub mod metrics;
pub mod request_id;

pub use logging::init_logging;
pub use request_id::RequestId;

/// An error and its sources as one line (`outer: cause: root cause`): HTTP client errors hide
/// the useful part (connection refused, timed out) in their sources.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
