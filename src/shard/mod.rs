//! The shard map: index to shard group routing, its versioned and persisted live copy, and
//! access control by index. It must never route one index to two different groups at once:
//! every request routes all its lines through one immutable [`ShardMap`] snapshot, and a change
//! installs a whole new map atomically.
//!
//! Routing order: exact index names (one hash lookup, no allocation), then patterns in config
//! order (globs such as `cluster*` and `/regex/`, compiled into one regex set), then
//! `default_group`; otherwise [`RouteError::UnknownIndex`]. Pass the *unescaped* index tag value.
//! [`GroupId`]s are positions in one map version; use [`Group::name`] for anything durable
//! (queue directories, metrics).
//!
//! How the HTTP side uses it:
//! - write/query: `let map = store.snapshot();` once per request, then `map.route_group(index)`
//!   for every line; an `Err(RouteError)` is a 400 naming the index.
//! - `GET /api/v1/shardmap`: `store.snapshot().doc().redacted()` as JSON (secrets masked).
//! - `PUT /api/v1/shardmap`: `ShardMapDoc::from_json(body)` (400 on error), then
//!   `store.replace(doc)`; [`ShardMapError::http_status`] gives 400/409/500. Secrets sent back as
//!   [`REDACTED`] keep their current value.
//! - SIGHUP / `POST /-/reload`: `load_api_config(path)` (refuse and keep running on error), then
//!   `store.reload(&config)`, `Access::from_config(&config)` swapped into a [`Shared`], and
//!   [`crate::config::ApiConfig::restart_required`] logged for keys a reload cannot apply.
//! - auth: [`extract_token`] from the `Authorization` header or the `p` parameter, then
//!   [`Access::authenticate`] once per request and [`Principal::check`] per index.

pub mod access;
pub mod map;
pub mod store;

pub use access::{Access, AccessError, Action, Grants, Principal, extract_token};
pub use map::{Group, GroupId, REDACTED, Replica, RouteError, ShardMap, ShardMapDoc};
pub use store::{
    MapSource, ReloadOutcome, SHARDMAP_FILE, ShardMapError, ShardMapStore, Shared, SharedShardMap,
};
