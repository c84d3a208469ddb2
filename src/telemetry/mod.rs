//! Observability shared by the binaries: structured JSON logs, request ids that travel from the
//! client to the backends and the alerts, and the Prometheus registry helpers.
//!
//! It must never put a secret (token, password) in a log line or a metric label.

pub mod logging;
pub mod metrics;
pub mod request_id;

pub use logging::init_logging;
pub use request_id::RequestId;
