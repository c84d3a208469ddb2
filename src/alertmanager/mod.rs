//! The `monitor-alert-manager` pipeline: receive, ignore, occurrences, grouping, issued/reissue,
//! routing, outbox and notifiers, with its state in a crash-safe store.
//!
//! It must never deliver an alert that a persisted ignore rule matches, and never lose a
//! notification it owes (an owed Success, a retry) across a crash.

pub mod alert;
pub mod clock;
pub mod notify;
pub mod outbox;
