//! The `monitor-alert-manager` pipeline: receive, ignore, occurrences, grouping, issued/reissue,
//! routing, outbox and notifiers, with its state in a crash-safe store.
//!
//! It must never deliver an alert that a persisted ignore rule matches, and never lose a
//! notification it owes (an owed Success, a retry) across a crash.
//!
//! - [`pipeline`]: the stages in order, their state, one redb transaction per request or tick.
//! - [`ingest`]: group commit of concurrent alert requests (one transaction for several).
//! - [`ignore`], [`occurrences`], [`issued`], [`grouping`], [`routing`]: one stage each.
//! - [`store`]: the redb tables, [`records`]: their binary records. [`liveness`]: monitor-api's host registry, cached.
//! - [`ticker`]: group flushes and the SuccessDuration sweep. [`api`], [`api_v2`]: HTTP.
//! - [`server`]: wires it all together for the binary and the tests.

pub mod alert;
pub mod api;
pub mod api_v2;
pub mod clock;
pub mod grouping;
pub mod ignore;
pub mod ingest;
pub mod issued;
pub mod liveness;
pub mod metrics;
pub mod notify;
pub mod occurrences;
pub mod outbox;
pub mod pipeline;
pub mod records;
pub mod routing;
pub mod server;
pub mod store;
pub mod ticker;
pub mod time;
