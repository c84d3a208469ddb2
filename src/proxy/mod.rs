//! The `monitor-api` HTTP surface: write, admin (ping, health, metrics, shard map, reload) and,
//! later, query, traces, logs and hosts. It must never acknowledge a line before it is durable,
//! and never buffer a body beyond its limits.

pub mod admin;
pub mod body;
pub mod hosts;
pub mod query;
pub mod response;
pub mod rules;
pub mod search;
pub mod server;
pub mod state;
pub mod write;
