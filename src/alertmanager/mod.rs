//! The `monitor-alert-manager` pipeline: receive, ignore, occurrences, grouping, issued/reissue,
//! routing, outbox and notifiers. Not implemented yet (issue 6); it must never deliver an alert
//! that a persisted ignore rule matches.
