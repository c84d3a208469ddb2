//! InfluxDB backends as the proxy sees them: an HTTP client per replica for the v1 and v2 write
//! dialects, the classification of what a backend answered, a circuit breaker and the retry
//! backoff.
//!
//! It forwards the line-protocol bytes it is given and must never re-serialise or alter them:
//! every replica receives the same bytes (DESIGN.md invariant 2).

pub mod backoff;
pub mod breaker;
pub mod chunks;
pub mod client;
pub mod query_http;

pub use backoff::Backoff;
pub use breaker::{BreakerState, CircuitBreaker};
pub use chunks::Chunks;
pub use client::{
    BackendClient, BackendError, Dialect, Endpoint, QueryAnswer, QueryRequest, RejectReason,
    WriteTarget,
};
