//! The shard map: index to shard group routing, its versioned and persisted live copy, and
//! access control by index. It must never route one index to two different groups at once:
//! every request routes all its lines through one immutable [`ShardMap`] snapshot, and a change
//! installs a whole new map atomically.
//!
//! Routing order: exact index names (one hash lookup, no allocation), then patterns in config
//! order (globs such as `cluster*` and `/regex/`, compiled into one regex set), then
//! `default_group`; otherwise [`RouteError::UnknownIndex`].

pub mod access;
pub mod map;
pub mod store;

pub use access::{Access, AccessError, Action, Grants, Principal, extract_token};
pub use map::{Group, GroupId, REDACTED, Replica, RouteError, ShardMap, ShardMapDoc};
pub use store::{
    MapSource, ReloadOutcome, SHARDMAP_FILE, ShardMapError, ShardMapStore, Shared, SharedShardMap,
};
