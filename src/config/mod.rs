//! YAML configuration of the binaries: types with documented defaults, loading, and validation
//! whose errors name the file, line and key path (`config/monitor-api.yaml:14:
//! groups.g1.replicas[1].url: invalid URL ...`). It must never accept a file it cannot explain:
//! unknown keys are refused, and every problem names the key and line.
//!
//! - [`api`]: `monitor-api` ([`ApiConfig`], [`load_api_config`]).
//! - [`alert`]: `monitor-alert-manager` ([`AlertManagerConfig`], [`load_alert_manager_config`]).
//! - [`check`]: `monitorctl check-config` ([`check_config_file`]).
//! - [`units`]: durations (`"150ms"`, `"1h30m"`) and byte sizes (`"32MiB"`).
//! - [`pattern`]: index selectors (exact, glob, `/regex/`, `*`).
//! - [`locate`]: key paths and their lines in a YAML source.
//! - [`load`]: reading, parsing and validating a config file, shared by every loader.

pub mod alert;
pub mod api;
pub mod check;
pub mod error;
pub mod load;
pub mod locate;
pub mod ordered;
pub mod pattern;
pub mod units;

pub use alert::{AlertManagerConfig, Matcher, load_alert_manager_config};
pub use api::{
    ApiConfig, Consistency, DatabaseMapping, Dialect, FsyncPolicy, GroupConfig, ReplicaConfig,
    TokenConfig, load_api_config, validate_shard_map,
};
pub use check::{CheckReport, ConfigKind, check_config_file};
pub use error::{ConfigError, Problem, Problems};
pub use locate::{KeyPath, PathSegment, SourceMap};
pub use ordered::OrderedMap;
pub use pattern::{PatternError, SelectorKind, parse_selector};
pub use units::{ByteSize, HumanDuration, parse_duration};
