//! The `monitor-api` HTTP surface: write, query, traces, logs, hosts, admin. It must never
//! acknowledge a line before it is durable, and never buffer a body beyond its limits.

pub mod body;
