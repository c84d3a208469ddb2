//! The `monitor-api` HTTP surface: write, query, traces, logs, hosts, admin. Not implemented
//! yet (issue 3); it must never acknowledge a line before it is durable.
