//! How answers from several replicas and shard groups become one: raw points (union), aggregates
//! (recombination across groups) and SHOW (union, dedup, sort). Each merge is exact or refused;
//! none of them ever returns an answer it cannot prove equal to one complete InfluxDB's.

pub mod aggregate;
pub mod chunk;
pub mod msgpack;
pub mod raw;
pub mod show;
pub mod stream;
pub mod writer;

pub use aggregate::{AggregatePlan, Unmergeable};
pub use raw::{Window, merge_raw, replica_select};
pub use show::{merge_show, replica_show};
