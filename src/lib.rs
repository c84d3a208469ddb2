//! monitor: a sharding InfluxDB line-protocol proxy (`monitor-api`) with an alert manager
//! (`monitor-alert-manager`) and an operator CLI (`monitorctl`).
//!
//! The library holds every concept as one module; the binaries in `src/bin/` only parse
//! arguments, load configuration and call into it. See `DESIGN.md` in the shared folder and the
//! README for the architecture.

pub mod alertmanager;
pub mod backend;
pub mod calendar;
pub mod config;
pub mod ctl;
pub mod influxql;
pub mod protocol;
pub mod proxy;
pub mod queue;
pub mod replication;
pub mod rules;
pub mod runtime;
pub mod shard;
pub mod telemetry;
